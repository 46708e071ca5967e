//! `oc-bench-peers`: oc-postgres against the PostgreSQL job queues people use instead
//! (graphile-worker, pg-boss, pgqueuer), on one throwaway server, the same workload for each.
//! `cargo xtask peers` installs the peers, builds this in release mode, runs it and reads its
//! lines; see docs/BENCHMARKS.md ("Against the job queues people use instead") and decision 0050.
//!
//! Usage: `oc-bench-peers --jobs N --rounds N [--node BIN --node-dir DIR] [--python BIN
//! --python-dir DIR] [--tcp] [--only NAME,…] [--pgbench-seconds N]`
//!
//! One server (PostgreSQL's own binaries, run as `postgres`, a Unix socket and 127.0.0.1 TCP,
//! `fsync=off`; `oc_postgres::testkit::PgServer`, stopped and removed when this process ends,
//! however it ends). Each run of a system gets a fresh database: insert `--jobs` no-op jobs in
//! batches of 1,000 (timed), then claim and complete all of them (timed), the CPU time of the
//! server's processes and of the client process read from `/proc` at each phase's start and end.
//! A round runs ours before each peer (so each ratio is taken between neighbours in time), then
//! our other modes; then `pgbench` with advisory locks. Prints one JSON object per run on stdout.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use oc_postgres::testkit::{PgServer, ServerOptions, server_binaries};
use oc_postgres::{PgOptions, PgTaskStore};
use oc_tasks::worker::BatchWorker;
use oc_tasks::{NewTask, TaskId, TaskStore};
use serde_json::{Value, json};

/// Jobs per insert call, for every system.
const INSERT_BATCH: usize = 1_000;
/// Concurrent claim-and-complete loops, for every system that takes a number.
const WORKERS: usize = 16;
/// Tasks per batch claim of our batch mode (pgqueuer's default batch).
const BATCH: usize = 10;
/// A lease long enough that none lapses during a run.
const LEASE: Duration = Duration::from_secs(600);
/// The most jobs a run may be asked for.
const MAX_JOBS: usize = 1_000_000;

/// How one of our runs claims and completes.
#[derive(Debug, Clone, Copy)]
enum OurMode {
    /// `claim_next`, then `complete` with the token, per task, on `threads` threads.
    PerTask { threads: usize },
    /// The batch API end to end (decision 0049): [`WORKERS`] threads, each running one
    /// `oc_tasks::worker::BatchWorker` with a batch of [`BATCH`]: one `claim_many` of up to
    /// [`BATCH`] fills its local queue, every task handed out is acknowledged with `complete`,
    /// and the acknowledgements are written by one `complete_many` per [`BATCH`] (the last
    /// partial batch on `shutdown`); its own thread heartbeats every lease it holds in one
    /// `heartbeat_many` every third of the lease (its default lease, 30 s).
    Batch,
}

/// A system under test: ours in one mode, or a peer's worker script.
#[derive(Debug, Clone)]
enum System {
    Ours { name: &'static str, mode: OurMode },
    Peer(Peer),
}

#[derive(Debug, Clone)]
struct Peer {
    name: &'static str,
    program: PathBuf,
    dir: PathBuf,
    script: &'static str,
    args: Vec<String>,
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Ours { name, .. } => name,
            System::Peer(p) => p.name,
        }
    }
}

const OURS_16: System = System::Ours {
    name: "oc-16t",
    mode: OurMode::PerTask { threads: WORKERS },
};
const OURS_1: System = System::Ours {
    name: "oc-1t",
    mode: OurMode::PerTask { threads: 1 },
};
const OURS_BATCH: System = System::Ours {
    name: "oc-batch",
    mode: OurMode::Batch,
};

