-- The bytes of the files a checkpoint of task `$1` would hold: its state, log and decisions.
SELECT coalesce(length(f.state), 0)::bigint, f.log_bytes,
       (SELECT coalesce(sum(d.bytes), 0) FROM {s}.decisions d WHERE d.task = $1)::bigint
  FROM {s}.file_tasks f WHERE f.task = $1
