-- Extends to `$3` milliseconds from `$4` (or the database's time) the lease of task `$1` whose
-- token is `$2`, at version `$5` if given: one statement. No row when the lease is not so (the
-- caller then takes the general path, which says why).
UPDATE {s}.tasks t SET lease_expires_at = n.ms + $3::bigint,
    version = t.version + 1, updated_at = n.ms
FROM (SELECT coalesce($4::bigint, {db_now}) AS ms) n
WHERE t.id = $1 AND t.lease_token = $2::bigint AND ($5::bigint IS NULL OR t.version = $5)
RETURNING {task_columns}
