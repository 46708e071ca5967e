-- The counters as JSON (the rows of changes summed), the live waiters at `$1` (or the
-- database's time), that time, and how many rows of changes the counters have gathered.
SELECT (SELECT json_build_object('total', sum(total), 'expired', sum(expired),
        'conflicts', sum(conflicts), 'released', sum(released), 'reentrant', sum(reentrant),
        'hold_total_ms', sum(hold_total_ms), 'hold_max_ms', max(hold_max_ms),
        'waits', sum(waits), 'timeouts', sum(timeouts))
     FROM {s}.lock_counts)::text,
    (SELECT count(DISTINCT ticket) FROM {s}.lock_waiters
     WHERE expires_at > {s}.lock_now($1)),
    {s}.lock_now($1),
    (SELECT count(*) FROM {s}.lock_counts)
