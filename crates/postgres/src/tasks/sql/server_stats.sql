-- The server's version, the database's size, the size of the table `$1` with its indexes and
-- TOAST, the database's buffer hits and reads, and the block size.
SELECT version(), pg_database_size(current_database()),
    pg_total_relation_size($1::text::regclass),
    coalesce(blks_hit, 0), coalesce(blks_read, 0),
    current_setting('block_size')::bigint
FROM pg_stat_database WHERE datname = current_database()
