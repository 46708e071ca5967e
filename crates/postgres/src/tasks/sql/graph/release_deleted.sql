-- The dependents of task `$1`, deleted, that are not deleted with it (`$2`) wait for `$3`
-- dependencies fewer, at `$4` (or the database's time); locked in id order first.
UPDATE {s}.tasks SET waiting = waiting - $3, version = version + 1,
    updated_at = coalesce($4::bigint, {db_now})
WHERE id IN (SELECT id FROM {s}.tasks
             WHERE id IN (SELECT task_id FROM {s}.task_deps
                          WHERE depends_on = $1)
               AND NOT (id = ANY($2::text[]))
             ORDER BY id FOR UPDATE)
