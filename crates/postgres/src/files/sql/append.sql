-- One group commit (see `files_append`): per request the task, key and stream; per row its
-- request (1-based), time, level, agent and body; the time or NULL for the database's;
-- whether to commit without waiting for the WAL's flush.
SELECT request, first_seq, count, duplicate FROM {s}.files_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
