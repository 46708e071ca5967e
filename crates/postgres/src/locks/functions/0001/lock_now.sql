CREATE OR REPLACE FUNCTION {s}.lock_now(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE AS
        $$ SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) $$;

