-- The time: `$1`, or the database's.
SELECT coalesce($1::bigint, {db_now})
