-- The tasks that depend on task `$1` or are its children.
SELECT task_id FROM {s}.task_deps WHERE depends_on = $1
UNION SELECT id FROM {s}.tasks WHERE parent = $1 ORDER BY 1
