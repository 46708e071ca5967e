
    -- Puts checkpoint `p_id` back as task `p_task`'s files, in the caller's transaction: locks
    -- the task's row; checks every file's length and SHA-256 against the manifest (the first
    -- that differs is answered as `corrupt` with nothing changed); replaces the entries and
    -- decisions with the files' lines (`seq` from 1) and the state with the checkpoint's; bumps
    -- the generation, so followers start again; sets the counters; notifies. Answers `ok`,
    -- `not_found` or `corrupt` (with the file's name and what differs).
    -- Decision 0038: each line's time and level or agent come from the arrays kept beside the
    -- file it was made with (`lines_sha256` equal to the file's hash), read from the line only
    -- for a checkpoint without them; and while the task is in the generation the checkpoint
    -- was made or last restored in and still holds its entries from 1, its entries below the
    -- checkpoint's `next_seq` are the file's lines: they stay, and only the entries after them
    -- go.
    CREATE OR REPLACE FUNCTION {s}.files_restore(p_task text, p_id text)
        RETURNS TABLE (outcome text, name text, reason text)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        f record;
        l record;
        d record;
        v_gen bigint;
        v_state bytea;
        v_text text;
        v_done boolean;
        v_logs bigint := 0;
        v_log_bytes bigint := 0;
        v_decs bigint := 0;
    BEGIN
        -- An unknown checkpoint leaves no trace: the task's row is written (and locked) only
        -- once the checkpoint is known, so naming any task cannot make it listed; checked
        -- again under the row's lock, against a deletion in between.
        IF NOT EXISTS (SELECT 1 FROM {s}.checkpoints c WHERE c.task = p_task AND c.id = p_id) THEN
            RETURN QUERY SELECT 'not_found'::text, NULL::text, NULL::text;
            RETURN;
        END IF;
        INSERT INTO {s}.file_tasks AS t (task) VALUES (p_task)
            ON CONFLICT (task) DO UPDATE SET generation = t.generation
            RETURNING t.generation INTO v_gen;
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
        -- Every file is as its manifest says. The arrays are used only for the file they were
        -- made from, and only when they hold one element per line.
        SELECT cf.bytes, cf.ts, cf.levels, cf.generation, cf.next_seq,
               coalesce(cf.lines_sha256 = cf.sha256 AND cf.ts IS NOT NULL
                        AND cardinality(cf.ts) = cardinality(cf.levels), false) AS fits
          INTO l FROM {s}.checkpoint_files cf
         WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'logs.jsonl';
        SELECT cf.bytes, cf.body, cf.ts, cf.agents,
               coalesce(cf.lines_sha256 = cf.sha256 AND cf.ts IS NOT NULL
                        AND cardinality(cf.ts) = cardinality(cf.agents), false) AS fits
          INTO d FROM {s}.checkpoint_files cf
         WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'decisions.jsonl';
        SELECT cf.body INTO v_state FROM {s}.checkpoint_files cf
            WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'state.json';

        -- The log.
        IF l.fits AND l.generation = v_gen AND l.next_seq IS NOT NULL
           AND cardinality(l.ts) = l.next_seq - 1
           AND (SELECT min(e.seq) FROM {s}.log_entries e WHERE e.task = p_task) = 1 THEN
            -- The task's entries 1 to next_seq - 1 are the ones the file was made of: nothing
            -- renumbers or changes an entry within a generation, and retention deletes from
            -- the oldest end only (which `min(seq) = 1` rules out).
            DELETE FROM {s}.log_entries e WHERE e.task = p_task AND e.seq >= l.next_seq;
            v_logs := l.next_seq - 1;
            v_log_bytes := l.bytes;
        ELSE
            DELETE FROM {s}.log_entries e WHERE e.task = p_task;
            -- A file ends with a newline: its lines are what comes before each.
            SELECT convert_from(cf.body, 'UTF8') INTO v_text FROM {s}.checkpoint_files cf
             WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'logs.jsonl';
            IF v_text IS NOT NULL AND v_text <> '' THEN
                v_done := false;
                IF l.fits THEN
                    BEGIN
                        WITH ins AS (
                            INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
                            SELECT p_task, x.n, x.ts, x.level, octet_length(x.line) + 1, x.line
                              FROM ROWS FROM (string_to_table(left(v_text, -1), E'\n'),
                                              unnest(l.ts), unnest(l.levels))
                                   WITH ORDINALITY AS x(line, ts, level, n)
                            RETURNING bytes)
                        SELECT count(*), coalesce(sum(ins.bytes), 0) INTO v_logs, v_log_bytes FROM ins;
                        v_done := true;
                    EXCEPTION WHEN not_null_violation THEN
                        -- More lines than times, or fewer: read the lines.
                        v_done := false;
                    END;
                END IF;
                IF NOT v_done THEN
                    BEGIN
                        WITH ins AS (
                            INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
                            SELECT p_task, x.n, coalesce(m.ts, 0), m.level, octet_length(x.line) + 1, x.line
                              FROM string_to_table(left(v_text, -1), E'\n') WITH ORDINALITY AS x(line, n),
                                   LATERAL {s}.files_line_strict(x.line) m
                            RETURNING bytes)
                        SELECT count(*), coalesce(sum(ins.bytes), 0) INTO v_logs, v_log_bytes FROM ins;
                    EXCEPTION WHEN OTHERS THEN
                        WITH ins AS (
                            INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
                            SELECT p_task, x.n, coalesce(m.ts, 0), m.level, octet_length(x.line) + 1, x.line
                              FROM string_to_table(left(v_text, -1), E'\n') WITH ORDINALITY AS x(line, n),
                                   LATERAL {s}.files_line(x.line) m
                            RETURNING bytes)
                        SELECT count(*), coalesce(sum(ins.bytes), 0) INTO v_logs, v_log_bytes FROM ins;
                    END;
                END IF;
            END IF;
        END IF;

        -- The decisions.
        DELETE FROM {s}.decisions x WHERE x.task = p_task;
        IF d.body IS NOT NULL AND length(d.body) > 0 THEN
            v_text := convert_from(d.body, 'UTF8');
            v_done := false;
            IF d.fits THEN
                BEGIN
                    INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
                    SELECT p_task, x.n, x.ts, x.agent, octet_length(x.line) + 1, x.line
                      FROM ROWS FROM (string_to_table(left(v_text, -1), E'\n'),
                                      unnest(d.ts), unnest(d.agents))
                           WITH ORDINALITY AS x(line, ts, agent, n);
                    GET DIAGNOSTICS v_decs = ROW_COUNT;
                    v_done := true;
                EXCEPTION WHEN not_null_violation THEN
                    v_done := false;
                END;
            END IF;
            IF NOT v_done THEN
                BEGIN
                    INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
                    SELECT p_task, x.n, coalesce(m.ts, 0), m.agent, octet_length(x.line) + 1, x.line
                      FROM string_to_table(left(v_text, -1), E'\n') WITH ORDINALITY AS x(line, n),
                           LATERAL {s}.files_line_strict(x.line) m;
                    GET DIAGNOSTICS v_decs = ROW_COUNT;
                EXCEPTION WHEN OTHERS THEN
                    INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
                    SELECT p_task, x.n, coalesce(m.ts, 0), m.agent, octet_length(x.line) + 1, x.line
                      FROM string_to_table(left(v_text, -1), E'\n') WITH ORDINALITY AS x(line, n),
                           LATERAL {s}.files_line(x.line) m;
                    GET DIAGNOSTICS v_decs = ROW_COUNT;
                END;
            END IF;
        END IF;

        -- The entries are now the file's lines, in the generation this restore begins: a later
        -- restore of this checkpoint keeps them too (an agent trying again from one checkpoint).
        IF l.fits THEN
            UPDATE {s}.checkpoint_files cf SET generation = v_gen + 1, next_seq = v_logs + 1
             WHERE cf.task = p_task AND cf.id = p_id AND cf.name = 'logs.jsonl';
        END IF;
        UPDATE {s}.file_tasks t SET
            generation = t.generation + 1,
            state = v_state,
            log_next = 1 + v_logs,
            log_entries = v_logs,
            log_bytes = v_log_bytes,
            decision_next = 1 + v_decs,
            decisions = v_decs
        WHERE t.task = p_task;
        PERFORM pg_notify('oc_files_{n}', p_task);
        RETURN QUERY SELECT 'ok'::text, NULL::text, NULL::text;
    END $$;
