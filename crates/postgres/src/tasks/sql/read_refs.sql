-- The status of each of the tasks `$1` that exists.
SELECT id, status FROM {s}.tasks WHERE id = ANY($1::text[]) ORDER BY id
