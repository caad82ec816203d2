-- Password-reset tokens: at most one per account (a newer one replaces it), single use.
-- Only the SHA-256 of the token; expires_at is Unix seconds.
CREATE TABLE password_reset_tokens (
    user_id    TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL
) STRICT;
