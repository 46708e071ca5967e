-- Task `$1`, locked for update until the transaction ends.
SELECT {task_columns} FROM {s}.tasks t WHERE t.id = $1 FOR UPDATE OF t
