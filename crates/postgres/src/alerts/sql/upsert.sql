-- Writes the changed states: fingerprints $1, bodies $2.
INSERT INTO {s}.alert_states (fingerprint, body)
SELECT * FROM unnest($1::text[], $2::jsonb[])
ON CONFLICT (fingerprint) DO UPDATE SET body = excluded.body
