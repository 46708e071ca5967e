-- Appends notifications to the outbox: receivers $1, bodies $2, numbered in the order given.
INSERT INTO {s}.alert_outbox (receiver, body)
SELECT r, b FROM unnest($1::text[], $2::jsonb[]) WITH ORDINALITY AS t(r, b, n)
 ORDER BY n
