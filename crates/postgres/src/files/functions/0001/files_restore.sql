
    -- Puts checkpoint `p_id` back as task `p_task`'s files, in the caller's transaction: locks
    -- the task's row; checks every file's length and SHA-256 against the manifest (the first
    -- that differs is answered as `corrupt` with nothing changed); replaces the entries and
    -- decisions with the files' lines (`seq` from 1, level, time and agent read from each
    -- line) and the state with the checkpoint's; bumps the generation, so followers start
    -- again; sets the counters; notifies. Answers `ok`, `not_found` or `corrupt` (with the
    -- file's name and what differs).
    CREATE OR REPLACE FUNCTION {s}.files_restore(p_task text, p_id text)
        RETURNS TABLE (outcome text, name text, reason text)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        f record;
        v_logs text;
        v_decs text;
        v_state bytea;
    BEGIN
        INSERT INTO {s}.file_tasks AS t (task) VALUES (p_task)
            ON CONFLICT (task) DO UPDATE SET generation = t.generation;
        IF NOT EXISTS (SELECT 1 FROM {s}.checkpoints c WHERE c.task = p_task AND c.id = p_id) THEN
            RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::text;
            RETURN;
        END IF;
        FOR f IN SELECT cf.name, cf.bytes, cf.sha256, length(cf.body) AS len, sha256(cf.body) AS hash
                   FROM {s}.checkpoint_files cf WHERE cf.task = p_task AND cf.id = p_id ORDER BY cf.name LOOP
            IF f.len <> f.bytes THEN
                RETURN QUERY SELECT 'corrupt'::text, f.name,
                    format('it is %s bytes; the manifest records %s', f.len, f.bytes);
                RETURN;
            END IF;
            IF f.hash <> f.sha256 THEN
                RETURN QUERY SELECT 'corrupt'::text, f.name,
                    format('hash %s does not match the manifest''s %s', encode(f.hash, 'hex'), encode(f.sha256, 'hex'));
                RETURN;
            END IF;
        END LOOP;
        SELECT convert_from(cf.body, 'UTF8') INTO v_logs FROM {s}.checkpoint_files cf
            WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'logs.jsonl';
        SELECT convert_from(cf.body, 'UTF8') INTO v_decs FROM {s}.checkpoint_files cf
            WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'decisions.jsonl';
        SELECT cf.body INTO v_state FROM {s}.checkpoint_files cf
            WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'state.json';
        DELETE FROM {s}.log_entries e WHERE e.task = p_task;
        DELETE FROM {s}.decisions d WHERE d.task = p_task;
        -- A file ends with a newline: its lines are what comes before each.
        IF v_logs IS NOT NULL AND v_logs <> '' THEN
            BEGIN
                INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
                SELECT p_task, x.n, coalesce(m.ts, 0), m.level, octet_length(x.line) + 1, x.line
                FROM string_to_table(left(v_logs, -1), E'\n') WITH ORDINALITY AS x(line, n),
                     LATERAL {s}.files_line_strict(x.line) m;
            EXCEPTION WHEN OTHERS THEN
                INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
                SELECT p_task, x.n, coalesce(m.ts, 0), m.level, octet_length(x.line) + 1, x.line
                FROM string_to_table(left(v_logs, -1), E'\n') WITH ORDINALITY AS x(line, n),
                     LATERAL {s}.files_line(x.line) m;
            END;
        END IF;
        IF v_decs IS NOT NULL AND v_decs <> '' THEN
            BEGIN
                INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
                SELECT p_task, x.n, coalesce(m.ts, 0), m.agent, octet_length(x.line) + 1, x.line
                FROM string_to_table(left(v_decs, -1), E'\n') WITH ORDINALITY AS x(line, n),
                     LATERAL {s}.files_line_strict(x.line) m;
            EXCEPTION WHEN OTHERS THEN
                INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
                SELECT p_task, x.n, coalesce(m.ts, 0), m.agent, octet_length(x.line) + 1, x.line
                FROM string_to_table(left(v_decs, -1), E'\n') WITH ORDINALITY AS x(line, n),
                     LATERAL {s}.files_line(x.line) m;
            END;
        END IF;
        UPDATE {s}.file_tasks t SET
            generation = t.generation + 1,
            state = v_state,
            log_next = 1 + (SELECT count(*) FROM {s}.log_entries e WHERE e.task = p_task),
            log_entries = (SELECT count(*) FROM {s}.log_entries e WHERE e.task = p_task),
            log_bytes = (SELECT coalesce(sum(e.bytes), 0) FROM {s}.log_entries e WHERE e.task = p_task),
            decision_next = 1 + (SELECT count(*) FROM {s}.decisions d WHERE d.task = p_task),
            decisions = (SELECT count(*) FROM {s}.decisions d WHERE d.task = p_task)
        WHERE t.task = p_task;
        PERFORM pg_notify('oc_files_{n}', p_task);
        RETURN QUERY SELECT 'ok'::text, NULL::text, NULL::text;
    END $$;
