-- Forgets agent `$1`'s key `$2` (a keyed claim given back: a retry claims afresh).
DELETE FROM {s}.task_keys WHERE agent = $1::text AND key = $2::text
