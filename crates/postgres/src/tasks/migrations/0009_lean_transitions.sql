-- Cheaper transitions (decision 0052). The counts by status are appended by the statements
-- that move a task (claim, `task_finish`, the general transition, release, batches): one
-- append per statement instead of the per-row trigger. A writer outside the store that moves a
-- task's status appends its own row of changes to `task_counts` (or `oc db check` reports the
-- miscount).
    DROP TRIGGER task_counts_moved ON {s}.tasks;
    DROP FUNCTION {s}.task_counts_moved();
-- The ready notification of new tasks, once per statement from the trigger that already counts
-- them (one notification per distinct payload, as before), instead of a trigger per row.
    DROP TRIGGER task_ready_inserted ON {s}.tasks;
    CREATE OR REPLACE FUNCTION {s}.task_counts_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.task_counts (status, delta)
            SELECT status, count(*) FROM added GROUP BY status;
        PERFORM pg_notify(left('oc_tasks_' || TG_TABLE_SCHEMA, 63), p)
        FROM (SELECT DISTINCT coalesce(run_at::text, '') AS p FROM added
              WHERE status = 'pending' AND waiting = 0) r;
        RETURN NULL;
    END $$;
-- Every transition changes an indexed column, so no update is HOT and each new row version
-- gets an entry in every index whose predicate it passes. Finished tasks leave the two
-- indexes that only listings of unfinished work need: `tasks_ready` (by status in claim order)
-- keeps pending and running tasks, `tasks_owner` the tasks that have an owner.
    DROP INDEX {s}.tasks_ready;
    CREATE INDEX tasks_ready ON {s}.tasks (status, priority DESC, created_at, id)
        WHERE status IN ('pending', 'running');
    DROP INDEX {s}.tasks_owner;
    CREATE INDEX tasks_owner ON {s}.tasks (owner) WHERE owner IS NOT NULL;
-- `task_finish` in fewer steps: the row found by its primary key only (the state it needs is
-- checked by a condition no index serves, so that statistics that see few running tasks never
-- send it along an index by status), the counts, tallies and history appended without a nested
-- call, the dependents looked up by key. The run-duration buckets are `RUN_BUCKETS_MS`
-- (a test compares them).
    CREATE OR REPLACE FUNCTION {s}.task_finish(p_id text, p_token bigint, p_expect bigint,
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
        WHERE id = p_id COLLATE "C"
          AND (status, lease_token) IS NOT DISTINCT FROM ('running', p_token)
          AND (p_expect IS NULL OR version = p_expect)
          AND (p_status = 'completed'
               OR attempts >= max_attempts OR retry_base_ms IS NULL OR retry_cap_ms IS NULL)
        RETURNING * INTO r;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        INSERT INTO {s}.task_counts (status, delta) VALUES ('running', -1), (p_status, 1);
        INSERT INTO {s}.task_tallies (key, delta)
        SELECT k, d FROM (VALUES
            ('entered_' || p_status, 1::bigint),
            (CASE WHEN r.started_at IS NULL THEN NULL
                  WHEN p_now - r.started_at <= 1000 THEN 'run_le_1000'
                  WHEN p_now - r.started_at <= 5000 THEN 'run_le_5000'
                  WHEN p_now - r.started_at <= 10000 THEN 'run_le_10000'
                  WHEN p_now - r.started_at <= 30000 THEN 'run_le_30000'
                  WHEN p_now - r.started_at <= 60000 THEN 'run_le_60000'
                  WHEN p_now - r.started_at <= 300000 THEN 'run_le_300000'
                  ELSE 'run_le_inf' END, 1::bigint),
            (CASE WHEN r.started_at IS NOT NULL THEN 'run_ms_sum' END,
             greatest(p_now - r.started_at, 0))) v(k, d)
        WHERE k IS NOT NULL;
        INSERT INTO {s}.task_history (task_id, version, at, kind, from_status, to_status,
            actor, token, error)
        VALUES (p_id, r.version, p_now, p_status, 'running', p_status, r.owner, p_token,
            CASE WHEN p_status = 'failed' THEN p_error END);
        IF p_status = 'completed'
           AND EXISTS (SELECT 1 FROM {s}.task_deps WHERE depends_on = p_id COLLATE "C") THEN
            UPDATE {s}.tasks SET waiting = waiting - 1
            WHERE id IN (SELECT id FROM {s}.tasks
                         WHERE id IN (SELECT task_id FROM {s}.task_deps
                                      WHERE depends_on = p_id COLLATE "C")
                         ORDER BY id FOR UPDATE);
        END IF;
        RETURN NEXT r;
    END $$;
