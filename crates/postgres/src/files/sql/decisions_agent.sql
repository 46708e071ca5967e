-- The newest `$3` decisions of task `$1` by agent `$4` after skipping the newest `$2` of
-- them, newest first (the index on task, agent and seq, read backwards).
SELECT seq, body FROM {s}.decisions WHERE task = $1 AND agent = $4 ORDER BY seq DESC OFFSET $2 LIMIT $3
