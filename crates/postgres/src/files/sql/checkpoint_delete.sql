-- Deletes task `$1`'s checkpoints `$2` (their files go with them); answers the ids deleted.
DELETE FROM {s}.checkpoints WHERE task = $1 AND id = ANY($2) RETURNING id
