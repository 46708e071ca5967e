-- The status of task `$1`.
SELECT status FROM {s}.tasks WHERE id = $1
