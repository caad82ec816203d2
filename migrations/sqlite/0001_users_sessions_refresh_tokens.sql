-- Accounts, sessions (refresh-token families) and the SHA-256 hashes of refresh tokens.
-- Never a token or a password in clear. Times are Unix seconds (UTC); ids are UUID text.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY NOT NULL,
    -- Stored normalized (trimmed, lower-case) by the service, so the plain unique index
    -- below makes emails unique case-insensitively.
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled      INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;
CREATE UNIQUE INDEX users_email_key ON users (email);

CREATE TABLE sessions (
    id           TEXT    PRIMARY KEY NOT NULL,
    user_id      TEXT    NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    -- Absolute end of the session; rotation never moves it.
    expires_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER,
    user_agent   TEXT,
    client_addr  TEXT
) STRICT;
CREATE INDEX sessions_user_id_idx ON sessions (user_id);
CREATE INDEX sessions_expires_at_idx ON sessions (expires_at);
CREATE INDEX sessions_revoked_idx ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;

CREATE TABLE refresh_tokens (
    hash        BLOB    PRIMARY KEY NOT NULL CHECK (length(hash) = 32),
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    -- The token this one replaced; NULL for the first token of a session.
    parent_hash BLOB,
    issued_at   INTEGER NOT NULL,
    consumed_at INTEGER
) STRICT;
CREATE INDEX refresh_tokens_session_id_idx ON refresh_tokens (session_id);
-- A token has at most one successor: the schema itself refuses a second rotation of one token.
CREATE UNIQUE INDEX refresh_tokens_parent_hash_key ON refresh_tokens (parent_hash);
