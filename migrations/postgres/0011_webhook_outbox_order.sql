-- Workers claim pending rows oldest first (ORDER BY seq): an index on that order, over the
-- pending rows only, keeps a claim from sorting the whole backlog after a long outage.
CREATE INDEX webhook_outbox_pending_seq_idx ON webhook_outbox (seq) WHERE dead_at IS NULL;
