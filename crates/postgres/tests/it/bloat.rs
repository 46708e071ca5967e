//! Bloat: workers create, claim and complete tasks while another session holds a transaction
//! open (so vacuum can remove no dead row); then the transaction ends, the retention policy
//! runs and vacuum with it (docs/decisions/0051, docs/BENCHMARKS.md "Bloat: a long run with
//! vacuum held back").
//!
//! `bloat_harness_reports_sizes` runs it for 20 seconds and checks that it made progress and
//! measured what it says (not how fast). With `OC_SOAK=1`, `bloat_soak` runs it for
//! `OC_BLOAT_MINUTES` (10 by default) and prints the report:
//! `OC_SOAK=1 cargo nextest run -p oc-postgres --all-features -E 'test(bloat_soak)' --no-capture`;
//! `OC_BLOAT_HOLD=0` runs it with no transaction held, `OC_BLOAT_FILLFACTOR=N` with that
//! `fillfactor` on `tasks`.

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use oc_postgres::testkit::{PgServer, server_binaries};
use oc_postgres::{PgOptions, PgTaskStore};
use oc_tasks::{NewTask, RetentionPolicy, TaskStore};

/// The tables whose sizes the report follows.
const TABLES: [&str; 4] = ["tasks", "task_history", "task_counts", "task_tallies"];

/// Sizes (`pg_total_relation_size`, bytes) and dead rows (`n_dead_tup`) of [`TABLES`].
#[derive(Debug, Clone, PartialEq)]
struct Sizes {
    bytes: Vec<u64>,
    dead: Vec<u64>,
    rows: u64,
    /// Updates of `tasks`, how many of them were HOT (no index touched), and how many times
    /// autovacuum has vacuumed it.
    updates: (u64, u64, u64),
}

/// What a run measured.
#[derive(Debug)]
struct Report {
    /// Tasks completed in each interval.
    per_interval: Vec<u64>,
    interval: Duration,
    start: Sizes,
    end: Sizes,
    /// After the old transaction ended and a plain `VACUUM` (before retention).
    vacuumed: Sizes,
    /// After retention (every finished task deleted) and `VACUUM`.
    pruned: Sizes,
    /// After `VACUUM FULL`, what the rows left need.
    full: Sizes,
    pruned_tasks: u64,
    prune_ms: u128,
}

