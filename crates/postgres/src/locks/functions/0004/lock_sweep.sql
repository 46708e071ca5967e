
    -- Removes the lapsed locks. It takes no keys and waits for no row: a lapsed lock another
    -- operation is removing (or renewing, had it not lapsed for it) is left to that operation.
    CREATE OR REPLACE FUNCTION {s}.lock_sweep(p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; n bigint := 0; l {s}.locks%ROWTYPE;
    BEGIN
        v_now := {s}.lock_now(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.ctid IN (
                SELECT y.ctid FROM {s}.locks y WHERE y.expires_at <= v_now FOR UPDATE SKIP LOCKED)
            RETURNING * LOOP
            n := n + 1;
            RETURN NEXT l;
        END LOOP;
        INSERT INTO {s}.lock_counts (expired) SELECT n WHERE n > 0;
        DELETE FROM {s}.lock_waiters w WHERE w.ctid IN (
            SELECT x.ctid FROM {s}.lock_waiters x WHERE x.expires_at <= v_now FOR UPDATE SKIP LOCKED);
        IF n > 0 THEN PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters); END IF;
    END $$;
