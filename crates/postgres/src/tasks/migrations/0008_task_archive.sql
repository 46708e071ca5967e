CREATE TABLE {s}.task_archive (
        id          text COLLATE "C" PRIMARY KEY,
        finished_at bigint,
        archived_at bigint NOT NULL,
        task        text NOT NULL,
        history     text NOT NULL
    );
