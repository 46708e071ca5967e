-- Task `$1`'s log per level (NULL: malformed lines), with the oldest and newest times: one
-- range of the index on task, level and seq (which includes the time) per level, read by
-- index-only scans, never a row's body. Levels without entries answer a count of 0.
SELECT l.level, x.n, x.lo, x.hi
  FROM unnest(ARRAY[0, 1, 2, 3, 4]::smallint[]) AS l(level)
 CROSS JOIN LATERAL (
       SELECT count(*) AS n, min(e.ts) AS lo, max(e.ts) AS hi
         FROM {s}.log_entries e WHERE e.task = $1 AND e.level = l.level
 ) x
UNION ALL
SELECT NULL, count(*), NULL, NULL FROM {s}.log_entries e WHERE e.task = $1 AND e.level IS NULL
