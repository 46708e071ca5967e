-- Puts checkpoint `$2` back as task `$1`'s files (see `files_restore`).
SELECT outcome, name, reason FROM {s}.files_restore($1, $2)
