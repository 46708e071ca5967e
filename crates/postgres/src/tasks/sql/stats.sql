-- The counts by status (no cap) at `$2` (or the database's time), the tasks per owner, the
-- `$1` most recent tasks, and every tally (the sums of its rows of changes).
SELECT {counts_by_status},
    (SELECT coalesce(json_agg(json_build_array(owner, n)
              ORDER BY n DESC, owner NULLS FIRST), '[]')
       FROM (SELECT owner, count(*) AS n FROM {s}.tasks GROUP BY owner) b)::text,
    (SELECT coalesce(json_agg(json_build_array(id, name, status, created_at)
              ORDER BY created_at DESC, id DESC), '[]')
       FROM (SELECT id, name, status, created_at FROM {s}.tasks
             ORDER BY created_at DESC, id DESC LIMIT $1) c)::text,
    (SELECT json_object_agg(key, n) FROM (SELECT key, sum(delta)::bigint AS n
              FROM {s}.task_tallies GROUP BY key) m)::text
FROM (SELECT coalesce($2::bigint, {db_now}) AS ms) n
