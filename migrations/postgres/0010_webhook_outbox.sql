-- The security-event webhook outbox: one row per event still to be delivered (deleted after a
-- 2xx answer) or dead-lettered (dead_at set) after its attempts or age ran out. Several
-- instances deliver from it: a worker claims due rows with FOR UPDATE SKIP LOCKED and holds
-- them for a lease (claim, locked_until), so one row goes to one worker at a time and a
-- worker that dies frees its rows when the lease ends. Times are Unix milliseconds.
CREATE TABLE webhook_outbox (
    id              uuid   PRIMARY KEY,
    seq             bigserial NOT NULL,
    kind            text   NOT NULL,
    body            text   NOT NULL,
    created_at      bigint NOT NULL,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    locked_until    bigint NOT NULL DEFAULT 0,
    claim           uuid,
    last_error      text,
    dead_at         bigint
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_attempt_at) WHERE dead_at IS NULL;
