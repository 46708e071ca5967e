-- Completes (`$4` = 'completed') or finally fails (`$4` = 'failed') running task `$1` whose
-- lease token is `$2` (NULL for a task started without a lease), at version `$3` if given,
-- with result `$5` or error `$6`, at `$7` (or the database's time), under the task lock `$8`:
-- one call to `task_finish` (migration 7), which writes the tallies, the history row and the
-- dependents released. No row when the task is not so (the caller then takes the general path).
SELECT {task_columns}
FROM {s}.task_finish($1, $2, $3, $4, $5, $6, coalesce($7::bigint, {db_now}), $8) t
