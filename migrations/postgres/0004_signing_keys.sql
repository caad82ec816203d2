-- Generated signing keys (EdDSA, ES256, RS256), shared by every instance. The private key is
-- stored only sealed under the key-encryption key (a compact JWE, A256GCM). Times are Unix
-- seconds.
CREATE TABLE signing_keys (
    kid            text   PRIMARY KEY,
    algorithm      text   NOT NULL,
    state          text   NOT NULL CHECK (state IN ('next', 'current', 'previous', 'retired')),
    created_at     bigint NOT NULL,
    activated_at   bigint,
    deactivated_at bigint,
    sealed_key     text   NOT NULL
);
-- At most one signing and one upcoming key per algorithm: racing instances cannot both add one.
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys (algorithm) WHERE state = 'current';
CREATE UNIQUE INDEX signing_keys_one_next ON signing_keys (algorithm) WHERE state = 'next';
