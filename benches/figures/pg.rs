//! `pg.*`: the PostgreSQL store and lock manager against a throwaway server, beside `pgbench`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use oc_locks::LockManager;
use oc_tasks::TaskStore;

use crate::tasks::{graph_figures, ready_pages};
use crate::{Figures, per_sec};

/// pg.*: the PostgreSQL store and lock manager against a throwaway server (Unix socket,
/// `fsync=off`, `synchronous_commit=off`), and the same claim statement driven by `pgbench`;
/// then a task's files on the same server (`crate::files`).
pub(crate) fn figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    use oc_postgres::testkit::{PgServer, claim_next_sql, server_binaries};
    use oc_postgres::{PgLockManager, PgLockOptions, PgOptions, PgTaskStore};
    use oc_tasks::NewTask;

    const CREATE: usize = 100_000;
    const CLAIMS: usize = 16_000;
    let Some(bin) = server_binaries() else {
        eprintln!("pg figures skipped: no PostgreSQL server binaries");
        return Ok(());
    };
    let pg = PgServer::start()?;
    if std::env::var_os("OC_PG_LOCKS_ONLY").is_some() {
        return locks_only(&pg, &bin, runs);
    }
    let mut f = Figures::default();
    if std::env::var_os("OC_BENCH_PG_JOBS_ONLY").is_some() {
        // Just the jobs' figures (for interleaved before/after rounds of decision 0047).
        for run in 0..runs {
            job_figures(&mut f, &pg, run)?;
        }
        f.emit();
        return Ok(());
    }
    for run in 0..runs {
        let opts = |schema: &str, pool: usize| -> anyhow::Result<PgOptions> {
            Ok(PgOptions::new(&pg.url("postgres"))?
                .schema(schema)?
                .pool_size(pool))
        };
        let schema = format!("bench{run}");
        let store = Arc::new(PgTaskStore::connect(opts(&schema, 16)?)?);
        let started = std::time::Instant::now();
        for b in 0..CREATE / 1000 {
            store.create_many(
                (0..1000)
                    .map(|i| NewTask::new(format!("b{b}-{i}")))
                    .collect(),
            )?;
        }
        f.add(
            "pg.create_many",
            "tasks/s",
            per_sec(CREATE, started.elapsed()),
        );
        let mut latencies = Vec::new();
        for (threads, name) in [
            (1, "pg.claim_next_1t"),
            (4, "pg.claim_next_4t"),
            (16, "pg.claim_next_16t"),
        ] {
            let per = if threads == 1 {
                2_000
            } else {
                CLAIMS / threads
            };
            let started = std::time::Instant::now();
            let lat = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|t| {
                        let store = store.clone();
                        s.spawn(move || -> anyhow::Result<Vec<f64>> {
                            let mut v = Vec::with_capacity(per);
                            for _ in 0..per {
                                let at = std::time::Instant::now();
                                store
                                    .claim_next(&format!("w{t}"), Duration::from_secs(600))?
                                    .context("ran out of pending tasks")?;
                                v.push(at.elapsed().as_secs_f64() * 1000.0);
                            }
                            Ok(v)
                        })
                    })
                    .collect();
                hs.into_iter()
                    .map(|h| {
                        h.join()
                            .map_err(|_| anyhow::anyhow!("a claim thread panicked"))?
                    })
                    .collect::<anyhow::Result<Vec<Vec<f64>>>>()
            })?;
            f.add(name, "claims/s", per_sec(per * threads, started.elapsed()));
            if threads == 16 {
                latencies = lat.concat();
            }
        }
        job_figures(&mut f, &pg, run)?;
        latencies.sort_by(f64::total_cmp);
        let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
        f.add("pg.claim_latency_16t_p50", "ms", pct(0.50));
        f.add("pg.claim_latency_16t_p99", "ms", pct(0.99));

        // The same statement, as fast as the engine takes it: pgbench, 16 clients, prepared.
        let sql = claim_next_sql(&schema)
            .replace("$1", "'pgbench'")
            .replace("$2::bigint", "600000::bigint")
            .replace("$3::bigint", "NULL::bigint")
            .replace("$4::text[]", "'{}'::text[]")
            .replace("$5::text[]", "'{}'::text[]");
        let script = std::env::temp_dir().join(format!("oc-claim-{}.sql", std::process::id()));
        std::fs::write(&script, format!("{};\n", sql.trim()))?;
        let out = std::process::Command::new(bin.join("pgbench"))
            .arg("-h")
            .arg(pg.socket_dir())
            .args([
                "-p", "5432", "-U", "postgres", "-n", "-M", "prepared", "-c", "16", "-j", "2",
            ])
            .args(["-t", &(CLAIMS / 16).to_string(), "-f"])
            .arg(&script)
            .arg("postgres")
            .output()?;
        std::fs::remove_file(&script)?;
        anyhow::ensure!(
            out.status.success(),
            "pgbench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let tps: f64 = text
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .context("no tps in pgbench's output")?
            .parse()?;
        f.add("pg.pgbench_claim_16c", "claims/s", tps);
        let ours = f.runs("pg.claim_next_16t").last().copied().unwrap_or(0.0);
        f.add("pg.claim16_over_pgbench", "x", ours / tps);

        let locks = Arc::new(PgLockManager::connect(PgLockOptions::new(opts(
            &schema, 16,
        )?))?);
        lock_figures(&mut f, &pg, &bin, &locks)?;
        let fresh_schema = std::sync::atomic::AtomicUsize::new(0);
        graph_figures(&mut f, "pg", run as u64, &|| {
            let n = fresh_schema.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let store = PgTaskStore::connect(opts(&format!("graph{run}_{n}"), 4)?)?;
            Ok((
                Box::new(store) as Box<dyn oc_tasks::TaskStore>,
                Box::new(()) as Box<dyn std::any::Any>,
            ))
        })?;
    }
    f.emit();
    crate::batch::pg_figures(&pg, runs)?;
    if !quick {
        let store = PgTaskStore::connect(
            PgOptions::new(&pg.url("postgres"))?
                .schema("pages")?
                .pool_size(4),
        )?;
        for b in 0..1000 {
            store.create_many(
                (0..1000)
                    .map(|i| NewTask::new(format!("p{b}-{i}")))
                    .collect(),
            )?;
        }
        // The statistics autovacuum (off on this server) would gather after a bulk load:
        // without them the planner takes the ready tasks' index and sorts it for every page.
        pg.psql("postgres", "ANALYZE pages.tasks")?;
        ready_pages(&store, "pg")?;
    }
    // A task's files, on the same server (decision 0036).
    crate::files::pg_figures(&pg, runs, quick)
}

