-- Email verification. Accounts that exist before this migration count as verified: turning on
-- REQUIRE_EMAIL_VERIFICATION must not lock out every account migrated from before it (they
-- had no way to verify); new registrations are stored unverified by the service.
ALTER TABLE users ADD COLUMN email_verified boolean NOT NULL DEFAULT true;
-- Then false for rows to come: an instance of the previous version still running beside a
-- migrated one (a rolling deploy) inserts sign-ups without the column, and they must not
-- count as verified. (SQLite serves one instance: no such overlap, and no ALTER of a default.)
ALTER TABLE users ALTER COLUMN email_verified SET DEFAULT false;

-- Verification tokens: a table of their own (not the reset tokens'), so a token of one
-- purpose can never be looked up as the other. At most one per account (a newer one replaces
-- it), single use; only the SHA-256 of the token; expires_at is Unix seconds.
CREATE TABLE email_verification_tokens (
    user_id    uuid   PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    token_hash bytea  NOT NULL UNIQUE,
    expires_at bigint NOT NULL
);
