//! Listing and counting by filter: the `WHERE` clause built from a [`TaskFilter`].

use oc_tasks::backend::cursor_position;
use oc_tasks::backend::sql::{after_sql, like_anywhere, order_by_sql};
use oc_tasks::{Order, Readiness, Result, TaskFilter, TaskPage, TaskQuery};
use tokio_postgres::types::ToSql;

use super::PgTaskStore;
use super::row::{corrupt, row_task, to_u64};
use super::sql::{now_sql, ready_sql, select_cols};

/// Parameters of a statement built per call, in the order of its `$n`.
type Params = Vec<Box<dyn ToSql + Sync + Send>>;

fn refs(p: &Params) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect()
}

/// The WHERE clause and parameters of a filter, with an optional cursor.
/// (The table is aliased `t`; readiness is judged at `now`, or the database's time.)
fn where_clause(
    filter: &TaskFilter,
    after: Option<(&oc_tasks::Cursor, Order)>,
    now: Option<i64>,
    s: &str,
) -> (String, Params) {
    let mut conds: Vec<String> = Vec::new();
    let mut params: Params = Vec::new();
    let p = |v: Box<dyn ToSql + Sync + Send>, params: &mut Params| {
        params.push(v);
        format!("${}", params.len())
    };
    if let Some(r) = filter.readiness {
        p(Box::new(now), &mut params);
        let now = now_sql(params.len());
        conds.push(match r {
            Readiness::Ready => ready_sql("t", &now),
            Readiness::Blocked => {
                format!("t.status = 'pending' AND (t.waiting > 0 OR t.run_at > {now})")
            }
        });
    }
    if !filter.labels.all.is_empty() {
        let m = p(Box::new(filter.labels.all.clone()), &mut params);
        conds.push(format!("t.labels @> {m}::text[]"));
    }
    if !filter.labels.none.is_empty() {
        let m = p(Box::new(filter.labels.none.clone()), &mut params);
        conds.push(format!("NOT (t.labels && {m}::text[])"));
    }
    if let Some(parent) = &filter.parent {
        let m = p(Box::new(parent.to_string()), &mut params);
        conds.push(format!("t.parent = {m}"));
    }
    if let Some(d) = &filter.dependents_of {
        let m = p(Box::new(d.to_string()), &mut params);
        conds.push(format!(
            "t.id IN (SELECT d.task_id FROM {s}.task_deps d WHERE d.depends_on = {m})"
        ));
    }
    if !filter.statuses.is_empty() {
        let v: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| s.as_str().to_owned())
            .collect();
        conds.push(format!(
            "status = ANY({}::text[])",
            p(Box::new(v), &mut params)
        ));
    }
    if let Some(o) = &filter.owner {
        conds.push(format!("owner = {}", p(Box::new(o.clone()), &mut params)));
    }
    if let Some(f) = filter.created_from {
        conds.push(format!(
            "created_at >= {}",
            p(Box::new(f.as_millis()), &mut params)
        ));
    }
    if let Some(t) = filter.created_to {
        conds.push(format!(
            "created_at < {}",
            p(Box::new(t.as_millis()), &mut params)
        ));
    }
    if let Some(s) = &filter.search {
        // SQLite's LIKE ignores ASCII case; ILIKE does too.
        let m = p(Box::new(like_anywhere(s)), &mut params);
        conds.push(format!(
            "(name ILIKE {m} ESCAPE '\\' OR description ILIKE {m} ESCAPE '\\' OR metadata ILIKE {m} ESCAPE '\\')"
        ));
    }
    if let Some((c, order)) = after {
        let (prio, created, id) = cursor_position(c);
        let created = p(Box::new(created.as_millis()), &mut params);
        let id = p(Box::new(id.to_string()), &mut params);
        conds.push(after_sql(order, &created, &id, || {
            p(Box::new(prio), &mut params)
        }));
    }
    let sql = if conds.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conds.join(" AND "))
    };
    (sql, params)
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
