-- Task `$1` no longer depends on task `$2`.
DELETE FROM {s}.task_deps WHERE task_id = $1 AND depends_on = $2
