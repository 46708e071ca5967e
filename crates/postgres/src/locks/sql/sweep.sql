-- Removes the locks lapsed by `$1` (or the database's time).
SELECT {lock_columns} FROM {s}.lock_sweep($1) ORDER BY resource, owner
