-- Deletes at most `$2` idempotency keys recorded at or before `$1`, oldest first.
DELETE FROM {s}.task_keys WHERE ctid IN (
    SELECT ctid FROM {s}.task_keys WHERE at <= $1::bigint ORDER BY at LIMIT $2::bigint
)
