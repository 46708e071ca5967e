-- The running tasks whose lease ran out by `$1`.
SELECT {task_columns} FROM {s}.tasks t
WHERE t.status = 'running' AND t.lease_expires_at <= $1 ORDER BY t.id
