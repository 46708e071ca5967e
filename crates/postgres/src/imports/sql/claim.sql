-- Makes the cursor of stream `$3` of task `$2` from data directory `$1`, if it has none.
INSERT INTO {s}.file_imports (source, task, stream) VALUES ($1, $2, $3)
    ON CONFLICT (source, task, stream) DO NOTHING
