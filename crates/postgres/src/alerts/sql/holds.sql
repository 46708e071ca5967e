-- In a commit's transaction: whether token $1 still holds the lease at $2 (or the database's
-- time). The row stays locked until the commit ends, so no holder takes it over half-way.
SELECT 1 FROM {s}.alert_lease
 WHERE name = 'evaluator' AND token = $1
   AND expires_at > COALESCE($2::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
   FOR UPDATE
