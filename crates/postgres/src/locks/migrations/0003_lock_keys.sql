CREATE TABLE {s}.lock_keys (
        agent   text COLLATE "C" NOT NULL,
        key     text COLLATE "C" NOT NULL,
        request text NOT NULL,
        result  text NOT NULL,
        at      bigint NOT NULL,
        PRIMARY KEY (agent, key)
    );
    CREATE INDEX lock_keys_at ON {s}.lock_keys (at);
