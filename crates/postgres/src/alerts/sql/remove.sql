-- Removes the states of fingerprints $1.
DELETE FROM {s}.alert_states WHERE fingerprint = ANY($1::text[])
