    -- Every function below is PL/pgSQL with its statements inline: their plans are cached
    -- per session, where a call of an SQL function is planned anew each time.

    -- Grants every request or none; when one is blocked, returns its blockers (granted false).
    CREATE OR REPLACE FUNCTION {s}.lock_acquire(p_res text[], p_owner text, p_mode text[], p_ttl bigint[],
            p_ticket bigint, p_lease bigint, p_count_conflict boolean, p_now bigint)
        RETURNS TABLE (granted boolean, blocked text, resource text, owner text, mode text,
                       token bigint, holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint;
        i integer; r text; m text; a text[]; own_mode text; has_own boolean; n bigint; tok bigint;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        IF p_ticket IS NOT NULL THEN
            UPDATE {s}.lock_waiters w SET expires_at = v_now + p_lease WHERE w.ticket = p_ticket;
            DELETE FROM {s}.lock_waiters w WHERE w.expires_at <= v_now;
        END IF;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i]; a := {s}.lock_ancestors(r);
            SELECT l.mode INTO own_mode FROM {s}.locks l
                WHERE l.resource = r AND l.owner = p_owner AND l.expires_at > v_now;
            has_own := FOUND;
            -- Re-entry never waits, but an upgrade needs everyone else gone.
            IF NOT has_own OR (own_mode = 'shared' AND m = 'exclusive') THEN
                IF EXISTS (SELECT 1 FROM {s}.locks l WHERE l.expires_at > v_now
                           AND l.owner <> p_owner AND (l.mode = 'exclusive' OR m = 'exclusive')
                           AND (l.resource = r OR l.resource = ANY(a) OR (l.resource >= (r || '/') COLLATE "C" AND l.resource < (r || '0') COLLATE "C"))) THEN
                    IF p_count_conflict THEN UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'conflicts'; END IF;
                    RETURN QUERY SELECT false, r, l.resource::text, l.owner::text, l.mode,
                            NULL::bigint, NULL::integer, NULL::bigint, l.expires_at
                        FROM {s}.locks l WHERE l.expires_at > v_now
                           AND l.owner <> p_owner AND (l.mode = 'exclusive' OR m = 'exclusive')
                           AND (l.resource = r OR l.resource = ANY(a) OR (l.resource >= (r || '/') COLLATE "C" AND l.resource < (r || '0') COLLATE "C"))
                        ORDER BY l.resource, l.owner;
                    RETURN;
                END IF;
            END IF;
            -- Nor does a new grant overtake an earlier live waiter it conflicts with.
            IF NOT has_own AND EXISTS (SELECT 1 FROM {s}.lock_waiters w WHERE w.expires_at > v_now
                       AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                       AND (w.mode = 'exclusive' OR m = 'exclusive')
                       AND (w.resource = r OR w.resource = ANY(a) OR (w.resource >= (r || '/') COLLATE "C" AND w.resource < (r || '0') COLLATE "C"))) THEN
                IF p_count_conflict THEN UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'conflicts'; END IF;
                RETURN QUERY SELECT false, r, w.resource::text, w.owner::text, w.mode,
                        NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint
                    FROM {s}.lock_waiters w WHERE w.expires_at > v_now
                       AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                       AND (w.mode = 'exclusive' OR m = 'exclusive')
                       AND (w.resource = r OR w.resource = ANY(a) OR (w.resource >= (r || '/') COLLATE "C" AND w.resource < (r || '0') COLLATE "C"))
                    ORDER BY w.ticket, w.resource;
                RETURN;
            END IF;
        END LOOP;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i];
            -- Lapsed locks on this exact resource (the owner's own included) go first.
            DELETE FROM {s}.locks l WHERE l.resource = r AND l.expires_at <= v_now;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN UPDATE {s}.lock_meta SET value = value + n WHERE key = 'expired'; END IF;
            UPDATE {s}.locks l SET holds = l.holds + 1,
                    expires_at = greatest(l.expires_at, v_now + p_ttl[i]),
                    mode = CASE WHEN m = 'exclusive' THEN 'exclusive' ELSE l.mode END
                WHERE l.resource = r AND l.owner = p_owner;
            IF FOUND THEN
                UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'reentrant';
            ELSE
                WITH u AS (
                    UPDATE {s}.lock_meta SET value = value + 1 WHERE key IN ('token', 'total')
                    RETURNING key, value
                ) SELECT u.value INTO tok FROM u WHERE u.key = 'token';
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
    END $$;

