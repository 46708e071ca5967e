-- Every task's log together, from the counters.
SELECT count(*) FILTER (WHERE log_entries > 0), coalesce(sum(log_bytes), 0)::bigint,
       coalesce(sum(log_entries), 0)::bigint
  FROM {s}.file_tasks
