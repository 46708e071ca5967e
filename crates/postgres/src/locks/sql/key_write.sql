-- Records agent `$1`'s key `$2`: the request `$3`, the locks it was given `$4` (JSON), at
-- `$5` (replacing a lapsed record).
INSERT INTO {s}.lock_keys (agent, key, request, result, at)
VALUES ($1::text, $2::text, $3::text, $4::text, $5::bigint)
ON CONFLICT (agent, key) DO UPDATE
SET request = EXCLUDED.request, result = EXCLUDED.result, at = EXCLUDED.at
