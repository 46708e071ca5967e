
    -- Grants every request or none; when one is blocked, returns its blockers (granted false).
    -- Serialised with the operations on overlapping resources only (`lock_serialize`); the
    -- token comes from the sequence, the counts go to a row of changes. One read of the locks
    -- overlapping each resource finds the owner's own, the blockers, lapsed locks to remove, and
    -- the latest grant time (the operation's time is raised to it, as `lock_time` does).
    CREATE OR REPLACE FUNCTION {s}.lock_acquire(p_res text[], p_owner text, p_mode text[], p_ttl bigint[],
            p_ticket bigint, p_lease bigint, p_count_conflict boolean, p_now bigint)
        RETURNS TABLE (granted boolean, blocked text, resource text, owner text, mode text,
                       token bigint, holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint; i integer; r text; m text; a text[]; own_mode text; n bigint; tok bigint;
        latest bigint; blocks boolean; lapsed boolean;
        owned boolean[] := '{}'; stale boolean[] := '{}';
        c_total bigint := 0; c_reentrant bigint := 0; c_expired bigint := 0;
    BEGIN
        PERFORM {s}.lock_serialize(p_res);
        v_now := coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint);
        i := 1;
        WHILE i <= cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i]; a := {s}.lock_ancestors(r);
            SELECT max(l.acquired_at),
                   max(l.mode) FILTER (WHERE l.resource = r AND l.owner = p_owner AND l.expires_at > v_now),
                   coalesce(bool_or(l.expires_at > v_now AND l.owner <> p_owner
                                    AND (l.mode = 'exclusive' OR m = 'exclusive')), false),
                   coalesce(bool_or(l.resource = r AND l.expires_at <= v_now), false)
                INTO latest, own_mode, blocks, lapsed
                FROM {s}.locks l
                WHERE l.resource = r OR l.resource = ANY(a) OR (l.resource >= (r || '/') COLLATE "C" AND l.resource < (r || '0') COLLATE "C");
            IF latest > v_now THEN
                -- A grant on an overlapping resource at a later time: act at that time, and
                -- look at every resource again.
                v_now := latest; i := 1; CONTINUE;
            END IF;
            owned[i] := own_mode IS NOT NULL;
            stale[i] := lapsed;
            -- Re-entry never waits, but an upgrade needs everyone else gone.
            IF blocks AND (own_mode IS NULL OR (own_mode = 'shared' AND m = 'exclusive')) THEN
                -- A lock removed meanwhile by a sweep or a release of its owner's every lock
                -- (which take no keys) blocks no more: then nothing is returned, and on.
                RETURN QUERY SELECT false, r, l.resource::text, l.owner::text, l.mode,
                        NULL::bigint, NULL::integer, NULL::bigint, l.expires_at
                    FROM {s}.locks l WHERE l.expires_at > v_now
                       AND l.owner <> p_owner AND (l.mode = 'exclusive' OR m = 'exclusive')
                       AND (l.resource = r OR l.resource = ANY(a) OR (l.resource >= (r || '/') COLLATE "C" AND l.resource < (r || '0') COLLATE "C"))
                    ORDER BY l.resource, l.owner;
                IF FOUND THEN
                    IF p_count_conflict THEN INSERT INTO {s}.lock_counts (conflicts) VALUES (1); END IF;
                    RETURN;
                END IF;
            END IF;
            -- Nor does a new grant overtake an earlier live waiter it conflicts with. A waiter
            -- may leave the queue meanwhile (it takes no key): the blockers are returned as
            -- found, in one statement.
            IF own_mode IS NULL THEN
                RETURN QUERY SELECT false, r, w.resource::text, w.owner::text, w.mode,
                        NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint
                    FROM {s}.lock_waiters w WHERE w.expires_at > v_now
                       AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                       AND (w.mode = 'exclusive' OR m = 'exclusive')
                       AND (w.resource = r OR w.resource = ANY(a) OR (w.resource >= (r || '/') COLLATE "C" AND w.resource < (r || '0') COLLATE "C"))
                    ORDER BY w.ticket, w.resource;
                IF FOUND THEN
                    IF p_count_conflict THEN INSERT INTO {s}.lock_counts (conflicts) VALUES (1); END IF;
                    RETURN;
                END IF;
            END IF;
            i := i + 1;
        END LOOP;
        IF p_ticket IS NOT NULL THEN
            DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
            DELETE FROM {s}.lock_waiters w WHERE w.ctid IN (
                SELECT x.ctid FROM {s}.lock_waiters x WHERE x.expires_at <= v_now
                LIMIT 100 FOR UPDATE SKIP LOCKED);
        END IF;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i];
            -- Lapsed locks on this exact resource (the owner's own included) go first; one a
            -- sweep is removing is left to it.
            IF stale[i] THEN
                DELETE FROM {s}.locks l WHERE l.ctid IN (
                    SELECT x.ctid FROM {s}.locks x WHERE x.resource = r AND x.expires_at <= v_now
                    FOR UPDATE SKIP LOCKED);
                GET DIAGNOSTICS n = ROW_COUNT;
                c_expired := c_expired + n;
            END IF;
            IF owned[i] THEN
                UPDATE {s}.locks l SET holds = l.holds + 1,
                        expires_at = greatest(l.expires_at, v_now + p_ttl[i]),
                        mode = CASE WHEN m = 'exclusive' THEN 'exclusive' ELSE l.mode END
                    WHERE l.resource = r AND l.owner = p_owner AND l.expires_at > v_now
                    RETURNING l.mode, l.token, l.holds, l.acquired_at, l.expires_at
                    INTO mode, token, holds, acquired_at, expires_at;
                IF NOT FOUND THEN
                    -- Removed since it was read, by a sweep or a release of every lock of its
                    -- owner: the decision to re-enter without a check no longer stands.
                    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
                        MESSAGE = 'the lock on ' || r || ' was removed while it was re-entered';
                END IF;
                c_reentrant := c_reentrant + 1;
            ELSE
                INSERT INTO {s}.locks AS l (resource, owner, mode, token, holds, acquired_at, expires_at)
                    VALUES (r, p_owner, m, nextval('{s}.lock_tokens'), 1, v_now, v_now + p_ttl[i])
                    RETURNING l.mode, l.token, l.holds, l.acquired_at, l.expires_at
                    INTO mode, token, holds, acquired_at, expires_at;
                c_total := c_total + 1;
            END IF;
            granted := true; blocked := NULL; resource := r; owner := p_owner;
            RETURN NEXT;
        END LOOP;
        INSERT INTO {s}.lock_counts (total, reentrant, expired) VALUES (c_total, c_reentrant, c_expired);
    END $$;
