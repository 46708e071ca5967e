-- Takes the keys a release of each of `$1` takes (`lock_serialize`: exclusive on each path,
-- shared on its ancestors, in byte order), until the transaction ends.
SELECT {s}.lock_serialize($1::text[])
