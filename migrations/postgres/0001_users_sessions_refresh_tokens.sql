-- Accounts, sessions (refresh-token families) and the SHA-256 hashes of refresh tokens.
-- Never a token or a password in clear.

CREATE TABLE users (
    id            uuid        PRIMARY KEY,
    -- Stored normalized (trimmed, lower-case) by the service, so the plain unique index
    -- below makes emails unique case-insensitively.
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    disabled      boolean     NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
    id           uuid        PRIMARY KEY,
    user_id      uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   timestamptz NOT NULL,
    -- Absolute end of the session; rotation never moves it.
    expires_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    user_agent   text,
    client_addr  text
);
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
-- For the purge: ended or revoked sessions, oldest first.
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    hash        bytea       PRIMARY KEY CHECK (octet_length(hash) = 32),
    session_id  uuid        NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The token this one replaced; NULL for the first token of a session.
    parent_hash bytea,
    issued_at   timestamptz NOT NULL,
    consumed_at timestamptz
);
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- A token has at most one successor: the schema itself refuses a second rotation of one token.
CREATE UNIQUE INDEX refresh_tokens_parent_hash_key ON refresh_tokens (parent_hash);
