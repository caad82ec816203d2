-- Email verification. Accounts that exist before this migration count as verified: turning on
-- REQUIRE_EMAIL_VERIFICATION must not lock out every account migrated from before it (they
-- had no way to verify); new registrations are stored unverified by the service.
ALTER TABLE users ADD COLUMN email_verified INTEGER NOT NULL DEFAULT 1 CHECK (email_verified IN (0, 1));

-- Verification tokens: a table of their own (not the reset tokens'), so a token of one
-- purpose can never be looked up as the other. At most one per account (a newer one replaces
-- it), single use; only the SHA-256 of the token; expires_at is Unix seconds.
CREATE TABLE email_verification_tokens (
    user_id    TEXT    PRIMARY KEY NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash BLOB    NOT NULL UNIQUE,
    expires_at INTEGER NOT NULL
) STRICT;
