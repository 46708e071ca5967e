-- Adds checkpoint `$2` of task `$1` (created at `$3`, described by `$4`) unless it is there;
-- answers a row when it was added.
INSERT INTO {s}.checkpoints (task, id, created_at, description) VALUES ($1, $2, $3, $4)
    ON CONFLICT (task, id) DO NOTHING
RETURNING id
