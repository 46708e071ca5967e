    CREATE OR REPLACE FUNCTION {s}.lock_release_owner(p_owner text, p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; l {s}.locks%ROWTYPE;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.owner = p_owner RETURNING * LOOP
            IF l.expires_at <= v_now THEN
                UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'expired';
            ELSE
                UPDATE {s}.lock_meta SET value = CASE key WHEN 'released' THEN value + 1 WHEN 'hold_total_ms' THEN value + greatest(v_now - l.acquired_at, 0) ELSE greatest(value, v_now - l.acquired_at) END WHERE key IN ('released', 'hold_total_ms', 'hold_max_ms');
            END IF;
            RETURN NEXT l;
        END LOOP;
        PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters);
    END $$;

