-- The archived task `$1`: when it was archived, the task and its history as JSON.
SELECT archived_at, task, history FROM {s}.task_archive WHERE id = $1
