-- Task `$1` depends on task `$2`.
INSERT INTO {s}.task_deps (task_id, depends_on) VALUES ($1, $2)
