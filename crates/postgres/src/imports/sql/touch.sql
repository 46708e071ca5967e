-- Makes task `$1`'s row, if it has none, so the task is listed.
INSERT INTO {s}.file_tasks (task) VALUES ($1) ON CONFLICT (task) DO NOTHING
