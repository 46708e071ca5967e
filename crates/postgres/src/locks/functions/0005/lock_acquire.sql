
    -- Grants every request or none; when one is blocked, returns its blockers (granted false).
    -- Once the keys are held (`lock_serialize`), one statement decides and writes, so it reads
    -- one snapshot taken after them (a short statement for one fresh lock; when it finds the
    -- case is not that one, the general statement below): the locks overlapping each request, read once (the owner's
    -- own, the blockers, lapsed locks to remove, the latest grant time), the time (the caller's
    -- clock or the database's, raised to that latest grant), the waiters ahead, then the writes
    -- of a grant (lapsed locks removed before the rows that replace them are inserted, the
    -- waiter's rows, the tokens from the sequence in request order) and a row of changes to the
    -- counters. The first request blocked, by a lock or else by an earlier waiter, is reported.
    CREATE OR REPLACE FUNCTION {s}.lock_acquire(p_res text[], p_owner text, p_mode text[], p_ttl bigint[],
            p_ticket bigint, p_lease bigint, p_count_conflict boolean, p_now bigint)
        RETURNS TABLE (granted boolean, blocked text, resource text, owner text, mode text,
                       token bigint, holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE
        SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
    #variable_conflict use_column
    DECLARE z boolean; a text[]; v_now bigint;
    BEGIN
        z := {s}.lock_serialize(p_res) IS NULL;
        IF cardinality(p_res) = 1 AND p_ticket IS NULL THEN
            -- The common case first: one resource, no lock recorded on it or on any resource
            -- overlapping it (so the time is the clock's, read now that the keys are held), no
            -- earlier waiter in the way: a new lock, inserted by the statement that looked.
            a := {s}.lock_ancestors(p_res[1]) || p_res[1];
            v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
            RETURN QUERY
            WITH inserted AS (
                INSERT INTO {s}.locks AS l (resource, owner, mode, token, holds, acquired_at, expires_at)
                    SELECT p_res[1], p_owner, p_mode[1], nextval('{s}.lock_tokens'), 1, v_now, v_now + p_ttl[1]
                    WHERE NOT EXISTS (SELECT 1 FROM {s}.locks x WHERE x.resource = ANY(a))
                    AND NOT EXISTS (SELECT 1 FROM {s}.locks x
                        WHERE x.resource >= (p_res[1] || '/') COLLATE "C" AND x.resource < (p_res[1] || '0') COLLATE "C")
                    AND NOT EXISTS (
                        SELECT 1 FROM {s}.lock_waiters w WHERE w.expires_at > v_now AND w.owner <> p_owner
                           AND (w.mode = 'exclusive' OR p_mode[1] = 'exclusive')
                           AND (w.resource = ANY(a) OR (w.resource >= (p_res[1] || '/') COLLATE "C" AND w.resource < (p_res[1] || '0') COLLATE "C")))
                    RETURNING l.resource, l.mode, l.token, l.holds, l.acquired_at, l.expires_at
            ), counted AS (
                INSERT INTO {s}.lock_counts (total) SELECT 1 FROM inserted
            )
            SELECT true, NULL::text, n.resource::text, p_owner, n.mode, n.token, n.holds, n.acquired_at, n.expires_at
            FROM inserted n;
            IF FOUND THEN
                RETURN;
            END IF;
        END IF;
        -- Any other case, in one statement too.
        RETURN QUERY
        WITH q AS MATERIALIZED (
            SELECT x.i, x.r, x.m, x.ttl, {s}.lock_ancestors(x.r) AS a
            FROM unnest(p_res, p_mode, p_ttl) WITH ORDINALITY AS x(r, m, ttl, i)
        ), seen AS MATERIALIZED (
            SELECT q.i, l.resource, l.owner, l.mode, l.acquired_at, l.expires_at
            FROM q JOIN {s}.locks l ON l.resource = q.r OR l.resource = ANY(q.a)
                OR (l.resource >= (q.r || '/') COLLATE "C" AND l.resource < (q.r || '0') COLLATE "C")
        ), t AS MATERIALIZED (
            SELECT greatest(coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint),
                            (SELECT max(s.acquired_at) FROM seen s)) AS now
        ), d AS MATERIALIZED (
            SELECT q.i, q.r, q.m, q.ttl, q.a, o.own_mode, o.stale,
                   o.blocks AND (o.own_mode IS NULL OR (o.own_mode = 'shared' AND q.m = 'exclusive')) AS lb
            FROM q, t, LATERAL (
                SELECT max(s.mode) FILTER (WHERE s.resource = q.r AND s.owner = p_owner AND s.expires_at > t.now) AS own_mode,
                       coalesce(bool_or(s.expires_at > t.now AND s.owner <> p_owner
                                        AND (s.mode = 'exclusive' OR q.m = 'exclusive')), false) AS blocks,
                       coalesce(bool_or(s.resource = q.r AND s.expires_at <= t.now), false) AS stale
                FROM seen s WHERE s.i = q.i) o
        ), b AS MATERIALIZED (
            -- Re-entry never waits, but an upgrade needs everyone else gone; nor does a new
            -- grant overtake an earlier live waiter it conflicts with.
            SELECT d.i, d.r, d.m, d.a, d.lb FROM d, t
            WHERE d.lb OR (d.own_mode IS NULL AND EXISTS (
                SELECT 1 FROM {s}.lock_waiters w WHERE w.expires_at > t.now
                   AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                   AND (w.mode = 'exclusive' OR d.m = 'exclusive')
                   AND (w.resource = d.r OR w.resource = ANY(d.a) OR (w.resource >= (d.r || '/') COLLATE "C" AND w.resource < (d.r || '0') COLLATE "C"))))
            ORDER BY d.i LIMIT 1
        ), g AS MATERIALIZED (
            SELECT NOT EXISTS (SELECT 1 FROM b) AS ok
        ), left_queue AS (
            DELETE FROM {s}.lock_waiters w WHERE p_ticket IS NOT NULL AND (SELECT g.ok FROM g)
                AND w.ticket = p_ticket
        ), lapsed_waiters AS (
            DELETE FROM {s}.lock_waiters w WHERE w.ctid = ANY(ARRAY(
                SELECT x.ctid FROM {s}.lock_waiters x WHERE p_ticket IS NOT NULL AND (SELECT g.ok FROM g)
                   AND x.ticket <> p_ticket AND x.expires_at <= (SELECT t.now FROM t)
                LIMIT 100 FOR UPDATE SKIP LOCKED))
        ), gone AS (
            -- Lapsed locks on a resource granted (the owner's own included) go first; one a
            -- sweep is removing is left to it.
            DELETE FROM {s}.locks l WHERE l.ctid = ANY(ARRAY(
                SELECT x.ctid FROM {s}.locks x, d WHERE (SELECT g.ok FROM g) AND d.stale
                   AND x.resource = d.r AND x.expires_at <= (SELECT t.now FROM t)
                FOR UPDATE OF x SKIP LOCKED))
            RETURNING l.resource
        ), reentered AS (
            UPDATE {s}.locks l SET holds = l.holds + 1,
                    expires_at = greatest(l.expires_at, t.now + d.ttl),
                    mode = CASE WHEN d.m = 'exclusive' THEN 'exclusive' ELSE l.mode END
                FROM d, t
                WHERE (SELECT g.ok FROM g) AND d.own_mode IS NOT NULL
                  AND l.resource = d.r AND l.owner = p_owner AND l.expires_at > t.now
                RETURNING l.resource, l.mode, l.token, l.holds, l.acquired_at, l.expires_at
        ), inserted AS (
            -- After `gone` (the scalar subquery runs it to the end before the first row).
            INSERT INTO {s}.locks AS l (resource, owner, mode, token, holds, acquired_at, expires_at)
                SELECT d.r, p_owner, d.m, nextval('{s}.lock_tokens'), 1, t.now, t.now + d.ttl
                FROM d, t WHERE (SELECT g.ok FROM g) AND d.own_mode IS NULL
                  AND (SELECT count(*) FROM gone) >= 0
                ORDER BY d.i
                RETURNING l.resource, l.mode, l.token, l.holds, l.acquired_at, l.expires_at
        ), counted AS (
            INSERT INTO {s}.lock_counts (total, reentrant, expired, conflicts)
                SELECT CASE WHEN g.ok THEN (SELECT count(*) FROM d WHERE d.own_mode IS NULL) ELSE 0 END,
                       CASE WHEN g.ok THEN (SELECT count(*) FROM d WHERE d.own_mode IS NOT NULL) ELSE 0 END,
                       (SELECT count(*) FROM gone),
                       CASE WHEN g.ok THEN 0 ELSE 1 END
                FROM g WHERE g.ok OR p_count_conflict
        )
        SELECT o.granted, o.blocked, o.resource, o.owner, o.mode, o.token, o.holds, o.acquired_at, o.expires_at
        FROM (
            SELECT true AS granted, NULL::text AS blocked, d.r AS resource, p_owner AS owner,
                   coalesce(u.mode, n.mode) AS mode,
                   CASE WHEN d.own_mode IS NOT NULL AND u.resource IS NULL THEN {s}.lock_removed(d.r)
                        ELSE coalesce(u.token, n.token) END AS token,
                   coalesce(u.holds, n.holds) AS holds, coalesce(u.acquired_at, n.acquired_at) AS acquired_at,
                   coalesce(u.expires_at, n.expires_at) AS expires_at, d.i AS k1, ''::text AS k2, ''::text AS k3
            FROM d LEFT JOIN reentered u ON u.resource = d.r LEFT JOIN inserted n ON n.resource = d.r
            WHERE (SELECT g.ok FROM g)
            UNION ALL
            SELECT false, b.r, s.resource::text, s.owner::text, s.mode, NULL, NULL, NULL, s.expires_at,
                   0, s.resource::text, s.owner::text
            FROM b, t, seen s WHERE b.lb AND s.i = b.i AND s.expires_at > t.now AND s.owner <> p_owner
               AND (s.mode = 'exclusive' OR b.m = 'exclusive')
            UNION ALL
            SELECT false, b.r, w.resource::text, w.owner::text, w.mode, NULL, NULL, NULL, NULL,
                   w.ticket, w.resource::text, ''
            FROM b, t, {s}.lock_waiters w WHERE NOT b.lb AND w.expires_at > t.now
               AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
               AND (w.mode = 'exclusive' OR b.m = 'exclusive')
               AND (w.resource = b.r OR w.resource = ANY(b.a) OR (w.resource >= (b.r || '/') COLLATE "C" AND w.resource < (b.r || '0') COLLATE "C"))
        ) o
        ORDER BY o.k1, o.k2 COLLATE "C", o.k3 COLLATE "C";
    END $$;