struct Args {
    jobs: usize,
    rounds: usize,
    node: Option<(PathBuf, PathBuf)>,
    python: Option<(PathBuf, PathBuf)>,
    tcp: bool,
    only: Option<Vec<String>>,
    pgbench_seconds: u64,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut a = Args {
        jobs: 20_000,
        rounds: 3,
        node: None,
        python: None,
        tcp: false,
        only: None,
        pgbench_seconds: 5,
    };
    let (mut node, mut node_dir, mut python, mut python_dir) = (None, None, None, None);
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--jobs" => a.jobs = value()?.parse().context("--jobs")?,
            "--rounds" => a.rounds = value()?.parse().context("--rounds")?,
            "--pgbench-seconds" => {
                a.pgbench_seconds = value()?.parse().context("--pgbench-seconds")?;
            }
            "--node" => node = Some(PathBuf::from(value()?)),
            "--node-dir" => node_dir = Some(PathBuf::from(value()?)),
            "--python" => python = Some(PathBuf::from(value()?)),
            "--python-dir" => python_dir = Some(PathBuf::from(value()?)),
            "--only" => a.only = Some(value()?.split(',').map(str::to_owned).collect()),
            "--tcp" => a.tcp = true,
            other => bail!("unknown argument {other}"),
        }
    }
    ensure!(
        (BATCH..=MAX_JOBS).contains(&a.jobs),
        "--jobs must be {BATCH} to {MAX_JOBS}"
    );
    ensure!((1..=100).contains(&a.rounds), "--rounds must be 1 to 100");
    ensure!(
        (1..=600).contains(&a.pgbench_seconds),
        "--pgbench-seconds must be 1 to 600"
    );
    a.node = node.zip(node_dir);
    a.python = python.zip(python_dir);
    Ok(a)
}

/// The peers that can run here, in the order a round runs them.
fn peers(a: &Args) -> Vec<Peer> {
    let args = |fetch: usize| {
        [
            ("--jobs", a.jobs),
            ("--batch", INSERT_BATCH),
            ("--workers", WORKERS),
            ("--fetch", fetch),
        ]
        .iter()
        .flat_map(|(k, v)| [(*k).to_owned(), v.to_string()])
        .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    if let Some((node, dir)) = &a.node {
        for (name, script, fetch) in [
            ("graphile-worker", "graphile.mjs", 1),
            ("pg-boss", "pgboss.mjs", 1),
            ("pg-boss-batch10", "pgboss.mjs", BATCH),
        ] {
            out.push(Peer {
                name,
                program: node.clone(),
                dir: dir.clone(),
                script,
                args: args(fetch),
            });
        }
    }
    if let Some((python, dir)) = &a.python {
        out.push(Peer {
            name: "pgqueuer",
            program: python.clone(),
            dir: dir.clone(),
            script: "pgqueuer_worker.py",
            args: args(BATCH),
        });
    }
    out.retain(|p| {
        a.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == p.name))
    });
    out
}

/// One round: ours before each peer (`peers` are those wanted), then our other modes that
/// `only` names (all without it). Each peer's ratio is taken against the run just before it.
fn schedule(peers: &[Peer], only: Option<&[String]>) -> Vec<System> {
    let wanted = |s: &System| only.is_none_or(|o| o.iter().any(|n| n == s.name()));
    let mut out = Vec::new();
    for p in peers {
        out.push(OURS_16);
        out.push(System::Peer(p.clone()));
    }
    if peers.is_empty() && wanted(&OURS_16) {
        out.push(OURS_16);
    }
    out.extend([OURS_BATCH, OURS_1].into_iter().filter(|s| wanted(s)));
    out
}

/// CPU time in clock ticks, from `/proc/<pid>/stat`: its own (all threads) and, with
/// `children`, that of its children it has waited for.
fn ticks(pid: u32, children: bool) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat).map(|s| s.utime + s.stime + if children { s.cutime + s.cstime } else { 0 })
}

#[derive(Debug, PartialEq)]
struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    cutime: u64,
    cstime: u64,
}

/// The fields of a `/proc/<pid>/stat` line this needs (the name, in parentheses, may hold
/// spaces and parentheses: the fields start after the last `)`).
fn parse_stat(stat: &str) -> Option<Stat> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let n = |i: usize| f.get(i)?.parse::<u64>().ok();
    Some(Stat {
        ppid: f.get(1)?.parse().ok()?,
        utime: n(11)?,
        stime: n(12)?,
        cutime: n(13)?,
        cstime: n(14)?,
    })
}

/// The server's CPU time: the postmaster and every process it started, live or ended (an ended
/// one's time is in the postmaster's children's time once it was reaped).
fn server_ticks(postmaster: u32) -> u64 {
    let mut total = ticks(postmaster, true).unwrap_or(0);
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some(s) = parse_stat(&stat).filter(|s| s.ppid == postmaster) {
                total += s.utime + s.stime;
            }
        }
    }
    total
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 where it cannot be asked).
fn clk_tck() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

