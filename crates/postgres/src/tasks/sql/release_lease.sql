-- The holder of the lease `$2` of running task `$1` gives it back at `$3` (or the database's
-- time), at version `$4` if given: pending again, the attempt refunded, the owner kept, with
-- its tally, counts and history row, in one statement. No row when the lease is not so (the caller
-- then takes the general path, which says why).
WITH n AS (SELECT coalesce($3::bigint, {db_now}) AS ms),
upd AS (
    UPDATE {s}.tasks t SET status = 'pending', lease_token = NULL, lease_expires_at = NULL,
        attempts = greatest(t.attempts - 1, 0), version = t.version + 1, updated_at = n.ms
    FROM n
    WHERE t.id = $1 AND (t.status, t.lease_token) IS NOT DISTINCT FROM ('running', $2::bigint)
      AND ($4::bigint IS NULL OR t.version = $4)
    RETURNING {stored_columns}
), tally AS (
    INSERT INTO {s}.task_tallies (key, delta) SELECT 'entered_pending', 1 FROM upd
), moved AS (
    INSERT INTO {s}.task_counts (status, delta)
    SELECT v.status, v.delta FROM upd, (VALUES ('running', -1), ('pending', 1)) v(status, delta)
), hist AS (
    INSERT INTO {s}.task_history (task_id, version, at, kind, from_status, to_status,
        actor, token)
    SELECT id, version, updated_at, 'released', 'running', 'pending', owner, $2::bigint
    FROM upd
)
SELECT {task_columns} FROM upd t
