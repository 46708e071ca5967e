-- Gives task `$1` the state file `$2` if it has no state; answers whether it did, and the state
-- file it had before.
WITH ins AS (
    INSERT INTO {s}.file_tasks AS f (task, state) VALUES ($1, $2)
        ON CONFLICT (task) DO UPDATE SET state = excluded.state WHERE f.state IS NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins) > 0,
       (SELECT f.state FROM {s}.file_tasks f WHERE f.task = $1)
