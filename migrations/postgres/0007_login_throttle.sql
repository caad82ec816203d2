-- The login-throttle counters, shared by every instance on this database so N instances
-- enforce one budget (SQLite keeps the in-process throttle: it serves one instance). One row
-- per counter: `kind` 1 the (email, client) pair's failures, 2 the account's, 3 the client's,
-- 4 the client's attempts this minute, 5 the pair's attempts this minute, 6 the client's
-- sign-ups this minute; `email` or `client` is '' where the counter has none. A failure
-- count uses window_start/failures/locked_until, a rate minute/count. expires_at is when the
-- row no longer changes any decision: the sweep deletes it then. Times are Unix seconds of
-- the service's clock, never the database's.
CREATE TABLE login_throttle (
    kind         smallint NOT NULL,
    email        text     NOT NULL,
    client       text     NOT NULL,
    window_start bigint   NOT NULL DEFAULT 0,
    failures     bigint   NOT NULL DEFAULT 0,
    locked_until bigint   NOT NULL DEFAULT 0,
    minute       bigint   NOT NULL DEFAULT 0,
    count        bigint   NOT NULL DEFAULT 0,
    expires_at   bigint   NOT NULL,
    PRIMARY KEY (kind, email, client)
);
CREATE INDEX login_throttle_expires_idx ON login_throttle (expires_at);
