-- Folds up to `$2` rows of changes to the counts into one per status, and up to `$2` rows of
-- changes to the tallies into one per key, unless another call holds the advisory lock `$1`
-- (is folding) now: a bounded batch, so a fold never holds a long transaction; a later fold
-- takes the rest.
WITH ok AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS ok),
gone AS (DELETE FROM {s}.task_counts
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM {s}.task_counts
                                 WHERE (SELECT ok FROM ok) LIMIT $2))
         RETURNING status, delta),
kept AS (INSERT INTO {s}.task_counts (status, delta)
         SELECT status, sum(delta) FROM gone GROUP BY status HAVING sum(delta) <> 0),
gone_tallies AS (DELETE FROM {s}.task_tallies
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM {s}.task_tallies
                                 WHERE (SELECT ok FROM ok) LIMIT $2))
         RETURNING key, delta)
INSERT INTO {s}.task_tallies (key, delta)
SELECT key, sum(delta) FROM gone_tallies GROUP BY key HAVING sum(delta) <> 0
