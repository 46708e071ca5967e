//! Reading `oc-bench-peers`'s lines: one JSON object per run of a system, per `pgbench` run,
//! and a header naming the server and the plan.

use anyhow::Context;
use serde_json::Value;

/// Our per-task mode with 16 threads: every ratio's reference.
pub(super) const OURS: &str = "oc-16t";
/// Our per-task mode with 1 thread: target (d) is ours with 16 over this.
pub(super) const OURS_ONE: &str = "oc-1t";
/// Our batch mode: 16 `oc_tasks::worker::BatchWorker`s claiming 10 at a time and acknowledging
/// with `complete_many` in batches of 10 (decision 0049).
pub(super) const OURS_BATCH: &str = "oc-batch";

/// One run of one system, as `oc-bench-peers` printed it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    pub(crate) round: u64,
    pub(crate) system: String,
    pub(crate) insert_per_s: f64,
    pub(crate) work_per_s: f64,
    pub(crate) server_ms: f64,
    pub(crate) client_ms: f64,
}

/// One `pgbench` run of advisory lock pairs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pgbench {
    pub(crate) round: u64,
    pub(crate) clients: u64,
    pub(crate) pairs_per_s: f64,
}

/// Everything `oc-bench-peers` printed, in its order.
#[derive(Debug, Default)]
pub(crate) struct Output {
    pub(crate) header: Value,
    pub(crate) runs: Vec<Run>,
    pub(crate) pgbench: Vec<Pgbench>,
}

/// Reads `oc-bench-peers`'s lines; a line that is not one of its objects is an error (it
/// prints nothing else on stdout).
pub(crate) fn parse(text: &str) -> anyhow::Result<Output> {
    let mut out = Output::default();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value =
            serde_json::from_str(line).with_context(|| format!("line {}: not JSON", i + 1))?;
        if v.get("plan").is_some() {
            out.header = v;
            continue;
        }
        let round = v["round"]
            .as_u64()
            .with_context(|| format!("line {}: no round", i + 1))?;
        let system = v["system"]
            .as_str()
            .with_context(|| format!("line {}: no system", i + 1))?;
        let num = |k: &str| -> anyhow::Result<f64> {
            v[k].as_f64()
                .filter(|x| x.is_finite() && *x >= 0.0)
                .with_context(|| format!("line {}: {k} is not a number ≥ 0", i + 1))
        };
        if let Some(clients) = system
            .strip_prefix("pgbench-advisory-")
            .and_then(|c| c.strip_suffix('c'))
        {
            out.pgbench.push(Pgbench {
                round,
                clients: clients
                    .parse()
                    .with_context(|| format!("line {}: clients", i + 1))?,
                pairs_per_s: num("pairs_per_s")?,
            });
        } else {
            out.runs.push(Run {
                round,
                system: system.to_owned(),
                insert_per_s: num("insert_per_s")?,
                work_per_s: num("work_per_s")?,
                server_ms: num("server_ms_per_job")?,
                client_ms: num("client_ms_per_job")?,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINES: &str = r#"{"server":"15.18","jobs":100,"plan":["oc-16t","graphile-worker"]}
{"round":0,"system":"oc-16t","jobs":100,"insert_per_s":1000.0,"work_per_s":500.0,"server_ms_per_job":1.2,"client_ms_per_job":0.2,"insert_server_ms_per_job":0.1,"insert_client_ms_per_job":0.1}
{"round":0,"system":"graphile-worker","jobs":100,"insert_per_s":4000.0,"work_per_s":1500.0,"server_ms_per_job":0.2,"client_ms_per_job":0.1,"insert_server_ms_per_job":0.1,"insert_client_ms_per_job":0.1}

{"round":0,"system":"pgbench-advisory-16c","pairs_per_s":30000.5}
"#;

    #[test]
    fn parses_the_drivers_lines() {
        let out = parse(LINES).unwrap();
        assert_eq!(out.header["server"], "15.18");
        assert_eq!(
            out.runs,
            vec![
                Run {
                    round: 0,
                    system: "oc-16t".into(),
                    insert_per_s: 1000.0,
                    work_per_s: 500.0,
                    server_ms: 1.2,
                    client_ms: 0.2
                },
                Run {
                    round: 0,
                    system: "graphile-worker".into(),
                    insert_per_s: 4000.0,
                    work_per_s: 1500.0,
                    server_ms: 0.2,
                    client_ms: 0.1
                },
            ]
        );
        assert_eq!(
            out.pgbench,
            vec![Pgbench {
                round: 0,
                clients: 16,
                pairs_per_s: 30000.5
            }]
        );
    }

    #[test]
    fn a_broken_line_is_an_error_naming_it() {
        let e = parse("{\"plan\":[]}\nnot json\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        let e =
            parse(r#"{"round":0,"system":"x","insert_per_s":1,"work_per_s":"fast"}"#).unwrap_err();
        assert!(e.to_string().contains("work_per_s"), "{e}");
        let e = parse(r#"{"round":0,"system":"x","insert_per_s":-1,"work_per_s":1}"#).unwrap_err();
        assert!(e.to_string().contains("insert_per_s"), "{e}");
        let e = parse(r#"{"system":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("no round"), "{e}");
    }
}
