-- The counters as JSON, the live waiters at `$1` (or the database's time), and that time.
SELECT (SELECT json_object_agg(key, value) FROM {s}.lock_meta)::text,
    (SELECT count(DISTINCT ticket) FROM {s}.lock_waiters
     WHERE expires_at > {s}.lock_now($1)),
    {s}.lock_now($1)
