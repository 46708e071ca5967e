CREATE TABLE {s}.lock_meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO {s}.lock_meta (key, value) VALUES
        ('token', 0), ('ticket', 0), ('total', 0), ('expired', 0), ('conflicts', 0),
        ('released', 0), ('reentrant', 0), ('hold_total_ms', 0), ('hold_max_ms', 0),
        ('waits', 0), ('timeouts', 0);
    CREATE TABLE {s}.locks (
        resource    text COLLATE "C" NOT NULL,
        owner       text COLLATE "C" NOT NULL,
        mode        text NOT NULL CHECK (mode IN ('exclusive', 'shared')),
        token       bigint NOT NULL,
        holds       integer NOT NULL CHECK (holds > 0),
        acquired_at bigint NOT NULL,
        expires_at  bigint NOT NULL,
        PRIMARY KEY (resource, owner)
    );
    CREATE INDEX locks_owner ON {s}.locks (owner);
    CREATE INDEX locks_expiry ON {s}.locks (expires_at);
    CREATE TABLE {s}.lock_waiters (
        ticket     bigint NOT NULL,
        resource   text COLLATE "C" NOT NULL,
        owner      text COLLATE "C" NOT NULL,
        mode       text NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (ticket, resource)
    );
    CREATE INDEX lock_waiters_resource ON {s}.lock_waiters (resource);