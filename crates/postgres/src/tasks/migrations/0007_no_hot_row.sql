-- Taken first, so that a claim of a host still on the code before this migration, which bumps
-- `lease_token` in its transaction, has either committed before the sequence starts above it
-- or waits and then fails on the table this drops: never a token handed out twice.
    LOCK TABLE {s}.tasks_meta IN EXCLUSIVE MODE;
CREATE SEQUENCE {s}.task_tokens AS bigint MINVALUE 1 CACHE 1;
    SELECT setval('{s}.task_tokens', 1 + greatest(
        (SELECT value FROM {s}.tasks_meta WHERE key = 'lease_token'),
        (SELECT coalesce(max(lease_token), 0) FROM {s}.tasks),
        (SELECT coalesce(max(token), 0) FROM {s}.task_history)), false);
    CREATE TABLE {s}.task_tallies (key text COLLATE "C" NOT NULL, delta bigint NOT NULL);
    INSERT INTO {s}.task_tallies (key, delta)
        SELECT key, value FROM {s}.tasks_meta WHERE key <> 'lease_token' AND value <> 0;
    DROP TABLE {s}.tasks_meta;
    CREATE FUNCTION {s}.task_tally_run(p_started bigint, p_finished bigint, p_status text)
    RETURNS void LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.task_tallies (key, delta)
        SELECT k, d FROM (VALUES
            ('entered_' || p_status, 1::bigint),
            (CASE WHEN p_started IS NULL THEN NULL
                  WHEN p_finished - p_started <= 1000 THEN 'run_le_1000'
                  WHEN p_finished - p_started <= 5000 THEN 'run_le_5000'
                  WHEN p_finished - p_started <= 10000 THEN 'run_le_10000'
                  WHEN p_finished - p_started <= 30000 THEN 'run_le_30000'
                  WHEN p_finished - p_started <= 60000 THEN 'run_le_60000'
                  WHEN p_finished - p_started <= 300000 THEN 'run_le_300000'
                  ELSE 'run_le_inf' END, 1::bigint),
            (CASE WHEN p_started IS NOT NULL THEN 'run_ms_sum' END,
             greatest(p_finished - p_started, 0))) v(k, d)
        WHERE k IS NOT NULL;
    END $$;
    CREATE FUNCTION {s}.task_finish(p_id text, p_token bigint, p_expect bigint,
        p_status text, p_result text, p_error text, p_now bigint, p_lock bigint)
    RETURNS SETOF {s}.tasks LANGUAGE plpgsql AS $$
    DECLARE r {s}.tasks;
    BEGIN
        IF p_status = 'completed' THEN
            PERFORM pg_advisory_xact_lock(p_lock);
        END IF;
        UPDATE {s}.tasks SET status = p_status, finished_at = p_now,
            result = CASE WHEN p_status = 'completed' THEN p_result ELSE result END,
            error = CASE WHEN p_status = 'failed' THEN p_error ELSE error END,
            lease_token = NULL, lease_expires_at = NULL,
            version = version + 1, updated_at = p_now
        WHERE id = p_id AND status = 'running'
          AND lease_token IS NOT DISTINCT FROM p_token
          AND (p_expect IS NULL OR version = p_expect)
          AND (p_status = 'completed'
               OR attempts >= max_attempts OR retry_base_ms IS NULL OR retry_cap_ms IS NULL)
        RETURNING * INTO r;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        PERFORM {s}.task_tally_run(r.started_at, p_now, p_status);
        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status, to_status,
            actor, token, error)
        VALUES (p_id, r.version, p_now, p_status, 'running', p_status, r.owner, p_token,
            CASE WHEN p_status = 'failed' THEN p_error END);
        IF p_status = 'completed'
           AND EXISTS (SELECT 1 FROM {s}.task_deps WHERE depends_on = p_id) THEN
            UPDATE {s}.tasks SET waiting = waiting - 1
            WHERE id IN (SELECT id FROM {s}.tasks
                         WHERE id IN (SELECT task_id FROM {s}.task_deps
                                      WHERE depends_on = p_id)
                         ORDER BY id FOR UPDATE);
        END IF;
        RETURN NEXT r;
    END $$;
    DROP TRIGGER task_ready_updated ON {s}.tasks;
    CREATE TRIGGER task_ready_updated AFTER UPDATE ON {s}.tasks
        FOR EACH ROW WHEN (NEW.status = 'pending' AND NEW.waiting = 0
            AND (OLD.status <> 'pending' OR OLD.waiting <> 0
                 OR OLD.run_at IS DISTINCT FROM NEW.run_at
                 OR OLD.labels IS DISTINCT FROM NEW.labels))
        EXECUTE FUNCTION {s}.task_ready_notify();
