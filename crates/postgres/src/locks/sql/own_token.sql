-- The token and expiry of owner `$2`'s lock on `$1`, if it has one.
SELECT token, expires_at FROM {s}.locks WHERE resource = $1::text AND owner = $2::text
