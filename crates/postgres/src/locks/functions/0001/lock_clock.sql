    -- The manager's time, read once the operation holds the manager's row: the caller's or the
    -- database's clock, but never behind a time an earlier operation used, so an operation that
    -- waited for the row behind a later one cannot act in the past (and see as live a lock
    -- another operation already took as lapsed).
    CREATE OR REPLACE FUNCTION {s}.lock_clock(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE AS
        $$ UPDATE {s}.lock_meta
           SET value = greatest(value, coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint))
           WHERE key = 'clock' RETURNING value $$;

