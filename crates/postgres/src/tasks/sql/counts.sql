-- The counts by status and of the blocked pending tasks, up to `$1` (the cap plus one) at
-- time `$2` (or the database's), the counters of statuses entered, and how many rows of
-- changes the counts by status have gathered.
SELECT {counts_by_status},
    (SELECT json_object_agg(key, value) FROM {s}.tasks_meta
     WHERE key LIKE 'entered\_%')::text,
    (SELECT count(*) FROM {s}.task_counts)
FROM (SELECT coalesce($2::bigint, {db_now}) AS ms) n
