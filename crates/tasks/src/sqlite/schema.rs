//! Forward-only migrations of the task tables, run by [`oc_sqlite::migrate`] under the
//! component `oc-tasks` of `oc_schema` (`oc-locks` keeps its tables in the same file).

use rusqlite::Connection;

use crate::Result;

const COMPONENT: &str = "oc-tasks";

/// Each entry moves the schema from version `i` to `i + 1`. Never edit a shipped entry; append.
const MIGRATIONS: &[&str] = &[
    // 1: tasks and the lease-token counter.
    "CREATE TABLE tasks (
        id               TEXT PRIMARY KEY NOT NULL,
        name             TEXT NOT NULL,
        description      TEXT,
        status           TEXT NOT NULL
                         CHECK (status IN ('pending','running','completed','failed','cancelled')),
        owner            TEXT,
        priority         INTEGER NOT NULL DEFAULT 0,
        metadata         TEXT NOT NULL DEFAULT '{}',
        result           TEXT,
        error            TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        max_attempts     INTEGER NOT NULL DEFAULT 3,
        version          INTEGER NOT NULL DEFAULT 1,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        started_at       INTEGER,
        finished_at      INTEGER,
        lease_token      INTEGER,
        lease_expires_at INTEGER
    );
    -- claim_next (pending, highest priority, oldest), status filters and GROUP BY status.
    CREATE INDEX tasks_ready ON tasks (status, priority DESC, created_at, id);
    -- owner filters and GROUP BY owner.
    CREATE INDEX tasks_owner ON tasks (owner);
    -- newest/oldest listings, recent tasks, created ranges.
    CREATE INDEX tasks_created ON tasks (created_at, id);
    -- the reaper only looks at running tasks with a lease.
    CREATE INDEX tasks_lease ON tasks (lease_expires_at) WHERE status = 'running';
    CREATE TABLE oc_tasks_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL);
    INSERT INTO oc_tasks_meta (key, value) VALUES ('lease_token', 0);",
    // 2: how many times tasks entered each status (for `opencode_tasks_total`); a database
    // that predates the counters starts them at the current counts.
    "INSERT INTO oc_tasks_meta (key, value)
        SELECT 'entered_' || s.status, (SELECT COUNT(*) FROM tasks WHERE tasks.status = s.status)
        FROM (SELECT 'pending' AS status UNION ALL SELECT 'running' UNION ALL SELECT 'completed'
              UNION ALL SELECT 'failed' UNION ALL SELECT 'cancelled') AS s;",
    // 3: the synced ceiling of lease tokens (`oc_sqlite::Fence`): no token above it was ever
    // handed out.
    "INSERT INTO oc_tasks_meta (key, value)
        SELECT 'lease_token_ceiling', value FROM oc_tasks_meta WHERE key = 'lease_token';",
    // 4: run durations per bucket (`RunDurations`, bounds `RUN_BUCKETS_MS`) and their sum, for
    // `opencode_task_duration_seconds`; a database that predates them starts them from the
    // finished runs it still holds.
    "WITH runs AS (
        SELECT max(finished_at - started_at, 0) AS ms FROM tasks
        WHERE status IN ('completed', 'failed')
          AND started_at IS NOT NULL AND finished_at IS NOT NULL
     ), buckets (key, lo, hi) AS (VALUES
        ('run_le_1000', -1, 1000), ('run_le_5000', 1000, 5000), ('run_le_10000', 5000, 10000),
        ('run_le_30000', 10000, 30000), ('run_le_60000', 30000, 60000),
        ('run_le_300000', 60000, 300000), ('run_le_inf', 300000, 9223372036854775807))
     INSERT INTO oc_tasks_meta (key, value)
        SELECT key, (SELECT COUNT(*) FROM runs WHERE ms > lo AND ms <= hi) FROM buckets
        UNION ALL SELECT 'run_ms_sum', (SELECT coalesce(sum(ms), 0) FROM runs);",
    // 5: each task's history of status transitions (`HistoryEntry`), written with them.
    "CREATE TABLE task_history (
        task_id     TEXT NOT NULL,
        version     INTEGER NOT NULL,
        at          INTEGER NOT NULL,
        kind        TEXT NOT NULL,
        from_status TEXT,
        to_status   TEXT NOT NULL,
        actor       TEXT,
        token       INTEGER,
        error       TEXT,
        PRIMARY KEY (task_id, version)
    ) WITHOUT ROWID;",
    // 6: the work graph. `waiting` counts the dependencies not completed, kept by the writes
    // that change it (a completion, an edge added or dropped), so readiness is an index
    // lookup: `tasks_ready` becomes (status, waiting, claim order, run_at), so the ready tasks
    // are one range of it in claim order, counting them reads the index alone, and status
    // counts and filters keep their index (one index, not a second one to maintain).
    "ALTER TABLE tasks ADD COLUMN parent TEXT;
    ALTER TABLE tasks ADD COLUMN labels TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE tasks ADD COLUMN run_at INTEGER;
    ALTER TABLE tasks ADD COLUMN retry_base_ms INTEGER;
    ALTER TABLE tasks ADD COLUMN retry_cap_ms INTEGER;
    ALTER TABLE tasks ADD COLUMN retry_jitter INTEGER;
    ALTER TABLE tasks ADD COLUMN unique_key TEXT;
    ALTER TABLE tasks ADD COLUMN unique_scope TEXT;
    ALTER TABLE tasks ADD COLUMN waiting INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE task_deps (
        task_id    TEXT NOT NULL,
        depends_on TEXT NOT NULL,
        PRIMARY KEY (task_id, depends_on)
    ) WITHOUT ROWID;
    CREATE INDEX task_deps_dependents ON task_deps (depends_on, task_id);
    DROP INDEX tasks_ready;
    CREATE INDEX tasks_ready ON tasks (status, waiting, priority DESC, created_at, id, run_at);
    CREATE INDEX tasks_parent ON tasks (parent, created_at, id) WHERE parent IS NOT NULL;
    CREATE UNIQUE INDEX tasks_unique_key ON tasks (unique_key)
        WHERE unique_key IS NOT NULL
          AND (unique_scope = 'always' OR status IN ('pending', 'running'));",
    // 7: tasks per status (`count_<status>`), kept by every write that creates, deletes or
    // moves a task, beside the entries into each status, so that a dashboard reads them
    // instead of counting a million rows (a trigger on every inserted row halved the speed of
    // batch creation); and the pending tasks with a `run_at`, so that those scheduled for
    // later are one short range to count.
    "INSERT INTO oc_tasks_meta (key, value)
        SELECT 'count_' || s.status, (SELECT COUNT(*) FROM tasks WHERE tasks.status = s.status)
        FROM (SELECT 'pending' AS status UNION ALL SELECT 'running' UNION ALL SELECT 'completed'
              UNION ALL SELECT 'failed' UNION ALL SELECT 'cancelled') AS s;
    CREATE INDEX tasks_scheduled ON tasks (status, run_at, waiting)
        WHERE status = 'pending' AND run_at IS NOT NULL;",
    // 8: idempotency keys (`IdempotencyKey`), per acting agent: the request's fingerprint and
    // the first result, written in the transaction of the change; swept by age in batches.
    "CREATE TABLE task_keys (
        agent   TEXT NOT NULL,
        key     TEXT NOT NULL,
        request TEXT NOT NULL,
        result  TEXT NOT NULL,
        at      INTEGER NOT NULL,
        PRIMARY KEY (agent, key)
    );
    CREATE INDEX task_keys_at ON task_keys (at);",
    // 9: the archive of finished tasks (`TaskStore::prune_finished` with `Retire::Archive`,
    // docs/decisions/0051): each task as JSON with its history, written once, read by id.
    "CREATE TABLE task_archive (
        id          TEXT PRIMARY KEY NOT NULL,
        finished_at INTEGER,
        archived_at INTEGER NOT NULL,
        task        TEXT NOT NULL,
        history     TEXT NOT NULL
    );",
];

/// Brings the task tables up to the newest version ([`oc_sqlite::migrate`]).
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    oc_sqlite::migrate(conn, COMPONENT, MIGRATIONS).map_err(super::plumbing)
}