fn sizes(pg: &PgServer, schema: &str) -> Sizes {
    let mut bytes = Vec::new();
    let mut dead = Vec::new();
    for t in TABLES {
        let q = format!(
            "SELECT pg_total_relation_size('\"{schema}\".{t}'), \
             coalesce((SELECT n_dead_tup FROM pg_stat_user_tables \
                       WHERE schemaname = '{schema}' AND relname = '{t}'), 0)"
        );
        let out = pg.psql("postgres", &q).unwrap();
        let mut it = out.trim().split('|').map(|v| v.parse::<u64>().unwrap());
        bytes.push(it.next().unwrap());
        dead.push(it.next().unwrap());
    }
    let rows = pg
        .psql(
            "postgres",
            &format!("SELECT count(*) FROM \"{schema}\".tasks"),
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let q = format!(
        "SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0), \
         coalesce(sum(autovacuum_count), 0) FROM pg_stat_user_tables WHERE schemaname = '{schema}' AND relname = 'tasks'"
    );
    let out = pg.psql("postgres", &q).unwrap();
    let mut it = out.trim().split('|').map(|v| v.parse::<u64>().unwrap());
    let updates = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
    Sizes {
        bytes,
        dead,
        rows,
        updates,
    }
}

/// A `psql` session that began a transaction, took a transaction id and keeps it open until
/// [`Holder::release`]: vacuum removes no row version that died after it began.
struct Holder(Child);

impl Holder {
    fn start(pg: &PgServer) -> Holder {
        let bin = server_binaries().unwrap();
        let mut child = Command::new(bin.join("psql"))
            .arg("-h")
            .arg(pg.socket_dir())
            .args([
                "-p",
                &pg.port().to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-qAt",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"BEGIN; SELECT txid_current();\n").unwrap();
        stdin.flush().unwrap();
        // Wait until the server sees it: a backend whose xmin holds vacuum back.
        let deadline = Instant::now() + Duration::from_secs(30);
        while pg
            .psql(
                "postgres",
                "SELECT count(*) FROM pg_stat_activity WHERE backend_xid IS NOT NULL \
                 AND state = 'idle in transaction'",
            )
            .unwrap()
            .trim()
            != "1"
        {
            assert!(
                Instant::now() < deadline,
                "the holding transaction never began"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Holder(child)
    }

    fn release(mut self) {
        if let Some(mut stdin) = self.0.stdin.take() {
            stdin.write_all(b"COMMIT;\n\\q\n").unwrap();
        }
        self.0.wait().unwrap();
    }
}

/// Runs `workers` threads creating, claiming and completing one task at a time for `length`,
/// counted every `interval`, on a server with autovacuum on and a transaction held open.
fn run(pg: &PgServer, length: Duration, interval: Duration, workers: usize) -> Report {
    // The test kit's server runs without autovacuum; a user's runs with it (reloadable).
    pg.psql("postgres", "ALTER SYSTEM SET autovacuum = on")
        .unwrap();
    pg.psql("postgres", "ALTER SYSTEM SET autovacuum_naptime = '5s'")
        .unwrap();
    pg.psql("postgres", "SELECT pg_reload_conf()").unwrap();
    let schema = "bloat";
    let opts = PgOptions::new(&pg.url("postgres"))
        .unwrap()
        .schema(schema)
        .unwrap();
    let store = Arc::new(PgTaskStore::connect(opts).unwrap());
    // `OC_BLOAT_FILLFACTOR=70`: room on each page for HOT updates, to measure what it buys.
    if let Some(ff) = std::env::var("OC_BLOAT_FILLFACTOR")
        .ok()
        .and_then(|f| f.parse::<u8>().ok())
    {
        pg.psql(
            "postgres",
            &format!("ALTER TABLE \"{schema}\".tasks SET (fillfactor = {ff})"),
        )
        .unwrap();
    }
    let start = sizes(pg, schema);
    // `OC_BLOAT_HOLD=0`: the same run with vacuum free to work, for comparison.
    let hold = std::env::var("OC_BLOAT_HOLD").as_deref() != Ok("0");
    let holder = hold.then(|| Holder::start(pg));
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..workers)
        .map(|w| {
            let (store, done, stop) = (store.clone(), done.clone(), stop.clone());
            std::thread::spawn(move || {
                let owner = format!("worker-{w}");
                while !stop.load(Ordering::Relaxed) {
                    store.create(NewTask::new("bloat")).unwrap();
                    if let Some(t) = store.claim_next(&owner, Duration::from_secs(60)).unwrap() {
                        store
                            .complete(&t.id, t.lease.map(|l| l.token), None)
                            .unwrap();
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let began = Instant::now();
    let mut per_interval = Vec::new();
    let mut last = 0;
    while began.elapsed() < length {
        let next = interval * (per_interval.len() as u32 + 1);
        std::thread::sleep(next.saturating_sub(began.elapsed()));
        let now = done.load(Ordering::Relaxed);
        per_interval.push(now - last);
        eprintln!(
            "bloat: interval {}: {} tasks completed",
            per_interval.len(),
            now - last
        );
        last = now;
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let end = sizes(pg, schema);
    if let Some(h) = holder {
        h.release();
    }
    let vacuum = |full: bool| {
        for t in TABLES {
            let how = if full { "VACUUM FULL" } else { "VACUUM" };
            pg.psql("postgres", &format!("{how} \"{schema}\".{t}"))
                .unwrap();
        }
        // The statistics' dead rows are reported asynchronously; give them a moment.
        pg.psql("postgres", "SELECT pg_stat_force_next_flush()")
            .ok();
        std::thread::sleep(Duration::from_millis(700));
    };
    vacuum(false);
    let vacuumed = sizes(pg, schema);
    let began = Instant::now();
    let report = store
        .prune_finished(&RetentionPolicy::delete_older_than(Duration::ZERO))
        .unwrap();
    let prune_ms = began.elapsed().as_millis();
    vacuum(false);
    let pruned = sizes(pg, schema);
    vacuum(true);
    let full = sizes(pg, schema);
    assert!(store.integrity_check().unwrap().is_empty());
    Report {
        per_interval,
        interval,
        start,
        end,
        vacuumed,
        pruned,
        full,
        pruned_tasks: report.pruned,
        prune_ms,
    }
}

fn print(r: &Report) {
    let secs = r.interval.as_secs_f64();
    let rates: Vec<String> = r
        .per_interval
        .iter()
        .map(|n| format!("{:.0}", *n as f64 / secs))
        .collect();
    eprintln!(
        "bloat report: tasks/s per {:?}: {}",
        r.interval,
        rates.join(", ")
    );
    eprintln!(
        "| Table | Start | End (held back) | After VACUUM | After retention + VACUUM | After VACUUM FULL |"
    );
    eprintln!("|---|---:|---:|---:|---:|---:|");
    let mb = |b: u64| format!("{:.1} MB", b as f64 / 1e6);
    for (i, t) in TABLES.iter().enumerate() {
        eprintln!(
            "| {t} | {} | {} ({} dead) | {} ({} dead) | {} ({} dead) | {} |",
            mb(r.start.bytes[i]),
            mb(r.end.bytes[i]),
            r.end.dead[i],
            mb(r.vacuumed.bytes[i]),
            r.vacuumed.dead[i],
            mb(r.pruned.bytes[i]),
            r.pruned.dead[i],
            mb(r.full.bytes[i]),
        );
    }
    eprintln!(
        "rows in tasks: start {}, end {}, after retention {}; retention deleted {} in {} ms",
        r.start.rows, r.end.rows, r.pruned.rows, r.pruned_tasks, r.prune_ms
    );
    eprintln!(
        "updates of tasks during the run: {}, HOT: {}; autovacuum runs on tasks: {}",
        r.end.updates.0, r.end.updates.1, r.end.updates.2
    );
}

/// A server of its own: the run changes server settings and holds back the whole server's
/// vacuum.
fn own_server() -> Option<PgServer> {
    oc_postgres::testkit::postgres_for_tests()
}

#[test]
fn bloat_harness_reports_sizes() {
    let Some(pg) = own_server() else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let r = run(&pg, Duration::from_secs(20), Duration::from_secs(5), 4);
    print(&r);
    assert_eq!(r.per_interval.len(), 4);
    assert!(
        r.per_interval.iter().all(|n| *n > 0),
        "{:?}",
        r.per_interval
    );
    let total: u64 = r.per_interval.iter().sum();
    assert!(r.end.rows >= total, "every completed task is still there");
    assert!(r.end.bytes[0] > r.start.bytes[0], "the tasks table grew");
    assert!(r.end.dead[0] > 0, "the held transaction kept dead rows");
    assert_eq!(
        r.pruned_tasks, r.end.rows,
        "retention took every task, all finished"
    );
    assert_eq!(r.pruned.rows, 0);
    assert!(r.full.bytes[0] < r.end.bytes[0], "the space came back");
}

#[test]
fn bloat_soak() {
    if std::env::var_os("OC_SOAK").is_none() {
        eprintln!("skipped: set OC_SOAK=1 for the long run");
        return;
    }
    let minutes: u64 = std::env::var("OC_BLOAT_MINUTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(10);
    let pg = own_server().expect("OC_SOAK needs PostgreSQL");
    let r = run(
        &pg,
        Duration::from_secs(60 * minutes),
        Duration::from_secs(60),
        16,
    );
    print(&r);
    assert!(
        r.per_interval.iter().all(|n| *n > 0),
        "{:?}",
        r.per_interval
    );
}
