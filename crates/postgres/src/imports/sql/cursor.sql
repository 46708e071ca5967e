-- Where the import of stream `$3` of task `$2` from data directory `$1` got to.
SELECT lines, last_hash, bytes FROM {s}.file_imports
 WHERE source = $1 AND task = $2 AND stream = $3
