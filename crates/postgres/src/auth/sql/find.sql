-- The token with public id $1, and the time to judge it at ($2, or the database's clock).
SELECT id, agent, scope, tenant, created_at, expires_at, revoked_at, last_used_at, hash,
       COALESCE($2::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
  FROM {s}.auth_tokens
 WHERE id = $1
