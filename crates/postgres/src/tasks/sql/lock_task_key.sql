-- A task lock (or another advisory lock), exclusive, until the transaction ends.
SELECT pg_advisory_xact_lock($1)
