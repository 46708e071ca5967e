-- Task `$1`'s log per level (NULL: malformed lines), with the oldest and newest times: one
-- index-only scan of the index on task, level and seq, which includes the time.
SELECT level, count(*), min(ts), max(ts) FROM {s}.log_entries WHERE task = $1 GROUP BY level
