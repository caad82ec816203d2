-- Password-reset tokens: at most one per account (a newer one replaces it), single use.
-- Only the SHA-256 of the token; expires_at is Unix seconds.
CREATE TABLE password_reset_tokens (
    user_id    uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea  NOT NULL UNIQUE,
    expires_at bigint NOT NULL
);
