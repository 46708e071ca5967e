-- Task lock `$1`, shared, until the transaction ends.
SELECT pg_advisory_xact_lock_shared($1)
