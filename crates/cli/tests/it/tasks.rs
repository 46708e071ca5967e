//! The task commands, end to end.

use serde_json::json;

use crate::util::Oc;

#[test]
fn create_show_list_find() {
    let oc = Oc::new();
    let t = oc.json(&[
        "task",
        "create",
        "Refactor parser",
        "--id",
        "p1",
        "--description",
        "split the lexer",
        "--owner",
        "agent-1",
        "--priority",
        "-2",
        "--metadata",
        r#"{"area":"Parser","n":1}"#,
    ]);
    assert_eq!(t["id"], "p1");
    assert_eq!(t["status"], "pending");
    assert_eq!(t["priority"], -2);
    assert_eq!(t["metadata"], json!({"area": "Parser", "n": 1}));
    assert_eq!(t["version"], 1);
    let shown = oc.json(&["task", "show", "p1"]);
    let mut t = t;
    assert_eq!(
        t.as_object_mut().unwrap().remove("duplicate"),
        Some(json!(false))
    );
    assert_eq!(shown, t);
    let human = oc.run(&["task", "show", "p1"]);
    assert!(
        human.stdout.contains("Description: split the lexer"),
        "{}",
        human.stdout
    );

    oc.run(&["task", "create", "Write docs", "--id", "d1"]);
    let listed = oc.json(&["task", "list"]);
    let ids: Vec<&str> = listed["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["d1", "p1"], "newest first");
    let found = oc.json(&["task", "find", "parser"]);
    assert_eq!(
        found["tasks"].as_array().unwrap().len(),
        1,
        "metadata and name search"
    );
    let page = oc.json(&["task", "list", "--limit", "1"]);
    let cursor = page["next"].as_str().unwrap().to_owned();
    let rest = oc.json(&["task", "list", "--limit", "1", "--after", &cursor]);
    assert_eq!(rest["tasks"][0]["id"], "p1");
    assert!(rest["next"].is_null());
    let quiet = oc.run(&[
        "--quiet", "task", "list", "--status", "pending", "--owner", "agent-1",
    ]);
    assert_eq!(quiet.stdout, "p1\n");
}

#[test]
fn claim_heartbeat_complete_with_tokens() {
    let oc = Oc::new();
    oc.run(&["task", "create", "a", "--id", "a", "--priority", "1"]);
    oc.run(&["task", "create", "b", "--id", "b", "--priority", "5"]);
    let claimed = oc.run(&[
        "--quiet", "task", "claim", "--next", "--agent", "w1", "--lease", "1m",
    ]);
    assert_eq!(claimed.code, 0);
    let (id, token) = claimed.stdout.trim().split_once(' ').unwrap();
    assert_eq!(id, "b", "highest priority first");
    let t = oc.json(&["task", "heartbeat", "b", "--token", token, "--lease", "2m"]);
    assert_eq!(t["lease"]["token"].to_string(), token);
    let wrong = oc.run(&["task", "release", "b", "--token", "999"]);
    assert_eq!(wrong.code, 4, "{wrong:?}");
    let back = oc.json(&["task", "release", "b", "--token", token]);
    assert_eq!(
        (&back["status"], &back["lease"]),
        (&json!("pending"), &json!(null))
    );
    let claimed = oc.run(&["--quiet", "task", "claim", "b", "--agent", "w1"]);
    let (_, token) = claimed.stdout.trim().split_once(' ').unwrap();
    let token = token.to_owned();
    let token = token.as_str();
    let stale = oc.run(&["task", "complete", "b", "--token", "999"]);
    assert_eq!(stale.code, 4, "{stale:?}");
    assert!(stale.stderr.contains("lease lost"), "{}", stale.stderr);
    let done = oc.json(&[
        "task",
        "complete",
        "b",
        "--token",
        token,
        "--result",
        r#"{"ok":true}"#,
    ]);
    assert_eq!(done["status"], "completed");
    assert_eq!(done["result"], json!({"ok": true}));

    let a = oc.json(&["task", "claim", "a", "--agent", "w2"]);
    let tok_a = a["lease"]["token"].as_u64().unwrap();
    assert!(
        tok_a > token.parse::<u64>().unwrap(),
        "tokens increase across processes"
    );
    let failed = oc.json(&[
        "task",
        "fail",
        "a",
        "--token",
        &tok_a.to_string(),
        "--error",
        "tests failed",
    ]);
    assert_eq!(
        (failed["status"].as_str(), failed["error"].as_str()),
        (Some("failed"), Some("tests failed"))
    );
    assert_eq!(oc.json(&["task", "retry", "a"])["status"], "pending");
    assert_eq!(
        oc.json(&["task", "start", "a", "--agent", "w3"])["owner"],
        "w3"
    );
    assert_eq!(oc.json(&["task", "cancel", "a"])["status"], "cancelled");
    assert_eq!(oc.json(&["task", "delete", "a"])["id"], "a");
    assert_eq!(oc.run(&["task", "show", "a"]).code, 3);
    // Every transition went through the lifecycle, so the task's log holds its whole history.
    let h = oc.json(&["task-history", "b"]);
    let events: Vec<&str> = h["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["created", "claimed", "released", "claimed", "completed"]
    );
    let none = oc.json(&["task", "claim", "--next", "--agent", "w"]);
    assert!(none.is_null(), "nothing pending is an answer, not an error");
}

#[test]
fn reap_returns_lapsed_claims() {
    let oc = Oc::new();
    oc.run(&["task", "create", "r", "--id", "r"]);
    // A 1 ms lease has lapsed by the time the next process starts.
    oc.json(&["task", "claim", "r", "--agent", "gone", "--lease", "1ms"]);
    let reaped = oc.json(&["task", "reap"]);
    assert_eq!(reaped[0]["task"]["id"], "r");
    assert_eq!(reaped[0]["task"]["status"], "pending");
    assert_eq!(reaped[0]["expired_owner"], "gone");
}

#[test]
fn task_stats_has_the_seed_layout() {
    let oc = Oc::new();
    // 1,200 tasks in one go through the library would be faster, but this is the CLI's test:
    // create a few by hand, then bulk-load the rest through the store.
    oc.run(&[
        "task", "create", "first", "--id", "t0", "--owner", "agent-1",
    ]);
    {
        let store = oc_tasks_store(&oc);
        let new = (1..1234).map(|i| {
            let n = oc_tasks::NewTask::new("bulk")
                .id(oc_tasks::TaskId::new(format!("t{i:04}")).unwrap());
            if i % 3 == 0 {
                n.owner("agent-1")
            } else if i % 3 == 1 {
                n.owner("agent-2")
            } else {
                n
            }
        });
        oc_tasks::TaskStore::create_many(&store, new.collect()).unwrap();
    }
    oc.run(&["task", "start", "t0001", "--agent", "agent-2"]);
    oc.run(&["task", "cancel", "t0002"]);
    let out = oc.run(&["task-stats"]);
    assert_eq!(out.code, 0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines[..16],
        [
            "Task Statistics",
            "===============",
            "Total Tasks: 1,234",
            "Status Distribution:",
            "  - pending: 1,232",
            "  - running: 1",
            "  - completed: 0",
            "  - failed: 0",
            "  - cancelled: 1",
            "",
            "Owner Distribution:",
            "  - agent-1: 412",
            "  - none: 411",
            "  - agent-2: 411",
            "",
            "Recent Tasks (Last 5):",
        ]
    );
    assert_eq!(lines.len(), 25);
    assert_eq!(
        lines[21..],
        ["", "Work Graph:", "  - ready: 1,232", "  - blocked: 0"],
        "the graph's counts come after the seed's layout"
    );
    for (i, line) in lines[16..21].iter().enumerate() {
        let rest = line
            .strip_prefix(&format!("  {}. t", i + 1))
            .unwrap_or_else(|| panic!("{line}"));
        let (_, when) = rest.split_once(" - ").unwrap();
        assert!(
            rest.contains(" (pending) - ")
                || rest.contains(" (running) - ")
                || rest.contains(" (cancelled) - "),
            "{line}"
        );
        assert!(
            when.ends_with('Z') && when.len() == 20,
            "UTC timestamp in seconds: {when}"
        );
    }
    let json = oc.json(&["task-stats"]);
    assert_eq!(json["total"], 1234);
    assert_eq!(json["by_status"]["pending"], 1232);
    assert_eq!(
        json["by_owner"][0],
        json!({"owner": "agent-1", "count": 412})
    );
    assert_eq!(
        json["by_owner"][1],
        json!({"owner": null, "count": 411}),
        "ties: no owner first"
    );
}

fn oc_tasks_store(oc: &Oc) -> oc_tasks::SqliteTaskStore {
    oc_tasks::SqliteTaskStore::open(oc.db()).unwrap()
}

#[test]
fn completions_are_generated() {
    let oc = Oc::new();
    let out = oc.run(&["completions", "bash"]);
    assert_eq!(out.code, 0);
    assert!(
        out.stdout.contains("task-stats") && out.stdout.contains("_oc"),
        "bash completion script"
    );
}

/// `oc task claim --next --wait`: a waiting `oc` claims the task with its labels that another
/// `oc` creates (seen by polling: they are two processes); a wait that ends claims nothing,
/// as `--next` does when nothing is ready; bad waits are usage errors.
#[test]
fn claim_next_waits_for_a_task_another_process_creates() {
    let oc = Oc::new();
    oc.json(&["task", "create", "setup", "--id", "setup"]);
    oc.json(&["task", "claim", "setup", "--agent", "x"]);
    let waiter = oc
        .command()
        .args([
            "--json", "task", "claim", "--next", "--label", "gpu", "--wait", "60s", "--agent", "w",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    oc.json(&["task", "create", "plain", "--id", "plain"]);
    oc.json(&["task", "create", "gpu job", "--id", "g1", "--label", "gpu"]);
    let out = waiter.wait_with_output().unwrap();
    let run = crate::util::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    };
    let claimed = run.data();
    assert_eq!(claimed["id"], "g1", "the task with the label");
    assert_eq!(claimed["owner"], "w");
    assert_eq!(oc.json(&["task", "show", "plain"])["status"], "pending");

    let none = oc.run(&[
        "task", "claim", "--next", "--label", "gpu", "--wait", "300ms", "--agent", "w",
    ]);
    assert_eq!(none.code, 0, "nothing ready within the wait: {none:?}");
    assert!(none.stdout.contains("No ready task"), "{none:?}");
    let none = oc.json(&[
        "task", "claim", "--next", "--label", "gpu", "--wait", "300ms", "--agent", "w",
    ]);
    assert!(none.is_null());

    let long = oc.run(&["task", "claim", "--next", "--wait", "2h", "--agent", "w"]);
    assert_eq!(long.code, 2, "{long:?}");
    let by_id = oc.run(&["task", "claim", "plain", "--wait", "1s", "--agent", "w"]);
    assert_eq!(by_id.code, 2, "{by_id:?}");
}
