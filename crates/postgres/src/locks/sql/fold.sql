-- Folds at most `$2` rows of changes to the counters into one, unless another call is folding
-- the counters of schema `$1` now (the advisory lock): concurrent operations never wait for it.
WITH ok AS MATERIALIZED (
    SELECT pg_try_advisory_xact_lock(hashtextextended('oc-locks fold ' || $1::text, 0)) AS ok
),
gone AS (
    DELETE FROM {s}.lock_counts WHERE ctid IN (
        SELECT ctid FROM {s}.lock_counts WHERE (SELECT ok FROM ok) LIMIT $2::bigint
    ) RETURNING *
)
INSERT INTO {s}.lock_counts
SELECT sum(total), sum(expired), sum(conflicts), sum(released), sum(reentrant),
    sum(hold_total_ms), max(hold_max_ms), sum(waits), sum(timeouts)
FROM gone HAVING count(*) > 0
