-- Revokes token $1 now ($2, or the database's clock), unless it already was; the row as it is.
UPDATE {s}.auth_tokens
   SET revoked_at = COALESCE(revoked_at, $2::bigint,
                             (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
 WHERE id = $1
RETURNING id, agent, scope, tenant, created_at, expires_at, revoked_at, last_used_at, hash
