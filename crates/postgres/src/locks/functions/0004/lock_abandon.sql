
    -- A waiter gives up: its rows go (a grant that sees them or not is in order either way).
    CREATE OR REPLACE FUNCTION {s}.lock_abandon(p_ticket bigint) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
        INSERT INTO {s}.lock_counts (timeouts) VALUES (1);
    END $$;
