-- Where task `$1`'s log ends: its generation and last sequence number (no row: 1 and 0).
SELECT coalesce(max(generation), 1), coalesce(max(log_next) - 1, 0) FROM {s}.file_tasks WHERE task = $1
