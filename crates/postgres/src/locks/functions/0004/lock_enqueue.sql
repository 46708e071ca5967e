
    -- Queues a waiter: its ticket from the sequence, in line with the operations on the
    -- resources it waits for (`lock_serialize`).
    CREATE OR REPLACE FUNCTION {s}.lock_enqueue(p_res text[], p_owner text, p_mode text[], p_lease bigint,
            p_now bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE
            SET plan_cache_mode = force_generic_plan AS $$
    DECLARE v_now bigint; t bigint;
    BEGIN
        PERFORM {s}.lock_serialize(p_res);
        v_now := {s}.lock_time(p_res, p_now);
        t := nextval('{s}.lock_tickets');
        INSERT INTO {s}.lock_counts (waits) VALUES (1);
        INSERT INTO {s}.lock_waiters (ticket, resource, owner, mode, expires_at)
            SELECT t, x.r, p_owner, x.m, v_now + p_lease FROM unnest(p_res, p_mode) AS x(r, m);
        RETURN t;
    END $$;
