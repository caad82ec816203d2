-- Idle timeout (REFRESH_IDLE_TIMEOUT_DAYS): when a session ends unless refreshed before;
-- set at login, moved by each refresh, never after expires_at. NULL: no idle timeout.
ALTER TABLE sessions ADD COLUMN idle_expires_at INTEGER;
-- From now on every session has a last use (its login, then each refresh): the per-user
-- session cap ends the least recently used, and the sessions list shows it.
UPDATE sessions SET last_used_at = created_at WHERE last_used_at IS NULL;
