-- One step of retention of task `$1` (see `files_retain`): the age, entries and bytes bounds
-- or NULLs, the time, the most entries deleted, the age past which keys go.
SELECT {s}.files_retain($1, $2, $3, $4, $5, $6, $7)
