-- Whether task `$1` exists, and its history as a JSON array of rows.
SELECT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = $1),
    (SELECT coalesce(json_agg(json_build_array(version, at, kind, from_status,
            to_status, actor, token, error) ORDER BY version), '[]')
     FROM {s}.task_history WHERE task_id = $1)::text
