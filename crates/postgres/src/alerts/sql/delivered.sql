-- Marks rows $1 delivered at $2 (or the database's time).
UPDATE {s}.alert_outbox
   SET delivered_at = COALESCE($2::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
 WHERE id = ANY($1::bigint[]) AND delivered_at IS NULL
