-- Shared task locks on the keys `$1`, in key order (the same order everywhere). The statuses
-- are read by `read_refs.sql`, a later statement, whose snapshot comes after the locks (one
-- statement's snapshot would be taken before it waited for them).
SELECT count(pg_advisory_xact_lock_shared(k))
FROM (SELECT DISTINCT k FROM unnest($1::int8[]) k ORDER BY k) o
