-- Delivered rows are kept a day (at $1, or the database's time), for whoever looks into a
-- double notification.
DELETE FROM {s}.alert_outbox
 WHERE delivered_at < COALESCE($1::bigint, (extract(epoch FROM clock_timestamp()) * 1000)::bigint)
                      - 86400000
