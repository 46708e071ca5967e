-- No row every operation takes (decision 0048). Tokens and tickets come from sequences
-- (`CACHE 1`: handed out in the order they are asked for, across sessions), started above
-- every value the counter rows handed out and every token held; the counters become rows of
-- changes, one per operation, folded in bounded batches. The counter rows are deleted, so a
-- call of the functions of migrations 1 and 2 still in flight when this commits cannot hand
-- out a token or a ticket again: it finds no row and fails (a token cannot be NULL).
    LOCK TABLE {s}.lock_meta IN EXCLUSIVE MODE;
    CREATE SEQUENCE {s}.lock_tokens AS bigint MINVALUE 1 CACHE 1;
    SELECT setval('{s}.lock_tokens', 1 + greatest(
        (SELECT coalesce(max(value), 0) FROM {s}.lock_meta WHERE key = 'token'),
        (SELECT coalesce(max(token), 0) FROM {s}.locks)), false);
    CREATE SEQUENCE {s}.lock_tickets AS bigint MINVALUE 1 CACHE 1;
    SELECT setval('{s}.lock_tickets', 1 + greatest(
        (SELECT coalesce(max(value), 0) FROM {s}.lock_meta WHERE key = 'ticket'),
        (SELECT coalesce(max(ticket), 0) FROM {s}.lock_waiters)), false);
    CREATE TABLE {s}.lock_counts (
        total         bigint NOT NULL DEFAULT 0,
        expired       bigint NOT NULL DEFAULT 0,
        conflicts     bigint NOT NULL DEFAULT 0,
        released      bigint NOT NULL DEFAULT 0,
        reentrant     bigint NOT NULL DEFAULT 0,
        hold_total_ms bigint NOT NULL DEFAULT 0,
        hold_max_ms   bigint NOT NULL DEFAULT 0,
        waits         bigint NOT NULL DEFAULT 0,
        timeouts      bigint NOT NULL DEFAULT 0
    );
    INSERT INTO {s}.lock_counts
        SELECT coalesce(sum(value) FILTER (WHERE key = 'total'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'expired'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'conflicts'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'released'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'reentrant'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'hold_total_ms'), 0),
               coalesce(max(value) FILTER (WHERE key = 'hold_max_ms'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'waits'), 0),
               coalesce(sum(value) FILTER (WHERE key = 'timeouts'), 0)
        FROM {s}.lock_meta;
    DELETE FROM {s}.lock_meta;
    CREATE INDEX lock_waiters_expiry ON {s}.lock_waiters (expires_at);
