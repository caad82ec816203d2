-- The feed is read in (revoked_at, session_id) order, so that a cursor can name a position
-- inside one second (a second may hold more entries than one page). This index serves that
-- order and the skip within a second; it replaces the one on revoked_at alone.
CREATE INDEX session_revocations_order_idx ON session_revocations (revoked_at, session_id);
DROP INDEX session_revocations_revoked_at_idx;
