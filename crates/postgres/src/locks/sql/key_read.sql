-- The request and result recorded for agent `$1`'s key `$2` after `$3`.
SELECT request, result FROM {s}.lock_keys
WHERE agent = $1::text AND key = $2::text AND at > $3::bigint
