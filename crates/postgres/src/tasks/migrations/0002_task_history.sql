CREATE TABLE {s}.task_history (
        task_id     text COLLATE "C" NOT NULL,
        version     bigint NOT NULL,
        at          bigint NOT NULL,
        kind        text NOT NULL,
        from_status text,
        to_status   text NOT NULL,
        actor       text,
        token       bigint,
        error       text,
        PRIMARY KEY (task_id, version)
    );