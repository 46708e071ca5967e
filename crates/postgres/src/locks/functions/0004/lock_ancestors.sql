
    -- The proper ancestors of `r`, outermost first (`a/b/c`: `a`, `a/b`). PL/pgSQL, not SQL: an
    -- SQL function called from PL/pgSQL is planned anew at each call, which cost more than a
    -- whole lock operation's other statements together.
    CREATE OR REPLACE FUNCTION {s}.lock_ancestors(r text) RETURNS text[]
        LANGUAGE plpgsql IMMUTABLE STRICT AS $$
    DECLARE out text[] := '{}'; i integer := 0; j integer;
    BEGIN
        LOOP
            j := strpos(substr(r, i + 1), '/');
            EXIT WHEN j = 0;
            i := i + j;
            out := out || substr(r, 1, i - 1);
        END LOOP;
        RETURN out;
    END $$;
