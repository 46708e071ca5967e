-- The ready tasks at `$2` (or the database's time), counted up to `$1`.
SELECT count(*) FROM (
    SELECT 1 FROM {s}.tasks c, (SELECT coalesce($2::bigint, {db_now}) AS ms) n
    WHERE {ready} LIMIT $1) r
