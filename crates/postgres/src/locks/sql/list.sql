-- Every live lock at `$1` (or the database's time).
SELECT {lock_columns} FROM {s}.locks WHERE expires_at > {s}.lock_now($1)
ORDER BY resource, owner