/// `OC_PG_LOCKS_ONLY=1 oc-bench-figures --pg-only`: the `pg.lock_pair_*` figures alone, each
/// run in a fresh schema, for comparing builds run after run.
fn locks_only(
    pg: &oc_postgres::testkit::PgServer,
    bin: &std::path::Path,
    runs: usize,
) -> anyhow::Result<()> {
    use oc_postgres::{PgLockManager, PgLockOptions, PgOptions};
    let mut f = Figures::default();
    for run in 0..runs {
        let opts = PgOptions::new(&pg.url("postgres"))?
            .schema(&format!("locks{run}"))?
            .pool_size(16);
        let locks = Arc::new(PgLockManager::connect(PgLockOptions::new(opts))?);
        lock_figures(&mut f, pg, bin, &locks)?;
    }
    f.emit();
    Ok(())
}

/// Lock pairs per second on distinct resources: each of `threads` threads acquires and releases
/// `repo/w<t>/file` (its own file, siblings under one directory) `per` times.
fn lock_pairs(
    locks: &Arc<oc_postgres::PgLockManager>,
    threads: usize,
    per: usize,
) -> anyhow::Result<f64> {
    let started = std::time::Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let locks = locks.clone();
                s.spawn(move || -> anyhow::Result<()> {
                    let req = oc_locks::LockRequest::exclusive(
                        &format!("repo/w{t}/file"),
                        &format!("w{t}"),
                    )?;
                    for _ in 0..per {
                        let l = locks.try_acquire(&req)?;
                        locks.release(&l.resource, &l.owner)?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| anyhow::anyhow!("a lock thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(per_sec(per * threads, started.elapsed()))
}

/// `pg.lock_pair_*`: lock pairs on distinct resources with 1 and 16 threads, then `pgbench`
/// taking and releasing session advisory locks (`pg_advisory_lock`, `pg_advisory_unlock`, on a
/// random key) with 16 clients on the same server, and our ratios to both (issue 29: 16
/// threads at least 3 times one, and at least 0.25 times `pgbench`).
fn lock_figures(
    f: &mut Figures,
    pg: &oc_postgres::testkit::PgServer,
    bin: &std::path::Path,
    locks: &Arc<oc_postgres::PgLockManager>,
) -> anyhow::Result<()> {
    const PAIRS_16: usize = 8_000;
    // Warm every pooled connection (prepared statements, the functions' cached plans).
    lock_pairs(locks, 16, 20)?;
    let one = lock_pairs(locks, 1, 2_000)?;
    f.add("pg.lock_pair_1t", "pairs/s", one);
    let sixteen = lock_pairs(locks, 16, PAIRS_16 / 16)?;
    f.add("pg.lock_pair_16t", "pairs/s", sixteen);
    let script = std::env::temp_dir().join(format!("oc-advisory-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        "\\set id random(1, 1000000000)\nSELECT pg_advisory_lock(:id);\nSELECT pg_advisory_unlock(:id);\n",
    )?;
    let out = std::process::Command::new(bin.join("pgbench"))
        .arg("-h")
        .arg(pg.socket_dir())
        .args([
            "-p", "5432", "-U", "postgres", "-n", "-M", "prepared", "-c", "16", "-j", "2",
        ])
        .args(["-t", &(PAIRS_16 * 4 / 16).to_string(), "-f"])
        .arg(&script)
        .arg("postgres")
        .output()?;
    std::fs::remove_file(&script)?;
    anyhow::ensure!(
        out.status.success(),
        "pgbench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tps = pgbench_tps(&String::from_utf8_lossy(&out.stdout))?;
    f.add("pg.pgbench_advisory_16c", "pairs/s", tps);
    f.add("pg.lock_pair16_over_1t", "x", sixteen / one);
    f.add("pg.lock_pair16_over_pgbench", "x", sixteen / tps);
    Ok(())
}

/// The `tps = …` figure of `pgbench`'s report.
fn pgbench_tps(text: &str) -> anyhow::Result<f64> {
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("tps = "))
        .and_then(|l| l.split_whitespace().next())
        .context("no tps in pgbench's output")?
        .parse()?)
}

/// `pg.claim_complete_1t` and `pg.claim_complete_16t` (jobs/s): what an agent does with each
/// task, one `claim_next` and one `complete` with the lease token, on 1 and 16 threads (pool
/// 16), in a schema of its own; and `pg.server_cpu_per_job_ms_1t`, `pg.server_cpu_per_job_ms`
/// (16 threads): the server's CPU time per job, user and system of the postmaster and every
/// backend (from `/proc`, including the backends that ended), over the jobs done; and
/// `pg.jobs_create_many` (tasks/s): the 18,000 jobs created first, in batches of 1,000.
fn job_figures(
    f: &mut Figures,
    pg: &oc_postgres::testkit::PgServer,
    run: usize,
) -> anyhow::Result<()> {
    use oc_postgres::{PgOptions, PgTaskStore};
    use oc_tasks::{Change, NewTask};

    const ONE: usize = 2_000;
    const SIXTEEN: usize = 16_000;
    let opts = PgOptions::new(&pg.url("postgres"))?
        .schema(&format!("jobs{run}"))?
        .pool_size(16);
    let store = Arc::new(PgTaskStore::connect(opts)?);
    let started = std::time::Instant::now();
    for b in 0..(ONE + SIXTEEN) / 1000 {
        store.create_many(
            (0..1000)
                .map(|i| NewTask::new(format!("j{b}-{i}")))
                .collect(),
        )?;
    }
    f.add(
        "pg.jobs_create_many",
        "tasks/s",
        per_sec(ONE + SIXTEEN, started.elapsed()),
    );
    pg.psql("postgres", &format!("ANALYZE jobs{run}.tasks"))?;
    for (threads, jobs, name, cpu) in [
        (
            1,
            ONE,
            "pg.claim_complete_1t",
            "pg.server_cpu_per_job_ms_1t",
        ),
        (
            16,
            SIXTEEN,
            "pg.claim_complete_16t",
            "pg.server_cpu_per_job_ms",
        ),
    ] {
        let per = jobs / threads;
        let cpu_before = server_cpu_ms(pg)?;
        let started = std::time::Instant::now();
        std::thread::scope(|s| -> anyhow::Result<()> {
            let hs: Vec<_> = (0..threads)
                .map(|t| {
                    let store = store.clone();
                    s.spawn(move || -> anyhow::Result<()> {
                        for _ in 0..per {
                            let task = store
                                .claim_next(&format!("w{t}"), Duration::from_secs(600))?
                                .context("ran out of pending tasks")?;
                            let token = task.lease.map(|l| l.token);
                            store.apply(
                                &task.id,
                                Change::Complete {
                                    token,
                                    result: None,
                                },
                                None,
                            )?;
                        }
                        Ok(())
                    })
                })
                .collect();
            for h in hs {
                h.join()
                    .map_err(|_| anyhow::anyhow!("a job thread panicked"))??;
            }
            Ok(())
        })?;
        let elapsed = started.elapsed();
        let cpu_ms = server_cpu_ms(pg)? - cpu_before;
        f.add(name, "jobs/s", per_sec(per * threads, elapsed));
        f.add(cpu, "ms", cpu_ms / (per * threads) as f64);
    }
    Ok(())
}

/// The CPU time (user and system, in milliseconds) the server of `pg` used so far: its
/// postmaster's own and that of the children it reaped, and each live child's (`/proc`).
fn server_cpu_ms(pg: &oc_postgres::testkit::PgServer) -> anyhow::Result<f64> {
    let pid_file = std::fs::read_to_string(pg.socket_dir().join("data/postmaster.pid"))
        .context("reading the server's postmaster.pid")?;
    let postmaster: u32 = pid_file
        .lines()
        .next()
        .context("an empty postmaster.pid")?
        .trim()
        .parse()?;
    // (ppid, utime + stime, cutime + cstime) of a process, in clock ticks.
    let stat = |pid: u32| -> Option<(u32, u64, u64)> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &text[text.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // After the name: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14).
        Some((u32::try_from(n(1)?).ok()?, n(11)? + n(12)?, n(13)? + n(14)?))
    };
    let (_, own, reaped) = stat(postmaster).context("the postmaster is gone")?;
    let mut ticks = own + reaped;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some((ppid, live, done)) = stat(pid)
            && ppid == postmaster
        {
            ticks += live + done;
        }
    }
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    Ok(ticks as f64 * 1000.0 / hz)
}

/// The task-file store's `pg.*` figures alone, on a server of their own with the settings of
/// [`figures`]'s.
pub(crate) fn files_figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    if oc_postgres::testkit::server_binaries().is_none() {
        eprintln!("pg file figures skipped: no PostgreSQL server binaries");
        return Ok(());
    }
    let pg = oc_postgres::testkit::PgServer::start()?;
    crate::files::pg_figures(&pg, runs, quick)
}
