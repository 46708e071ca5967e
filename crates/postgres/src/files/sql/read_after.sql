-- Task `$1`'s generation, and the `$3` log entries after sequence number `$2`, in one
-- snapshot (one row with NULLs when there are none).
SELECT coalesce(f.generation, 1), coalesce(f.log_next - 1, 0), e.seq, e.level, e.body
  FROM (SELECT 1) one
  LEFT JOIN {s}.file_tasks f ON f.task = $1
  LEFT JOIN LATERAL (
      SELECT x.seq, x.level, x.body FROM {s}.log_entries x
       WHERE x.task = $1 AND x.seq > $2 ORDER BY x.seq LIMIT $3
  ) e ON true
 ORDER BY e.seq
