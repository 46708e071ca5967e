-- Folds the rows of changes to the counts into one per status, unless another call holds the
-- advisory lock `$1` (is folding) now.
WITH ok AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS ok),
gone AS (DELETE FROM {s}.task_counts WHERE (SELECT ok FROM ok)
         RETURNING status, delta)
INSERT INTO {s}.task_counts (status, delta)
SELECT status, sum(delta) FROM gone GROUP BY status HAVING sum(delta) <> 0
