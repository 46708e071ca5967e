//! The statements a task store prepares on every connection: the ones whose text is fixed
//! (per schema), each planned once per connection, each from its file under `sql/`.

use tokio_postgres::{Client, Statement};

use super::sql::{claim_sql, counts_sql, render};
use crate::pool::Prepare;

/// The statements a task store prepares on each connection.
pub(crate) struct TaskStatements {
    pub(super) read: Statement,
    pub(super) now: Statement,
    pub(super) cas: Statement,
    pub(super) finish: Statement,
    pub(super) heartbeat: Statement,
    pub(super) release_lease: Statement,
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
    pub(super) key_lock: Statement,
    pub(super) key_sweep: Statement,
    pub(super) key_read: Statement,
    pub(super) key_write: Statement,
    pub(super) key_forget: Statement,
}

impl Prepare for TaskStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let capped = counts_sql("$1");
        let uncapped = counts_sql("NULL");
        Ok(TaskStatements {
            read: prepare(c, &s, include_str!("sql/read.sql"), &[]).await?,
            now: prepare(c, &s, include_str!("sql/now.sql"), &[]).await?,
            cas: prepare(c, &s, include_str!("sql/transition.sql"), &[]).await?,
            finish: prepare(c, &s, include_str!("sql/finish.sql"), &[]).await?,
            heartbeat: prepare(c, &s, include_str!("sql/heartbeat.sql"), &[]).await?,
            release_lease: prepare(c, &s, include_str!("sql/release_lease.sql"), &[]).await?,
            insert: prepare(c, &s, include_str!("sql/insert.sql"), &[]).await?,
            claim_next: c.prepare(&claim_sql(&s, false)).await?,
            skipped: prepare(c, &s, include_str!("sql/skipped.sql"), &[]).await?,
            expired: prepare(c, &s, include_str!("sql/expired.sql"), &[]).await?,
            counts: prepare(
                c,
                &s,
                include_str!("sql/counts.sql"),
                &[("counts_by_status", &capped)],
            )
            .await?,
            ready_up_to: prepare(c, &s, include_str!("sql/ready_up_to.sql"), &[]).await?,
            fold: prepare(c, &s, include_str!("sql/fold.sql"), &[]).await?,
            stats: prepare(
                c,
                &s,
                include_str!("sql/stats.sql"),
                &[("counts_by_status", &uncapped)],
            )
            .await?,
            history: prepare(c, &s, include_str!("sql/history.sql"), &[]).await?,
            release: prepare(c, &s, include_str!("sql/release.sql"), &[]).await?,
            edges: prepare(c, &s, include_str!("sql/edges.sql"), &[]).await?,
            lock_refs: prepare(c, &s, include_str!("sql/lock_refs.sql"), &[]).await?,
            read_refs: prepare(c, &s, include_str!("sql/read_refs.sql"), &[]).await?,
            lock_task_key: prepare(c, &s, include_str!("sql/lock_task_key.sql"), &[]).await?,
            holders: prepare(c, &s, include_str!("sql/holders.sql"), &[]).await?,
            key_lock: prepare(c, &s, include_str!("sql/key_lock.sql"), &[]).await?,
            key_sweep: prepare(c, &s, include_str!("sql/key_sweep.sql"), &[]).await?,
            key_read: prepare(c, &s, include_str!("sql/key_read.sql"), &[]).await?,
            key_write: prepare(c, &s, include_str!("sql/key_write.sql"), &[]).await?,
            key_forget: prepare(c, &s, include_str!("sql/key_forget.sql"), &[]).await?,
        })
    }
}

/// Prepares the statement of `template` for schema `s` (see [`render`]).
async fn prepare(
    c: &Client,
    s: &str,
    template: &str,
    vars: &[(&str, &str)],
) -> std::result::Result<Statement, tokio_postgres::Error> {
    c.prepare(&render(template, s, vars)).await
}
