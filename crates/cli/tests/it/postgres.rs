//! `oc --database URL`: tasks, locks and task files (logs, decisions, checkpoints) on a real,
//! throwaway PostgreSQL server, the same from every data directory.

use std::sync::OnceLock;

use oc_postgres::testkit::{PgServer, postgres_for_tests};

use crate::util::Oc;

static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();

/// A fresh database on the process's server, and `oc` pointed at it.
fn oc(name: &str) -> Option<(Oc, String)> {
    let pg = SERVER.get_or_init(postgres_for_tests).as_ref()?;
    pg.psql("postgres", &format!("CREATE DATABASE {name}"))
        .unwrap();
    let url = pg.url(name);
    Some((Oc::on_database(&url), url))
}

#[test]
fn task_and_lock_commands_work_on_postgres() {
    let Some((oc, url)) = oc("cli_commands") else {
        return;
    };
    let t = oc.json(&["task", "create", "index the repo", "--id", "a"]);
    assert_eq!(t["status"], "pending");
    let claimed = oc.json(&["task", "claim", "a", "--agent", "w1"]);
    let token = claimed["lease"]["token"].as_u64().unwrap();
    let stale = oc.run(&["task", "complete", "a", "--token", &(token + 1).to_string()]);
    assert_eq!(stale.code, 4, "{stale:?}");
    oc.json(&["task", "complete", "a", "--token", &token.to_string()]);
    assert_eq!(oc.json(&["task", "show", "a"])["status"], "completed");
    assert_eq!(oc.json(&["task-stats"])["by_status"]["completed"], 1);

    oc.json(&["lock", "acquire", "repo/src", "--owner", "x"]);
    let refused = oc.run(&["lock", "acquire", "repo/src/lib.rs", "--owner", "y"]);
    assert_eq!(refused.code, 4);
    assert!(refused.stderr.contains('x'), "{}", refused.stderr);
    assert_eq!(oc.json(&["lock", "list"]).as_array().unwrap().len(), 1);

    // Logs go to the database too, not to this machine's data directory.
    oc.json(&[
        "logs",
        "append",
        "a",
        "--level",
        "info",
        "--message",
        "hello",
    ]);
    assert!(!oc.data_dir().join("tasks/a/logs.jsonl").exists());
    let missing = oc.run(&[
        "logs",
        "append",
        "nope",
        "--level",
        "info",
        "--message",
        "x",
    ]);
    assert_eq!(missing.code, 3, "the task is looked up on PostgreSQL");

    let metrics = oc.run(&["metrics"]).stdout;
    assert!(
        metrics.contains("opencode_tasks{status=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("opencode_task_duration_seconds_count 1"),
        "{metrics}"
    );
    let size = metrics
        .lines()
        .find_map(|l| l.strip_prefix("opencode_db_size_bytes "))
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        size.is_some_and(|b| b > 1e6),
        "the PostgreSQL database's size: {metrics}"
    );
    assert!(oc.run(&["db", "stats"]).stdout.contains("PostgreSQL"));
    assert_eq!(oc.json(&["db", "check"])["ok"], true);
    oc.json(&["db", "migrate"]);
    let alerts = oc.json(&["alerts", "check"]);
    assert!(alerts.is_object() || alerts.is_array(), "{alerts}");
    let health = oc.json(&["health"]);
    assert_eq!(health["overall"], "healthy", "{health}");
    let files = health["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "task_files")
        .unwrap();
    assert!(
        files["message"].as_str().unwrap().starts_with("postgres:"),
        "{health}"
    );

    // Another "host": a second data directory on the same database sees the same tasks.
    let other = Oc::on_database(&url);
    assert_eq!(other.json(&["task", "show", "a"])["status"], "completed");
    // And the same history, which the store wrote with each transition.
    let h = other.run(&["task-history", "a"]).stdout;
    assert!(h.contains("claimed: pending -> running by w1"), "{h}");
    assert!(h.contains("completed: running -> completed by w1"), "{h}");
    assert!(
        h.contains("hello"),
        "the agent's log, written from the other data directory: {h}"
    );
    assert_eq!(h, oc.run(&["task-history", "a"]).stdout);
}

#[test]
fn the_demo_runs_on_postgres() {
    let Some((oc, url)) = oc("cli_demo") else {
        return;
    };
    let d = oc.json(&["demo", "--agents", "3", "--tasks", "20", "--seed", "5"]);
    let st = &d["task_stats"]["by_status"];
    assert_eq!(st["pending"], 0, "{d}");
    assert_eq!(st["running"], 0, "{d}");
    let fresh = Oc::on_database(&url).json(&["task-stats"]);
    assert_eq!(fresh["total"], d["task_stats"]["total"]);
}

#[test]
fn bad_urls_unreachable_servers_and_newer_schemas_are_one_clear_line() {
    let bad = Oc::on_database("postgresql://[::1");
    let r = bad.run(&["task", "list"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");

    let gone =
        Oc::on_database("host=/nonexistent/oc-test user=agent password=hunter2 connect_timeout=2");
    let r = gone.run(&["task", "list"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        !r.stderr.contains("hunter2"),
        "a password was printed: {}",
        r.stderr
    );
    let r = gone.run(&["--json", "task", "list"]);
    assert!(!r.stderr.contains("hunter2"));
    // The task files' store fails alike: a backend failure, exit 1, one line, no password.
    for args in [
        &["logs", "tail", "t1"][..],
        &["checkpoint", "list", "t1"],
        &["decisions", "list", "t1"],
    ] {
        let r = gone.run(args);
        assert_eq!(r.code, 1, "{args:?}: {r:?}");
        assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
        assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    }

    let Some((oc, _)) = oc("cli_newer") else {
        return;
    };
    oc.json(&["task", "list"]);
    let pg = SERVER.get().and_then(Option::as_ref).unwrap();
    pg.psql(
        "cli_newer",
        "UPDATE oc.oc_schema SET version = 99 WHERE component = 'oc-tasks'",
    )
    .unwrap();
    let r = oc.run(&["task", "list"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("newer than this build"), "{}", r.stderr);
}

#[test]
fn oc_serve_reports_the_postgresql_store_and_its_pages() {
    let Some((oc, url)) = oc("cli_serve") else {
        return;
    };
    for i in 0..3 {
        oc.json(&["task", "create", &format!("t{i}")]);
    }
    let s = crate::serve::serve(&oc, "127.0.0.1:0");
    let (status, body) = crate::serve::get(&s.1, "/metrics");
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("opencode_tasks{status=\"pending\"} 3"),
        "{body}"
    );
    crate::serve::promtool_check_metrics(&body);
    let (status, body) = crate::serve::get(&s.1, "/healthz");
    assert!(status.contains("200") && body == "ok\n", "{status} {body}");
    // The pages read the same store.
    let (status, body) = crate::serve::get(&s.1, "/ui/tasks?order=oldest");
    assert!(
        status.contains("200") && body.contains(">t0<") && body.contains(">t2<"),
        "{body}"
    );
    let (status, body) = crate::serve::get(&s.1, "/");
    assert!(
        status.contains("200") && body.contains(r#"href="/ui/tasks?status=pending">3<"#),
        "{body}"
    );
    // The task files too, written from another data directory.
    let other = Oc::on_database(&url);
    other.json(&["task", "create", "paged", "--id", "t-page"]);
    other.json(&["logs", "append", "t-page", "-m", "<b>from elsewhere</b>"]);
    let (status, body) = crate::serve::get(&s.1, "/ui/tasks/t-page");
    assert!(
        status.contains("200") && body.contains("&lt;b&gt;from elsewhere&lt;/b&gt;"),
        "{status} {body}"
    );
}

#[test]
fn a_wrong_password_is_one_line_and_changes_nothing() {
    if oc_postgres::testkit::server_binaries().is_none()
        && std::env::var_os("OC_REQUIRE_POSTGRES").is_none()
    {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pg = PgServer::start_with(&oc_postgres::testkit::ServerOptions {
        listen: Some("127.0.0.1".into()),
        password_network: Some("127.0.0.1/32".into()),
        port: Some(port),
        ..Default::default()
    })
    .unwrap();
    pg.psql("postgres", "CREATE ROLE agent LOGIN PASSWORD 'right-horse'")
        .unwrap();
    let url =
        |pw: &str| format!("host=127.0.0.1 port={port} user=agent password={pw} dbname=postgres");
    let wrong = Oc::on_database(&url("battery-staple"));
    let r = wrong.run(&["task", "list"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert_eq!(r.stderr.lines().count(), 1, "{r:?}");
    assert!(
        r.stderr.contains("password authentication failed"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("battery-staple"), "{}", r.stderr);
    let schemas = pg
        .psql(
            "postgres",
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'oc'",
        )
        .unwrap();
    assert_eq!(schemas.trim(), "0", "nothing was created");
    pg.psql("postgres", "GRANT CREATE ON DATABASE postgres TO agent")
        .unwrap();
    let right = Oc::on_database(&url("right-horse"));
    assert_eq!(
        right.json(&["task", "list"])["tasks"],
        serde_json::json!([])
    );
}

#[test]
fn mcp_serves_tasks_and_locks_on_postgres() {
    use crate::mcp::{body, init, tool};
    use crate::util::session;
    use serde_json::json;
    let Some((oc, _)) = oc("cli_mcp") else {
        return;
    };
    oc.json(&["task", "create", "on postgres", "--id", "p"]);
    let out = session(
        &oc,
        &[
            init(),
            tool(1, "task_claim", json!({"agent":"w1"})),
            tool(
                2,
                "lock_acquire",
                json!({"agent":"w1","paths":["repo/src"]}),
            ),
            tool(
                3,
                "task_log_append",
                json!({"agent":"w1","task_id":"p","message":"started","idempotency_key":"s1"}),
            ),
            tool(
                4,
                "task_log_append",
                json!({"agent":"w1","task_id":"p","message":"started","idempotency_key":"s1"}),
            ),
        ],
    );
    assert_eq!(out.len(), 5, "{out:?}");
    assert_eq!(body(&out[4])["duplicate"], true, "{out:?}");
    assert_eq!(body(&out[4])["id"], body(&out[3])["id"]);
    assert_eq!(body(&out[1])["task_id"], "p");
    assert!(body(&out[2])["locks"][0]["fencing_token"].is_u64());
    assert_eq!(body(&out[3])["entry"]["message"], "started");
    // The CLI sees what the agent did, through the same database.
    let t = oc.json(&["task", "show", "p"]);
    assert_eq!(
        (&t["status"], &t["owner"]),
        (&json!("running"), &json!("w1"))
    );
    assert_eq!(oc.json(&["lock", "list"])[0]["owner"], "w1");
    assert!(!oc.data_dir().join("tasks/p/logs.jsonl").exists());
    let tail = oc.json(&["logs", "tail", "p"]);
    assert_eq!(tail.as_array().unwrap().len(), 1, "written once: {tail}");
    assert_eq!(tail[0]["message"], "started", "{tail}");
}

/// Two data directories ("hosts") on one database: what one appends, decides and checkpoints,
/// the other reads the same, to the byte of every `--json` answer; a keyed retry from either
/// writes nothing; a restore from one is what the other reads next.
#[test]
fn two_data_directories_on_one_database_see_the_same_task_files() {
    let Some((a, url)) = oc("cli_files") else {
        return;
    };
    let b = Oc::on_database(&url);
    a.json(&["task", "create", "shared", "--id", "t1"]);
    for (level, message, key) in [
        ("info", "started", "k1"),
        ("warn", "flaky test", "k2"),
        ("error", "tests failed", "k3"),
    ] {
        let first = a.json(&[
            "logs", "append", "t1", "--level", level, "-m", message, "--key", key,
        ]);
        assert_eq!(first["duplicate"], false, "{first}");
    }
    // A's answer was lost; the retry comes from B, with the same key.
    let again = b.json(&[
        "logs", "append", "t1", "--level", "info", "-m", "started", "--key", "k1",
    ]);
    assert_eq!(again["duplicate"], true, "{again}");
    a.json(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "w1",
        "-d",
        "use WAL",
        "-r",
        "readers never block",
    ]);
    b.json(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "w2",
        "-d",
        "add index",
        "-r",
        "by status",
    ]);
    let cp = a.json(&["checkpoint", "create", "t1", "-d", "before the rewrite"]);
    b.json(&["logs", "append", "t1", "-m", "rewritten"]);

    let reads: [&[&str]; 6] = [
        &["logs", "tail", "t1", "-n", "10"],
        &["logs", "query", "t1", "--level", "warn"],
        &["logs", "analyze", "t1"],
        &["decisions", "list", "t1"],
        &["decisions", "list", "t1", "--agent", "w2"],
        &["checkpoint", "list", "t1"],
    ];
    for args in reads {
        let (from_a, from_b) = (a.run_json(args), b.run_json(args));
        assert_eq!(from_a, from_b, "{args:?}");
    }
    let tail = b.json(&["logs", "tail", "t1", "-n", "10"]);
    let messages: Vec<&str> = tail
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        ["started", "flaky test", "tests failed", "rewritten"],
        "each append once"
    );
    let decisions = b.json(&["decisions", "list", "t1"]);
    assert_eq!(decisions.as_array().unwrap().len(), 2, "{decisions}");
    assert_eq!(b.json(&["checkpoint", "list", "t1"])[0]["id"], cp["id"]);

    // B restores A's checkpoint; A reads the log as it was.
    b.json(&["checkpoint", "restore", "t1", cp["id"].as_str().unwrap()]);
    let tail = a.json(&["logs", "tail", "t1"]);
    assert_eq!(tail.as_array().unwrap().len(), 3, "{tail}");
    assert_eq!(
        a.run_json(&["logs", "tail", "t1"]),
        b.run_json(&["logs", "tail", "t1"])
    );
    for oc in [&a, &b] {
        assert!(
            !oc.data_dir().join("tasks").exists(),
            "nothing in a data directory"
        );
    }
}

/// `oc logs tail --follow` on one data directory prints what another appends, through the
/// database (woken by its notification, or its poll).
#[test]
fn a_follower_sees_what_another_data_directory_appends() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let Some((a, url)) = oc("cli_follow") else {
        return;
    };
    let b = Oc::on_database(&url);
    a.json(&["task", "create", "followed", "--id", "t1"]);
    a.json(&["logs", "append", "t1", "-m", "first"]);
    let mut child = b
        .command()
        .args(["logs", "tail", "t1", "--follow", "-n", "1"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.next().unwrap().unwrap().contains("first"));
    a.json(&["logs", "append", "t1", "-m", "second"]);
    a.json(&["logs", "append", "t1", "-m", "third"]);
    let next: Vec<String> = (0..2).map(|_| lines.next().unwrap().unwrap()).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        next[0].contains("second") && next[1].contains("third"),
        "{next:?}"
    );
}
