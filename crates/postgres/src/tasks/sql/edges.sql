-- Edges from the tasks `$1` to the tasks they depend on, `$2`.
INSERT INTO {s}.task_deps (task_id, depends_on)
SELECT * FROM unnest($1::text[], $2::text[])
