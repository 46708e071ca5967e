-- The ids of tasks with anything stored, after `$1` (or from the first), at most `$2`.
SELECT task FROM {s}.file_tasks WHERE $1::text IS NULL OR task > $1 ORDER BY task LIMIT $2
