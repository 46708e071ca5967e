-- The task locks `$2` of the tasks `$1` (exclusive, until the transaction ends) that nobody
-- holds now: whoever adds an edge to a task, or a child, holds its lock shared, so a task
-- locked here gains neither while it is retired. Never waits.
SELECT id FROM unnest($1::text[], $2::bigint[]) AS u(id, k)
WHERE pg_try_advisory_xact_lock(k)