/// A phase's measurement: its own wall-clock seconds and the CPU ticks it took.
#[derive(Debug, Default, Clone, Copy)]
struct Phase {
    seconds: f64,
    jobs: usize,
    server_ticks: u64,
    client_ticks: u64,
}

/// CPU counters at a phase's start, for the server and one client process.
struct Mark {
    server: u64,
    client: u64,
}

struct Cpu {
    postmaster: u32,
}

impl Cpu {
    fn mark(&self, client: u32, client_children: bool) -> Mark {
        Mark {
            server: server_ticks(self.postmaster),
            client: ticks(client, client_children).unwrap_or(0),
        }
    }

    fn since(
        &self,
        m: &Mark,
        client: u32,
        client_children: bool,
        seconds: f64,
        jobs: usize,
    ) -> Phase {
        let now = self.mark(client, client_children);
        Phase {
            seconds,
            jobs,
            server_ticks: now.server.saturating_sub(m.server),
            client_ticks: now.client.saturating_sub(m.client),
        }
    }
}

/// Our store, in `mode`, on database `url`: insert, then claim and complete everything.
fn run_ours(url: &str, jobs: usize, mode: OurMode, cpu: &Cpu) -> anyhow::Result<(Phase, Phase)> {
    let me = std::process::id();
    let store = Arc::new(PgTaskStore::connect(
        PgOptions::new(url)?.schema("oc")?.pool_size(WORKERS),
    )?);
    // The pool connects (and prepares its statements) on first use, taking its connections in
    // turn: without this, the timed inserts would open all of them. Every peer's script has
    // its connections open (its schema installed through them) before its timed phases too.
    let probe = TaskId::new("warm-up")?;
    for _ in 0..WORKERS {
        store.get(&probe)?;
    }
    let mark = cpu.mark(me, false);
    let t0 = Instant::now();
    let mut made = 0;
    while made < jobs {
        let n = INSERT_BATCH.min(jobs - made);
        store.create_many(
            (made..made + n)
                .map(|i| NewTask::new(format!("job-{i}")))
                .collect(),
        )?;
        made += n;
    }
    let insert = cpu.since(&mark, me, false, t0.elapsed().as_secs_f64(), jobs);

    let done = AtomicUsize::new(0);
    let mark = cpu.mark(me, false);
    let t0 = Instant::now();
    match mode {
        OurMode::PerTask { threads } => per_task(&store, threads, &done)?,
        OurMode::Batch => batch_workers(&store, &done)?,
    }
    let work = cpu.since(
        &mark,
        me,
        false,
        t0.elapsed().as_secs_f64(),
        done.into_inner(),
    );
    Ok((insert, work))
}

/// `threads` threads, each `claim_next` then `complete` with the token, until nothing is ready.
fn per_task(store: &PgTaskStore, threads: usize, done: &AtomicUsize) -> anyhow::Result<()> {
    std::thread::scope(|s| -> anyhow::Result<()> {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<()> {
                    let owner = format!("w{t}");
                    while let Some(task) = store.claim_next(&owner, LEASE)? {
                        let token = task.lease.as_ref().map(|l| l.token);
                        store.complete(&task.id, token, None)?;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        join(hs)
    })
}

/// [`WORKERS`] threads, each with a `BatchWorker` of [`BATCH`] on `store` (see
/// [`OurMode::Batch`]), until nothing is ready; every acknowledgement written, none lost.
fn batch_workers(store: &Arc<PgTaskStore>, done: &AtomicUsize) -> anyhow::Result<()> {
    std::thread::scope(|s| -> anyhow::Result<()> {
        let hs: Vec<_> = (0..WORKERS)
            .map(|t| {
                let store: Arc<dyn TaskStore> = store.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let worker = BatchWorker::builder(store, &format!("w{t}"))
                        .batch(BATCH)
                        .start()?;
                    let mut ran = 0;
                    while let Some(task) = worker.next()? {
                        worker.complete(&task, None)?;
                        ran += 1;
                    }
                    // Writes the last partial batch of acknowledgements.
                    let lost = worker.shutdown()?;
                    ensure!(lost.is_empty(), "worker {t} lost {} lease(s)", lost.len());
                    done.fetch_add(ran, Ordering::Relaxed);
                    Ok(())
                })
            })
            .collect();
        join(hs)
    })
}

