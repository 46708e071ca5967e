
    -- Fails the operation: the owner's lock on `r`, which it read as live and meant to re-enter,
    -- was removed meanwhile by a sweep or a release of its owner's every lock (which take no
    -- keys), so the decision to re-enter without a check no longer stands. Retryable.
    CREATE OR REPLACE FUNCTION {s}.lock_removed(r text) RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
            MESSAGE = 'the lock on ' || r || ' was removed while it was re-entered';
    END $$;
