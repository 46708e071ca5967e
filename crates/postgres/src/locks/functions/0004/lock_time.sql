
    -- The time of an operation on `p_res`, read once it holds their keys (`lock_serialize`):
    -- the caller's clock or the database's, but never before a grant still recorded on a
    -- resource overlapping them. So an operation that read its clock, then waited behind a
    -- later one, cannot act in the past and see as live a lock that grant took as lapsed.
    CREATE OR REPLACE FUNCTION {s}.lock_time(p_res text[], p_now bigint) RETURNS bigint
        LANGUAGE plpgsql VOLATILE SET plan_cache_mode = force_generic_plan AS $$
    DECLARE t bigint;
    BEGIN
        SELECT max(l.acquired_at) INTO t FROM unnest(p_res) AS q(r),
            LATERAL (SELECT x.acquired_at FROM {s}.locks x
                     WHERE x.resource = q.r OR x.resource = ANY({s}.lock_ancestors(q.r))
                        OR (x.resource >= (q.r || '/') COLLATE "C" AND x.resource < (q.r || '0') COLLATE "C")) l;
        RETURN greatest(coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint), t);
    END $$;
