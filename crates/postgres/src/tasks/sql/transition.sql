-- A transition computed in Rust, written if the row is still at the version and status read
-- ($19, $20), with rows of changes to the tallies and the counts by status, and the history row, in one statement: no
-- row every transition updates (a new lease's token comes from the sequence `task_tokens`).
-- The parameters are `TransitionParams`, in `TransitionParams::params` order.
WITH tok AS (
    SELECT nextval('{s}.task_tokens') AS value WHERE $21::boolean
), upd AS (
    UPDATE {s}.tasks SET name = $2, description = $3, status = $4, owner = $5,
        priority = $6, metadata = $7, result = $8, error = $9, attempts = $10,
        max_attempts = $11, version = $12, created_at = $13, updated_at = $14,
        started_at = $15, finished_at = $16,
        lease_token = CASE WHEN $21::boolean THEN (SELECT value FROM tok) ELSE $17 END,
        lease_expires_at = $18, labels = $30::text[], run_at = $31::bigint,
        retry_base_ms = $32::bigint, retry_cap_ms = $33::bigint,
        retry_jitter = $34::integer
    WHERE id = $1 AND version = $19 AND status = $20
    RETURNING lease_token
), tallies AS (
    -- The status entered, and a finished run's bucket and sum, appended.
    INSERT INTO {s}.task_tallies (key, delta)
    SELECT v.key, v.delta FROM (VALUES ($22::text, 1::bigint), ($23::text, 1::bigint),
        (CASE WHEN $23::text <> '' THEN 'run_ms_sum' ELSE '' END, $24::bigint)) v(key, delta)
    WHERE v.key <> '' AND EXISTS (SELECT 1 FROM upd)
), moved AS (
    -- The counts by status, when the status changes (`$22`, the status entered, is set).
    INSERT INTO {s}.task_counts (status, delta)
    SELECT v.status, v.delta FROM (VALUES ($20::text, -1::bigint), ($4::text, 1::bigint))
        v(status, delta)
    WHERE $22::text <> '' AND EXISTS (SELECT 1 FROM upd)
), hist AS (
    INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
        to_status, actor, token, error)
    SELECT $1, $12, $14, $25::text, $26::text, $4, $27::text,
        CASE WHEN $21::boolean THEN (SELECT lease_token FROM upd)
             ELSE $28::bigint END,
        $29::text
    WHERE $25::text <> '' AND EXISTS (SELECT 1 FROM upd)
)
SELECT lease_token FROM upd
