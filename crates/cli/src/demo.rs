//! `oc demo`: simulated agents doing real work against the embedded store.
//!
//! The work is planned as a graph: in each group of five tasks, the second and third wait for
//! the first, the fourth and fifth for the third ("design, then the migration, then the
//! handler, then its tests and docs"). Tasks on documentation carry the label `docs`: one
//! agent (when there are three or more) takes only those, the others everything else.
//!
//! Each agent is a thread that claims the next ready task it takes with a lease, heartbeats
//! while it "works", then completes or fails it. Now and then an agent "crashes" (drops a task
//! without finishing it); a reaper thread returns such tasks to pending once their lease
//! lapses, and another agent picks them up. A failed run goes back to pending after a short
//! backoff (the tasks' retry policy) until its attempts are spent; the tasks that wait for a
//! task failed for good are cancelled. At the end the demo reads every task's history and
//! checks that no task started before all its dependencies had completed.
//!
//! Before "editing", an agent takes an exclusive lock on the file its task targets (or on a
//! whole directory, for refactors) in the lock manager that shares the database file, renews it
//! with its heartbeats, and releases it when done; a crashed agent's lock lapses with its TTL.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::collections::BTreeMap;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_jsonl::{Append, Decision, Level, LogEntry, TaskFileStore};
use oc_locks::{LockManager, LockRequest};
use oc_metrics::{LatencyTracker, PerformanceGoals};
use oc_tasks::{
    Error, EventKind, LabelFilter, NewTask, RetryPolicy, Task, TaskFilter, TaskId, TaskQuery,
    TaskStatus, TaskStore,
};
use oc_time::Timestamp;
use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::Site;
use crate::UsageError;
use crate::args::DemoArgs;
use crate::output::Output;
use crate::task::{RECENT, render_stats};

/// Lease the demo agents take: short, so crashed claims come back quickly.
const LEASE: Duration = Duration::from_millis(800);
/// Lock TTL: long enough for the work, short enough that a crashed agent's lock lapses soon.
const LOCK_TTL: Duration = Duration::from_secs(1);
/// How long an agent waits for another agent's lock on its file.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const FAIL_RATE: f64 = 0.10;
const CRASH_RATE: f64 = 0.02;
/// The label of documentation tasks, which only the docs agent takes.
const DOCS: &str = "docs";

#[derive(Debug, Default, Serialize)]
struct Summary {
    agents: usize,
    tasks: usize,
    claims: u64,
    completed: u64,
    failed: u64,
    retried: u64,
    crashed: u64,
    reaped: u64,
    lost_leases: u64,
    vetoed: u64,
    /// Dependency edges planned.
    dependencies: u64,
    /// Tasks cancelled because a task they waited for failed for good.
    cancelled: u64,
    /// Claims of a task before all its dependencies had completed (read back from the
    /// histories): must be none.
    early_starts: Vec<String>,
    hook_events: BTreeMap<EventKind, u64>,
    elapsed_ms: u64,
}

#[derive(Default)]
struct Counters {
    claims: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    crashed: AtomicU64,
    reaped: AtomicU64,
    lost_leases: AtomicU64,
    cancelled: AtomicU64,
    /// Demo tasks that reached a final state (completed, or failed with no retry left).
    finished: AtomicU64,
}

struct Shared {
    latency: Arc<LatencyTracker>,
    life: TaskLifecycle,
    files: Arc<dyn TaskFileStore>,
    tasks: crate::Tasks,
    store: Arc<dyn TaskStore>,
    locks: Arc<dyn LockManager>,
    ours: HashSet<TaskId>,
    counters: Counters,
    done: AtomicBool,
    progress: ProgressBar,
}

impl Shared {
    fn finish_one(&self) {
        let n = self.counters.finished.fetch_add(1, Ordering::Relaxed) + 1;
        self.progress.set_position(n);
        if n as usize >= self.ours.len() {
            self.done.store(true, Ordering::Relaxed);
        }
    }
}

