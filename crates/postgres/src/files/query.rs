//! Queries: level, time and field filters with an offset and a limit from either end, as
//! `oc_jsonl::Query` means them.
//!
//! The level and the time select rows exactly, through the indexes (one range of the level
//! index per level at or above the minimum, merged by `seq`). Field filters are narrowed by
//! the server (`body::jsonb` on the rows the indexes select) where its comparison can only
//! keep more than `Query::matches` (strings, booleans, nulls, integers), and decided here by
//! `Query::matches` itself; the offset and the limit then count what matched, read in pages
//! of [`CHUNK`] rows from the chosen end.

use oc_jsonl::{Level, LogEntry, Page, Query, ReadReport, Result, Stored};
use serde_json::Value;
use tokio_postgres::types::ToSql;

use super::PgFileStore;
use super::row::{level_code, signed};

/// Rows read per statement when field filters are decided here.
const CHUNK: i64 = 2_000;

type Param = Box<dyn ToSql + Sync + Send>;

/// The text and parameters of a query's selection of rows.
struct Select {
    sql: String,
    params: Vec<Param>,
}

impl Select {
    fn param(&mut self, p: Param) -> String {
        self.params.push(p);
        format!("${}", self.params.len())
    }
}

/// Whether the server's `jsonb` equality can stand in for `serde_json`'s on `v`, keeping
/// every row `Query::matches` keeps: not for floats (`1.0` and `1` are equal there, and two
/// texts of one float may differ) nor for arrays and objects that may hold them.
fn narrowable(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => n.is_i64() || n.is_u64(),
        Value::Array(_) | Value::Object(_) => false,
    }
}

/// The statement selecting `q`'s candidate rows of `task` (`seq`, `level`, `body`), from the
/// chosen end, after `after` (a keyset position), with `OFFSET`/`LIMIT` when given.
fn select(
    schema: &str,
    task: &str,
    q: &Query,
    after: Option<i64>,
    offset: Option<i64>,
    limit: Option<i64>,
) -> Select {
    let mut s = Select {
        sql: String::new(),
        params: Vec::new(),
    };
    let t = s.param(Box::new(task.to_owned()));
    let mut common = String::new();
    if let Some(since) = q.since {
        let p = s.param(Box::new(since.as_millis()));
        common.push_str(&format!(" AND ts >= {p}"));
    }
    if let Some(until) = q.until {
        let p = s.param(Box::new(until.as_millis()));
        common.push_str(&format!(" AND ts < {p}"));
    }
    for (k, v) in &q.fields {
        if !narrowable(v) {
            continue;
        }
        let pk = s.param(Box::new(k.clone()));
        let pv = s.param(Box::new(v.to_string()));
        // A line holding `\u0000` cannot become jsonb: it stays a candidate.
        common.push_str(&format!(
            " AND (strpos(body, '\\u0000') > 0 OR (body::jsonb -> 'data' -> {pk}::text) = {pv}::text::jsonb)"
        ));
    }
    if let Some(a) = after {
        let p = s.param(Box::new(a));
        common.push_str(&format!(
            " AND seq {} {p}",
            if q.newest_first { "<" } else { ">" }
        ));
    }
    let order = if q.newest_first { "DESC" } else { "ASC" };
    let table = format!("\"{schema}\".log_entries");
    let levels: Vec<i16> = match q.min_level {
        Some(l) => Level::ALL
            .into_iter()
            .filter(|x| *x >= l)
            .map(level_code)
            .collect(),
        None => Vec::new(),
    };
    let body = if levels.is_empty() {
        format!(
            "SELECT seq, level, body FROM {table} WHERE task = {t} AND level IS NOT NULL{common}"
        )
    } else {
        // One range of the level index per level, merged by seq.
        levels
            .iter()
            .map(|l| {
                format!(
                    "(SELECT seq, level, body FROM {table} WHERE task = {t} AND level = {l}{common} \
                     ORDER BY seq {order})"
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    };
    let mut sql = format!("SELECT seq, level, body FROM ({body}) q ORDER BY seq {order}");
    if let Some(o) = offset {
        let p = s.param(Box::new(o));
        sql.push_str(&format!(" OFFSET {p}"));
    }
    if let Some(l) = limit {
        let p = s.param(Box::new(l));
        sql.push_str(&format!(" LIMIT {p}"));
    }
    s.sql = sql;
    s
}

impl PgFileStore {
    fn select_rows(&self, s: Select) -> Result<Vec<tokio_postgres::Row>> {
        self.call(move |c| async move {
            let params: Vec<&(dyn ToSql + Sync)> = s
                .params
                .iter()
                .map(|p| &**p as &(dyn ToSql + Sync))
                .collect();
            c.client.query(&s.sql, &params).await
        })
    }

    pub(super) fn run_query(&self, task: &str, q: &Query) -> Result<Page<LogEntry>> {
        let mut read = ReadReport::default();
        let mut entries: Vec<Stored<LogEntry>> = Vec::new();
        let want = q.limit.map(|l| l.saturating_add(1));
        let more;
        if q.fields.is_empty() {
            // Exact in SQL: the offset and the limit too.
            let s = select(
                &self.opts.schema,
                task,
                q,
                None,
                Some(signed(q.offset)),
                want.map(signed),
            );
            let rows = self.select_rows(s)?;
            for r in &rows {
                if let Some(e) = self.log_row(task, r, 0, &mut read)? {
                    entries.push(e);
                }
            }
            more = q.limit.is_some_and(|l| entries.len() > l);
        } else {
            let mut skipped = 0usize;
            let mut after = None;
            'read: loop {
                let s = select(&self.opts.schema, task, q, after, None, Some(CHUNK));
                let rows = self.select_rows(s)?;
                let done = (rows.len() as i64) < CHUNK;
                for r in &rows {
                    after = Some(
                        r.try_get::<_, i64>(0)
                            .map_err(|e| self.corrupt(task, "logs.jsonl", e))?,
                    );
                    let Some(e) = self.log_row(task, r, 0, &mut read)? else {
                        continue;
                    };
                    if !q.matches(&e.record) {
                        continue;
                    }
                    if skipped < q.offset {
                        skipped += 1;
                        continue;
                    }
                    entries.push(e);
                    if want.is_some_and(|w| entries.len() >= w) {
                        break 'read;
                    }
                }
                if done {
                    break;
                }
            }
            more = q.limit.is_some_and(|l| entries.len() > l);
        }
        if let Some(l) = q.limit {
            entries.truncate(l);
        }
        read.malformed_lines.sort_unstable();
        let next = q.offset.saturating_add(entries.len());
        Ok(Page::new(entries, more, next as u64, read))
    }
}
