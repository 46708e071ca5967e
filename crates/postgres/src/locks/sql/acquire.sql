-- Grants every request or none (see `lock_acquire`). The parameters are `AcquireParams`
-- (resources, owner, modes, TTLs, the waiter's ticket or NULL, its lease, whether to count a
-- conflict, the time or NULL), in `AcquireParams::params` order.
SELECT * FROM {s}.lock_acquire($1, $2, $3, $4, $5, $6, $7, $8)
