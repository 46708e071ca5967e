-- Every token, oldest first.
SELECT id, agent, scope, tenant, created_at, expires_at, revoked_at, last_used_at, hash
  FROM {s}.auth_tokens
 ORDER BY created_at, id
