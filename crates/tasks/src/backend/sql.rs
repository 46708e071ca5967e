//! SQL text the SQL stores (SQLite, PostgreSQL) share, so that their listings agree: the
//! `WHERE` clause of a [`TaskFilter`] ([`filter_sql`]), built once over a small [`Dialect`]
//! with each rule's SQLite and PostgreSQL text side by side (the Rust twin of every rule is
//! [`TaskFilter::matches`]); the conditions "ready" and "blocked" ([`ready_sql`],
//! [`blocked_sql`], defined beside [`is_ready`](crate::is_ready)); and the order of a listing.
//!
//! The text is what the planners are tuned for (SQLite's `INDEXED BY tasks_ready`,
//! PostgreSQL's partial index `tasks_claimable`): a test pins it.

use crate::query::Cursor;
use crate::{Order, Readiness, TaskFilter, Timestamp};

pub use crate::graph::ready::{blocked_sql, ready_sql};

/// PostgreSQL's clock in milliseconds, as SQL.
pub const POSTGRES_NOW: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

/// The SQL a store speaks, as far as [`filter_sql`] needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect<'a> {
    /// SQLite: placeholders `?N`, the table `tasks` unaliased, labels a JSON array (read with
    /// `json_each`), one placeholder per listed value.
    Sqlite,
    /// PostgreSQL: placeholders `$N`, the tasks table aliased `t`, labels a `text[]`, one
    /// array placeholder per list; a time of `NULL` is the database's clock.
    Postgres {
        /// The schema of the tables, quoted.
        schema: &'a str,
    },
}

/// A parameter of [`filter_sql`], which each store binds as its own type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlParam {
    /// A 64-bit integer (a time in milliseconds), or `NULL`.
    BigInt(Option<i64>),
    /// A 32-bit integer (a priority).
    Int(i32),
    /// Text.
    Text(String),
    /// A list of text (PostgreSQL's `text[]`; the SQLite dialect never asks for one).
    TextList(Vec<String>),
}

/// The `WHERE` clause built so far and its parameters.
struct Conditions<'a> {
    dialect: Dialect<'a>,
    sql: String,
    params: Vec<SqlParam>,
}

impl Conditions<'_> {
    /// Adds `cond`, joined to the ones before by `AND`.
    fn and(&mut self, cond: String) {
        self.sql.push_str(if self.sql.is_empty() {
            " WHERE "
        } else {
            " AND "
        });
        self.sql.push_str(&cond);
    }

    /// Binds `value`: its placeholder.
    fn bind(&mut self, value: SqlParam) -> String {
        self.params.push(value);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres { .. } => format!("${n}"),
        }
    }

    /// Binds each of `values`: their placeholders, comma-separated.
    fn bind_each<'v>(&mut self, values: impl IntoIterator<Item = &'v str>) -> String {
        let marks: Vec<String> = values
            .into_iter()
            .map(|v| self.bind(SqlParam::Text(v.to_owned())))
            .collect();
        marks.join(", ")
    }
}

