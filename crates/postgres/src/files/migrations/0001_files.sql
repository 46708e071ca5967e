-- A task's files (decision 0036): its log, decisions, state, checkpoints and ship cursors,
-- shared by every host. Task and checkpoint ids sort bytewise (`COLLATE "C"`), as on disk, and
-- so do the row locks a group commit takes in id order. No foreign key to `tasks`: deleting a task leaves its files, as on
-- disk. Times are milliseconds since the Unix epoch.

-- One row per task with anything stored: locked by writes to that task only; its counters
-- serve `counts`, `volume` and `analyze`'s total. `generation` changes when the log is
-- replaced (a restore), so a follower's cursor knows to start again.
CREATE TABLE {s}.file_tasks (
    task          text COLLATE "C" PRIMARY KEY,
    log_next      bigint NOT NULL DEFAULT 1,
    decision_next bigint NOT NULL DEFAULT 1,
    generation    bigint NOT NULL DEFAULT 1,
    log_entries   bigint NOT NULL DEFAULT 0,
    log_bytes     bigint NOT NULL DEFAULT 0,
    decisions     bigint NOT NULL DEFAULT 0,
    state         bytea
);

-- `body` is the line as our serialiser writes it (without its newline); `bytes` its length
-- with the newline, as on disk. `level` 0 (trace) to 4 (error), NULL for a malformed line.
CREATE TABLE {s}.log_entries (
    task  text COLLATE "C"     NOT NULL,
    seq   bigint   NOT NULL,
    ts    bigint   NOT NULL,
    level smallint,
    bytes integer  NOT NULL,
    body  text     NOT NULL,
    PRIMARY KEY (task, seq)
);
CREATE INDEX log_entries_level ON {s}.log_entries (task, level, seq) INCLUDE (ts);
CREATE INDEX log_entries_ts ON {s}.log_entries (task, ts, seq);

-- `agent` NULL for a malformed line.
CREATE TABLE {s}.decisions (
    task  text COLLATE "C"    NOT NULL,
    seq   bigint  NOT NULL,
    ts    bigint  NOT NULL,
    agent text,
    bytes integer NOT NULL,
    body  text    NOT NULL,
    PRIMARY KEY (task, seq)
);
CREATE INDEX decisions_agent ON {s}.decisions (task, agent, seq);

-- An append's idempotency key (per task and stream, `log` or `decision`): a retry with it
-- writes nothing and answers the first append's range. Kept at least 24 hours.
CREATE TABLE {s}.append_keys (
    task      text COLLATE "C"    NOT NULL,
    stream    text    NOT NULL,
    key       text    NOT NULL,
    first_seq bigint  NOT NULL,
    count     integer NOT NULL,
    at        bigint  NOT NULL,
    PRIMARY KEY (task, stream, key)
);
CREATE INDEX append_keys_at ON {s}.append_keys (at);

-- Where each collector's shipping of a task's log got to.
CREATE TABLE {s}.ship_cursors (
    task       text COLLATE "C"   NOT NULL,
    collector  text   NOT NULL,
    generation bigint NOT NULL,
    seq        bigint NOT NULL,
    PRIMARY KEY (task, collector)
);

-- A checkpoint and its files, as on disk (`state.json`, `logs.jsonl`, `decisions.jsonl`):
-- `bytes` and `sha256` are the manifest, `body` the file.
CREATE TABLE {s}.checkpoints (
    task        text COLLATE "C"   NOT NULL,
    id          text COLLATE "C"   NOT NULL,
    created_at  bigint NOT NULL,
    description text   NOT NULL,
    PRIMARY KEY (task, id)
);
CREATE TABLE {s}.checkpoint_files (
    task   text COLLATE "C"   NOT NULL,
    id     text COLLATE "C"   NOT NULL,
    name   text   NOT NULL,
    bytes  bigint NOT NULL,
    sha256 bytea  NOT NULL,
    body   bytea  NOT NULL,
    PRIMARY KEY (task, id, name),
    FOREIGN KEY (task, id) REFERENCES {s}.checkpoints ON DELETE CASCADE
);
