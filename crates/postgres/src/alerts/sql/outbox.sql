-- The first $2 undelivered rows, oldest first, while token $1 holds the lease at $3 (or the
-- database's time).
SELECT o.id, o.receiver, o.body FROM {s}.alert_outbox o
 WHERE o.delivered_at IS NULL
   AND EXISTS (SELECT 1 FROM {s}.alert_lease
                WHERE name = 'evaluator' AND token = $1
                  AND expires_at > COALESCE($3::bigint,
                                            (extract(epoch FROM clock_timestamp()) * 1000)::bigint))
 ORDER BY o.id
 LIMIT $2
