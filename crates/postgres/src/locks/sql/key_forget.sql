-- Forgets agent `$1`'s key `$2` (whatever its time).
DELETE FROM {s}.lock_keys WHERE agent = $1::text AND key = $2::text
