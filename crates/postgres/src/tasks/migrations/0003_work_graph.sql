ALTER TABLE {s}.tasks ADD COLUMN parent text COLLATE "C",
        ADD COLUMN labels text[] NOT NULL DEFAULT '{}',
        ADD COLUMN run_at bigint,
        ADD COLUMN retry_base_ms bigint,
        ADD COLUMN retry_cap_ms bigint,
        ADD COLUMN retry_jitter integer,
        ADD COLUMN unique_key text,
        ADD COLUMN unique_scope text,
        ADD COLUMN waiting integer NOT NULL DEFAULT 0;
    CREATE TABLE {s}.task_deps (
        task_id    text COLLATE "C" NOT NULL,
        depends_on text COLLATE "C" NOT NULL,
        PRIMARY KEY (task_id, depends_on)
    );
    CREATE INDEX task_deps_dependents ON {s}.task_deps (depends_on, task_id);
    CREATE INDEX tasks_claimable ON {s}.tasks (priority DESC, created_at, id)
        WHERE status = 'pending' AND waiting = 0;
    CREATE INDEX tasks_parent ON {s}.tasks (parent, created_at, id) WHERE parent IS NOT NULL;
    CREATE UNIQUE INDEX tasks_unique_key ON {s}.tasks (unique_key)
        WHERE unique_key IS NOT NULL
          AND (unique_scope = 'always' OR status IN ('pending', 'running'));