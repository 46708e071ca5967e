-- File `$3` of checkpoint `$2` of task `$1`: `$4`, checked by the server against the manifest's
-- length and SHA-256 (`$5`, hex); answers whether it matched (else nothing is kept).
INSERT INTO {s}.checkpoint_files (task, id, name, bytes, sha256, body)
SELECT $1, $2, $3, length($4::bytea), sha256($4::bytea), $4::bytea
 WHERE encode(sha256($4::bytea), 'hex') = $5
RETURNING true
