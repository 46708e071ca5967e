-- Queues a waiter (see `lock_enqueue`): resources, owner, modes, lease, the time or NULL.
SELECT {s}.lock_enqueue($1, $2, $3, $4, $5)
