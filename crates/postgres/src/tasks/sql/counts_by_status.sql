(SELECT coalesce(json_agg(json_build_array(status, n)), '[]')
    FROM (SELECT status, sum(delta) AS n FROM {s}.task_counts GROUP BY status) a)::text,
(SELECT count(*) FROM (SELECT 1 FROM {s}.tasks
    WHERE status = 'pending' AND waiting > 0 LIMIT {lim}) w),
(SELECT count(*) FROM (SELECT 1 FROM {s}.tasks
    WHERE status = 'pending' AND waiting = 0 AND run_at IS NOT NULL AND run_at > n.ms
    LIMIT {lim}) l)
