//! What `cargo xtask peers` prints and keeps: the table in Markdown (what docs/BENCHMARKS.md
//! publishes), the `pgbench` baseline, the targets with their per-round ratios, and
//! `peers/results.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use super::parse::{OURS, OURS_BATCH, OURS_ONE, Output};
use super::ratios::{Row, Target};
use crate::stats::median;

/// Where and when a run was measured, and the lock figure it is compared with.
pub(super) struct Context {
    pub(super) started: String,
    pub(super) machine: String,
    /// `/proc/loadavg`'s three figures, at the start and at the end.
    pub(super) load_before: String,
    pub(super) load_after: String,
    pub(super) versions: BTreeMap<&'static str, String>,
    /// `pg.lock_pair_16t` of a saved `bench-report` run: its name and the figure.
    pub(super) lock: Option<(String, f64)>,
}

/// What a system is, for the table.
fn describe(system: &str, versions: &BTreeMap<&str, String>) -> String {
    let v = |n: &str| versions.get(n).map_or("", String::as_str).to_owned();
    match system {
        OURS => {
            "oc-postgres, 16 threads: `claim_next`, then `complete` with the token (pool 16)".into()
        }
        OURS_ONE => "oc-postgres, 1 thread: `claim_next`, then `complete`".into(),
        OURS_BATCH => "oc-postgres, 16 `BatchWorker`s: `claim_many` of 10, `complete_many` of 10 \
                       (pool 16)"
            .into(),
        "graphile-worker" => format!("graphile-worker {} (concurrency 16)", v("graphile-worker")),
        "pg-boss" => format!(
            "pg-boss {} (16 loops of `fetch` + `complete`)",
            v("pg-boss")
        ),
        "pg-boss-batch10" => format!("pg-boss {} (16 loops, `batchSize` 10)", v("pg-boss")),
        "pgqueuer" => format!("pgqueuer {} (defaults: batches of 10)", v("pgqueuer")),
        other => other.to_owned(),
    }
}

/// Thousands separated by commas, as the docs write figures.
pub(crate) fn grouped(x: f64) -> String {
    let s = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The table, as Markdown (what docs/BENCHMARKS.md publishes).
pub(crate) fn table(rows: &[Row], versions: &BTreeMap<&str, String>) -> String {
    let mut s = String::from(
        "| System | Insert (jobs/s) | Claim + complete (jobs/s) | × ours | Server / client CPU per job (ms) |\n\
         |---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} / {:.2} |\n",
            describe(&r.system, versions),
            grouped(r.insert_per_s),
            grouped(r.work_per_s),
            r.times_ours.map_or("".into(), |x| format!("{x:.2}")),
            r.server_ms,
            r.client_ms,
        ));
    }
    s
}

/// The ratios of each round, as the report lists them.
fn per_round(rounds: &[f64]) -> String {
    rounds
        .iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the command prints: where and when, the table, the `pgbench` baseline, ours with 16
/// workers over ours with 1, and the targets with each round's ratio.
pub(super) fn text(run: &Context, out: &Output, rows: &[Row], targets: &[Target]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{}; {}; load average {} before, {} after; PostgreSQL {}; {} jobs, {} round(s), \
         medians; × ours: claim + complete over ours with 16 threads, taken within each round",
        run.started,
        run.machine,
        run.load_before,
        run.load_after,
        out.header["server"].as_str().unwrap_or("?"),
        out.header["jobs"],
        out.header["rounds"],
    );
    s.push_str(&table(rows, &run.versions));
    for clients in [1, 16] {
        let p = median(
            out.pgbench
                .iter()
                .filter(|p| p.clients == clients)
                .map(|p| p.pairs_per_s)
                .collect(),
        );
        if let Some(p) = p {
            let _ = writeln!(
                s,
                "pgbench, pg_advisory_lock + pg_advisory_unlock, {clients} client(s): {} pairs/s",
                grouped(p)
            );
        }
    }
    match &run.lock {
        Some((from, v)) => {
            let _ = writeln!(
                s,
                "pg.lock_pair_16t (saved run {from}): {} pairs/s",
                grouped(*v)
            );
        }
        None => s.push_str("pg.lock_pair_16t: no saved bench-report run has it; no lock ratio\n"),
    }
    let scaling = super::ratios::within_rounds(&out.runs, OURS, OURS_ONE, |r| r.work_per_s);
    let _ = writeln!(
        s,
        "ours, claim + complete, 16 workers ÷ 1 worker: {} (rounds: {})",
        median(scaling.clone()).map_or("not measured".into(), |m| format!("{m:.2}")),
        per_round(&scaling),
    );
    s.push_str("Targets (median of the per-round ratios):\n");
    for t in targets {
        let verdict = match t.met() {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None => "not measured",
        };
        let _ = writeln!(
            s,
            "  {:<62} {:>8} (at least {:.2}): {verdict}; rounds: {}",
            t.what,
            t.median().map_or("-".into(), |m| format!("{m:.2}")),
            t.floor,
            per_round(&t.rounds),
        );
    }
    s
}

