-- Deletes at most `$2` idempotency keys recorded at or before `$1`, oldest first, passing over
-- keys another transaction holds: concurrent keyed writes never wait on each other's sweep.
DELETE FROM {s}.lock_keys WHERE ctid IN (
    SELECT ctid FROM {s}.lock_keys WHERE at <= $1::bigint ORDER BY at LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED
)
