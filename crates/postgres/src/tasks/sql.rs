//! The SQL shared by the task store's statements: the column list a task is read from and the
//! templates of the `.sql` files. The database's clock and the condition "ready" they fill in
//! come from `oc_tasks::backend::sql`, where the SQL of every store is written once.

use oc_tasks::backend::sql::{POSTGRES_NOW, ready_sql};

/// The stored columns of a task, in the order [`super::row::row_task`] reads them.
pub(super) const COLS: &str = "id, name, description, status, owner, priority, metadata, result, error, \
    attempts, max_attempts, version, created_at, updated_at, started_at, finished_at, \
    lease_token, lease_expires_at, parent, labels, run_at, retry_base_ms, retry_cap_ms, \
    retry_jitter, unique_key, unique_scope";

/// What a task is read from, the table aliased `t` in schema `s`: the stored columns and its
/// dependencies.
pub(super) fn select_cols(s: &str, t: &str) -> String {
    let cols = COLS
        .split(", ")
        .map(|c| format!("{t}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{cols}, ARRAY(SELECT d.depends_on FROM {s}.task_deps d WHERE d.task_id = {t}.id \
         ORDER BY 1)"
    )
}

/// The counts that `counts.sql` and `stats.sql` read first (`{counts_by_status}`), counted up
/// to `lim` (the cap plus one, or `NULL` for no cap) at `n.ms`: the sums by status as JSON,
/// the pending tasks waiting on a dependency, and those with every dependency done but
/// scheduled for later, each counted through its partial index up to the cap.
pub(super) fn counts_sql(lim: &str) -> String {
    include_str!("sql/counts_by_status.sql").replace("{lim}", lim)
}

/// The text of a statement from its `.sql` template for schema `s` (quoted): `{s}` is the
/// schema, `{task_columns}` what a task is read from (the table aliased `t`),
/// `{stored_columns}` its stored columns (aliased `t`), `{db_now}` the database's clock,
/// `{ready}` "ready at `n.ms`" (the candidate aliased `c`), and `vars` the statement's own.
pub(super) fn render(template: &str, s: &str, vars: &[(&str, &str)]) -> String {
    let stored = COLS
        .split(", ")
        .map(|c| format!("t.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut sql = template
        .replace("{task_columns}", &select_cols(s, "t"))
        .replace("{stored_columns}", &stored)
        .replace("{ready}", &ready_sql(Some("c"), "n.ms"))
        .replace("{db_now}", POSTGRES_NOW);
    for (k, v) in vars {
        sql = sql.replace(&format!("{{{k}}}"), v);
    }
    sql.replace("{s}", s)
}

/// The statement of a claim (see `claim.sql`).
const CLAIM: &str = include_str!("sql/claim.sql");

/// The one statement a claim runs (`$1` owner, `$2` lease in milliseconds, `$3` the time or
/// NULL for the database's, `$4` labels required, `$5` labels excluded, and for a batch `$6`
/// how many), with the schema `s` quoted: the ready tasks locked with `FOR UPDATE SKIP
/// LOCKED` in a materialised CTE, one token each from one bump of the counter, in claim order.
///
/// The rows are locked as they are chosen, which re-checks the whole condition on their
/// latest version; the `UPDATE` re-checks only the status, so that the planner finds them by
/// primary key (with `waiting = 0` repeated there, it would walk the partial index of ready
/// tasks instead, every one of them, for each claim).
///
/// A single claim says `LIMIT 1` in the text and is prepared once: a prepared statement's
/// generic plan guesses a `LIMIT $n` at a tenth of the table and would join the claimed rows
/// by a scan of it. A batch is sent as text and planned with its own limit.
pub(crate) fn claim_sql(s: &str, batch: bool) -> String {
    render(
        CLAIM,
        s,
        &[
            ("limit", if batch { "$6" } else { "1" }),
            // Each claimed row's place in claim order (`rn`) and their number (`n`): for one
            // row, constants rather than two window functions and a sort.
            (
                "numbered",
                if batch {
                    "SELECT id, row_number() OVER (ORDER BY priority DESC, created_at, id) AS rn,
                count(*) OVER () AS n FROM locked"
                } else {
                    "SELECT id, 1 AS rn, 1 AS n FROM locked"
                },
            ),
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
        let mut all = vec![claim_sql("\"x\"", false), claim_sql("\"x\"", true)];
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tasks/sql");
        let graph = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tasks/sql/graph");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .chain(std::fs::read_dir(graph).unwrap());
        for entry in files {
            let path = entry.unwrap().path();
            if path.is_dir() || path.ends_with("claim.sql") {
                continue; // `claim.sql` is filled by `claim_sql`, above.
            }
            let template = std::fs::read_to_string(&path)
                .unwrap()
                .replace("{lim}", "$1");
            let counts = counts_sql("$1");
            all.push(render(&template, "\"x\"", &[("counts_by_status", &counts)]));
        }
        for sql in all {
            assert!(!sql.contains('{') && !sql.contains('}'), "{sql}");
        }
    }
}
