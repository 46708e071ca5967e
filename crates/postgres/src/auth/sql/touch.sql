-- Token $1 was used at $2: written unless it was within the last $3 ms (once a minute).
UPDATE {s}.auth_tokens
   SET last_used_at = $2::bigint
 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at <= $2::bigint - $3::bigint)
