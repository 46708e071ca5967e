//! The ratios of issue 29, each taken within a round (decision 0050): a peer's to the run of
//! ours just before it, ours to ours by each round's medians, and the targets over them.

use super::parse::{OURS, OURS_BATCH, OURS_ONE, Output, Run};
use crate::stats::median;

/// Per round: `system`'s claim-and-complete rate over that of the run just before it, when
/// that run is ours with 16 threads (the schedule puts one before every peer).
pub(crate) fn over_preceding_ours(runs: &[Run], system: &str) -> Vec<f64> {
    runs.windows(2)
        .filter(|w| w[1].system == system && w[0].system == OURS && w[0].round == w[1].round)
        .filter(|w| w[0].work_per_s > 0.0)
        .map(|w| w[1].work_per_s / w[0].work_per_s)
        .collect()
}

/// The median of `f` over the runs of `system` in `round`.
fn in_round(runs: &[Run], round: u64, system: &str, f: fn(&Run) -> f64) -> Option<f64> {
    median(
        runs.iter()
            .filter(|r| r.round == round && r.system == system)
            .map(f)
            .collect(),
    )
}

fn rounds(runs: &[Run]) -> Vec<u64> {
    let mut r: Vec<u64> = runs.iter().map(|r| r.round).collect();
    r.dedup();
    r.sort_unstable();
    r.dedup();
    r
}

/// Per round: `a` over `b`, each the median of `f` over its runs in that round.
pub(crate) fn within_rounds(runs: &[Run], a: &str, b: &str, f: fn(&Run) -> f64) -> Vec<f64> {
    rounds(runs)
        .into_iter()
        .filter_map(|round| {
            let (x, y) = (in_round(runs, round, a, f)?, in_round(runs, round, b, f)?);
            (y > 0.0).then(|| x / y)
        })
        .collect()
}

/// Per round: our insert rate (the median of our runs' in that round) over the fastest peer's.
pub(crate) fn inserts_over_fastest_peer(runs: &[Run]) -> Vec<f64> {
    rounds(runs)
        .into_iter()
        .filter_map(|round| {
            let in_this = |r: &&Run| r.round == round;
            let ours = median(
                runs.iter()
                    .filter(in_this)
                    .filter(|r| r.system.starts_with("oc-"))
                    .map(|r| r.insert_per_s)
                    .collect(),
            )?;
            let peer = runs
                .iter()
                .filter(in_this)
                .filter(|r| !r.system.starts_with("oc-"))
                .map(|r| r.insert_per_s)
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))))?;
            (peer > 0.0).then(|| ours / peer)
        })
        .collect()
}

/// One target of issue 29: a ratio measured in each round, its median against a floor.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Target {
    pub(crate) what: String,
    pub(crate) floor: f64,
    pub(crate) rounds: Vec<f64>,
}

impl Target {
    pub(crate) fn median(&self) -> Option<f64> {
        median(self.rounds.clone())
    }

    /// `None` when it was not measured.
    pub(crate) fn met(&self) -> Option<bool> {
        self.median().map(|m| m >= self.floor)
    }
}

/// The targets of issue 29 that this run measured the inputs of (a target whose systems did not
/// run has no rounds).
pub(crate) fn targets(out: &Output, lock_pairs_16: Option<(String, f64)>) -> Vec<Target> {
    let runs = &out.runs;
    let inverse = |v: Vec<f64>| {
        v.into_iter()
            .filter(|x| *x > 0.0)
            .map(|x| 1.0 / x)
            .collect()
    };
    let mut t = vec![
        Target {
            what: "(a) claim + complete, 16 workers: ours ÷ graphile-worker".into(),
            floor: 1.0,
            rounds: inverse(over_preceding_ours(runs, "graphile-worker")),
        },
        Target {
            what: format!("(b) batch API ({OURS_BATCH}) ÷ pgqueuer's defaults"),
            floor: 1.0,
            rounds: within_rounds(runs, OURS_BATCH, "pgqueuer", |r| r.work_per_s),
        },
        Target {
            what: "(c) inserts: ours ÷ the fastest peer".into(),
            floor: 1.0,
            rounds: inserts_over_fastest_peer(runs),
        },
        Target {
            what: "(d) claim + complete, ours: 16 workers ÷ 1 worker".into(),
            floor: 3.0,
            rounds: within_rounds(runs, OURS, OURS_ONE, |r| r.work_per_s),
        },
    ];
    if let Some((from, ours)) = lock_pairs_16 {
        let base: Vec<f64> = out
            .pgbench
            .iter()
            .filter(|p| p.clients == 16 && p.pairs_per_s > 0.0)
            .map(|p| ours / p.pairs_per_s)
            .collect();
        t.push(Target {
            what: format!(
                "(e) lock pairs, 16 workers: ours (pg.lock_pair_16t of {from}) ÷ pgbench"
            ),
            floor: 0.25,
            rounds: base,
        });
    }
    t
}

/// One row of the table: a system's medians over its runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row {
    pub(crate) system: String,
    pub(crate) insert_per_s: f64,
    pub(crate) work_per_s: f64,
    /// Claim and complete over ours with 16 threads, the median of the per-round ratios.
    pub(crate) times_ours: Option<f64>,
    pub(crate) server_ms: f64,
    pub(crate) client_ms: f64,
    pub(crate) runs: usize,
}

