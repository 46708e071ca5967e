-- The newest `$3` log entries of task `$1` after skipping the newest `$2`, newest first: the
-- primary key read backwards, so a tail reads the rows it returns and skips.
SELECT seq, level, body FROM {s}.log_entries WHERE task = $1 ORDER BY seq DESC OFFSET $2 LIMIT $3
