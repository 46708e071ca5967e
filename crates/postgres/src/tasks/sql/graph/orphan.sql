-- The children of task `$1`, deleted, that are not deleted with it (`$2`) lose their parent,
-- at `$3` (or the database's time); locked in id order first.
UPDATE {s}.tasks SET parent = NULL, version = version + 1,
    updated_at = coalesce($3::bigint, {db_now})
WHERE id IN (SELECT id FROM {s}.tasks
             WHERE parent = $1 AND NOT (id = ANY($2::text[]))
             ORDER BY id FOR UPDATE)
