-- A refresh writes a new version of its session's row (last use, idle end) and of the token it
-- consumes. PostgreSQL keeps such a version on the same page without new index entries (a HOT
-- update) only when no indexed column changed and the page has room. Without it every refresh
-- adds an entry for the same session to each of its indexes, which later lookups walk until a
-- vacuum runs; a busy session makes its own lookups slower with every rotation.
--
-- Room on each page for the next versions (applies to pages filled from now on).
ALTER TABLE sessions SET (fillfactor = 50);
ALTER TABLE refresh_tokens SET (fillfactor = 70);
-- The idle end moves at every refresh, so an index on it defeats HOT. Only the purge (once a
-- minute by default) looked for it; it now scans the table for sessions past their idle end.
DROP INDEX sessions_idle_expires_at_idx;
-- A rotation forgets exactly one generation of its session (the oldest kept consumed token):
-- an index on (session, generation) finds that one entry instead of walking the session's
-- whole history of dead entries. Cascades from sessions use its first column.
CREATE INDEX refresh_tokens_session_generation_idx ON refresh_tokens (session_id, generation);
DROP INDEX refresh_tokens_session_id_idx;
