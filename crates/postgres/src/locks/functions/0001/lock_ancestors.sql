    CREATE OR REPLACE FUNCTION {s}.lock_ancestors(r text) RETURNS text[] LANGUAGE sql IMMUTABLE AS
        $$ SELECT coalesce(array_agg(array_to_string((string_to_array(r, '/'))[1:k], '/') ORDER BY k),
                           '{}'::text[])
           FROM generate_series(1, cardinality(string_to_array(r, '/')) - 1) AS k $$;

