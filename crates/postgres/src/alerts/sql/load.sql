-- Every alert state; bounded: rules times their label sets, never near this.
SELECT body FROM {s}.alert_states ORDER BY fingerprint LIMIT 100000
