-- Task `$1`, its edges and its history, deleted.
WITH e AS (DELETE FROM {s}.task_deps
           WHERE task_id = $1 OR depends_on = $1),
     h AS (DELETE FROM {s}.task_history WHERE task_id = $1)
DELETE FROM {s}.tasks WHERE id = $1
