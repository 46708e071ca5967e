//! The statements a file store prepares on every connection, each from its file under `sql/`.

use tokio_postgres::{Client, Statement};

use crate::pool::Prepare;

/// The statements a file store prepares on each connection.
pub(crate) struct FileStatements {
    pub(super) tail: Statement,
    pub(super) decisions_tail: Statement,
    pub(super) decisions_agent: Statement,
    pub(super) entry: Statement,
    pub(super) decision: Statement,
    pub(super) analyze: Statement,
    pub(super) counts: Statement,
    pub(super) volume: Statement,
    pub(super) tasks: Statement,
    pub(super) log_end: Statement,
    pub(super) read_after: Statement,
    pub(super) touch: Statement,
    pub(super) save_state: Statement,
    pub(super) load_state: Statement,
    pub(super) checkpoint_create: Statement,
    pub(super) checkpoint_sizes: Statement,
    pub(super) checkpoint_ids: Statement,
    pub(super) checkpoint_page: Statement,
    pub(super) checkpoint_get: Statement,
    pub(super) checkpoint_by_key: Statement,
    pub(super) checkpoint_delete: Statement,
    pub(super) restore: Statement,
    pub(super) retain: Statement,
    pub(super) ship_cursor: Statement,
    pub(super) set_ship_cursor: Statement,
}

impl Prepare for FileStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        Ok(FileStatements {
            tail: prepare(c, &s, include_str!("sql/tail.sql")).await?,
            decisions_tail: prepare(c, &s, include_str!("sql/decisions_tail.sql")).await?,
            decisions_agent: prepare(c, &s, include_str!("sql/decisions_agent.sql")).await?,
            entry: prepare(c, &s, include_str!("sql/entry.sql")).await?,
            decision: prepare(c, &s, include_str!("sql/decision.sql")).await?,
            analyze: prepare(c, &s, include_str!("sql/analyze.sql")).await?,
            counts: prepare(c, &s, include_str!("sql/counts.sql")).await?,
            volume: prepare(c, &s, include_str!("sql/volume.sql")).await?,
            tasks: prepare(c, &s, include_str!("sql/tasks.sql")).await?,
            log_end: prepare(c, &s, include_str!("sql/log_end.sql")).await?,
            read_after: prepare(c, &s, include_str!("sql/read_after.sql")).await?,
            touch: prepare(c, &s, include_str!("sql/touch.sql")).await?,
            save_state: prepare(c, &s, include_str!("sql/save_state.sql")).await?,
            load_state: prepare(c, &s, include_str!("sql/load_state.sql")).await?,
            checkpoint_create: prepare(c, &s, include_str!("sql/checkpoint_create.sql")).await?,
            checkpoint_sizes: prepare(c, &s, include_str!("sql/checkpoint_sizes.sql")).await?,
            checkpoint_ids: prepare(c, &s, include_str!("sql/checkpoint_ids.sql")).await?,
            checkpoint_page: prepare(c, &s, include_str!("sql/checkpoint_page.sql")).await?,
            checkpoint_get: prepare(c, &s, include_str!("sql/checkpoint_get.sql")).await?,
            checkpoint_by_key: prepare(c, &s, include_str!("sql/checkpoint_by_key.sql")).await?,
            checkpoint_delete: prepare(c, &s, include_str!("sql/checkpoint_delete.sql")).await?,
            restore: prepare(c, &s, include_str!("sql/restore.sql")).await?,
            retain: prepare(c, &s, include_str!("sql/retain.sql")).await?,
            ship_cursor: prepare(c, &s, include_str!("sql/ship_cursor.sql")).await?,
            set_ship_cursor: prepare(c, &s, include_str!("sql/set_ship_cursor.sql")).await?,
        })
    }
}

/// Prepares the statement of `template` for schema `s` (`{s}` is the quoted schema).
pub(super) async fn prepare(
    c: &Client,
    s: &str,
    template: &str,
) -> std::result::Result<Statement, tokio_postgres::Error> {
    c.prepare(&template.replace("{s}", s)).await
}
