//! The task files' schema, one `.sql` file per version, and its server-side functions, one
//! file per function. `{s}` stands for the quoted schema, `{n}` for its bare name (in the
//! notification channel).
//!
//! Shipped text never changes (the checksums in `pinned.rs` fail): a function that changes is
//! written to a new file under `functions/NNNN/`, where `NNNN` is the migration that replaces
//! it, and that migration installs it (`CREATE OR REPLACE FUNCTION`).

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-files";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: a task's log, decisions, state, checkpoints, idempotency keys and ship cursors, and
    // the functions of a group commit, a restore and a step of retention.
    concat!(
        include_str!("migrations/0001_files.sql"),
        include_str!("functions/0001/files_now.sql"),
        include_str!("functions/0001/files_line.sql"),
        include_str!("functions/0001/files_append.sql"),
        include_str!("functions/0001/files_restore.sql"),
        include_str!("functions/0001/files_retain.sql"),
    ),
    // 2: beside a checkpoint's log and decisions, each line's time and level or agent, and
    // the log's generation and next sequence number, so that a restore reads no line
    // (decision 0038); the restore that uses them.
    concat!(
        include_str!("migrations/0002_checkpoint_lines.sql"),
        include_str!("functions/0002/files_restore.sql"),
    ),
    // 3: the restore, writing the task's row only for a checkpoint that exists.
    concat!(
        include_str!("migrations/0003_restore_unknown.sql"),
        include_str!("functions/0003/files_restore.sql"),
    ),
    // 4: a checkpoint's idempotency key, unique per task (decision 0043).
    include_str!("migrations/0004_checkpoint_keys.sql"),
];
