-- Serialises the calls under one idempotency key (`$1` schema, `$2` agent, `$3` key) until
-- the transaction ends; the two-integer form, a keyspace apart from the tasks' locks.
SELECT pg_advisory_xact_lock(hashtext($1::text), hashtext($2::text || chr(10) || $3::text))