fn join(hs: Vec<std::thread::ScopedJoinHandle<'_, anyhow::Result<()>>>) -> anyhow::Result<()> {
    for h in hs {
        h.join()
            .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??;
    }
    Ok(())
}

/// Kills the child on the way out (an error, a panic), unless it was waited for.
struct ChildGuard(Option<Child>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A peer's worker script on database `db`, driven through its protocol (protocol.mjs).
fn run_peer(p: &Peer, env: &[(&str, String)], cpu: &Cpu) -> anyhow::Result<(Phase, Phase)> {
    let mut child = Command::new(&p.program)
        .arg(p.dir.join(p.script))
        .args(&p.args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(&p.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} for {}", p.program.display(), p.name))?;
    let pid = child.id();
    let mut stdin = child.stdin.take().context("the child's stdin")?;
    let stdout = BufReader::new(child.stdout.take().context("the child's stdout")?);
    let mut guard = ChildGuard(Some(child));
    let mut lines = stdout.lines();
    let mut next = || -> anyhow::Result<Value> {
        loop {
            let line = lines
                .next()
                .with_context(|| format!("{} ended before it finished", p.name))??;
            match line.strip_prefix("@oc ") {
                Some(json) => return serde_json::from_str(json).context("a protocol line"),
                None => eprintln!("  {}: {line}", p.name),
            }
        }
    };
    let go = |stdin: &mut ChildStdin| -> anyhow::Result<()> {
        stdin.write_all(b"go\n")?;
        stdin.flush()?;
        Ok(())
    };
    let mut phases = [Phase::default(); 2];
    for (i, phase) in ["insert", "work"].iter().enumerate() {
        let v = next()?;
        ensure!(
            v["ready"] == *phase,
            "{}: expected ready {phase}, got {v}",
            p.name
        );
        let mark = cpu.mark(pid, true);
        go(&mut stdin)?;
        let v = next()?;
        ensure!(
            v["phase"] == *phase,
            "{}: expected {phase}, got {v}",
            p.name
        );
        let seconds = v["seconds"].as_f64().context("seconds")?;
        let jobs = v["jobs"].as_u64().context("jobs")? as usize;
        phases[i] = cpu.since(&mark, pid, true, seconds, jobs);
    }
    let v = next()?;
    let left = v["left"].as_u64().context("left")?;
    ensure!(left == 0, "{}: {left} jobs left unfinished", p.name);
    // The end of its input lets the script's event loop end.
    drop(stdin);
    let status = guard.0.take().context("child")?.wait()?;
    ensure!(status.success(), "{} exited with {status}", p.name);
    Ok((phases[0], phases[1]))
}

/// `pgbench` with `clients` clients, each taking and releasing an advisory lock on a key of its
/// own, for `seconds`: pairs per second.
fn pgbench_locks(
    bin: &Path,
    host: &str,
    port: u16,
    clients: usize,
    seconds: u64,
) -> anyhow::Result<f64> {
    let script = std::env::temp_dir().join(format!("oc-peers-lock-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "SELECT pg_advisory_lock(:client_id);\nSELECT pg_advisory_unlock(:client_id);\n",
    )?;
    let out = Command::new(bin.join("pgbench"))
        .args([
            "-h",
            host,
            "-p",
            &port.to_string(),
            "-U",
            "postgres",
            "-n",
            "-M",
            "prepared",
        ])
        .args([
            "-c",
            &clients.to_string(),
            "-j",
            &clients.min(2).to_string(),
        ])
        .args(["-T", &seconds.to_string(), "-f"])
        .arg(&script)
        .arg("postgres")
        .output()
        .context("cannot run pgbench")?;
    let _ = std::fs::remove_file(&script);
    ensure!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no tps in pgbench's output")
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn main() -> anyhow::Result<()> {
    let a = parse_args()?;
    let bin = server_binaries().context("no PostgreSQL server binaries (install postgresql)")?;
    let port = free_port()?;
    let pg = PgServer::start_with(&ServerOptions {
        listen: Some("127.0.0.1".into()),
        port: Some(port),
        ..ServerOptions::default()
    })?;
    let version = pg
        .psql("postgres", "SHOW server_version")?
        .trim()
        .to_owned();
    let postmaster: u32 = std::fs::read_to_string(pg.socket_dir().join("data/postmaster.pid"))?
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("the postmaster's pid")?;
    let cpu = Cpu { postmaster };
    let tck = clk_tck();
    let host = if a.tcp {
        "127.0.0.1".to_owned()
    } else {
        pg.socket_dir().to_string_lossy().into_owned()
    };
    let peers = peers(&a);
    let plan = schedule(&peers, a.only.as_deref());
    println!(
        "{}",
        json!({
            "server": version, "jobs": a.jobs, "rounds": a.rounds, "workers": WORKERS,
            "insert_batch": INSERT_BATCH, "transport": if a.tcp { "tcp" } else { "unix" },
            "plan": plan.iter().map(System::name).collect::<Vec<_>>(),
        })
    );
    let mut n = 0;
    for round in 0..a.rounds {
        for sys in &plan {
            n += 1;
            let db = format!("peers_{n}");
            pg.psql("postgres", &format!("CREATE DATABASE {db}"))?;
            eprintln!("round {} of {}: {}", round + 1, a.rounds, sys.name());
            let (insert, work) = match sys {
                System::Ours { mode, .. } => run_ours(
                    &format!("host={host} port={port} user=postgres dbname={db}"),
                    a.jobs,
                    *mode,
                    &cpu,
                )?,
                System::Peer(p) => run_peer(
                    p,
                    &[
                        ("PGHOST", host.clone()),
                        ("PGPORT", port.to_string()),
                        ("PGUSER", "postgres".into()),
                        ("PGDATABASE", db.clone()),
                    ],
                    &cpu,
                )?,
            };
            ensure!(
                work.jobs == a.jobs,
                "{}: {} of {} jobs completed",
                sys.name(),
                work.jobs,
                a.jobs
            );
            pg.psql("postgres", &format!("DROP DATABASE {db} WITH (FORCE)"))?;
            let ms = |t: u64, jobs: usize| t as f64 * 1000.0 / tck as f64 / jobs as f64;
            println!(
                "{}",
                json!({
                    "round": round, "system": sys.name(), "jobs": work.jobs,
                    "insert_per_s": insert.jobs as f64 / insert.seconds,
                    "work_per_s": work.jobs as f64 / work.seconds,
                    "server_ms_per_job": ms(work.server_ticks, work.jobs),
                    "client_ms_per_job": ms(work.client_ticks, work.jobs),
                    "insert_server_ms_per_job": ms(insert.server_ticks, insert.jobs),
                    "insert_client_ms_per_job": ms(insert.client_ticks, insert.jobs),
                })
            );
        }
        if a.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == "pgbench"))
        {
            for clients in [1, WORKERS] {
                eprintln!(
                    "round {} of {}: pgbench advisory locks, {clients} clients",
                    round + 1,
                    a.rounds
                );
                let host = pg.socket_dir().to_string_lossy().into_owned();
                let tps = pgbench_locks(&bin, &host, port, clients, a.pgbench_seconds)?;
                println!(
                    "{}",
                    json!({ "round": round, "system": format!("pgbench-advisory-{clients}c"), "pairs_per_s": tps })
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_a_hostile_name() {
        let line = "4242 (post) gres: (x) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 31 7 9 20 0 1 0 100 1000 10 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                ppid: 17,
                utime: 250,
                stime: 31,
                cutime: 7,
                cstime: 9
            })
        );
        assert_eq!(parse_stat("4242 (short) S 1 2"), None);
        assert_eq!(parse_stat("no parenthesis"), None);
    }

    #[test]
    fn ours_runs_before_every_peer() {
        let peer = |name| Peer {
            name,
            program: PathBuf::new(),
            dir: PathBuf::new(),
            script: "",
            args: vec![],
        };
        let names = |s: Vec<System>| s.iter().map(System::name).collect::<Vec<_>>();
        let ps = [peer("a"), peer("b")];
        assert_eq!(
            names(schedule(&ps, None)),
            ["oc-16t", "a", "oc-16t", "b", "oc-batch", "oc-1t"]
        );
        let only = ["b".to_owned()];
        assert_eq!(names(schedule(&ps[1..], Some(&only))), ["oc-16t", "b"]);
        let only = ["oc-1t".to_owned()];
        assert_eq!(names(schedule(&[], Some(&only))), ["oc-1t"]);
        assert_eq!(names(schedule(&[], None)), ["oc-16t", "oc-batch", "oc-1t"]);
    }
}
