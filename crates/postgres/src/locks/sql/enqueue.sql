-- Queues a waiter (see `lock_enqueue`). The parameters are `AcquireParams` (resources, owner,
-- modes, lease, the time or NULL), in `AcquireParams::enqueue_params` order.
SELECT {s}.lock_enqueue($1, $2, $3, $4, $5)
