    CREATE OR REPLACE FUNCTION {s}.lock_abandon(p_ticket bigint) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'timeouts';
    END $$;

