-- Ends silence $1 at $2 if it ends later.
UPDATE {s}.alert_silences SET ends_at = LEAST(ends_at, $2) WHERE id = $1 RETURNING id
