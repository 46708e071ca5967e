-- Releases (`$3` NULL) or renews for `$3` ms the lock on `$1` of owner `$2`, at `$4` or NULL.
SELECT * FROM {s}.lock_own($1, $2, $3, $4)
