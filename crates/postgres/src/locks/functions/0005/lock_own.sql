
    -- Release or renew the owner's live lock. The first row says what happened
    -- (released, renewed, expired, not_held) with the lock; after a not_held come the holders.
    -- Once the key is held (`lock_serialize`), one statement (a short one for the release of a
    -- lock held once; when it finds the case is not that one, the general statement below)
    -- reads the time (never before a grant recorded on an overlapping resource), deletes or
    -- updates the owner's row, appends a row of changes to the counters, and tells the waiters
    -- (NOTIFY) when one waits for an overlapping resource and the lock is gone. A row removed meanwhile by a sweep or a
    -- release of its owner's every lock (which take no keys) is neither deleted nor updated
    -- here: not_held, as before.
    CREATE OR REPLACE FUNCTION {s}.lock_own(p_res text, p_owner text, p_renew_ttl bigint, p_now bigint)
        RETURNS TABLE (outcome text, resource text, owner text, mode text, token bigint,
                       holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE
        SET plan_cache_mode = force_generic_plan SET enable_seqscan = off AS $$
    #variable_conflict use_column
    DECLARE z boolean; a text[]; v_now bigint;
    BEGIN
        z := {s}.lock_serialize(ARRAY[p_res]) IS NULL;
        -- The path and its ancestors.
        a := {s}.lock_ancestors(p_res) || p_res;
        IF p_renew_ttl IS NULL THEN
            -- The common case first: the owner's live lock held once, deleted by the statement
            -- that read the time.
            v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
            RETURN QUERY
            WITH gone AS (
                -- Only if no lock on an overlapping resource was granted at a later time (then
                -- the time would be raised to it).
                DELETE FROM {s}.locks x
                    WHERE x.resource = p_res AND x.owner = p_owner AND x.holds = 1 AND x.expires_at > v_now
                      AND NOT EXISTS (SELECT 1 FROM {s}.locks y
                            WHERE (y.resource = ANY(a)
                                   OR (y.resource >= (p_res || '/') COLLATE "C" AND y.resource < (p_res || '0') COLLATE "C"))
                              AND y.acquired_at > v_now)
                    RETURNING x.resource, x.owner, x.mode, x.token, x.acquired_at, x.expires_at,
                              greatest(v_now - x.acquired_at, 0) AS held
            ), counted AS (
                INSERT INTO {s}.lock_counts (released, hold_total_ms, hold_max_ms)
                    SELECT 1, g.held, g.held FROM gone g
            )
            SELECT 'released', g.resource::text, g.owner::text, g.mode, g.token, 0, g.acquired_at, g.expires_at
            FROM gone g
            WHERE (NOT EXISTS (SELECT 1 FROM {s}.lock_waiters w WHERE w.resource = ANY(a))
                   AND NOT EXISTS (SELECT 1 FROM {s}.lock_waiters w
                        WHERE w.resource >= (p_res || '/') COLLATE "C" AND w.resource < (p_res || '0') COLLATE "C"))
               OR pg_notify('oc_locks_' || '{n}', '') IS NOT NULL;
            IF FOUND THEN
                RETURN;
            END IF;
        END IF;
        -- Any other case (renewed, held more than once, lapsed, not held), in one statement too.
        RETURN QUERY
        WITH t AS MATERIALIZED (
            SELECT greatest(coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint),
                            (SELECT max(x.acquired_at) FROM {s}.locks x
                             WHERE x.resource = p_res OR x.resource = ANY(a)
                                OR (x.resource >= (p_res || '/') COLLATE "C" AND x.resource < (p_res || '0') COLLATE "C"))) AS now
        ), gone AS (
            DELETE FROM {s}.locks x USING t
                WHERE x.resource = p_res AND x.owner = p_owner
                  AND (x.expires_at <= t.now OR (p_renew_ttl IS NULL AND x.holds <= 1))
                RETURNING x.resource, x.owner, x.mode, x.token, x.acquired_at, x.expires_at,
                          x.expires_at <= t.now AS lapsed, greatest(t.now - x.acquired_at, 0) AS held
        ), kept AS (
            UPDATE {s}.locks x
                SET expires_at = CASE WHEN p_renew_ttl IS NULL THEN x.expires_at ELSE t.now + p_renew_ttl END,
                    holds = CASE WHEN p_renew_ttl IS NULL THEN x.holds - 1 ELSE x.holds END
                FROM t
                WHERE x.resource = p_res AND x.owner = p_owner AND x.expires_at > t.now
                  AND (p_renew_ttl IS NOT NULL OR x.holds > 1)
                RETURNING x.resource, x.owner, x.mode, x.token, x.holds, x.acquired_at, x.expires_at
        ), counted AS (
            INSERT INTO {s}.lock_counts (expired, released, hold_total_ms, hold_max_ms)
                SELECT CASE WHEN g.lapsed THEN 1 ELSE 0 END, CASE WHEN g.lapsed THEN 0 ELSE 1 END,
                       CASE WHEN g.lapsed THEN 0 ELSE g.held END, CASE WHEN g.lapsed THEN 0 ELSE g.held END
                FROM gone g
        ), told AS MATERIALIZED (
            SELECT pg_notify('oc_locks_' || '{n}', '') FROM gone
            WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters w
                WHERE w.resource = p_res OR w.resource = ANY(a) OR (w.resource >= (p_res || '/') COLLATE "C" AND w.resource < (p_res || '0') COLLATE "C"))
        ), done AS MATERIALIZED (
            SELECT CASE WHEN g.lapsed THEN 'expired' ELSE 'released' END AS outcome,
                   g.resource::text, g.owner::text, g.mode, g.token, 0 AS holds, g.acquired_at, g.expires_at
            FROM gone g
            UNION ALL
            SELECT CASE WHEN p_renew_ttl IS NULL THEN 'released' ELSE 'renewed' END,
                   k.resource::text, k.owner::text, k.mode, k.token, k.holds, k.acquired_at, k.expires_at
            FROM kept k
        )
        SELECT o.outcome, o.resource, o.owner, o.mode, o.token, o.holds, o.acquired_at, o.expires_at
        FROM (
            SELECT 0 AS k, CASE WHEN d.outcome = 'expired' THEN 'expired' ELSE d.outcome END AS outcome,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.resource END AS resource,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.owner END AS owner,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.mode END AS mode,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.token END AS token,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.holds END AS holds,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.acquired_at END AS acquired_at,
                   CASE WHEN d.outcome = 'expired' THEN NULL ELSE d.expires_at END AS expires_at,
                   ''::text AS o2
            FROM done d
            UNION ALL
            SELECT 1, 'not_held', NULL, NULL, NULL, NULL, NULL, NULL, NULL, ''
            WHERE NOT EXISTS (SELECT 1 FROM done)
            UNION ALL
            SELECT 2, 'holder', x.resource::text, x.owner::text, x.mode, x.token, x.holds,
                   x.acquired_at, x.expires_at, x.owner::text
            FROM {s}.locks x, t WHERE NOT EXISTS (SELECT 1 FROM done)
               AND x.resource = p_res AND x.owner <> p_owner AND x.expires_at > t.now
        ) o
        WHERE (SELECT count(*) FROM told) >= 0
        ORDER BY o.k, o.o2 COLLATE "C";
    END $$;
