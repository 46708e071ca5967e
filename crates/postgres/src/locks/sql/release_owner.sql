-- Releases every lock of owner `$1`, at `$2` or NULL.
SELECT {lock_columns} FROM {s}.lock_release_owner($1, $2) ORDER BY resource
