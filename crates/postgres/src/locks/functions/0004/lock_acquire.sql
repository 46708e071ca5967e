
    -- Grants every request or none; when one is blocked, returns its blockers (granted false).
    -- Serialised with the operations on overlapping resources only (`lock_serialize`); the
    -- token comes from the sequence, the counts go to a row of changes.
    CREATE OR REPLACE FUNCTION {s}.lock_acquire(p_res text[], p_owner text, p_mode text[], p_ttl bigint[],
            p_ticket bigint, p_lease bigint, p_count_conflict boolean, p_now bigint)
        RETURNS TABLE (granted boolean, blocked text, resource text, owner text, mode text,
                       token bigint, holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint;
        i integer; r text; m text; a text[]; own_mode text; has_own boolean; n bigint; tok bigint;
        owned boolean[] := '{}'; c_total bigint := 0; c_reentrant bigint := 0; c_expired bigint := 0;
    BEGIN
        PERFORM {s}.lock_serialize(p_res);
        v_now := {s}.lock_time(p_res, p_now);
        IF p_ticket IS NOT NULL THEN
            UPDATE {s}.lock_waiters w SET expires_at = v_now + p_lease WHERE w.ticket = p_ticket;
            DELETE FROM {s}.lock_waiters w WHERE w.ctid IN (
                SELECT x.ctid FROM {s}.lock_waiters x WHERE x.expires_at <= v_now
                LIMIT 100 FOR UPDATE SKIP LOCKED);
        END IF;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i]; a := {s}.lock_ancestors(r);
            -- The owner's live lock, locked: a sweep or a release of every lock of the owner
            -- (which take no keys) cannot remove it under this re-entry.
            SELECT l.mode INTO own_mode FROM {s}.locks l
                WHERE l.resource = r AND l.owner = p_owner AND l.expires_at > v_now FOR UPDATE;
            has_own := FOUND;
            owned[i] := has_own;
            -- Re-entry never waits, but an upgrade needs everyone else gone. The blockers are
            -- returned as found, in one statement: a waiter may leave the queue meanwhile (it
            -- takes no key), so a check and a second read could disagree.
            IF NOT has_own OR (own_mode = 'shared' AND m = 'exclusive') THEN
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
            -- Nor does a new grant overtake an earlier live waiter it conflicts with.
            IF NOT has_own THEN
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
        END LOOP;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i];
            -- Lapsed locks on this exact resource (the owner's own included) go first; one a
            -- sweep is removing is left to it.
            DELETE FROM {s}.locks l WHERE l.ctid IN (
                SELECT x.ctid FROM {s}.locks x WHERE x.resource = r AND x.expires_at <= v_now
                FOR UPDATE SKIP LOCKED);
            GET DIAGNOSTICS n = ROW_COUNT;
            c_expired := c_expired + n;
            IF owned[i] THEN
                UPDATE {s}.locks l SET holds = l.holds + 1,
                        expires_at = greatest(l.expires_at, v_now + p_ttl[i]),
                        mode = CASE WHEN m = 'exclusive' THEN 'exclusive' ELSE l.mode END
                    WHERE l.resource = r AND l.owner = p_owner;
                c_reentrant := c_reentrant + 1;
            ELSE
                tok := nextval('{s}.lock_tokens');
                c_total := c_total + 1;
                INSERT INTO {s}.locks (resource, owner, mode, token, holds, acquired_at, expires_at)
                    VALUES (r, p_owner, m, tok, 1, v_now, v_now + p_ttl[i]);
            END IF;
            RETURN QUERY SELECT true, NULL::text, l.resource::text, l.owner::text, l.mode,
                    l.token, l.holds, l.acquired_at, l.expires_at
                FROM {s}.locks l WHERE l.resource = r AND l.owner = p_owner;
        END LOOP;
        IF p_ticket IS NOT NULL THEN
            DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
        END IF;
        INSERT INTO {s}.lock_counts (total, reentrant, expired) VALUES (c_total, c_reentrant, c_expired);
    END $$;
