//! The statements a lock manager prepares on every connection, each from its file under
//! `sql/`: most are one call of a server-side function (see `functions/`).

use tokio_postgres::{Client, Statement};

use super::row::LOCK_COLS;
use crate::pool::Prepare;

/// The statements a lock manager prepares on each connection.
pub(crate) struct LockStatements {
    pub(super) acquire: Statement,
    pub(super) enqueue: Statement,
    pub(super) abandon: Statement,
    pub(super) own: Statement,
    pub(super) release_owner: Statement,
    pub(super) sweep: Statement,
    pub(super) holders: Statement,
    pub(super) list: Statement,
    pub(super) counters: Statement,
    pub(super) fold: Statement,
    pub(super) now: Statement,
    pub(super) key_lock: Statement,
    pub(super) key_sweep: Statement,
    pub(super) key_read: Statement,
    pub(super) key_write: Statement,
    pub(super) key_forget: Statement,
    pub(super) serialize: Statement,
    pub(super) own_token: Statement,
}

impl Prepare for LockStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        Ok(LockStatements {
            acquire: prepare(c, &s, include_str!("sql/acquire.sql")).await?,
            enqueue: prepare(c, &s, include_str!("sql/enqueue.sql")).await?,
            abandon: prepare(c, &s, include_str!("sql/abandon.sql")).await?,
            own: prepare(c, &s, include_str!("sql/own.sql")).await?,
            release_owner: prepare(c, &s, include_str!("sql/release_owner.sql")).await?,
            sweep: prepare(c, &s, include_str!("sql/sweep.sql")).await?,
            holders: prepare(c, &s, include_str!("sql/holders.sql")).await?,
            list: prepare(c, &s, include_str!("sql/list.sql")).await?,
            counters: prepare(c, &s, include_str!("sql/counters.sql")).await?,
            fold: prepare(c, &s, include_str!("sql/fold.sql")).await?,
            now: prepare(c, &s, include_str!("sql/now.sql")).await?,
            key_lock: prepare(c, &s, include_str!("sql/key_lock.sql")).await?,
            key_sweep: prepare(c, &s, include_str!("sql/key_sweep.sql")).await?,
            key_read: prepare(c, &s, include_str!("sql/key_read.sql")).await?,
            key_write: prepare(c, &s, include_str!("sql/key_write.sql")).await?,
            key_forget: prepare(c, &s, include_str!("sql/key_forget.sql")).await?,
            serialize: prepare(c, &s, include_str!("sql/serialize.sql")).await?,
            own_token: prepare(c, &s, include_str!("sql/own_token.sql")).await?,
        })
    }
}

/// Prepares the statement of `template` for schema `s`: `{s}` is the quoted schema,
/// `{lock_columns}` the columns a lock is read from.
async fn prepare(
    c: &Client,
    s: &str,
    template: &str,
) -> std::result::Result<Statement, tokio_postgres::Error> {
    c.prepare(
        &template
            .replace("{lock_columns}", LOCK_COLS)
            .replace("{s}", s),
    )
    .await
}
