
    -- One group commit: the requests of many callers, request `i` appending to stream
    -- `p_streams[i]` (`log` or `decision`) of task `p_tasks[i]`, with an idempotency key or
    -- NULL; the rows are `p_requests` (each row's request), `p_ts`, `p_levels`, `p_agents` and
    -- `p_bodies`, a request's rows together and in order. Locks the tasks' rows in id order
    -- (made if new), so two calls never wait for each other in a cycle; a request whose key is
    -- known writes nothing and answers the range its key recorded (`duplicate`); the others
    -- get `seq` ranges in request order, under the row lock, so a task's entries commit in
    -- `seq` order. Each task is notified once. `p_async`: commit without waiting for the WAL's
    -- flush. Returns every request's first `seq` and count. Rows are joined to their requests,
    -- never reached by subscript (a subscript of an array of text walks it from the start).
    CREATE OR REPLACE FUNCTION {s}.files_append(p_tasks text[], p_keys text[], p_streams text[],
            p_requests integer[], p_ts bigint[], p_levels smallint[], p_agents text[], p_bodies text[],
            p_now bigint, p_async boolean)
        RETURNS TABLE (request integer, first_seq bigint, count integer, duplicate boolean)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint := {s}.files_now(p_now);
        v_fresh integer[];
        t text;
    BEGIN
        -- A call of `Written` requests alone commits without waiting for the WAL's flush.
        IF p_async THEN
            PERFORM set_config('synchronous_commit', 'off', true);
        END IF;
        INSERT INTO {s}.file_tasks AS f (task)
            SELECT DISTINCT x COLLATE "C" FROM unnest(p_tasks) x ORDER BY 1
            ON CONFLICT (task) DO UPDATE SET generation = f.generation;
        -- The requests to write: those without a key, and the first with each new key.
        WITH r AS (
            SELECT x.task, x.stream, x.key, x.i::integer AS i
            FROM unnest(p_tasks, p_streams, p_keys) WITH ORDINALITY AS x(task, stream, key, i)
        ), ins AS (
            INSERT INTO {s}.append_keys (task, stream, key, first_seq, count, at)
            SELECT r.task, r.stream, r.key, 0, 0, v_now FROM r WHERE r.key IS NOT NULL ORDER BY r.i
            ON CONFLICT DO NOTHING
            RETURNING append_keys.task, append_keys.stream, append_keys.key
        )
        SELECT coalesce(array_agg(f.i), '{}') INTO v_fresh FROM (
            SELECT r.i FROM r WHERE r.key IS NULL
            UNION ALL
            SELECT min(r.i) FROM r JOIN ins ON (r.task, r.stream, r.key) = (ins.task, ins.stream, ins.key)
            GROUP BY r.task, r.stream, r.key
        ) f;
        RETURN QUERY
        WITH req AS (
            SELECT x.task, x.stream, x.key, x.i::integer AS i, f.i IS NOT NULL AS fresh
            FROM unnest(p_tasks, p_streams, p_keys) WITH ORDINALITY AS x(task, stream, key, i)
            LEFT JOIN unnest(v_fresh) AS f(i) ON f.i = x.i
        ), rw AS (
            SELECT r.request, r.ts, r.level, r.agent, r.body, r.j
            FROM unnest(p_requests, p_ts, p_levels, p_agents, p_bodies)
                 WITH ORDINALITY AS r(request, ts, level, agent, body, j)
        ), sizes AS (
            SELECT rw.request, count(*)::bigint AS n, sum(octet_length(rw.body) + 1)::bigint AS bytes,
                   min(rw.j) AS j0
            FROM rw GROUP BY rw.request
        ), fr AS (
            SELECT req.i, req.task, req.stream, req.key, s.n, s.bytes, s.j0,
                   (sum(s.n) OVER (PARTITION BY req.task, req.stream ORDER BY req.i) - s.n)::bigint AS before
            FROM req JOIN sizes s ON s.request = req.i
            WHERE req.fresh
        ), tot AS (
            SELECT fr.task,
                   coalesce(sum(fr.n) FILTER (WHERE fr.stream = 'log'), 0)::bigint AS logs,
                   coalesce(sum(fr.bytes) FILTER (WHERE fr.stream = 'log'), 0)::bigint AS log_bytes,
                   coalesce(sum(fr.n) FILTER (WHERE fr.stream = 'decision'), 0)::bigint AS decs
            FROM fr GROUP BY fr.task
        ), bump AS (
            UPDATE {s}.file_tasks f
               SET log_next = f.log_next + tot.logs, decision_next = f.decision_next + tot.decs,
                   log_entries = f.log_entries + tot.logs, log_bytes = f.log_bytes + tot.log_bytes,
                   decisions = f.decisions + tot.decs
              FROM tot WHERE f.task = tot.task
            RETURNING f.task, f.log_next - tot.logs AS log_base, f.decision_next - tot.decs AS dec_base
        ), placed AS (
            SELECT fr.i, fr.task, fr.stream, fr.key, fr.n, fr.j0,
                   CASE WHEN fr.stream = 'log' THEN b.log_base ELSE b.dec_base END + fr.before AS first
            FROM fr JOIN bump b ON b.task = fr.task
        ), logs AS (
            INSERT INTO {s}.log_entries (task, seq, ts, level, bytes, body)
            SELECT p.task, p.first + (rw.j - p.j0), rw.ts, rw.level, octet_length(rw.body) + 1, rw.body
            FROM placed p JOIN rw ON rw.request = p.i WHERE p.stream = 'log'
        ), decs AS (
            INSERT INTO {s}.decisions (task, seq, ts, agent, bytes, body)
            SELECT p.task, p.first + (rw.j - p.j0), rw.ts, rw.agent, octet_length(rw.body) + 1, rw.body
            FROM placed p JOIN rw ON rw.request = p.i WHERE p.stream = 'decision'
        ), keyed AS (
            UPDATE {s}.append_keys a SET first_seq = p.first, count = p.n
              FROM placed p
             WHERE p.key IS NOT NULL AND (a.task, a.stream, a.key) = (p.task, p.stream, p.key)
        )
        SELECT p.i, p.first, p.n::integer, false FROM placed p
        UNION ALL
        SELECT d.i, coalesce(p.first, a.first_seq), coalesce(p.n::integer, a.count), true
          FROM req d
          LEFT JOIN placed p ON (p.task, p.stream, p.key) = (d.task, d.stream, d.key)
          LEFT JOIN {s}.append_keys a ON (a.task, a.stream, a.key) = (d.task, d.stream, d.key)
         WHERE NOT d.fresh;
        FOR t IN SELECT DISTINCT x FROM unnest(p_tasks) x LOOP
            PERFORM pg_notify('oc_files_{n}', t);
        END LOOP;
    END $$;
