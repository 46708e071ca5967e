-- The manifest of checkpoint `$2` of task `$1` as stored: its files' names, lengths and
-- SHA-256 (hex).
SELECT name, bytes, encode(sha256, 'hex') FROM {s}.checkpoint_files
 WHERE task = $1 AND id = $2
 ORDER BY name
