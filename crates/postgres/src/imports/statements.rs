//! The statements an importer prepares on every connection, each from its file under `sql/`.
//! `{s}` is the quoted schema.

use tokio_postgres::{Client, Statement};

use crate::pool::Prepare;

/// The statements an importer prepares on each connection.
pub(crate) struct ImportStatements {
    pub(super) cursor: Statement,
    pub(super) claim: Statement,
    pub(super) lock: Statement,
    pub(super) append: Statement,
    pub(super) advance: Statement,
    pub(super) state: Statement,
    pub(super) checkpoint: Statement,
    pub(super) checkpoint_file: Statement,
    pub(super) checkpoint_files: Statement,
    pub(super) touch: Statement,
}

impl Prepare for ImportStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let p = |template: &str| {
            let sql = template.replace("{s}", &s);
            async move { c.prepare(&sql).await }
        };
        Ok(ImportStatements {
            cursor: p(include_str!("sql/cursor.sql")).await?,
            claim: p(include_str!("sql/claim.sql")).await?,
            lock: p(include_str!("sql/lock.sql")).await?,
            append: p(include_str!("sql/append.sql")).await?,
            advance: p(include_str!("sql/advance.sql")).await?,
            state: p(include_str!("sql/state.sql")).await?,
            checkpoint: p(include_str!("sql/checkpoint.sql")).await?,
            checkpoint_file: p(include_str!("sql/checkpoint_file.sql")).await?,
            checkpoint_files: p(include_str!("sql/checkpoint_files.sql")).await?,
            touch: p(include_str!("sql/touch.sql")).await?,
        })
    }
}
