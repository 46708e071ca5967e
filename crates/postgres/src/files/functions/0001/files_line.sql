
    -- What a log or decision line holds, as `oc_jsonl` reads it: its level (0 trace to 4
    -- error), its time in milliseconds and its agent (a decision's), each NULL when the line
    -- is not a record of that shape. `files_line_strict` raises on a line that is not JSON;
    -- `files_line` answers NULLs for it (at the price of a subtransaction per line, so
    -- restores try the strict one over the whole file first).
    CREATE OR REPLACE FUNCTION {s}.files_line_strict(p_line text, OUT level smallint, OUT ts bigint, OUT agent text)
        LANGUAGE plpgsql STABLE AS $$
    DECLARE
        j jsonb := p_line::jsonb;
        t text;
    BEGIN
        IF jsonb_typeof(j) <> 'object' THEN RETURN; END IF;
        t := j->>'timestamp';
        IF jsonb_typeof(j->'timestamp') = 'string'
           AND t ~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z?$' THEN
            ts := floor(extract(epoch FROM (rtrim(t, 'Z')::timestamp AT TIME ZONE 'UTC')) * 1000)::bigint;
        END IF;
        IF ts IS NULL THEN RETURN; END IF;
        IF jsonb_typeof(j->'message') = 'string' AND jsonb_typeof(j->'taskId') = 'string'
           AND (j->'data' IS NULL OR jsonb_typeof(j->'data') = 'object')
           AND jsonb_typeof(j->'level') = 'string' THEN
            level := CASE lower(j->>'level') WHEN 'trace' THEN 0 WHEN 'debug' THEN 1
                     WHEN 'info' THEN 2 WHEN 'warn' THEN 3 WHEN 'warning' THEN 3
                     WHEN 'error' THEN 4 END;
        END IF;
        IF jsonb_typeof(j->'agentId') = 'string' AND jsonb_typeof(j->'decision') = 'string'
           AND jsonb_typeof(j->'reasoning') = 'string'
           AND (j->'metadata' IS NULL OR jsonb_typeof(j->'metadata') = 'object') THEN
            agent := j->>'agentId';
        END IF;
    END $$;

    CREATE OR REPLACE FUNCTION {s}.files_line(p_line text, OUT level smallint, OUT ts bigint, OUT agent text)
        LANGUAGE plpgsql STABLE AS $$
    BEGIN
        SELECT l.level, l.ts, l.agent INTO level, ts, agent FROM {s}.files_line_strict(p_line) l;
    EXCEPTION WHEN OTHERS THEN
        level := NULL; ts := NULL; agent := NULL;
    END $$;
