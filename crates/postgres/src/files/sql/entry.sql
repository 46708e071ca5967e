-- Log entry `$2` of task `$1`.
SELECT level, body FROM {s}.log_entries WHERE task = $1 AND seq = $2
