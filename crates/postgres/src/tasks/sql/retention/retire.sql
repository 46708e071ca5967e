-- The tasks `$1` retired: archived first when `$5` (the time) is not NULL (`$2` their finish
-- times, `$3` the tasks and `$4` their histories as JSON; an id archived before is replaced),
-- then their edges, their history and their rows deleted. Every task that depends on one of
-- them or is its child is among them, so no edge or parent is left pointing at a missing task.
WITH a AS (
    INSERT INTO {s}.task_archive (id, finished_at, archived_at, task, history)
    SELECT u.id, u.f, $5::bigint, u.task, u.history
    FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS u(id, f, task, history)
    WHERE $5::bigint IS NOT NULL
    ON CONFLICT (id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
        archived_at = EXCLUDED.archived_at, task = EXCLUDED.task, history = EXCLUDED.history
), e AS (
    DELETE FROM {s}.task_deps WHERE task_id = ANY($1::text[]) OR depends_on = ANY($1::text[])
), h AS (
    DELETE FROM {s}.task_history WHERE task_id = ANY($1::text[])
)
DELETE FROM {s}.tasks WHERE id = ANY($1::text[])
