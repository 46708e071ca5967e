-- The time: `$1`, or the database's.
SELECT {s}.lock_now($1)
