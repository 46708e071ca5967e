-- 4: a checkpoint's idempotency key (decision 0043): created under a key, a checkpoint records
-- it in its own row, so the key is stored with the checkpoint or not at all, and goes with it
-- when it is deleted. One checkpoint per task and key; unkeyed checkpoints have none.
ALTER TABLE {s}.checkpoints ADD COLUMN idem_key text COLLATE "C";
CREATE UNIQUE INDEX checkpoints_task_key ON {s}.checkpoints (task, idem_key)
    WHERE idem_key IS NOT NULL;
