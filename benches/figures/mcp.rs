//! `mcp.*`: tool calls over stdio to one `oc mcp`, beside one `oc` process per call; and
//! `task_get` over HTTP keep-alive to one `oc serve` (`/mcp`), on SQLite and on PostgreSQL.

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

/// mcp.task_get_http*, mcp.task_get_16c*: `task_get` over HTTP keep-alive (the stateless
/// revision, a `read` token checked on every call) to one `oc serve` on a SQLite data
/// directory, then on a throwaway PostgreSQL server (`_pg`): one client's p50 and p99, and 16
/// clients' calls per second together.
pub(crate) fn http_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    use oc_postgres::testkit::{PgServer, server_binaries};
    let oc = mcp::oc_binary()?;
    let mut f = Figures::default();
    http_store(&oc, None, "", runs, quick, &mut f)?;
    if server_binaries().is_some() {
        let pg = PgServer::start()?;
        for run in 0..runs {
            let db = format!("mcphttp{run}");
            pg.psql("postgres", &format!("CREATE DATABASE {db}"))?;
            http_store(&oc, Some(&pg.url(&db)), "_pg", 1, quick, &mut f)?;
        }
    } else {
        eprintln!("mcp pg figures skipped: no PostgreSQL server binaries");
    }
    f.emit();
    Ok(())
}

fn http_store(
    oc: &std::path::Path,
    database: Option<&str>,
    suffix: &str,
    runs: usize,
    quick: bool,
    f: &mut Figures,
) -> anyhow::Result<()> {
    const CLIENTS: usize = 16;
    let (calls, per_client) = if quick { (1_000, 500) } else { (5_000, 2_000) };
    let dir = tempfile::tempdir()?;
    let data = dir.path();
    let writer = mcp::token(oc, data, database, "bench", "work")?;
    let reader = mcp::token(oc, data, database, "reader", "read")?;
    let served = mcp::Served::start(oc, data, database)?;
    let mut w = mcp::HttpClient::connect(&served.addr, &writer)?;
    let mut ids = Vec::new();
    for i in 0..100 {
        let t = w.call("task_create", json!({ "name": format!("task {i}") }))?;
        ids.push(t["task"]["id"].as_str().context("an id")?.to_owned());
    }
    for _ in 0..runs {
        let mut c = mcp::HttpClient::connect(&served.addr, &reader)?;
        let get = mcp::latencies(calls, |i| {
            c.call("task_get", json!({ "task_id": ids[i % ids.len()] }))
                .map(drop)
        })?;
        f.add(
            format!("mcp.task_get_http_p50{suffix}"),
            "ms",
            quantile(&get, 0.50),
        );
        f.add(
            format!("mcp.task_get_http_p99{suffix}"),
            "ms",
            quantile(&get, 0.99),
        );
        let mut clients = (0..CLIENTS)
            .map(|_| mcp::HttpClient::connect(&served.addr, &reader))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let started = std::time::Instant::now();
        std::thread::scope(|s| {
            let hs: Vec<_> = clients
                .iter_mut()
                .enumerate()
                .map(|(k, c)| {
                    let ids = &ids;
                    s.spawn(move || -> anyhow::Result<()> {
                        for i in 0..per_client {
                            c.call("task_get", json!({ "task_id": ids[(i + k) % ids.len()] }))?;
                        }
                        Ok(())
                    })
                })
                .collect();
            hs.into_iter()
                .try_for_each(|h| h.join().map_err(|_| anyhow::anyhow!("a client panicked"))?)
        })?;
        f.add(
            format!("mcp.task_get_16c{suffix}"),
            "calls/s",
            crate::per_sec(CLIENTS * per_client, started.elapsed()),
        );
    }
    drop(served);
    Ok(())
}