/// Everything about the run, for `peers/results.json`.
pub(super) fn results(run: &Context, out: &Output, rows: &[Row], targets: &[Target]) -> Value {
    json!({
        "version": 1,
        "started": run.started,
        "machine": run.machine,
        "load_average": { "before": run.load_before, "after": run.load_after },
        "header": out.header,
        "versions": run.versions,
        "runs": out.runs.iter().map(|r| json!({
            "round": r.round, "system": r.system, "insert_per_s": r.insert_per_s,
            "work_per_s": r.work_per_s, "server_ms_per_job": r.server_ms,
            "client_ms_per_job": r.client_ms,
        })).collect::<Vec<_>>(),
        "pgbench": out.pgbench.iter().map(|p| json!({
            "round": p.round, "clients": p.clients, "pairs_per_s": p.pairs_per_s,
        })).collect::<Vec<_>>(),
        "lock_pairs_16": run.lock.as_ref().map(|(from, v)| json!({ "saved_run": from, "pairs_per_s": v })),
        "table": rows.iter().map(|r| json!({
            "system": r.system, "insert_per_s": r.insert_per_s, "work_per_s": r.work_per_s,
            "times_ours": r.times_ours, "server_ms_per_job": r.server_ms,
            "client_ms_per_job": r.client_ms, "runs": r.runs,
        })).collect::<Vec<_>>(),
        "targets": targets.iter().map(|t| json!({
            "target": t.what, "at_least": t.floor, "rounds": t.rounds,
            "median": t.median(), "met": t.met(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::ratios::{rows, run};
    use super::*;

    #[test]
    fn rows_hold_medians_and_the_ratio_to_ours() {
        let runs = [
            run(0, OURS, 1000.0, 100.0),
            run(0, "pg-boss", 2000.0, 150.0),
            run(0, OURS_ONE, 1000.0, 25.0),
            run(1, OURS, 3000.0, 200.0),
            run(1, "pg-boss", 4000.0, 200.0),
            run(1, OURS_ONE, 1000.0, 40.0),
        ];
        let rows = rows(&runs);
        assert_eq!(
            rows.iter().map(|r| r.system.as_str()).collect::<Vec<_>>(),
            [OURS, "pg-boss", OURS_ONE]
        );
        assert_eq!(rows[0].insert_per_s, 2000.0);
        assert_eq!(rows[0].times_ours, Some(1.0));
        assert_eq!(rows[1].times_ours, Some(1.25));
        assert_eq!(rows[2].times_ours, Some(0.225));
        assert_eq!(rows[1].runs, 2);
        let md = table(&rows, &BTreeMap::from([("pg-boss", "12.38.1".to_owned())]));
        assert!(md.contains("| pg-boss 12.38.1 (16 loops of `fetch` + `complete`) | 3,000 | 175 | 1.25 | 1.00 / 0.50 |"), "{md}");
    }

    #[test]
    fn the_text_gives_ours_16_over_1_and_every_rounds_ratio() {
        let out = Output {
            header: json!({"server": "15.18", "jobs": 100, "rounds": 2}),
            runs: vec![
                run(0, OURS, 1.0, 300.0),
                run(0, OURS_ONE, 1.0, 100.0),
                run(1, OURS, 1.0, 200.0),
                run(1, OURS_ONE, 1.0, 100.0),
            ],
            pgbench: vec![],
        };
        let ctx = Context {
            started: "2026-12-08 03:30 UTC".into(),
            machine: "2 cores".into(),
            load_before: "1.00 0.90 0.80".into(),
            load_after: "2.00 1.50 1.00".into(),
            versions: BTreeMap::new(),
            lock: None,
        };
        let targets = super::super::ratios::targets(&out, None);
        let t = text(&ctx, &out, &rows(&out.runs), &targets);
        assert!(
            t.contains("load average 1.00 0.90 0.80 before, 2.00 1.50 1.00 after"),
            "{t}"
        );
        assert!(
            t.contains("ours, claim + complete, 16 workers ÷ 1 worker: 2.50 (rounds: 3.00, 2.00)"),
            "{t}"
        );
        let d = t.lines().find(|l| l.contains("(d) ")).unwrap_or_default();
        assert!(
            d.contains("2.50 (at least 3.00): NOT MET; rounds: 3.00, 2.00"),
            "{d}"
        );
        let a = t.lines().find(|l| l.contains("(a) ")).unwrap_or_default();
        assert!(a.contains("not measured; rounds: "), "{a}");
        let doc = results(&ctx, &out, &rows(&out.runs), &targets);
        assert_eq!(doc["load_average"]["after"], "2.00 1.50 1.00");
        assert_eq!(doc["targets"][3]["rounds"], json!([3.0, 2.0]));
    }

    #[test]
    fn figures_are_grouped_by_thousands() {
        assert_eq!(grouped(0.4), "0");
        assert_eq!(grouped(937.0), "937");
        assert_eq!(grouped(17119.4), "17,119");
        assert_eq!(grouped(1234567.0), "1,234,567");
    }
}
