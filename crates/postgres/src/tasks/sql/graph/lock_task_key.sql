-- Task lock `$1`, exclusive, until the transaction ends.
SELECT pg_advisory_xact_lock($1)
