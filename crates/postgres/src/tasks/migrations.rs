//! The task store's schema, one `.sql` file per version: never edit a shipped file (the
//! checksums in `pinned.rs` fail); add the next one instead. `{s}` stands for the quoted
//! schema.

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-tasks";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: tasks as in SQLite (timestamps in milliseconds, metadata and result as JSON text),
    // counters, the lease-token counter and the run-duration buckets.
    include_str!("migrations/0001_tasks.sql"),
    // 2: each task's history of status transitions, written in the statement of each.
    include_str!("migrations/0002_task_history.sql"),
    // 3: the work graph, as in SQLite: `waiting` counts the dependencies not completed, so
    // readiness is an index lookup (`tasks_claimable`).
    include_str!("migrations/0003_work_graph.sql"),
    // 4: tasks per status, kept by triggers on every write that inserts, deletes or moves a
    // task, as rows of changes that readers sum and now and then fold into one row per
    // status: never one row that every writer updates, which would make claims and
    // completions on different hosts wait for each other. And the blocked pending tasks in
    // two partial indexes, so that they are counted by short ranges.
    include_str!("migrations/0004_task_counts.sql"),
    // 5: a notification on `oc_tasks_<schema>` from every write that leaves a task pending
    // with nothing to wait for (sent on commit), which wakes waiting claims on every host.
    include_str!("migrations/0005_task_ready_notify.sql"),
    // 6: idempotency keys (`oc_tasks::IdempotencyKey`), per agent: the request and the first
    // result, written in the transaction of the change they guard.
    include_str!("migrations/0006_task_keys.sql"),
    // 7: no row every claim or completion updates (decision 0047). Tokens from the sequence
    // `task_tokens` (started above every token the counter row issued), the counters of
    // `tasks_meta` as rows of changes in `task_tallies` (as the counts by status already are),
    // `task_finish`, the one call that completes or finally fails a task with its lease token
    // (its tallies, history row and dependents), and the ready notification only from
    // updates that make a task ready (or change its `run_at` or labels).
    include_str!("migrations/0007_no_hot_row.sql"),
    // 8: the archive of finished tasks (`TaskStore::prune_finished` with `Retire::Archive`,
    // docs/decisions/0051): each task as JSON with its history, written once, read by id.
    include_str!("migrations/0008_task_archive.sql"),
    // 9: cheaper transitions (decision 0052): the counts by status appended by the statements
    // that move a task (no per-row trigger), the ready notification of new tasks once per
    // statement, `tasks_ready` and `tasks_owner` without the finished (or unowned) tasks, and
    // `task_finish` finding its row by primary key only, with its appends inline.
    include_str!("migrations/0009_lean_transitions.sql"),
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    /// The run-duration buckets written into `task_finish` (the latest migration that defines
    /// it) are `oc_tasks::RUN_BUCKETS_MS`, in order, each named by its bound, then `inf`: the
    /// SQL cannot read the constant, so this compares them.
    #[test]
    fn task_finish_buckets_are_run_buckets_ms() {
        let sql = super::MIGRATIONS
            .iter()
            .rev()
            .find(|m| m.contains("FUNCTION {s}.task_finish("))
            .unwrap();
        let mut bounds = Vec::new();
        for line in sql.lines().filter(|l| l.contains("THEN 'run_le_")) {
            let (cond, name) = line.split_once(" THEN ").unwrap();
            let bound: u64 = cond.rsplit("<= ").next().unwrap().trim().parse().unwrap();
            assert_eq!(name.trim(), format!("'run_le_{bound}'"), "{line}");
            bounds.push(bound);
        }
        assert_eq!(bounds, oc_tasks::RUN_BUCKETS_MS);
        assert!(sql.contains("ELSE 'run_le_inf'"));
    }
}
