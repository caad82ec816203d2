-- The group commit's statement (many rotations, one statement, one commit) as a function, so
-- that its plan is made under planner settings of its own. PostgreSQL keeps a statement's plan
-- for as long as its connection lives (until statistics change); planned on a young database
-- (few pages, no statistics yet), this statement hash-joins the batch with a sequential scan of
-- refresh_tokens, and every later batch then reads the whole table, dead rows included, slower
-- with every rotation until a vacuum or analyze replaces the plan. Every row it touches is found
-- by a unique key, so here only index lookups in nested loops are planned. The settings hold
-- for the function's run only; the rest of the service plans as usual.
--
-- The n-th elements of the arrays (presented token hash, its successor's hash, now, idle end,
-- in Unix seconds) are one rotation, answered by a row with rotation = n. The checks and writes
-- are those of the single rotation (ROTATE in the service), row by row; the sessions are locked
-- in id order, so two batches (of two instances) sharing sessions queue instead of
-- deadlocking. A batch never holds one token twice (the service removes duplicates first).
-- Functions are named with their schema: an object of the same name earlier on the caller's
-- search path cannot stand in for them.
CREATE FUNCTION rotate_refresh_tokens(
    presented bytea[], successors bytea[], nows int8[], idle_ends int8[], kept int8)
RETURNS TABLE (rotation int8, session uuid, account uuid, created int8, expires int8,
               idle_end int8)
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    RETURN QUERY
    WITH input AS (
        SELECT * FROM ROWS FROM (pg_catalog.unnest(presented), pg_catalog.unnest(successors),
                                 pg_catalog.unnest(nows), pg_catalog.unnest(idle_ends))
                 WITH ORDINALITY AS i(presented, successor, now, idle, n)),
    family AS MATERIALIZED (
        SELECT i.n, i.presented, i.successor, i.now, i.idle,
               s.id, s.user_id, s.created_at, s.expires_at, t.generation
        FROM input i JOIN refresh_tokens t ON t.hash = i.presented
             JOIN sessions s ON s.id = t.session_id
             JOIN users u ON u.id = s.user_id
        WHERE t.consumed_at IS NULL AND s.revoked_at IS NULL
          AND NOT u.disabled AND extract(epoch FROM s.expires_at)::int8 > i.now
          AND (s.idle_expires_at IS NULL
               OR extract(epoch FROM s.idle_expires_at)::int8 > i.now)
        ORDER BY s.id
        FOR UPDATE OF s),
    consumed AS (
        UPDATE refresh_tokens t SET consumed_at = pg_catalog.to_timestamp(f.now)
        FROM family f
        WHERE t.hash = f.presented AND t.session_id = f.id AND t.consumed_at IS NULL
        RETURNING f.n, f.presented, f.successor, f.now, f.idle, f.id, f.user_id,
                  f.created_at, f.expires_at, f.generation),
    successor AS (
        INSERT INTO refresh_tokens (hash, session_id, parent_hash, issued_at, generation)
        SELECT c.successor, c.id, c.presented, pg_catalog.to_timestamp(c.now), c.generation + 1
        FROM consumed c),
    forgotten AS (
        DELETE FROM refresh_tokens t USING consumed c
        WHERE t.session_id = c.id AND t.generation = c.generation - rotate_refresh_tokens.kept),
    idle AS (
        SELECT c.n, c.id, c.user_id, c.created_at, c.expires_at, c.now,
               CASE WHEN c.idle IS NULL THEN NULL
                    ELSE LEAST(c.idle, extract(epoch FROM c.expires_at)::int8) END AS at
        FROM consumed c),
    touched AS (
        UPDATE sessions s
        SET last_used_at = pg_catalog.to_timestamp(i.now),
            idle_expires_at = pg_catalog.to_timestamp(i.at)
        FROM idle i WHERE s.id = i.id)
    SELECT i.n, i.id, i.user_id, extract(epoch FROM i.created_at)::int8,
           extract(epoch FROM i.expires_at)::int8, i.at
    FROM idle i;
END
$$;
