-- Gives the lease of token $1 up.
DELETE FROM {s}.alert_lease WHERE name = 'evaluator' AND token = $1
