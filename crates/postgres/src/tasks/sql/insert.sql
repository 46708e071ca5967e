-- New tasks, one array per column (`InsertColumns`, in `InsertColumns::params` order), with
-- their count of unfinished dependencies and a history row each, and a row of changes to the
-- tally of tasks that entered `pending`: one statement for the whole batch.
WITH ins AS (
    INSERT INTO {s}.tasks (id, name, description, status, owner, priority, metadata, result,
        error, attempts, max_attempts, version, created_at, updated_at, started_at,
        finished_at, lease_token, lease_expires_at, parent, labels, run_at, retry_base_ms,
        retry_cap_ms, retry_jitter, unique_key, unique_scope, waiting)
    SELECT u.id, u.name, u.description, u.status, u.owner, u.priority,
        u.metadata, u.result, u.error, u.attempts, u.max_attempts, u.version,
        u.created_at, u.updated_at, u.started_at, u.finished_at,
        u.lease_token, u.lease_expires_at, u.parent,
        ARRAY(SELECT json_array_elements_text(u.labels::json)), u.run_at,
        u.retry_base_ms, u.retry_cap_ms, u.retry_jitter, u.unique_key,
        u.unique_scope, u.waiting
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
        $5::text[], $6::int4[], $7::text[], $8::text[], $9::text[], $10::int8[],
        $11::int8[], $12::int8[], $13::int8[], $14::int8[], $15::int8[],
        $16::int8[], $17::int8[], $18::int8[], $19::text[], $20::text[],
        $21::int8[], $22::int8[], $23::int8[], $24::int4[], $25::text[],
        $26::text[], $27::int4[])
      AS u(id, name, description, status, owner, priority, metadata, result,
        error, attempts, max_attempts, version, created_at, updated_at,
        started_at, finished_at, lease_token, lease_expires_at, parent,
        labels, run_at, retry_base_ms, retry_cap_ms, retry_jitter,
        unique_key, unique_scope, waiting)
    RETURNING id, version, created_at, owner
), hist AS (
    INSERT INTO {s}.task_history (task_id, version, at, kind, from_status,
        to_status, actor)
    SELECT id, version, created_at, 'created', NULL, 'pending', owner FROM ins
)
INSERT INTO {s}.task_tallies (key, delta)
SELECT 'entered_pending', count(*) FROM ins HAVING count(*) > 0
