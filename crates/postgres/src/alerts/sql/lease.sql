-- Grants the lease to $1 for $3 ms from now ($4, or the database's clock): when free, lapsed,
-- or already $1's (who keeps its token; another holder gets the new token $2). The row lock
-- serialises holders racing for it; no row comes back when another holder's lease holds.
INSERT INTO {s}.alert_lease AS l (name, holder, token, expires_at)
VALUES ('evaluator', $1, $2,
        COALESCE($4::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) + $3)
ON CONFLICT (name) DO UPDATE
   SET holder = excluded.holder,
       token = CASE WHEN l.holder = excluded.holder THEN l.token ELSE excluded.token END,
       expires_at = excluded.expires_at
 WHERE l.holder = excluded.holder OR l.expires_at <= excluded.expires_at - $3
RETURNING token, expires_at
