-- Static bearer tokens (`oc token`, oc-auth): by public id, the SHA-256 of the secret (never
-- the secret), the agent, scope and tenant it stands for, and its times in milliseconds since
-- the epoch. In the default schema: a token chooses the tenant, so tokens are global.
CREATE TABLE {s}.auth_tokens (
    id           text COLLATE "C" PRIMARY KEY,
    hash         bytea  NOT NULL CHECK (length(hash) = 32),
    agent        text   NOT NULL,
    scope        text   NOT NULL CHECK (scope IN ('read', 'work', 'admin')),
    tenant       text,
    created_at   bigint NOT NULL,
    expires_at   bigint,
    revoked_at   bigint,
    last_used_at bigint
);
