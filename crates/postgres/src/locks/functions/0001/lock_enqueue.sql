    CREATE OR REPLACE FUNCTION {s}.lock_enqueue(p_res text[], p_owner text, p_mode text[], p_lease bigint,
            p_now bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; t bigint;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'ticket' RETURNING value INTO t;
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'waits';
        INSERT INTO {s}.lock_waiters (ticket, resource, owner, mode, expires_at)
            SELECT t, x.r, p_owner, x.m, v_now + p_lease FROM unnest(p_res, p_mode) AS x(r, m);
        RETURN t;
    END $$;

