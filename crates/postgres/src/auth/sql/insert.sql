-- A new token $1 (hash $2) for agent $3 with scope $4 and tenant $5, created now ($6, or the
-- database's clock), expiring at $7; no row comes back when the id is taken.
INSERT INTO {s}.auth_tokens (id, hash, agent, scope, tenant, created_at, expires_at)
VALUES ($1, $2, $3, $4, $5,
        COALESCE($6::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint), $7)
ON CONFLICT (id) DO NOTHING
RETURNING created_at
