
    -- Serialises the operations on resources that overlap `p_res`, and only those, until the
    -- transaction ends: an advisory lock per path, exclusive on each resource asked, shared on
    -- each of its ancestors. Two overlapping resources are equal, or one is an ancestor of the
    -- other, and then one operation holds exclusively the key the other needs: whichever comes
    -- second reads, in a fresh snapshot, everything the first committed. Siblings share only
    -- their ancestors' keys and proceed in parallel. Every operation takes its keys in byte
    -- order of the paths (an ancestor before its descendants), so no two wait for each other
    -- in a cycle. The key is a 64-bit hash of the schema and the path; a collision only
    -- serialises more than needed.
    CREATE OR REPLACE FUNCTION {s}.lock_serialize(p_res text[]) RETURNS void
        LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    DECLARE p text; x boolean;
    BEGIN
        IF cardinality(p_res) = 1 THEN
            IF strpos(p_res[1], '/') > 0 THEN
                -- The ancestors, outermost first, are in byte order, and before the resource.
                PERFORM pg_advisory_xact_lock_shared(hashtextextended('oc-locks {n} ' || q.a, 0))
                    FROM unnest({s}.lock_ancestors(p_res[1])) AS q(a);
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended('oc-locks {n} ' || p_res[1], 0));
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
                PERFORM pg_advisory_xact_lock(hashtextextended('oc-locks {n} ' || p, 0));
            ELSE
                PERFORM pg_advisory_xact_lock_shared(hashtextextended('oc-locks {n} ' || p, 0));
            END IF;
        END LOOP;
    END $$;
