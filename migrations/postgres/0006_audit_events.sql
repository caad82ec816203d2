-- The audit trail: one row per security event. Ids, the client bucket, the user agent and a
-- closed-set detail word; never a password, token, hash or email. `at` is Unix seconds; `seq`
-- orders events of the same second. Old rows are purged by AUDIT_RETENTION_DAYS.
CREATE TABLE audit_events (
    id         uuid      PRIMARY KEY,
    seq        bigserial NOT NULL,
    at         bigint    NOT NULL,
    kind       text      NOT NULL,
    user_id    uuid,
    session_id uuid,
    client     text,
    user_agent text,
    detail     text
);
CREATE INDEX audit_events_at_idx ON audit_events (at);
CREATE INDEX audit_events_user_at_idx ON audit_events (user_id, at);
CREATE INDEX audit_events_kind_at_idx ON audit_events (kind, at);
