-- Adds a silence (matchers $1, from $2 to $3, comment $4) under a new number; silences that
-- ended before it starts are of no more use.
WITH gone AS (DELETE FROM {s}.alert_silences WHERE ends_at < $2)
INSERT INTO {s}.alert_silences (matchers, starts_at, ends_at, comment)
VALUES ($1, $2, $3, $4)
RETURNING id
