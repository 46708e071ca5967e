-- The newest 10,000 silences at most (far more than anyone keeps), in their order.
SELECT * FROM (SELECT id, matchers, starts_at, ends_at, comment
                 FROM {s}.alert_silences ORDER BY id DESC LIMIT 10000) n
 ORDER BY id
