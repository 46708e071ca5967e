//! `oc demo` works through every task it creates, concurrently, and reports the statistics.

use crate::util::Oc;

#[test]
fn demo_finishes_every_task() {
    let oc = Oc::new();
    let d = oc.json(&["demo", "--agents", "4", "--tasks", "60", "--seed", "7"]);
    let s = &d["summary"];
    let st = &d["task_stats"];
    // Two of the sixty (#24 and #49) are forbidden-* tasks the veto hook refuses.
    assert_eq!(s["vetoed"], 2, "{d}");
    assert_eq!(st["total"], 58);
    assert_eq!(
        s["hook_events"]["created"], 58,
        "the counting hook saw every creation"
    );
    assert_eq!(s["hook_events"]["completed"], st["by_status"]["completed"]);
    assert_eq!(st["by_status"]["pending"], 0, "{d}");
    assert_eq!(st["by_status"]["running"], 0, "{d}");
    let done = st["by_status"]["completed"].as_u64().unwrap()
        + st["by_status"]["failed"].as_u64().unwrap()
        + st["by_status"]["cancelled"].as_u64().unwrap();
    assert_eq!(done, 58);
    // The work was a graph, and no task started before what it waits for had completed.
    assert!(s["dependencies"].as_u64().unwrap() >= 40, "{s}");
    assert_eq!(s["early_starts"], serde_json::json!([]), "{s}");
    // Documentation tasks went to the docs agent, and only those.
    let all = oc.json(&["task", "list", "--limit", "100"]);
    for t in all["tasks"].as_array().unwrap() {
        let docs = t["labels"].as_array().unwrap().iter().any(|l| l == "docs");
        let owner = t["owner"].as_str().unwrap_or("");
        if t["status"] == "completed" {
            assert_eq!(docs, owner.starts_with("docs-agent"), "{t}");
        }
    }
    assert!(s["claims"].as_u64().unwrap() >= 58);
    assert_eq!(s["hook_events"]["claimed"], s["claims"]);
    assert_eq!(s["completed"], st["by_status"]["completed"]);
    // Agents logged, decided and checkpointed in each task's directory.
    let some = oc.json(&["task", "list", "--status", "completed", "--limit", "1"]);
    let id = some["tasks"][0]["id"].as_str().unwrap().to_owned();
    let history = oc.json(&["task-history", &id]);
    assert!(history["entries"].as_array().unwrap().iter().any(|e| {
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("completed: running -> completed")
    }));
    assert!(
        !oc.json(&["decisions", "list", &id])
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(
        !oc.json(&["checkpoint", "list", &id])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // The latency of the seed's five operations was tracked, and the goals checked.
    let ops: Vec<&str> = d["latency"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["operation"].as_str().unwrap())
        .collect();
    for op in [
        "checkpoint_creation",
        "db_query",
        "lock_acquisition",
        "log_append",
        "task_creation",
    ] {
        assert!(ops.contains(&op), "{op} in {ops:?}");
    }
    assert!(d["goal_violations"].is_array());
    let locks = &d["lock_stats"];
    assert!(
        locks["totalLocks"].as_u64().unwrap() >= 60,
        "every claim locked its file first: {locks}"
    );
    assert_eq!(locks["waiting"], 0);
    let owners = st["by_owner"].as_array().unwrap();
    assert!(owners.len() > 1, "several agents did work: {owners:?}");

    // A second run adds to the same store.
    let again = oc.json(&["demo", "--agents", "2", "--tasks", "10"]);
    assert_eq!(again["task_stats"]["total"], 68);
    let human = oc.run(&["demo", "--agents", "2", "--tasks", "5"]);
    assert!(
        human
            .stdout
            .contains("Task Statistics\n===============\nTotal Tasks: 73"),
        "{}",
        human.stdout
    );
}

/// A fresh process exports the run-duration histogram of the work other processes did: the
/// store counted each finished run, so nothing depends on the process that observed it.
#[test]
fn a_fresh_oc_metrics_has_the_demo_task_durations() {
    let oc = Oc::new();
    let d = oc.json(&["demo", "--agents", "3", "--tasks", "30", "--seed", "3"]);
    let st = &d["task_stats"]["by_status"];
    let finished = st["completed"].as_u64().unwrap() + st["failed"].as_u64().unwrap();
    let text = oc.run(&["metrics"]).stdout;
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    // One observation per finished run: the demo retries some failed tasks, and a histogram
    // never forgets a run (it only grows), so the count is the number of times tasks finished.
    let runs = value("opencode_tasks_total{status=\"completed\"}")
        + value("opencode_tasks_total{status=\"failed\"}");
    assert!(runs >= finished as f64);
    assert_eq!(
        value("opencode_task_duration_seconds_count"),
        runs,
        "{text}"
    );
    assert_eq!(
        value("opencode_task_duration_seconds_bucket{le=\"+Inf\"}"),
        runs
    );
    assert!(value("opencode_task_duration_seconds_sum") >= 0.0);
    crate::serve::promtool_check_metrics(&text);
}
