-- The lock that makes edge additions one at a time (two could close a cycle together), `$1`
-- its key.
SELECT pg_advisory_xact_lock($1)
