-- The tasks `$1`, locked for update (those another transaction holds are skipped), read
-- again after their task locks: each with the tasks that depend on it or are its children and,
-- when `$2`, its history as a JSON array of rows.
SELECT {task_columns},
    ARRAY(SELECT d.task_id FROM {s}.task_deps d WHERE d.depends_on = t.id
          UNION SELECT c.id FROM {s}.tasks c WHERE c.parent = t.id),
    CASE WHEN $2::boolean THEN
        (SELECT coalesce(json_agg(json_build_array(h.version, h.at, h.kind, h.from_status,
                h.to_status, h.actor, h.token, h.error) ORDER BY h.version), '[]')
         FROM {s}.task_history h WHERE h.task_id = t.id)::text
    END
FROM {s}.tasks t
WHERE t.id = ANY($1::text[])
FOR UPDATE OF t SKIP LOCKED