/// The `WHERE` clause of `filter` (with a leading space; empty when it lets every task through)
/// and its parameters, numbered from 1, in `dialect`; with `after`, only the tasks after the
/// cursor in its order. Readiness is judged at `now` (for PostgreSQL, `None` is the database's
/// clock). A store appends its own parameters after these.
pub fn filter_sql(
    dialect: Dialect<'_>,
    filter: &TaskFilter,
    after: Option<(&Cursor, Order)>,
    now: Option<Timestamp>,
) -> (String, Vec<SqlParam>) {
    use Dialect::{Postgres, Sqlite};
    let mut b = Conditions {
        dialect,
        sql: String::new(),
        params: Vec::new(),
    };
    if let Some(r) = filter.readiness {
        let m = b.bind(SqlParam::BigInt(now.map(Timestamp::as_millis)));
        let (table, now) = match dialect {
            Sqlite => (None, m),
            Postgres { .. } => (Some("t"), format!("coalesce({m}::bigint, {POSTGRES_NOW})")),
        };
        b.and(match r {
            Readiness::Ready => ready_sql(table, &now),
            Readiness::Blocked => blocked_sql(table, &now),
        });
    }
    // Every label in `all`.
    match dialect {
        Sqlite => {
            for l in &filter.labels.all {
                let m = b.bind(SqlParam::Text(l.clone()));
                b.and(format!(
                    "EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value = {m})"
                ));
            }
        }
        Postgres { .. } if !filter.labels.all.is_empty() => {
            let m = b.bind(SqlParam::TextList(filter.labels.all.clone()));
            b.and(format!("t.labels @> {m}::text[]"));
        }
        Postgres { .. } => {}
    }
    // No label in `none`.
    if !filter.labels.none.is_empty() {
        let cond = match dialect {
            Sqlite => {
                let marks = b.bind_each(filter.labels.none.iter().map(String::as_str));
                format!(
                    "NOT EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value IN ({marks}))"
                )
            }
            Postgres { .. } => {
                let m = b.bind(SqlParam::TextList(filter.labels.none.clone()));
                format!("NOT (t.labels && {m}::text[])")
            }
        };
        b.and(cond);
    }
    if let Some(parent) = &filter.parent {
        let m = b.bind(SqlParam::Text(parent.to_string()));
        b.and(match dialect {
            Sqlite => format!("parent = {m}"),
            Postgres { .. } => format!("t.parent = {m}"),
        });
    }
    if let Some(d) = &filter.dependents_of {
        let m = b.bind(SqlParam::Text(d.to_string()));
        b.and(match dialect {
            Sqlite => format!("id IN (SELECT task_id FROM task_deps WHERE depends_on = {m})"),
            Postgres { schema } => format!(
                "t.id IN (SELECT d.task_id FROM {schema}.task_deps d WHERE d.depends_on = {m})"
            ),
        });
    }
    if !filter.statuses.is_empty() {
        let names = filter.statuses.iter().map(|s| s.as_str());
        let cond = match dialect {
            Sqlite => format!("status IN ({})", b.bind_each(names)),
            Postgres { .. } => {
                let m = b.bind(SqlParam::TextList(names.map(str::to_owned).collect()));
                format!("status = ANY({m}::text[])")
            }
        };
        b.and(cond);
    }
    if let Some(o) = &filter.owner {
        let m = b.bind(SqlParam::Text(o.clone()));
        b.and(format!("owner = {m}"));
    }
    if let Some(from) = filter.created_from {
        let m = b.bind(SqlParam::BigInt(Some(from.as_millis())));
        b.and(format!("created_at >= {m}"));
    }
    if let Some(to) = filter.created_to {
        let m = b.bind(SqlParam::BigInt(Some(to.as_millis())));
        b.and(format!("created_at < {m}"));
    }
    if let Some(s) = &filter.search {
        // SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does too.
        let like = match dialect {
            Sqlite => "LIKE",
            Postgres { .. } => "ILIKE",
        };
        let m = b.bind(SqlParam::Text(like_anywhere(s)));
        b.and(format!(
            "(name {like} {m} ESCAPE '\\' OR description {like} {m} ESCAPE '\\' \
             OR metadata {like} {m} ESCAPE '\\')"
        ));
    }
    if let Some((c, order)) = after {
        let created = b.bind(SqlParam::BigInt(Some(c.created_at.as_millis())));
        let id = b.bind(SqlParam::Text(c.id.to_string()));
        let cond = after_sql(order, &created, &id, || b.bind(SqlParam::Int(c.priority)));
        b.and(cond);
    }
    (b.sql, b.params)
}

