//! The statements an alert store prepares on every connection, each from its file under
//! `sql/`. `{s}` is the quoted schema; a time parameter left NULL means the database's clock.

use tokio_postgres::{Client, Statement};

use crate::pool::Prepare;

/// The statements an alert store prepares on each connection.
pub(crate) struct AlertStatements {
    pub(super) load: Statement,
    pub(super) lease: Statement,
    pub(super) holds: Statement,
    pub(super) upsert: Statement,
    pub(super) remove: Statement,
    pub(super) enqueue: Statement,
    pub(super) prune: Statement,
    pub(super) outbox: Statement,
    pub(super) delivered: Statement,
    pub(super) silences: Statement,
    pub(super) add_silence: Statement,
    pub(super) expire_silence: Statement,
    pub(super) release: Statement,
}

impl Prepare for AlertStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let p = |template: &str| {
            let sql = template.replace("{s}", &s);
            async move { c.prepare(&sql).await }
        };
        Ok(AlertStatements {
            load: p(include_str!("sql/load.sql")).await?,
            lease: p(include_str!("sql/lease.sql")).await?,
            holds: p(include_str!("sql/holds.sql")).await?,
            upsert: p(include_str!("sql/upsert.sql")).await?,
            remove: p(include_str!("sql/remove.sql")).await?,
            enqueue: p(include_str!("sql/enqueue.sql")).await?,
            prune: p(include_str!("sql/prune.sql")).await?,
            outbox: p(include_str!("sql/outbox.sql")).await?,
            delivered: p(include_str!("sql/delivered.sql")).await?,
            silences: p(include_str!("sql/silences.sql")).await?,
            add_silence: p(include_str!("sql/add_silence.sql")).await?,
            expire_silence: p(include_str!("sql/expire_silence.sql")).await?,
            release: p(include_str!("sql/release.sql")).await?,
        })
    }
}
