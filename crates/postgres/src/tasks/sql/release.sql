-- The dependents of task `$1`, which completed, wait for one dependency fewer. They are locked
-- in id order first, like every write to several of them: two completions releasing
-- overlapping sets of dependents would otherwise lock them in whatever order each plan reads
-- them, and deadlock.
UPDATE {s}.tasks SET waiting = waiting - 1
WHERE id IN (SELECT id FROM {s}.tasks
             WHERE id IN (SELECT task_id FROM {s}.task_deps
                          WHERE depends_on = $1)
             ORDER BY id FOR UPDATE)
