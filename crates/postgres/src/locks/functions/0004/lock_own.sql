
    -- Release or renew the owner's live lock. The first row says what happened
    -- (released, renewed, expired, not_held) with the lock; after a not_held come the holders.
    -- Serialised with the operations on overlapping resources only; waiters are told (NOTIFY)
    -- only when one waits for an overlapping resource.
    CREATE OR REPLACE FUNCTION {s}.lock_own(p_res text, p_owner text, p_renew_ttl bigint, p_now bigint)
        RETURNS TABLE (outcome text, resource text, owner text, mode text, token bigint,
                       holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    #variable_conflict use_column
    DECLARE v_now bigint; l {s}.locks%ROWTYPE; a text[]; latest bigint;
    BEGIN
        PERFORM {s}.lock_serialize(ARRAY[p_res]);
        a := {s}.lock_ancestors(p_res);
        -- The time, never before a grant recorded on an overlapping resource (`lock_time`).
        SELECT max(x.acquired_at) INTO latest FROM {s}.locks x
            WHERE x.resource = p_res OR x.resource = ANY(a) OR (x.resource >= (p_res || '/') COLLATE "C" AND x.resource < (p_res || '0') COLLATE "C");
        v_now := greatest(coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint), latest);
        SELECT * INTO l FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner FOR UPDATE;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'not_held', NULL::text, NULL::text, NULL::text, NULL::bigint,
                NULL::integer, NULL::bigint, NULL::bigint;
            RETURN QUERY SELECT 'holder', x.resource::text, x.owner::text, x.mode, x.token,
                    x.holds, x.acquired_at, x.expires_at
                FROM {s}.locks x WHERE x.resource = p_res AND x.owner <> p_owner
                   AND x.expires_at > v_now ORDER BY x.owner;
            RETURN;
        END IF;
        IF l.expires_at <= v_now THEN
            DELETE FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner;
            INSERT INTO {s}.lock_counts (expired) VALUES (1);
            PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters w
                WHERE w.resource = p_res OR w.resource = ANY(a) OR (w.resource >= (p_res || '/') COLLATE "C" AND w.resource < (p_res || '0') COLLATE "C"));
            RETURN QUERY SELECT 'expired', NULL::text, NULL::text, NULL::text, NULL::bigint,
                NULL::integer, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
        IF p_renew_ttl IS NOT NULL THEN
            UPDATE {s}.locks x SET expires_at = v_now + p_renew_ttl
                WHERE x.resource = p_res AND x.owner = p_owner;
            l.expires_at := v_now + p_renew_ttl;
            RETURN QUERY SELECT 'renewed', l.resource::text, l.owner::text, l.mode, l.token,
                l.holds, l.acquired_at, l.expires_at;
            RETURN;
        END IF;
        l.holds := l.holds - 1;
        IF l.holds > 0 THEN
            UPDATE {s}.locks x SET holds = l.holds WHERE x.resource = p_res AND x.owner = p_owner;
        ELSE
            DELETE FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner;
            INSERT INTO {s}.lock_counts (released, hold_total_ms, hold_max_ms)
                VALUES (1, greatest(v_now - l.acquired_at, 0), greatest(v_now - l.acquired_at, 0));
            PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters w
                WHERE w.resource = p_res OR w.resource = ANY(a) OR (w.resource >= (p_res || '/') COLLATE "C" AND w.resource < (p_res || '0') COLLATE "C"));
        END IF;
        RETURN QUERY SELECT 'released', l.resource::text, l.owner::text, l.mode, l.token,
            l.holds, l.acquired_at, l.expires_at;
    END $$;
