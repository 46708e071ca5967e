//! Rendered values equal the stores' truth; labels are escaped.

use std::sync::Arc;
use std::time::Duration;

use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::{LockManager, LockRequest, SqliteLockManager};
use oc_metrics::{Exporter, LatencyTracker, PerformanceGoals, Sources, collect};
use oc_tasks::{ManualClock, NewTask, SqliteTaskStore, Timestamp};

fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))[series.len() + 1..]
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn rendered_values_match_the_stores() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("opencode.db");
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let store = Arc::new(
        SqliteTaskStore::options()
            .clock(Arc::new(clock.clone()))
            .open(&db)
            .unwrap(),
    );
    let exporter = Exporter::new().unwrap();
    let hooks = Arc::new(Hooks::new());
    let life = TaskLifecycle::new(store.clone(), hooks.clone());
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(
            life.create(NewTask::new(format!("t{i}")))
                .unwrap()
                .into_task()
                .id,
        );
    }
    // Runs of 2 s, 7 s and 400 s land in the buckets 5, 10 and +Inf.
    for (id, secs, ok) in [
        (&ids[0], 2, true),
        (&ids[1], 7, true),
        (&ids[2], 400, false),
    ] {
        life.start(id, "a").unwrap();
        clock.advance(Duration::from_secs(secs));
        if ok {
            life.complete(id, None, None).unwrap();
        } else {
            life.fail(id, None, "x").unwrap();
        }
    }
    life.cancel(&ids[3]).unwrap();
    // Of the two pending tasks, one waits for the failed one.
    oc_tasks::TaskStore::add_dependency(&*store, &ids[5], &ids[2]).unwrap();
    // The agents' own log lines (transitions are the store's history, not log lines).
    let files = oc_jsonl::DirFileStore::new(dir.path());
    for i in 0..4 {
        oc_jsonl::TaskFileStore::append_log(
            &files,
            ids[0].as_str(),
            &oc_jsonl::LogEntry::new(
                Timestamp::now(),
                oc_jsonl::Level::Info,
                ids[0].as_str(),
                format!("step {i}"),
            ),
        )
        .unwrap();
    }
    let locks = SqliteLockManager::open(&db).unwrap();
    locks
        .try_acquire(&LockRequest::exclusive("repo/src", "a").unwrap())
        .unwrap();
    assert!(
        locks
            .try_acquire(&LockRequest::exclusive("repo/src/x", "b").unwrap())
            .is_err()
    );
    let tracker = LatencyTracker::new(Duration::from_secs(1));
    for ms in 1..=100 {
        tracker.record("db_query", Duration::from_millis(ms));
    }

    let snap = collect(
        &Sources::new(&*store)
            .storage(&store)
            .locks(&locks)
            .files(&files)
            .latency(&tracker, PerformanceGoals::default())
            .hooks(&hooks),
    )
    .unwrap();
    let text = exporter.render(&snap);
    // The samples alert rules read are the rendered series.
    assert_eq!(
        snap.value("opencode_tasks", &[("status", "failed")]),
        Some(1.0)
    );
    assert_eq!(
        snap.value("opencode_tasks", &[]),
        Some(6.0),
        "summed over statuses"
    );
    assert_eq!(snap.value("opencode_tasks", &[("status", "nope")]), None);
    for s in snap.samples() {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect();
        let series = if labels.is_empty() {
            s.def.name.to_owned()
        } else {
            format!("{}{{{}}}", s.def.name, labels.join(","))
        };
        assert_eq!(value(&text, &series), s.value, "{series}");
    }
    assert_eq!(value(&text, "opencode_tasks_ready"), 1.0);
    assert_eq!(value(&text, "opencode_tasks_blocked"), 1.0);
    for (status, n) in [
        ("pending", 2.0),
        ("running", 0.0),
        ("completed", 2.0),
        ("failed", 1.0),
        ("cancelled", 1.0),
    ] {
        assert_eq!(
            value(&text, &format!("opencode_tasks{{status=\"{status}\"}}")),
            n,
            "{status}"
        );
    }
    assert_eq!(
        value(&text, "opencode_tasks_total{status=\"pending\"}"),
        6.0
    );
    assert_eq!(
        value(&text, "opencode_tasks_total{status=\"running\"}"),
        3.0
    );
    assert_eq!(value(&text, "opencode_lock_conflicts_total"), 1.0);
    assert_eq!(value(&text, "opencode_locks_active"), 1.0);
    for (le, count) in [
        ("1", 0.0),
        ("5", 1.0),
        ("10", 2.0),
        ("300", 2.0),
        ("+Inf", 3.0),
    ] {
        let bucket = format!("opencode_task_duration_seconds_bucket{{le=\"{le}\"}}");
        assert_eq!(value(&text, &bucket), count, "{bucket}");
    }
    assert_eq!(value(&text, "opencode_task_duration_seconds_sum"), 409.0);
    let st = store.storage_stats().unwrap();
    assert_eq!(
        value(&text, "opencode_db_size_bytes"),
        st.database_bytes() as f64
    );
    assert_eq!(value(&text, "opencode_log_appends_total"), 4.0);
    assert_eq!(
        value(
            &text,
            "opencode_performance_goal_violations{metric=\"dbQueryMs\"}"
        ),
        1.0,
        "p95 96 ms > 5 ms"
    );
    assert_eq!(
        value(
            &text,
            "opencode_operation_duration_seconds{operation=\"db_query\",percentile=\"p95\"}"
        ),
        0.096
    );
    assert!(value(&text, "process_resident_memory_bytes") > 0.0);
    assert_eq!(
        text.matches("# TYPE opencode_tasks gauge").count(),
        1,
        "HELP and TYPE once per metric"
    );
    assert!(text.contains("# HELP opencode_tasks_total "));
}

