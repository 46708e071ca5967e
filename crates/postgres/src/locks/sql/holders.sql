-- The live locks at `$2` (or the database's time) that overlap resource `$1`: on it, on an
-- ancestor, or on a descendant (by byte order: '0' follows '/').
SELECT {lock_columns} FROM {s}.locks l, (SELECT $1::text AS r,
    {s}.lock_ancestors($1) AS a, {s}.lock_now($2) AS t) q
WHERE l.expires_at > q.t AND (l.resource = q.r OR l.resource = ANY(q.a)
    OR (l.resource >= (q.r || '/') COLLATE "C"
        AND l.resource < (q.r || '0') COLLATE "C"))
ORDER BY l.resource, l.owner
