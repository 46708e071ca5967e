-- The newest `$3` decisions of task `$1` after skipping the newest `$2`, newest first.
SELECT seq, body FROM {s}.decisions WHERE task = $1 ORDER BY seq DESC OFFSET $2 LIMIT $3
