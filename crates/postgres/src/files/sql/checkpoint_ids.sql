-- Task `$1`'s checkpoint ids that start with `$2` (those of one millisecond).
SELECT id FROM {s}.checkpoints WHERE task = $1 AND id LIKE $2 || '%'
