-- Decision `$2` of task `$1`.
SELECT body FROM {s}.decisions WHERE task = $1 AND seq = $2