/// The table's rows, in the order the systems first ran.
pub(crate) fn rows(runs: &[Run]) -> Vec<Row> {
    let mut order: Vec<&str> = Vec::new();
    for r in runs {
        if !order.contains(&r.system.as_str()) {
            order.push(&r.system);
        }
    }
    order
        .into_iter()
        .filter_map(|system| {
            let of: Vec<&Run> = runs.iter().filter(|r| r.system == system).collect();
            let m = |f: fn(&Run) -> f64| median(of.iter().map(|r| f(r)).collect());
            let times_ours = if system == OURS {
                Some(1.0)
            } else if system.starts_with("oc-") {
                median(within_rounds(runs, system, OURS, |r| r.work_per_s))
            } else {
                median(over_preceding_ours(runs, system))
            };
            Some(Row {
                system: system.to_owned(),
                insert_per_s: m(|r| r.insert_per_s)?,
                work_per_s: m(|r| r.work_per_s)?,
                times_ours,
                server_ms: m(|r| r.server_ms)?,
                client_ms: m(|r| r.client_ms)?,
                runs: of.len(),
            })
        })
        .collect()
}

/// A run with the CPU figures left at 1.0 and 0.5 ms, for tests.
#[cfg(test)]
pub(super) fn run(round: u64, system: &str, insert: f64, work: f64) -> Run {
    Run {
        round,
        system: system.into(),
        insert_per_s: insert,
        work_per_s: work,
        server_ms: 1.0,
        client_ms: 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::Pgbench;
    use super::*;
    use serde_json::Value;

    fn run(round: u64, system: &str, insert: f64, work: f64) -> Run {
        super::run(round, system, insert, work)
    }

    #[test]
    fn a_peers_ratio_is_to_the_ours_run_just_before_it() {
        let runs = [
            run(0, OURS, 0.0, 100.0),
            run(0, "graphile-worker", 0.0, 300.0),
            run(0, OURS, 0.0, 200.0),
            run(0, "pg-boss", 0.0, 100.0),
            run(1, OURS, 0.0, 50.0),
            run(1, "graphile-worker", 0.0, 100.0),
            // Not after ours: no ratio.
            run(1, "pg-boss", 0.0, 100.0),
            // After ours of another round: no ratio.
            run(2, "graphile-worker", 0.0, 100.0),
        ];
        assert_eq!(over_preceding_ours(&runs, "graphile-worker"), [3.0, 2.0]);
        assert_eq!(over_preceding_ours(&runs, "pg-boss"), [0.5]);
        assert!(over_preceding_ours(&runs, "pgqueuer").is_empty());
    }

    #[test]
    fn ratios_within_rounds_use_each_rounds_medians() {
        let runs = [
            run(0, OURS, 0.0, 100.0),
            run(0, OURS, 0.0, 300.0),
            run(0, OURS_ONE, 0.0, 50.0),
            run(1, OURS, 0.0, 90.0),
            run(1, OURS_ONE, 0.0, 30.0),
            run(2, OURS, 0.0, 90.0),
        ];
        // Round 0: median of 100 and 300 is 200, over 50; round 2 has no one-thread run.
        assert_eq!(
            within_rounds(&runs, OURS, OURS_ONE, |r| r.work_per_s),
            [4.0, 3.0]
        );
    }

    #[test]
    fn inserts_are_compared_with_the_fastest_peer_of_the_round() {
        let runs = [
            run(0, OURS, 900.0, 1.0),
            run(0, "graphile-worker", 3000.0, 1.0),
            run(0, OURS, 1100.0, 1.0),
            run(0, "pg-boss", 2000.0, 1.0),
            run(1, OURS, 600.0, 1.0),
            run(1, "pgqueuer", 300.0, 1.0),
        ];
        let r = inserts_over_fastest_peer(&runs);
        assert_eq!(r.len(), 2);
        assert!((r[0] - 1000.0 / 3000.0).abs() < 1e-12);
        assert_eq!(r[1], 2.0);
    }

    #[test]
    fn targets_pass_and_fail_on_their_floors() {
        let out = Output {
            header: Value::Null,
            runs: vec![
                run(0, OURS, 5000.0, 1000.0),
                run(0, "graphile-worker", 4000.0, 2000.0),
                run(0, OURS, 5000.0, 1000.0),
                run(0, "pgqueuer", 3000.0, 800.0),
                run(0, OURS_BATCH, 5000.0, 1600.0),
                run(0, OURS_ONE, 5000.0, 400.0),
            ],
            pgbench: vec![Pgbench {
                round: 0,
                clients: 16,
                pairs_per_s: 20000.0,
            }],
        };
        let t = targets(&out, Some(("before".into(), 4000.0)));
        let by = |s: &str| t.iter().find(|t| t.what.contains(s)).unwrap();
        assert_eq!(by("graphile").median(), Some(0.5));
        assert_eq!(by("graphile").met(), Some(false));
        assert_eq!(by("pgqueuer").median(), Some(2.0));
        assert_eq!(by("pgqueuer").met(), Some(true));
        assert_eq!(by("fastest").median(), Some(1.25));
        assert_eq!(by("1 worker").median(), Some(2.5));
        assert_eq!(by("1 worker").met(), Some(false));
        assert_eq!(by("lock pairs").median(), Some(0.2));
        assert_eq!(by("lock pairs").met(), Some(false));
        // Without the lock figure there is no lock target; a target nothing measured is unknown.
        let t = targets(
            &Output {
                runs: vec![run(0, OURS, 1.0, 1.0)],
                ..Output::default()
            },
            None,
        );
        assert_eq!(t.len(), 4);
        assert!(t.iter().all(|t| t.met().is_none()));
    }
}
