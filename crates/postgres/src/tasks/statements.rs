//! The statements a task store prepares on every connection: the ones whose text is fixed
//! (per schema), each planned once per connection.

use tokio_postgres::{Client, Statement};

use super::sql::{
    INSERT, TRANSITION, claim_sql, counts_sql, now_sql, ready_sql, render, select_cols,
};
use crate::pool::Prepare;

/// The statements a task store prepares on each connection.
pub(crate) struct TaskStatements {
    pub(super) read: Statement,
    pub(super) now: Statement,
    pub(super) cas: Statement,
    pub(super) insert: Statement,
    pub(super) claim_next: Statement,
    pub(super) skipped: Statement,
    pub(super) expired: Statement,
    pub(super) counts: Statement,
    pub(super) ready_up_to: Statement,
    pub(super) fold: Statement,
    pub(super) stats: Statement,
    pub(super) history: Statement,
    pub(super) release: Statement,
    pub(super) edges: Statement,
    pub(super) lock_refs: Statement,
    pub(super) read_refs: Statement,
    pub(super) lock_task_key: Statement,
    pub(super) holders: Statement,
}

impl Prepare for TaskStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let sel = select_cols(&s, "t");
        Ok(TaskStatements {
            read: c
                .prepare(&format!(
                    "SELECT n.ms, {sel} FROM (SELECT {} AS ms) n LEFT JOIN {s}.tasks t ON t.id = $1",
                    now_sql(2)
                ))
                .await?,
            now: c.prepare(&format!("SELECT {}", now_sql(1))).await?,
            cas: c.prepare(&render(TRANSITION, &s, &[])).await?,
            insert: c.prepare(&render(INSERT, &s, &[])).await?,
            claim_next: c.prepare(&claim_sql(&s, false)).await?,
            // Whether a claim that found nothing skipped ready tasks someone held locked.
            skipped: c
                .prepare(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {s}.tasks c, (SELECT {} AS ms) n
                     WHERE {} AND c.labels @> $2::text[] AND NOT (c.labels && $3::text[]))",
                    now_sql(1),
                    ready_sql("c", "n.ms")
                ))
                .await?,
            expired: c
                .prepare(&format!(
                    "SELECT {sel} FROM {s}.tasks t
                     WHERE t.status = 'running' AND t.lease_expires_at <= $1 ORDER BY t.id"
                ))
                .await?,
            counts: c
                .prepare(&format!(
                    "SELECT {}, (SELECT json_object_agg(key, value) FROM {s}.tasks_meta
                                WHERE key LIKE 'entered\\_%')::text,
                            (SELECT count(*) FROM {s}.task_counts)
                     FROM (SELECT {} AS ms) n",
                    counts_sql(&s, "$1", "n.ms"),
                    now_sql(2)
                ))
                .await?,
            ready_up_to: c
                .prepare(&format!(
                    "SELECT count(*) FROM (SELECT 1 FROM {s}.tasks c, (SELECT {} AS ms) n
                                           WHERE {} LIMIT $1) r",
                    now_sql(2),
                    ready_sql("c", "n.ms")
                ))
                .await?,
            // Folds the rows of changes into one per status, unless another call is folding.
            fold: c
                .prepare(&format!(
                    "WITH ok AS MATERIALIZED (SELECT pg_try_advisory_xact_lock($1) AS ok),
                     gone AS (DELETE FROM {s}.task_counts WHERE (SELECT ok FROM ok)
                              RETURNING status, delta)
                     INSERT INTO {s}.task_counts (status, delta)
                     SELECT status, sum(delta) FROM gone GROUP BY status HAVING sum(delta) <> 0"
                ))
                .await?,
            stats: c
                .prepare(&format!(
                    "SELECT {},
                      (SELECT coalesce(json_agg(json_build_array(owner, n)
                                ORDER BY n DESC, owner NULLS FIRST), '[]')
                         FROM (SELECT owner, count(*) AS n FROM {s}.tasks GROUP BY owner) b)::text,
                      (SELECT coalesce(json_agg(json_build_array(id, name, status, created_at)
                                ORDER BY created_at DESC, id DESC), '[]')
                         FROM (SELECT id, name, status, created_at FROM {s}.tasks
                               ORDER BY created_at DESC, id DESC LIMIT $1) c)::text,
                      (SELECT json_object_agg(key, value) FROM {s}.tasks_meta)::text
                     FROM (SELECT {} AS ms) n",
                    counts_sql(&s, "NULL", "n.ms"),
                    now_sql(2)
                ))
                .await?,
            history: c
                .prepare(&format!(
                    "SELECT EXISTS (SELECT 1 FROM {s}.tasks WHERE id = $1),
                      (SELECT coalesce(json_agg(json_build_array(version, at, kind, from_status,
                              to_status, actor, token, error) ORDER BY version), '[]')
                       FROM {s}.task_history WHERE task_id = $1)::text"
                ))
                .await?,
            // The dependents are locked in id order first, like every write to several of
            // them: two completions releasing overlapping sets of dependents would otherwise
            // lock them in whatever order each plan reads them, and deadlock.
            release: c
                .prepare(&format!(
                    "UPDATE {s}.tasks SET waiting = waiting - 1
                     WHERE id IN (SELECT id FROM {s}.tasks
                                  WHERE id IN (SELECT task_id FROM {s}.task_deps
                                               WHERE depends_on = $1)
                                  ORDER BY id FOR UPDATE)"
                ))
                .await?,
            edges: c
                .prepare(&format!(
                    "INSERT INTO {s}.task_deps (task_id, depends_on)
                     SELECT * FROM unnest($1::text[], $2::text[])"
                ))
                .await?,
            // Shared task locks on the ids, in key order (the same order everywhere); the
            // statuses are read by `read_refs`, a later statement, whose snapshot comes after
            // the locks (one statement's snapshot would be taken before it waited for them).
            lock_refs: c
                .prepare(
                    "SELECT count(pg_advisory_xact_lock_shared(k))
                     FROM (SELECT DISTINCT k FROM unnest($1::int8[]) k ORDER BY k) o",
                )
                .await?,
            read_refs: c
                .prepare(&format!(
                    "SELECT id, status FROM {s}.tasks WHERE id = ANY($1::text[]) ORDER BY id"
                ))
                .await?,
            lock_task_key: c.prepare("SELECT pg_advisory_xact_lock($1)").await?,
            holders: c
                .prepare(&format!(
                    "SELECT {sel} FROM {s}.tasks t
                     WHERE t.unique_key = ANY($1::text[])
                       AND (t.unique_scope = 'always' OR t.status IN ('pending', 'running'))
                     ORDER BY t.id"
                ))
                .await?,
        })
    }
}