#[test]
fn awkward_label_values_are_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteTaskStore::open(dir.path().join("opencode.db")).unwrap();
    let hooks = Hooks::new();
    hooks.after(
        "quote\" back\\slash new\nline",
        &[],
        0,
        |_| Err("no".into()),
    );
    let life = TaskLifecycle::new(
        Arc::new(oc_tasks::MemoryTaskStore::new()),
        Arc::new(Hooks::new()),
    );
    let _ = life;
    let mut report = oc_hooks::HookReport::default();
    hooks.run_after(
        &oc_hooks::TaskEvent::Created {
            task: NewTask::new("x").into_task(Timestamp::EPOCH).unwrap(),
        },
        &mut report,
    );
    let text = Exporter::new()
        .unwrap()
        .render(&collect(&Sources::new(&store).hooks(&hooks)).unwrap());
    assert!(
        text.contains(r#"opencode_hook_failures_total{hook="quote\" back\\slash new\nline"} 1"#),
        "{text}"
    );
    promtool_accepts(&text);
}

/// Prometheus's own parser accepts `text` (when `promtool` is installed; CI requires it).
fn promtool_accepts(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut c) = spawned else {
        assert!(
            std::env::var_os("OC_REQUIRE_PROMTOOL").is_none(),
            "promtool is required here but missing"
        );
        eprintln!("promtool not installed: skipping its check");
        return;
    };
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn lock_waits_and_log_fsyncs_are_observed_as_they_happen() {
    use oc_jsonl::{Durability, JsonlWriter, WriterOptions};
    use oc_locks::MemoryLockManager;

    let exporter = Exporter::new().unwrap();
    let locks = Arc::new(exporter.timed_locks(MemoryLockManager::new()));
    let held = locks
        .acquire(
            &LockRequest::exclusive("repo/a", "holder").unwrap(),
            Duration::ZERO,
        )
        .unwrap();
    let waiter = {
        let locks = locks.clone();
        std::thread::spawn(move || {
            let req = LockRequest::exclusive("repo/a", "waiter").unwrap();
            locks.acquire(&req, Duration::from_secs(30))
        })
    };
    // The waiter is queued before the holder lets go.
    while locks.stats().unwrap().waiting == 0 {
        std::thread::yield_now();
    }
    std::thread::sleep(Duration::from_millis(60));
    locks.release(&held.resource, &held.owner).unwrap();
    assert!(waiter.join().unwrap().is_ok());
    // A timed-out request is observed too; a zero-wait one is not.
    let timeout = locks.acquire(
        &LockRequest::exclusive("repo/a", "late").unwrap(),
        Duration::from_millis(20),
    );
    assert!(
        matches!(timeout, Err(oc_locks::Error::Timeout { .. })),
        "{timeout:?}"
    );
    assert!(
        locks
            .try_acquire(&LockRequest::exclusive("repo/a", "late").unwrap())
            .is_err()
    );

    let dir = tempfile::tempdir().unwrap();
    let opts = WriterOptions {
        durability: Durability::Fsync,
        ..Default::default()
    };
    let log = JsonlWriter::open(dir.path().join("logs.jsonl"), opts)
        .unwrap()
        .observe_fsync(exporter.fsync_observer());
    for i in 0..3 {
        log.append(&i).unwrap();
    }
    log.sync().unwrap();

    let text = exporter.render(
        &collect(&Sources::new(
            &SqliteTaskStore::open(dir.path().join("o.db")).unwrap(),
        ))
        .unwrap(),
    );
    assert_eq!(
        value(&text, "opencode_lock_wait_seconds_count"),
        2.0,
        "{text}"
    );
    let waited = value(&text, "opencode_lock_wait_seconds_sum");
    assert!(waited >= 0.06 + 0.02, "waited {waited}s");
    assert_eq!(
        value(&text, "opencode_log_fsync_seconds_count"),
        4.0,
        "{text}"
    );
    assert!(
        text.contains("opencode_log_fsync_seconds_bucket{le=\"+Inf\"} 4"),
        "{text}"
    );
    promtool_accepts(&text);
}

#[test]
fn log_volume_never_follows_a_link_in_the_data_directory() {
    use oc_jsonl::{DirFileStore, Level, LogEntry, TaskFileStore, TaskFiles};
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let entry = |m: &str| LogEntry::new(oc_time::Timestamp::from_millis(1), Level::Info, "t", m);
    let real = TaskFiles::new(&data, "real").unwrap();
    real.append_log(&entry("a")).unwrap();
    real.append_log(&entry("b")).unwrap();
    // Someone else's directory linked in as a task, and a task whose log is a link.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let line = serde_json::to_string(&entry("theirs")).unwrap();
    std::fs::write(
        outside.join("logs.jsonl"),
        format!("{line}\n{line}\n{line}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&outside, data.join("tasks/linked")).unwrap();
    let odd = TaskFiles::new(&data, "odd").unwrap();
    std::fs::create_dir_all(odd.dir()).unwrap();
    std::os::unix::fs::symlink(outside.join("logs.jsonl"), odd.log_path()).unwrap();
    let store = oc_tasks::MemoryTaskStore::new();
    let files = DirFileStore::new(&data);
    let v = collect(&Sources::new(&store).files(&files)).unwrap().logs;
    let v = v.unwrap();
    assert_eq!((v.tasks, v.files, v.entries), (1, 1, 2), "{v:?}");
    // The same through the trait object a server holds.
    let shared: Arc<dyn TaskFileStore> = Arc::new(DirFileStore::new(&data));
    let v = collect(&Sources::new(&store).files(&*shared)).unwrap().logs;
    assert_eq!(v.map(|v| (v.tasks, v.entries)), Some((1, 2)));
}
