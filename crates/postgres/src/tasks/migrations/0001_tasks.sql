CREATE TABLE {s}.tasks (
        id               text COLLATE "C" PRIMARY KEY,
        name             text NOT NULL,
        description      text,
        status           text NOT NULL
                         CHECK (status IN ('pending','running','completed','failed','cancelled')),
        owner            text COLLATE "C",
        priority         integer NOT NULL,
        metadata         text NOT NULL,
        result           text,
        error            text,
        attempts         bigint NOT NULL,
        max_attempts     bigint NOT NULL,
        version          bigint NOT NULL,
        created_at       bigint NOT NULL,
        updated_at       bigint NOT NULL,
        started_at       bigint,
        finished_at      bigint,
        lease_token      bigint,
        lease_expires_at bigint,
        CHECK ((status = 'running') OR (lease_token IS NULL AND lease_expires_at IS NULL))
    );
    CREATE INDEX tasks_ready ON {s}.tasks (status, priority DESC, created_at, id);
    CREATE INDEX tasks_owner ON {s}.tasks (owner);
    CREATE INDEX tasks_created ON {s}.tasks (created_at, id);
    CREATE INDEX tasks_lease ON {s}.tasks (lease_expires_at) WHERE status = 'running';
    CREATE TABLE {s}.tasks_meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO {s}.tasks_meta (key, value) VALUES
        ('lease_token', 0), ('entered_pending', 0), ('entered_running', 0),
        ('entered_completed', 0), ('entered_failed', 0), ('entered_cancelled', 0),
        ('run_le_1000', 0), ('run_le_5000', 0), ('run_le_10000', 0), ('run_le_30000', 0),
        ('run_le_60000', 0), ('run_le_300000', 0), ('run_le_inf', 0), ('run_ms_sum', 0);