//! The statements a token store prepares on every connection, each from its file under
//! `sql/`. `{s}` is the quoted schema; a time parameter left NULL means the database's clock.

use tokio_postgres::{Client, Statement};

use crate::pool::Prepare;

/// The statements a token store prepares on each connection.
pub(crate) struct AuthStatements {
    pub(super) find: Statement,
    pub(super) list: Statement,
    pub(super) insert: Statement,
    pub(super) revoke: Statement,
    pub(super) touch: Statement,
}

impl Prepare for AuthStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        let p = |template: &str| {
            let sql = template.replace("{s}", &s);
            async move { c.prepare(&sql).await }
        };
        Ok(AuthStatements {
            find: p(include_str!("sql/find.sql")).await?,
            list: p(include_str!("sql/list.sql")).await?,
            insert: p(include_str!("sql/insert.sql")).await?,
            revoke: p(include_str!("sql/revoke.sql")).await?,
            touch: p(include_str!("sql/touch.sql")).await?,
        })
    }
}
