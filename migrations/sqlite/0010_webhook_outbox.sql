-- The security-event webhook outbox: one row per event still to be delivered (deleted after a
-- 2xx answer) or dead-lettered (dead_at set) after its attempts or age ran out. A worker
-- claims due rows for a lease (claim, locked_until), so one row goes to one worker at a time
-- and a worker that dies frees its rows when the lease ends. Times are Unix milliseconds.
CREATE TABLE webhook_outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    kind            TEXT    NOT NULL,
    body            TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until    INTEGER NOT NULL DEFAULT 0,
    claim           TEXT,
    last_error      TEXT,
    dead_at         INTEGER
) STRICT;
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at) WHERE dead_at IS NULL;
