    CREATE OR REPLACE FUNCTION {s}.lock_sweep(p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; n bigint := 0; l {s}.locks%ROWTYPE;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.expires_at <= v_now RETURNING * LOOP
            n := n + 1;
            RETURN NEXT l;
        END LOOP;
        UPDATE {s}.lock_meta SET value = value + n WHERE key = 'expired';
        DELETE FROM {s}.lock_waiters w WHERE w.expires_at <= v_now;
        IF n > 0 THEN PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters); END IF;
    END $$;