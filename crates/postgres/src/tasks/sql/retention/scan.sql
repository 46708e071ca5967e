-- Up to `$3` tasks below the cursor (`$1` created_at, `$2` id) in `tasks_created`, newest
-- first, read without locks; for the finished ones, the tasks that depend on them or are their
-- children.
SELECT {task_columns},
    CASE WHEN t.status IN ('completed', 'failed', 'cancelled') THEN
        ARRAY(SELECT d.task_id FROM {s}.task_deps d WHERE d.depends_on = t.id
              UNION SELECT c.id FROM {s}.tasks c WHERE c.parent = t.id)
    END
FROM {s}.tasks t
WHERE (t.created_at, t.id) < ($1::bigint, $2::text)
ORDER BY t.created_at DESC, t.id DESC
LIMIT $3
