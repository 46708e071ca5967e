-- Task `$1`'s state file's length, and the file if it is at most `$2` bytes.
SELECT length(state), CASE WHEN length(state) <= $2::bigint THEN state END
  FROM {s}.file_tasks WHERE task = $1 AND state IS NOT NULL