pub(crate) fn run(site: &Site, args: DemoArgs, out: &mut Output) -> anyhow::Result<()> {
    if args.agents == 0 || args.agents > 64 {
        return Err(UsageError("--agents must be between 1 and 64".into()).into());
    }
    if args.tasks == 0 || args.tasks > 100_000 {
        return Err(UsageError("--tasks must be between 1 and 100000".into()).into());
    }
    let tasks = site.tasks()?;
    let store = tasks.store();
    let locks = site.locks()?;
    // Hooks: one counts every committed event, one vetoes a class of tasks.
    let hooks = Arc::new(Hooks::new());
    let events: Arc<Mutex<BTreeMap<EventKind, u64>>> = Arc::default();
    let counted = events.clone();
    hooks.after("count-events", &[], 100, move |ev| {
        *counted.lock().entry(ev.kind()).or_default() += 1;
        Ok(())
    });
    hooks.before("no-forbidden-tasks", &[EventKind::Created], 0, |ev| {
        if ev.task().name.starts_with("forbidden-") {
            Err("forbidden-* tasks are not for agents".into())
        } else {
            Ok(())
        }
    });
    let life = TaskLifecycle::new(store.clone(), hooks.clone());
    // The seed's response-time tracking, checked against its performance goals at the end.
    let latency = Arc::new(LatencyTracker::new(Duration::from_secs(1)));
    let seed = args
        .seed
        .unwrap_or_else(|| SmallRng::from_os_rng().random());
    let mut rng = SmallRng::seed_from_u64(seed);
    let run_id = format!("demo-{}", store.now().as_millis());
    let files = [
        "src/lib.rs",
        "src/main.rs",
        "src/store.rs",
        "src/query.rs",
        "src/error.rs",
        "tests/it.rs",
        "tests/model.rs",
        "docs/guide.md",
        "README.md",
        "Cargo.toml",
    ];
    let ids: Vec<TaskId> = (0..args.tasks).map(|_| TaskId::generate()).collect();
    let mut dependencies = 0u64;
    let new: Vec<NewTask> = (0..args.tasks)
        .map(|i| {
            // Every tenth task refactors the whole src directory, overlapping the file edits.
            let (what, target) = if i % 10 == 9 {
                ("refactor", "src")
            } else {
                (verb(&mut rng), files[i % files.len()])
            };
            // Every twenty-fifth is one the veto hook refuses (the last of a group: nothing
            // waits for it).
            let prefix = if i % 25 == 24 { "forbidden-" } else { "" };
            let mut t = NewTask::new(format!("{prefix}{what} #{i}: {target}"))
                .id(ids[i].clone())
                .priority(rng.random_range(0..5))
                .meta("demo_run", run_id.as_str())
                .meta("target", format!("repo/{target}"))
                .max_attempts(3)
                .retry(RetryPolicy::backoff(
                    Duration::from_millis(50),
                    Duration::from_millis(400),
                ));
            let group = i - i % 5;
            let waits_for = match i % 5 {
                1 | 2 => Some(group),
                3 | 4 => Some(group + 2),
                _ => None,
            };
            if let Some(d) = waits_for.filter(|d| *d < i) {
                t = t.depends_on(ids[d].clone());
                dependencies += 1;
            }
            if target.starts_with("docs") || target == "README.md" {
                t = t.label(DOCS);
            }
            t
        })
        .collect();
    let mut created = Vec::with_capacity(new.len());
    let mut vetoed = 0u64;
    for n in new {
        match latency.time("task_creation", || life.create(n)) {
            Ok(c) => created.push(c.into_task()),
            Err(e) if e.is_vetoed() => vetoed += 1,
            Err(e) => return Err(anyhow::Error::new(e).context("creating the demo tasks")),
        }
    }
    let progress = if out.tty && !out.json && !out.quiet {
        let pb =
            ProgressBar::with_draw_target(Some(created.len() as u64), ProgressDrawTarget::stdout());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {pos}/{len} tasks finished [{elapsed}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    } else {
        ProgressBar::hidden()
    };
    let planned = created.len() as u64;
    let shared = Arc::new(Shared {
        latency: latency.clone(),
        life,
        files: site.files()?,
        tasks,
        store,
        locks,
        ours: created.into_iter().map(|t| t.id).collect(),
        counters: Counters::default(),
        done: AtomicBool::new(false),
        progress,
    });
    let started = Instant::now();
    std::thread::scope(|s| -> anyhow::Result<()> {
        let reaper = s.spawn(|| reaper(&shared));
        let agents: Vec<_> = (0..args.agents)
            .map(|a| {
                let shared = &shared;
                let seed = seed.wrapping_add(a as u64 + 1);
                // With three agents or more, the first writes the docs and nothing else.
                let takes = match (args.agents >= 3, a) {
                    (true, 0) => LabelFilter::any().require(DOCS),
                    (true, _) => LabelFilter::any().exclude(DOCS),
                    (false, _) => LabelFilter::any(),
                };
                let name = if matches!((args.agents >= 3, a), (true, 0)) {
                    "docs-agent".to_owned()
                } else {
                    format!("agent-{}", a + 1)
                };
                std::thread::Builder::new()
                    .name(name.clone())
                    .spawn_scoped(s, move || agent(shared, &name, &takes, seed))
            })
            .collect::<Result<_, _>>()
            .context("spawning agent threads")?;
        let mut first_err = None;
        for h in agents {
            let r = h
                .join()
                .map_err(|_| anyhow::anyhow!("an agent thread panicked"));
            if let Err(e) = r.and_then(|r| r) {
                shared.done.store(true, Ordering::Relaxed);
                first_err.get_or_insert(e);
            }
        }
        shared.done.store(true, Ordering::Relaxed);
        let r = reaper
            .join()
            .map_err(|_| anyhow::anyhow!("the reaper thread panicked"));
        if let Err(e) = r.and_then(|r| r) {
            first_err.get_or_insert(e);
        }
        first_err.map_or(Ok(()), Err)
    })?;
    shared.progress.finish_and_clear();
    let c = &shared.counters;
    let summary = Summary {
        agents: args.agents,
        tasks: planned as usize,
        claims: c.claims.load(Ordering::Relaxed),
        completed: c.completed.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        retried: c.retried.load(Ordering::Relaxed),
        crashed: c.crashed.load(Ordering::Relaxed),
        reaped: c.reaped.load(Ordering::Relaxed),
        lost_leases: c.lost_leases.load(Ordering::Relaxed),
        vetoed,
        dependencies,
        cancelled: c.cancelled.load(Ordering::Relaxed),
        early_starts: early_starts(&*shared.store, &shared.ours)?,
        hook_events: events.lock().clone(),
        elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    let stats = shared.store.stats(RECENT)?;
    let timings = shared.latency.all();
    let violations = PerformanceGoals::default().check(&shared.latency);
    let lock_stats = shared.locks.stats()?;
    let snap = oc_metrics::collect(
        &shared
            .tasks
            .sources()
            .locks(&*shared.locks)
            .latency(&shared.latency, PerformanceGoals::default()),
    )?;
    let alerts = crate::alerts::would_fire(&snap)?;
    let doc = serde_json::json!({
        "run": run_id, "seed": seed, "summary": summary,
        "task_stats": stats.to_json(), "lock_stats": lock_stats,
        "latency": timings, "goal_violations": violations, "alerts": alerts,
    });
    out.emit("demo", &doc, |w, _| {
        writeln!(w, "Demo {run_id}: {} agents worked through {} tasks in {:.1}s", summary.agents, summary.tasks, summary.elapsed_ms as f64 / 1000.0)?;
        writeln!(
            w,
            "  claims {}, completed {}, failed {}, retried {}, crashed agents {}, reaped leases {}, lost leases {}",
            summary.claims, summary.completed, summary.failed, summary.retried, summary.crashed, summary.reaped, summary.lost_leases
        )?;
        let counts: Vec<String> = summary.hook_events.iter().map(|(k, n)| format!("{k} {n}")).collect();
        writeln!(w, "  hooks saw: {}; vetoed {} forbidden-* task(s) at creation", counts.join(", "), summary.vetoed)?;
        if summary.early_starts.is_empty() {
            writeln!(w, "  work graph: {} dependencies; every task started after all it waits for completed ({} cancelled behind a final failure)", summary.dependencies, summary.cancelled)?;
        } else {
            writeln!(w, "  work graph: {} task(s) started before their dependencies completed: {}", summary.early_starts.len(), summary.early_starts.join("; "))?;
        }
        writeln!(w)?;
        render_stats(w, &stats)?;
        writeln!(w)?;
        crate::lock::render_stats(w, &lock_stats)?;
        writeln!(w)?;
        writeln!(w, "Latency (ms, last {} calls)", oc_metrics::WINDOW)?;
        writeln!(w, "  {:<20} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8}", "operation", "count", "avg", "p50", "p95", "p99", "max")?;
        for t in &timings {
            writeln!(w, "  {:<20} {:>6} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}", t.operation, t.count, t.avg_ms, t.p50_ms, t.p95_ms, t.p99_ms, t.max_ms)?;
        }
        if violations.is_empty() {
            writeln!(w, "Performance goals: all met")?;
        } else {
            writeln!(w, "Performance goals missed:")?;
            violations.iter().try_for_each(|v| writeln!(w, "  - {}: goal {} ms, p95 {:.2} ms", v.metric, v.goal, v.actual))?;
        }
        writeln!(w)?;
        if alerts.is_empty() {
            writeln!(w, "Alerts: none of the built-in rules would fire")
        } else {
            writeln!(w, "Alerts this run would fire (built-in rules, `oc alerts check` to evaluate and send):")?;
            alerts.iter().try_for_each(|a| writeln!(w, "  - [{}] {}: {}", a.severity, a.rule, a.description))
        }
    })
}

fn verb(rng: &mut SmallRng) -> &'static str {
    const VERBS: [&str; 6] = ["refactor", "fix", "document", "test", "review", "optimise"];
    VERBS[rng.random_range(0..VERBS.len())]
}

/// One agent: claim (what it takes), work with heartbeats, then complete, fail, or crash.
fn agent(shared: &Shared, base: &str, takes: &LabelFilter, seed: u64) -> anyhow::Result<()> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let store = &shared.store;
    // A crashed agent comes back as a new incarnation, so it owns none of what it left behind.
    let mut me = base.to_owned();
    let mut incarnation = 1;
    while !shared.done.load(Ordering::Relaxed) {
        let name = me.as_str();
        let claimed = shared.latency.time("db_query", || {
            shared.life.claim_next_matching(name, LEASE, takes)
        })?;
        let Some(task) = claimed.map(|c| c.into_task()) else {
            // Nothing ready: crashed claims are still leased; wait for the reaper.
            std::thread::sleep(Duration::from_millis(20));
            continue;
        };
        shared.counters.claims.fetch_add(1, Ordering::Relaxed);
        let token = task.lease.map(|l| l.token);
        // The task's own files: its log, its decisions, its checkpoints.
        let (files, id) = (&*shared.files, task.id.as_str());
        let log = |level: Level, message: String| {
            let entry = LogEntry::new(Timestamp::now(), level, id, message).with("agent", name);
            shared
                .latency
                .time("log_append", || files.append_log(id, &entry))
        };
        log(
            Level::Info,
            format!("claimed by {name} (attempt {})", task.attempts),
        )?;
        // Lock what the task edits before touching it.
        let target = task
            .metadata
            .get("target")
            .and_then(|t| t.as_str())
            .unwrap_or("repo");
        let req = LockRequest::exclusive(target, name)?.ttl(LOCK_TTL);
        let file_lock = match lock_with_heartbeats(shared, &req, &task.id, token) {
            Ok(l) => l,
            Err(e) if e.is_conflict() => {
                // Could not get the file in time: give the task back as a failure (it is retried).
                match shared
                    .life
                    .fail(&task.id, token, &format!("could not lock {target}: {e}"))
                {
                    Ok(c) => finished(shared, c.task())?,
                    Err(e) => {
                        lease_lost(shared, e)?;
                    }
                }
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        // Work in slices, heartbeating between them as a real agent would.
        let slices = rng.random_range(1..4);
        let mut lost = false;
        files.append_decision(
            id,
            &Decision {
                timestamp: Timestamp::now(),
                agent: name.to_owned(),
                decision: format!("edit {target} in {slices} step(s)"),
                reasoning: "small steps keep the lock short and the heartbeats regular".into(),
                metadata: Default::default(),
            },
            &Append::durable(),
        )?;
        files.save_state(
            id,
            &serde_json::json!({ "target": target, "steps": slices, "done": 0 }),
        )?;
        for step in 0..slices {
            std::thread::sleep(Duration::from_millis(rng.random_range(2..12)));
            log(
                Level::Debug,
                format!("step {} of {slices} on {target}", step + 1),
            )?;
            if let Some(t) = token
                && let Err(e) = store.heartbeat(&task.id, t, LEASE)
            {
                lost = lease_lost(shared, e.into())?;
                break;
            }
            shared
                .locks
                .renew(&file_lock.resource, &file_lock.owner, Some(LOCK_TTL))?;
        }
        let roll: f64 = rng.random();
        if !lost && roll < CRASH_RATE {
            // Walk away without a word: the lease and the file lock lapse; the reaper takes over.
            shared.counters.crashed.fetch_add(1, Ordering::Relaxed);
            incarnation += 1;
            me = format!("{base}.{incarnation}");
            continue;
        }
        shared
            .locks
            .release(&file_lock.resource, &file_lock.owner)?;
        if lost {
            continue;
        }
        let outcome = if roll < CRASH_RATE + FAIL_RATE {
            log(Level::Error, "tests did not pass".into())?;
            shared
                .life
                .fail(&task.id, token, "simulated failure: tests did not pass")
        } else {
            files.save_state(
                id,
                &serde_json::json!({ "target": target, "steps": slices, "done": slices }),
            )?;
            shared.latency.time("checkpoint_creation", || {
                files.create_checkpoint(id, "before completion", Timestamp::now())
            })?;
            log(Level::Info, format!("completed {target}"))?;
            shared.life.complete(
                &task.id,
                token,
                Some(serde_json::json!({"edited": true, "agent": name})),
            )
        };
        match outcome {
            Ok(c) => finished(shared, c.task())?,
            Err(e) => {
                lease_lost(shared, e)?;
            }
        }
    }
    Ok(())
}

/// Waits up to `LOCK_WAIT` for the file lock in short rounds, heartbeating the task's lease
/// between them so that waiting for a busy file does not look like a crash.
fn lock_with_heartbeats(
    shared: &Shared,
    req: &LockRequest,
    task: &TaskId,
    token: Option<u64>,
) -> oc_locks::Result<oc_locks::Lock> {
    let round = Duration::from_millis(250);
    let mut waited = Duration::ZERO;
    loop {
        match shared
            .latency
            .time("lock_acquisition", || shared.locks.acquire(req, round))
        {
            Err(oc_locks::Error::Timeout { .. }) if waited + round < LOCK_WAIT => {
                waited += round;
                if let Some(t) = token {
                    // A lost lease shows up when the agent next heartbeats or finishes.
                    let _ = shared.store.heartbeat(task, t, LEASE);
                }
            }
            other => return other,
        }
    }
}

/// Counts a lost lease (the reaper was faster); any other error ends the agent.
fn lease_lost(shared: &Shared, e: oc_hooks::Error) -> anyhow::Result<bool> {
    if matches!(e, oc_hooks::Error::Task(Error::LeaseLost { .. })) {
        shared.counters.lost_leases.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    } else {
        Err(e.into())
    }
}

fn finished(shared: &Shared, t: &Task) -> anyhow::Result<()> {
    let c = &shared.counters;
    match t.status {
        TaskStatus::Completed => {
            c.completed.fetch_add(1, Ordering::Relaxed);
        }
        // The retry policy put it back to pending, after a backoff.
        TaskStatus::Pending => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            c.retried.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        TaskStatus::Failed => {
            c.failed.fetch_add(1, Ordering::Relaxed);
            cancel_dependents(shared, &t.id)?;
        }
        _ => return Ok(()),
    }
    if shared.ours.contains(&t.id) {
        shared.finish_one();
    }
    Ok(())
}

/// Cancels what waits, directly or not, for a task that failed for good, as a supervisor
/// would: it can never become ready.
fn cancel_dependents(shared: &Shared, failed: &TaskId) -> anyhow::Result<()> {
    let mut todo = vec![failed.clone()];
    while let Some(id) = todo.pop() {
        let q = TaskQuery::new(TaskFilter::new().dependents_of(id)).limit(1000);
        for t in shared.store.list(&q)?.tasks {
            match shared.life.cancel(&t.id) {
                Ok(_) => {
                    shared.counters.cancelled.fetch_add(1, Ordering::Relaxed);
                    if shared.ours.contains(&t.id) {
                        shared.finish_one();
                    }
                    todo.push(t.id);
                }
                // Cancelled already, behind another failure.
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The claims of the demo's tasks that came before one of their dependencies completed, read
/// back from the stores' histories (each entry stamped in the transaction that made it).
fn early_starts(store: &dyn TaskStore, ours: &HashSet<TaskId>) -> anyhow::Result<Vec<String>> {
    let mut completed_at = BTreeMap::new();
    let mut tasks = Vec::with_capacity(ours.len());
    for id in ours {
        let Some(t) = store.get(id)? else { continue };
        let history = store.history(id)?;
        if let Some(done) = history.iter().find(|h| h.kind == EventKind::Completed) {
            completed_at.insert(id.clone(), done.at);
        }
        tasks.push((t, history));
    }
    let mut early = Vec::new();
    for (t, history) in tasks {
        for claim in history
            .iter()
            .filter(|h| matches!(h.kind, EventKind::Claimed | EventKind::Started))
        {
            for d in &t.depends_on {
                if completed_at.get(d).is_none_or(|done| claim.at < *done) {
                    early.push(format!("{} claimed before {d} completed", t.id));
                }
            }
        }
    }
    Ok(early)
}

/// Returns lapsed claims to pending every 100 ms.
fn reaper(shared: &Shared) -> anyhow::Result<()> {
    while !shared.done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        for c in shared.life.reap(shared.store.now())? {
            shared.counters.reaped.fetch_add(1, Ordering::Relaxed);
            let t = c.task();
            if t.status == TaskStatus::Failed {
                cancel_dependents(shared, &t.id)?;
                if shared.ours.contains(&t.id) {
                    shared.finish_one();
                }
            }
        }
    }
    Ok(())
}
