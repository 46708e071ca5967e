-- The cursor of stream `$3` of task `$2` from data directory `$1`, locked until the batch it
-- ends commits (a second importer of the same lines waits, then sees them moved).
SELECT lines, last_hash, bytes FROM {s}.file_imports
 WHERE source = $1 AND task = $2 AND stream = $3
   FOR UPDATE
