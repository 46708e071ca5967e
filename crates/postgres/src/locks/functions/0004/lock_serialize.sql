
    -- Serialises the operations on resources that overlap `p_res`, and only those, until the
    -- transaction ends: an advisory lock per path, exclusive on each resource asked, shared on
    -- each of its ancestors, taken in key order (so two operations never wait for each other in
    -- a cycle). Two overlapping resources are equal, or one is an ancestor of the other, and
    -- then one operation holds exclusively the key the other needs: whichever comes second
    -- reads, in a fresh snapshot, everything the first committed. Siblings share their
    -- ancestors' keys and proceed in parallel. The key is a 64-bit hash of the schema and the
    -- path; a collision only serialises more than needed.
    CREATE OR REPLACE FUNCTION {s}.lock_serialize(p_res text[]) RETURNS void
        LANGUAGE plpgsql VOLATILE AS $$
    DECLARE k bigint; x boolean;
    BEGIN
        IF cardinality(p_res) = 1 AND strpos(p_res[1], '/') = 0 THEN
            PERFORM pg_advisory_xact_lock(hashtextextended('oc-locks {n} ' || p_res[1], 0));
            RETURN;
        END IF;
        FOR k, x IN
            SELECT q.h, bool_or(q.own) FROM (
                SELECT hashtextextended('oc-locks {n} ' || r, 0) AS h, true AS own
                    FROM unnest(p_res) AS r
                UNION ALL
                SELECT hashtextextended('oc-locks {n} ' || a, 0), false
                    FROM unnest(p_res) AS r, unnest({s}.lock_ancestors(r)) AS a
            ) q GROUP BY q.h ORDER BY q.h
        LOOP
            IF x THEN
                PERFORM pg_advisory_xact_lock(k);
            ELSE
                PERFORM pg_advisory_xact_lock_shared(k);
            END IF;
        END LOOP;
    END $$;
