-- Replaces task `$1`'s state with the state file `$2`.
INSERT INTO {s}.file_tasks (task, state) VALUES ($1, $2)
    ON CONFLICT (task) DO UPDATE SET state = excluded.state
