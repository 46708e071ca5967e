
    -- One step of retention of task `p_task`'s log, in the caller's transaction: deletes at
    -- most `p_limit` of its oldest entries, those before the first one kept, as a data
    -- directory's retention keeps: not the leading run of entries logged more than `p_max_age`
    -- before `p_now`, and at most the newest `p_max_entries` entries and `p_max_bytes` bytes
    -- of lines (each bound NULL for none).
    -- Keys older than `p_key_age` go too. Answers the entries deleted; call again until 0.
    CREATE OR REPLACE FUNCTION {s}.files_retain(p_task text, p_max_age bigint, p_max_entries bigint,
            p_max_bytes bigint, p_now bigint, p_limit integer, p_key_age bigint)
        RETURNS bigint
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint := {s}.files_now(p_now);
        v_cut bigint := 0;   -- every entry with seq <= v_cut goes
        v_seq bigint;
        n bigint;
        v_bytes bigint;
    BEGIN
        DELETE FROM {s}.append_keys k WHERE k.at < v_now - p_key_age;
        PERFORM 1 FROM {s}.file_tasks t WHERE t.task = p_task FOR UPDATE;
        IF NOT FOUND THEN RETURN 0; END IF;
        IF p_max_age IS NOT NULL THEN
            -- The leading run of old entries (a malformed one is old among old ones), as on
            -- disk: the first entry logged within the bound ends it.
            SELECT e.seq - 1 INTO v_seq FROM {s}.log_entries e
                WHERE e.task = p_task AND e.ts >= v_now - p_max_age AND e.level IS NOT NULL
                ORDER BY e.seq LIMIT 1;
            IF NOT FOUND THEN
                SELECT max(e.seq) INTO v_seq FROM {s}.log_entries e WHERE e.task = p_task;
            END IF;
            v_cut := greatest(v_cut, coalesce(v_seq, 0));
        END IF;
        IF p_max_entries IS NOT NULL THEN
            SELECT e.seq INTO v_seq FROM {s}.log_entries e WHERE e.task = p_task
                ORDER BY e.seq DESC OFFSET p_max_entries LIMIT 1;
            v_cut := greatest(v_cut, coalesce(v_seq, 0));
        END IF;
        IF p_max_bytes IS NOT NULL THEN
            -- The shortest prefix holding the bytes past the bound, found from the oldest end.
            SELECT t.log_bytes - p_max_bytes INTO v_bytes FROM {s}.file_tasks t WHERE t.task = p_task;
            IF v_bytes > 0 THEN
                SELECT x.seq INTO v_seq FROM (
                    SELECT e.seq, sum(e.bytes) OVER (ORDER BY e.seq) AS gone
                    FROM {s}.log_entries e WHERE e.task = p_task ORDER BY e.seq) x
                    WHERE x.gone >= v_bytes LIMIT 1;
                v_cut := greatest(v_cut, coalesce(v_seq, 0));
            END IF;
        END IF;
        IF v_cut = 0 THEN RETURN 0; END IF;
        WITH doomed AS (
            SELECT e.seq FROM {s}.log_entries e WHERE e.task = p_task AND e.seq <= v_cut
            ORDER BY e.seq LIMIT p_limit
        ), gone AS (
            DELETE FROM {s}.log_entries e USING doomed d
             WHERE e.task = p_task AND e.seq = d.seq
            RETURNING e.bytes
        ) SELECT count(*), coalesce(sum(gone.bytes), 0) INTO n, v_bytes FROM gone;
        UPDATE {s}.file_tasks t SET log_entries = t.log_entries - n, log_bytes = t.log_bytes - v_bytes
            WHERE t.task = p_task;
        RETURN n;
    END $$;
