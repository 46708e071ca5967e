-- Moves the cursor of stream `$3` of task `$2` from data directory `$1` to line `$4` (whose
-- SHA-256 is `$5`), `$6` bytes moved in all.
UPDATE {s}.file_imports SET lines = $4, last_hash = $5, bytes = $6
 WHERE source = $1 AND task = $2 AND stream = $3