/// The SQL `LIKE` pattern (with `\` as the escape character) that matches `text` anywhere.
fn like_anywhere(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// The SQL `ORDER BY` of a listing in `order` (over the columns `priority`, `created_at`, `id`),
/// with a leading space.
pub fn order_by_sql(order: Order) -> &'static str {
    match order {
        Order::Newest => " ORDER BY created_at DESC, id DESC",
        Order::Oldest => " ORDER BY created_at, id",
        Order::Priority => " ORDER BY priority DESC, created_at, id",
    }
}

/// The SQL condition "after the cursor" in `order`, given the placeholders of the cursor's
/// position; `priority` is only asked for in priority order (an unused placeholder has no type).
fn after_sql(order: Order, created: &str, id: &str, priority: impl FnOnce() -> String) -> String {
    match order {
        Order::Newest => format!("(created_at, id) < ({created}, {id})"),
        Order::Oldest => format!("(created_at, id) > ({created}, {id})"),
        Order::Priority => {
            // `priority <= p` first: a range start an index in claim order can seek to.
            let p = priority();
            format!(
                "(priority <= {p} AND (priority < {p} OR (created_at, id) > ({created}, {id})))"
            )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{TaskId, TaskStatus};

    /// The filters whose SQL is pinned, each with a cursor or not.
    fn filters() -> Vec<(TaskFilter, Option<(Cursor, Order)>)> {
        let id = |s: &str| TaskId::new(s).unwrap();
        let cur = |s: &str| Cursor::try_from(s.to_owned()).unwrap();
        vec![
            (TaskFilter::new(), None),
            (
                TaskFilter::new()
                    .readiness(Readiness::Ready)
                    .label("a")
                    .label("b")
                    .without_label("c")
                    .without_label("d"),
                Some((cur("5|1000|x"), Order::Priority)),
            ),
            (
                TaskFilter::new()
                    .readiness(Readiness::Blocked)
                    .parent(id("p"))
                    .dependents_of(id("q"))
                    .status(TaskStatus::Pending)
                    .status(TaskStatus::Running)
                    .owner("bob")
                    .created_between(
                        Some(Timestamp::from_millis(10)),
                        Some(Timestamp::from_millis(20)),
                    )
                    .search("50%_x\\"),
                Some((cur("0|7|y"), Order::Newest)),
            ),
            (
                TaskFilter::new().without_label("c"),
                Some((cur("3|9|z"), Order::Oldest)),
            ),
        ]
    }

    /// Asserts that the filters build exactly `want` (text and parameters, in order) in `d`.
    fn assert_built(d: Dialect<'_>, now: Option<i64>, want: &[(&str, Vec<SqlParam>)]) {
        let got = built(d, now);
        assert_eq!(got.len(), want.len());
        for ((sql, params), (want_sql, want_params)) in got.iter().zip(want) {
            assert_eq!(sql, want_sql);
            assert_eq!(params, want_params);
        }
    }

    fn built(d: Dialect<'_>, now: Option<i64>) -> Vec<(String, Vec<SqlParam>)> {
        filters()
            .iter()
            .map(|(f, a)| {
                filter_sql(
                    d,
                    f,
                    a.as_ref().map(|(c, o)| (c, *o)),
                    now.map(Timestamp::from_millis),
                )
            })
            .collect()
    }

    use SqlParam::{BigInt, Int, Text, TextList};

    fn text(s: &str) -> SqlParam {
        Text(s.to_owned())
    }

    fn list(v: &[&str]) -> SqlParam {
        TextList(v.iter().map(|s| (*s).to_owned()).collect())
    }

    /// The text the SQLite store sent before the builder was shared (pinned from it).
    #[test]
    fn sqlite_text_is_pinned() {
        let want: Vec<(&str, Vec<SqlParam>)> = vec![
            ("", vec![]),
            (
                " WHERE status = 'pending' AND waiting = 0 AND (run_at IS NULL OR run_at <= ?1) \
                 AND EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value = ?2) \
                 AND EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value = ?3) \
                 AND NOT EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value IN (?4, ?5)) \
                 AND (priority <= ?8 AND (priority < ?8 OR (created_at, id) > (?6, ?7)))",
                vec![
                    BigInt(Some(42)),
                    text("a"),
                    text("b"),
                    text("c"),
                    text("d"),
                    BigInt(Some(1000)),
                    text("x"),
                    Int(5),
                ],
            ),
            (
                " WHERE status = 'pending' AND (waiting > 0 OR run_at > ?1) AND parent = ?2 \
                 AND id IN (SELECT task_id FROM task_deps WHERE depends_on = ?3) \
                 AND status IN (?4, ?5) AND owner = ?6 AND created_at >= ?7 AND created_at < ?8 \
                 AND (name LIKE ?9 ESCAPE '\\' OR description LIKE ?9 ESCAPE '\\' \
                 OR metadata LIKE ?9 ESCAPE '\\') AND (created_at, id) < (?10, ?11)",
                vec![
                    BigInt(Some(42)),
                    text("p"),
                    text("q"),
                    text("pending"),
                    text("running"),
                    text("bob"),
                    BigInt(Some(10)),
                    BigInt(Some(20)),
                    text("%50\\%\\_x\\\\%"),
                    BigInt(Some(7)),
                    text("y"),
                ],
            ),
            (
                " WHERE NOT EXISTS (SELECT 1 FROM json_each(tasks.labels) WHERE value IN (?1)) \
                 AND (created_at, id) > (?2, ?3)",
                vec![text("c"), BigInt(Some(9)), text("z")],
            ),
        ];
        assert_built(Dialect::Sqlite, Some(42), &want);
    }

    /// The text the PostgreSQL store sent before the builder was shared (pinned from it).
    #[test]
    fn postgres_text_is_pinned() {
        let now = format!("coalesce($1::bigint, {POSTGRES_NOW})");
        let ready = format!(
            " WHERE t.status = 'pending' AND t.waiting = 0 AND (t.run_at IS NULL OR t.run_at <= \
             {now}) AND t.labels @> $2::text[] AND NOT (t.labels && $3::text[]) \
             AND (priority <= $6 AND (priority < $6 OR (created_at, id) > ($4, $5)))"
        );
        let blocked = format!(
            " WHERE t.status = 'pending' AND (t.waiting > 0 OR t.run_at > {now}) \
             AND t.parent = $2 \
             AND t.id IN (SELECT d.task_id FROM \"s\".task_deps d WHERE d.depends_on = $3) \
             AND status = ANY($4::text[]) AND owner = $5 AND created_at >= $6 \
             AND created_at < $7 AND (name ILIKE $8 ESCAPE '\\' OR description ILIKE $8 \
             ESCAPE '\\' OR metadata ILIKE $8 ESCAPE '\\') AND (created_at, id) < ($9, $10)"
        );
        for now in [Some(42), None] {
            let want: Vec<(&str, Vec<SqlParam>)> = vec![
                ("", vec![]),
                (
                    &ready,
                    vec![
                        BigInt(now),
                        list(&["a", "b"]),
                        list(&["c", "d"]),
                        BigInt(Some(1000)),
                        text("x"),
                        Int(5),
                    ],
                ),
                (
                    &blocked,
                    vec![
                        BigInt(now),
                        text("p"),
                        text("q"),
                        list(&["pending", "running"]),
                        text("bob"),
                        BigInt(Some(10)),
                        BigInt(Some(20)),
                        text("%50\\%\\_x\\\\%"),
                        BigInt(Some(7)),
                        text("y"),
                    ],
                ),
                (
                    " WHERE NOT (t.labels && $1::text[]) AND (created_at, id) > ($2, $3)",
                    vec![list(&["c"]), BigInt(Some(9)), text("z")],
                ),
            ];
            assert_built(Dialect::Postgres { schema: "\"s\"" }, now, &want);
        }
    }

    #[test]
    fn search_patterns_escape_wildcards() {
        assert_eq!(like_anywhere("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
