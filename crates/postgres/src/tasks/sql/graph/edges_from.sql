-- The edges from the tasks `$1` (one level of the search for a cycle).
SELECT task_id, depends_on FROM {s}.task_deps
WHERE task_id = ANY($1::text[])
