-- How much task `$1` has stored (no row: nothing but maybe checkpoints).
SELECT coalesce(f.log_entries, 0), coalesce(f.log_bytes, 0), coalesce(f.decisions, 0),
       coalesce(f.state IS NOT NULL, false),
       (SELECT count(*) FROM {s}.checkpoints c WHERE c.task = $1)
  FROM (SELECT 1) one LEFT JOIN {s}.file_tasks f ON f.task = $1
