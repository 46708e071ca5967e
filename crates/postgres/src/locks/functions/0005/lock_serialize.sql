
    -- Serialises the operations on resources that overlap `p_res`, and only those, until the
    -- transaction ends: an advisory lock per path, exclusive on each resource asked, shared on
    -- each of its ancestors, with the keys of migration 4 (a 64-bit hash of the schema and the
    -- path; a collision only serialises more than needed), in byte order of the paths (an
    -- ancestor before its descendants), so no two operations wait for each other in a cycle.
    -- For one resource, every key is taken by an expression PL/pgSQL evaluates in place (no
    -- query, no plan to run): an assignment, where `PERFORM` would run a query.
    CREATE OR REPLACE FUNCTION {s}.lock_serialize(p_res text[]) RETURNS void
        LANGUAGE plpgsql VOLATILE AS $$
    DECLARE p text; x boolean; one text; i integer := 0; j integer; z boolean;
    BEGIN
        IF cardinality(p_res) = 1 THEN
            one := p_res[1];
            LOOP
                j := strpos(substr(one, i + 1), '/');
                EXIT WHEN j = 0;
                i := i + j;
                z := pg_advisory_xact_lock_shared(hashtextextended('oc-locks {n} ' || substr(one, 1, i - 1), 0)) IS NULL;
            END LOOP;
            z := pg_advisory_xact_lock(hashtextextended('oc-locks {n} ' || one, 0)) IS NULL;
            RETURN;
        END IF;
        FOR p, x IN
            SELECT q.p, bool_or(q.own) FROM (
                SELECT r AS p, true AS own FROM unnest(p_res) AS r
                UNION ALL
                SELECT a, false FROM unnest(p_res) AS r, unnest({s}.lock_ancestors(r)) AS a
            ) q GROUP BY q.p ORDER BY q.p COLLATE "C"
        LOOP
            IF x THEN
                z := pg_advisory_xact_lock(hashtextextended('oc-locks {n} ' || p, 0)) IS NULL;
            ELSE
                z := pg_advisory_xact_lock_shared(hashtextextended('oc-locks {n} ' || p, 0)) IS NULL;
            END IF;
        END LOOP;
    END $$;
