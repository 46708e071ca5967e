-- The time (`$2`, or the database's) and task `$1` (all NULL when there is none).
SELECT n.ms, {task_columns}
FROM (SELECT coalesce($2::bigint, {db_now}) AS ms) n
LEFT JOIN {s}.tasks t ON t.id = $1
