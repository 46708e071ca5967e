-- The counts by status and of the blocked pending tasks, up to `$1` (the cap plus one) at
-- time `$2` (or the database's), the counters of statuses entered, and how many rows of
-- changes the counts by status and the tallies have gathered.
SELECT {counts_by_status},
    (SELECT json_object_agg(key, n) FROM (SELECT key, sum(delta)::bigint AS n FROM {s}.task_tallies
     WHERE key LIKE 'entered\_%' GROUP BY key) e)::text,
    (SELECT count(*) FROM {s}.task_counts) + (SELECT count(*) FROM {s}.task_tallies)
FROM (SELECT coalesce($2::bigint, {db_now}) AS ms) n
