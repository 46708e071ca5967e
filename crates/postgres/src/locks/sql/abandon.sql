-- A waiter gives up its ticket `$1`.
SELECT {s}.lock_abandon($1)
