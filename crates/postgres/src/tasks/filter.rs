//! Listing and counting by filter: the `WHERE` clause built from a [`TaskFilter`].

use oc_tasks::backend::sql::{Dialect, SqlParam, filter_sql, order_by_sql};
use oc_tasks::{Order, Result, TaskFilter, TaskPage, TaskQuery, Timestamp};
use tokio_postgres::types::ToSql;

use super::PgTaskStore;
use super::row::{corrupt, row_task, to_u64};
use super::sql::select_cols;

/// Parameters of a statement built per call, in the order of its `$n`.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

/// The WHERE clause and parameters of a filter, with an optional cursor: the shared builder's
/// PostgreSQL text ([`filter_sql`]; the table aliased `t` in schema `s`), its parameters bound
/// as PostgreSQL values. Readiness is judged at `now`, or the database's time.
fn where_clause(
    filter: &TaskFilter,
    after: Option<(&oc_tasks::Cursor, Order)>,
    now: Option<i64>,
    s: &str,
) -> (String, Params) {
    let now = now.map(Timestamp::from_millis);
    let (sql, params) = filter_sql(Dialect::Postgres { schema: s }, filter, after, now);
    (sql, params.into_iter().map(pg_param).collect())
}

/// A parameter of the shared SQL as PostgreSQL binds it.
fn pg_param(p: SqlParam) -> Box<dyn ToSql + Sync + Send> {
    match p {
        SqlParam::BigInt(v) => Box::new(v),
        SqlParam::Int(v) => Box::new(v),
        SqlParam::Text(s) => Box::new(s),
        SqlParam::TextList(v) => Box::new(v),
    }
}

impl PgTaskStore {
    pub(super) fn list_page(&self, query: &TaskQuery) -> Result<TaskPage> {
        query.validate()?;
        let table = self.table_schema();
        let (cond, mut params) = where_clause(
            &query.filter,
            query.after.as_ref().map(|c| (c, query.order)),
            self.clock_ms(),
            &table,
        );
        params.push(Box::new(i64::try_from(query.limit + 1).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {} FROM {table}.tasks t{cond}{} LIMIT ${}",
            select_cols(&table, "t"),
            order_by_sql(query.order),
            params.len()
        );
        let rows = self.call("list", move |c| async move {
            c.client.query(&sql, &refs(&params)).await
        })?;
        let tasks = rows
            .iter()
            .map(|r| row_task(r, 0))
            .collect::<Result<Vec<_>>>()?;
        Ok(TaskPage::from_overfetch(tasks, query.limit))
    }

    pub(super) fn count_matching(&self, filter: &TaskFilter) -> Result<u64> {
        filter.labels.validate()?;
        let table = self.table_schema();
        let (cond, params) = where_clause(filter, None, self.clock_ms(), &table);
        let sql = format!("SELECT count(*) FROM {table}.tasks t{cond}");
        let row = self.call("count", move |c| async move {
            c.client.query_one(&sql, &refs(&params)).await
        })?;
        Ok(to_u64(row.try_get(0).map_err(|e| corrupt("(count)", e))?))
    }
}
