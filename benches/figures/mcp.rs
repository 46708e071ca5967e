//! `mcp.*`: tool calls over stdio to one `oc mcp`, beside one `oc` process per call.

use anyhow::Context;
use oc_benches::mcp;
use serde_json::json;

use crate::{Figures, quantile};

/// mcp.*: tool calls over stdio to one `oc mcp` on a SQLite data directory, round trip, p50 and
/// p99; beside them the same operations as one `oc` process per call, and how many times
/// faster the tool call is.
pub(crate) fn figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let oc = mcp::oc_binary()?;
    let (calls, spawns) = if quick { (500, 20) } else { (2_000, 50) };
    let mut f = Figures::default();
    for run in 0..runs {
        let dir = tempfile::tempdir()?;
        let data = dir.path();
        let mut s = mcp::Session::start(&oc, data)?;
        let mut ids = Vec::new();
        for i in 0..calls + spawns {
            let t = s.call("task_create", json!({ "name": format!("task {i}") }))?;
            ids.push(t["task"]["id"].as_str().context("an id")?.to_owned());
        }
        let get = mcp::latencies(calls, |i| {
            s.call("task_get", json!({ "task_id": ids[i % ids.len()] }))
                .map(drop)
        })?;
        let claim = mcp::latencies(calls, |_| {
            let c = s.call("task_claim", json!({ "lease_secs": 600 }))?;
            anyhow::ensure!(c["claimed"] == true, "nothing to claim");
            Ok(())
        })?;
        let lock = mcp::latencies(calls, |i| {
            s.call(
                "lock_acquire",
                json!({ "paths": [format!("run{run}/mcp/{i}")] }),
            )
            .map(drop)
        })?;
        drop(s);
        let spawn_get = mcp::latencies(spawns, |i| {
            mcp::oc_once(&oc, data, &["task", "show", &ids[i]])
        })?;
        let spawn_claim = mcp::latencies(spawns, |_| {
            mcp::oc_once(&oc, data, &["task", "claim", "--next", "--agent", "bench"])
        })?;
        let spawn_lock = mcp::latencies(spawns, |i| {
            let path = format!("run{run}/spawn/{i}");
            mcp::oc_once(&oc, data, &["lock", "acquire", &path, "--owner", "bench"])
        })?;
        for (name, over_stdio, spawned) in [
            ("task_get", get, spawn_get),
            ("task_claim", claim, spawn_claim),
            ("lock_acquire", lock, spawn_lock),
        ] {
            let (p50, p99) = (quantile(&over_stdio, 0.50), quantile(&over_stdio, 0.99));
            let (s50, s99) = (quantile(&spawned, 0.50), quantile(&spawned, 0.99));
            f.add(format!("mcp.{name}_p50"), "ms", p50);
            f.add(format!("mcp.{name}_p99"), "ms", p99);
            f.add(format!("mcp.spawn_{name}_p50"), "ms", s50);
            f.add(format!("mcp.spawn_{name}_p99"), "ms", s99);
            f.add(format!("mcp.{name}_speedup"), "x", s50 / p50);
        }
    }
    f.emit();
    Ok(())
}
