-- The tasks holding any of the unique keys `$1` now.
SELECT {task_columns} FROM {s}.tasks t
WHERE t.unique_key = ANY($1::text[])
  AND (t.unique_scope = 'always' OR t.status IN ('pending', 'running'))
ORDER BY t.id
