
    -- Releases every lock of the owner. It takes no keys (an owner may hold more locks than
    -- one transaction may hold advisory locks): it only removes the owner's rows, locked in
    -- resource order, and a grant that saw one of them or not is in order either way.
    CREATE OR REPLACE FUNCTION {s}.lock_release_owner(p_owner text, p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; l {s}.locks%ROWTYPE;
        c_expired bigint := 0; c_released bigint := 0; c_hold bigint := 0; c_max bigint := 0;
    BEGIN
        v_now := {s}.lock_now(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.ctid IN (
                SELECT y.ctid FROM {s}.locks y WHERE y.owner = p_owner ORDER BY y.resource FOR UPDATE)
            RETURNING * LOOP
            IF l.expires_at <= v_now THEN
                c_expired := c_expired + 1;
            ELSE
                c_released := c_released + 1;
                c_hold := c_hold + greatest(v_now - l.acquired_at, 0);
                c_max := greatest(c_max, v_now - l.acquired_at);
            END IF;
            RETURN NEXT l;
        END LOOP;
        INSERT INTO {s}.lock_counts (expired, released, hold_total_ms, hold_max_ms)
            SELECT c_expired, c_released, c_hold, c_max WHERE c_expired + c_released > 0;
        PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters);
    END $$;
