-- Generated signing keys (EdDSA, ES256, RS256), shared by every instance. The private key is
-- stored only sealed under the key-encryption key (a compact JWE, A256GCM). Times are Unix
-- seconds.
CREATE TABLE signing_keys (
    kid            TEXT    PRIMARY KEY NOT NULL,
    algorithm      TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    created_at     INTEGER NOT NULL,
    activated_at   INTEGER,
    deactivated_at INTEGER,
    sealed_key     TEXT    NOT NULL
) STRICT;
-- At most one signing and one upcoming key per algorithm: racing instances cannot both add one.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (algorithm) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (algorithm) WHERE state = 'next';

-- The revocation feed: one row each time a session is revoked, by whatever path (logout,
-- reuse detection, disabling, password change, ...): a trigger on sessions.revoked_at, so a
-- new revocation path needs no change here. Kept apart from sessions so the session purge
-- does not take entries that verifiers still need; the feed purges its own rows once every
-- access token they could affect has expired. Times are the database's, Unix seconds.
CREATE TABLE session_revocations (
    session_id TEXT    NOT NULL,
    revoked_at INTEGER NOT NULL
) STRICT;
CREATE INDEX session_revocations_revoked_at_idx ON session_revocations (revoked_at);

CREATE TRIGGER sessions_record_revocation
    AFTER UPDATE OF revoked_at ON sessions
    FOR EACH ROW WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    INSERT INTO session_revocations (session_id, revoked_at) VALUES (NEW.id, CAST(strftime('%s', 'now') AS INTEGER));
END;
