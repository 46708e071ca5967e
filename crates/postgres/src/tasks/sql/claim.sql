-- The ready tasks that pass the label filter, locked with `FOR UPDATE SKIP LOCKED` in a
-- materialised CTE, one token each from the sequence `task_tokens`, in claim order, and a row
-- of changes to the tally of tasks that entered `running` and to the counts by status (no row every claim updates). `$1` owner,
-- `$2` lease in milliseconds, `$3` the time or NULL for the database's, `$4` labels required,
-- `$5` labels excluded, and for a batch `$6` how many (see `claim_sql`).
WITH n AS (SELECT coalesce($3::bigint, {db_now}) AS ms),
locked AS MATERIALIZED (
    SELECT c.id, c.priority, c.created_at FROM {s}.tasks c, n
    WHERE {ready}
      AND c.labels @> $4::text[] AND NOT (c.labels && $5::text[])
    ORDER BY c.priority DESC, c.created_at, c.id LIMIT {limit}
    FOR UPDATE OF c SKIP LOCKED
), next AS MATERIALIZED ({numbered}), tok AS MATERIALIZED (
    SELECT id, nextval('{s}.task_tokens') AS token FROM next ORDER BY rn
), upd AS (
    UPDATE {s}.tasks t SET status = 'running', owner = $1,
        attempts = t.attempts + 1, started_at = n.ms, finished_at = NULL,
        lease_token = tok.token,
        lease_expires_at = n.ms + $2::bigint,
        version = t.version + 1, updated_at = n.ms
    FROM tok, n
    WHERE t.id = tok.id AND t.status = 'pending'
    RETURNING {stored_columns}
), ent AS (
    INSERT INTO {s}.task_tallies (key, delta)
    SELECT 'entered_running', count(*) FROM upd HAVING count(*) > 0
), moved AS (
    -- The counts by status: one row of changes each way per statement (migration 9).
    INSERT INTO {s}.task_counts (status, delta)
    SELECT v.status, v.sign * c.n FROM (SELECT count(*) AS n FROM upd) c,
        (VALUES ('pending', -1), ('running', 1)) v(status, sign)
    WHERE c.n > 0
), hist AS (
    INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
        to_status, actor, token)
    SELECT id, version, updated_at, 'claimed', 'pending', 'running', owner,
        lease_token
    FROM upd
)
SELECT {task_columns} FROM upd t ORDER BY t.lease_token
