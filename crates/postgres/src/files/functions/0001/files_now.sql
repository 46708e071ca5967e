
    -- The time in milliseconds: `p_now` when a test clock gives one, else the database's.
    CREATE OR REPLACE FUNCTION {s}.files_now(p_now bigint) RETURNS bigint
        LANGUAGE sql VOLATILE AS $$
        SELECT coalesce(p_now, floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint)
    $$;
