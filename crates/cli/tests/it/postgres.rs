//! `oc --database URL`: tasks, locks and task files (logs, decisions, checkpoints) on a real,
//! throwaway PostgreSQL server, the same from every data directory.

use std::sync::OnceLock;

use oc_postgres::testkit::{PgServer, postgres_for_tests};

use crate::util::Oc;

static SERVER: OnceLock<Option<PgServer>> = OnceLock::new();

/// A fresh database on the process's server, and `oc` pointed at it.
pub(crate) fn oc(name: &str) -> Option<(Oc, String)> {
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
    // Every check but the machine's disk, which says how full the test machine is.
    for c in health["checks"].as_array().unwrap() {
        if c["name"] != "disk" {
            assert_eq!(c["status"], "healthy", "{health}");
        }
    }
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
    nothing_in_their_data_directories(&[&a, &b]);
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

/// What differs between two hosts' answers: the name of each read and the first line that
/// differs, gathered so that one run shows every difference.
#[derive(Default)]
struct Differences(Vec<String>);

impl Differences {
    fn check(&mut self, what: &str, from_a: &str, from_b: &str) {
        if from_a == from_b {
            return;
        }
        let (la, lb): (Vec<&str>, Vec<&str>) = (from_a.lines().collect(), from_b.lines().collect());
        if la.len() == 1 && lb.len() == 1 {
            let at = from_a
                .bytes()
                .zip(from_b.bytes())
                .take_while(|(x, y)| x == y)
                .count();
            let near = |s: &str| {
                s.get(at.saturating_sub(80)..(at + 120).min(s.len()))
                    .unwrap_or("")
                    .to_owned()
            };
            self.0.push(format!(
                "{what}: at byte {at}:\n  A: {:?}\n  B: {:?}",
                near(from_a),
                near(from_b)
            ));
            return;
        }
        let at = (0..la.len().max(lb.len()))
            .find(|&i| la.get(i) != lb.get(i))
            .unwrap_or(0);
        self.0.push(format!(
            "{what}: line {at}:\n  A: {:?}\n  B: {:?}",
            la.get(at).map(|l| l.chars().take(400).collect::<String>()),
            lb.get(at).map(|l| l.chars().take(400).collect::<String>()),
        ));
    }
}

/// The first number after each `needle` in `html` (`?entry=` and `?decision=` links).
fn linked_ids(html: &str, needle: &str) -> Vec<String> {
    html.match_indices(needle)
        .map(|(i, _)| {
            html[i + needle.len()..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|id| !id.is_empty())
        .collect()
}

/// Keys whose values depend on when an answer is given, or by which process, not on what is
/// stored: the reading's own clock (`now`, `taken_at`), ages counted from it (`ageMs`), and the
/// answering process's own figures (`process`: its CPU and memory; `latency`: its operations'
/// durations, and `violations`, the performance goals they missed; `cache_hits`,
/// `cache_misses`: its own connections' page cache; `slow_statements`, `recent_slow`: its own
/// slow statements). Taken out at any depth before comparing two hosts' JSON.
const PER_READING: [&str; 10] = [
    "slow_statements",
    "recent_slow",
    "violations",
    "now",
    "taken_at",
    "ageMs",
    "process",
    "latency",
    "cache_hits",
    "cache_misses",
];

fn unclocked(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, _| !PER_READING.contains(&k.as_str()));
            m.values_mut().for_each(unclocked);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(unclocked),
        _ => {}
    }
}

/// A JSON document without its [`PER_READING`] keys, as text.
fn unclocked_json(text: &str) -> String {
    let mut v: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    unclocked(&mut v);
    v.to_string()
}

/// Whether a sample or comment line of an exposition is about a series the answering process
/// counts itself (scope `process` in `oc_metrics::CATALOGUE`: its CPU and memory, its own
/// connections' page cache, its operations' durations...), not one read from the store.
fn of_the_process(line: &str) -> bool {
    let line = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))
        .unwrap_or(line);
    let name = line.split(['{', ' ']).next().unwrap_or(line);
    oc_metrics::CATALOGUE
        .iter()
        .filter(|d| d.scope == oc_metrics::Scope::Process)
        .any(|d| {
            name.strip_prefix(d.name)
                .is_some_and(|rest| ["", "_bucket", "_sum", "_count"].contains(&rest))
        })
}

/// An exposition's lines but the process's own ([`of_the_process`]), sorted: families may come
/// in another order from another process (the format does not order them).
fn store_series(text: &str) -> String {
    let mut lines: Vec<&str> = text.lines().filter(|l| !of_the_process(l)).collect();
    lines.sort_unstable();
    lines.join("\n")
}

/// A page without what depends on when it was rendered: each `<time>`'s text ("13 s ago"; its
/// `datetime` stays) and the time after "As of ".
fn unclocked_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(end) = rest.find("</time>") {
        let text_start = rest[..end].rfind('>').map_or(end, |i| i + 1);
        out.push_str(&rest[..text_start]);
        out.push_str("</time>");
        rest = &rest[end + "</time>".len()..];
    }
    out.push_str(rest);
    let mut unclocked = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("As of ") {
        let after = at + "As of ".len();
        unclocked.push_str(&rest[..after]);
        rest = &rest[after..];
        rest = &rest[rest.find('<').unwrap_or(rest.len())..];
    }
    unclocked.push_str(rest);
    unclocked
}

/// Issue 27's parity: host A (a data directory on the database) creates, claims, logs at every
/// level with fields, records two agents' decisions, saves checkpoints and restores one, takes
/// a lock; then every read command's `--json` output, every read-only MCP tool's result and
/// every page of `oc serve` is the same, byte for byte, from host A and from host B (another
/// data directory on the same database), but for the parts named below that are per host.
#[test]
fn hosts_a_and_b_answer_alike() {
    use crate::mcp::{init, tool};
    use crate::util::session;
    use serde_json::{Value, json};

    let Some((a, url)) = oc("cli_parity") else {
        return;
    };
    let b = Oc::on_database(&url);

    // Host A works.
    a.json(&["task", "create", "the epic", "--id", "epic", "-p", "1"]);
    a.json(&["task", "create", "schema", "--id", "d1", "--parent", "epic"]);
    a.json(&[
        "task",
        "create",
        "index the repo",
        "--id",
        "t1",
        "--parent",
        "epic",
        "--depends-on",
        "d1",
        "--label",
        "db",
        "-d",
        "the <b>big</b> one",
        "-m",
        r#"{"size":3}"#,
    ]);
    a.json(&[
        "task",
        "create",
        "after",
        "--id",
        "t2",
        "--depends-on",
        "t1",
    ]);
    a.json(&["task", "create", "doomed", "--id", "t3", "--label", "db"]);
    let d1 = a.json(&["task", "claim", "d1", "--agent", "w2"]);
    let token = d1["lease"]["token"].as_u64().unwrap().to_string();
    a.json(&[
        "task",
        "complete",
        "d1",
        "--token",
        &token,
        "-r",
        r#"{"ok":true}"#,
    ]);
    a.json(&["task", "claim", "t1", "--agent", "w1", "--lease", "10m"]);
    a.json(&["task", "start", "t3", "--agent", "w2"]);
    a.json(&["task", "fail", "t3", "-e", "out of disk"]);
    for (i, level) in ["trace", "debug", "info", "warn", "error", "info"]
        .into_iter()
        .enumerate()
    {
        let data =
            json!({ "step": i, "file": format!("src/m{i}.rs"), "nested": { "ok": i % 2 == 0 } });
        a.json(&[
            "logs",
            "append",
            "t1",
            "--level",
            level,
            "-m",
            &format!("step {i} at {level}"),
            "-d",
            &data.to_string(),
        ]);
    }
    // Long enough to be cut on the pages, so they link to it whole.
    let long = "x".repeat(5_000);
    a.json(&["logs", "append", "t1", "-m", &long, "--key", "long"]);
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
    a.json(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "w2",
        "-d",
        "add an index",
        "-r",
        &long,
        "-m",
        r#"{"table":"tasks"}"#,
    ]);
    a.json(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "w1",
        "-d",
        "batch writes",
        "-r",
        "fewer fsyncs",
    ]);
    let cp1 = a.json(&["checkpoint", "create", "t1", "-d", "before the rewrite"]);
    a.json(&[
        "logs",
        "append",
        "t1",
        "--level",
        "error",
        "-m",
        "the rewrite broke it",
    ]);
    a.json(&[
        "decisions",
        "add",
        "t1",
        "-a",
        "w2",
        "-d",
        "roll back",
        "-r",
        "it broke",
    ]);
    a.json(&["checkpoint", "create", "t1", "-d", "broken"]);
    a.json(&["checkpoint", "restore", "t1", cp1["id"].as_str().unwrap()]);
    a.json(&[
        "logs",
        "append",
        "t1",
        "--level",
        "warn",
        "-m",
        "restored",
        "-d",
        r#"{"from":"cp1"}"#,
    ]);
    a.json(&["logs", "append", "d1", "-m", "schema done"]);
    a.json(&[
        "lock", "acquire", "repo/src", "--owner", "w1", "--ttl", "10m",
    ]);
    a.json(&[
        "lock",
        "acquire",
        "repo/docs",
        "--owner",
        "w2",
        "--mode",
        "shared",
        "--ttl",
        "10m",
    ]);

    let mut diffs = Differences::default();

    // Every read command, with --json. Per host, and so taken out: `oc health`'s checks of
    // this machine's data directory and disk (their messages name the path and free bytes).
    let reads: &[&[&str]] = &[
        &["task", "list"],
        &["task", "list", "--status", "running"],
        &["task", "list", "--order", "oldest", "--label", "db"],
        &["task", "list", "--parent", "epic", "--order", "priority"],
        &["task", "show", "t1"],
        &["task", "show", "d1"],
        &["task", "find", "repo"],
        &["task", "ready"],
        &["task", "blocked"],
        &["task", "tree", "epic"],
        &["task", "tree", "t2"],
        &["task", "graph"],
        &["task", "graph", "--format", "mermaid", "--root", "t2"],
        &["task-stats"],
        &["task-history", "t1"],
        &[
            "task-history",
            "t1",
            "--level",
            "warn",
            "--newest",
            "--limit",
            "3",
        ],
        &["task-history", "d1"],
        &["lock", "list"],
        &["lock", "stats"],
        &["logs", "tail", "t1"],
        &["logs", "tail", "t1", "-n", "100"],
        &["logs", "tail", "t1", "-n", "1"],
        &["logs", "tail", "d1"],
        &["logs", "tail", "t2"],
        &["logs", "query", "t1"],
        &["logs", "query", "t1", "--level", "warn"],
        &[
            "logs", "query", "t1", "--newest", "--limit", "2", "--offset", "1",
        ],
        &["logs", "analyze", "t1"],
        &["logs", "analyze", "t2"],
        &["decisions", "list", "t1"],
        &["decisions", "list", "t1", "--agent", "w2"],
        &["decisions", "list", "t2"],
        &["checkpoint", "list", "t1"],
        &["checkpoint", "list", "t2"],
        &["metrics", "--format", "json"],
        &["metrics"],
        &["db", "check"],
        &["db", "stats"],
        &["alerts", "list"],
    ];
    for args in reads {
        let what = format!("oc {}", args.join(" "));
        let (from_a, from_b) = (a.run_json(args), b.run_json(args));
        if *args == ["metrics"] {
            let text = |doc: &str| {
                let v: Value = serde_json::from_str(doc).unwrap();
                store_series(v["data"]["prometheus"].as_str().unwrap())
            };
            diffs.check(&what, &text(&from_a), &text(&from_b));
        } else {
            diffs.check(&what, &unclocked_json(&from_a), &unclocked_json(&from_b));
        }
    }
    let health = |oc: &Oc| {
        let mut h = oc.json(&["health"]);
        if let Some(checks) = h["checks"].as_array_mut() {
            checks.retain(|c| c["name"] != "data_dir" && c["name"] != "disk");
        }
        unclocked(&mut h);
        h.to_string()
    };
    diffs.check("oc health", &health(&a), &health(&b));

    // Every read-only MCP tool (the list's readOnlyHint), each with the arguments below; a
    // read tool added later fails here until it is given some.
    let listed = session(
        &a,
        &[
            init(),
            json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
        ],
    );
    let read_tools: Vec<String> = listed[1]["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["annotations"]["readOnlyHint"] == true)
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    let calls: Vec<(&str, Value)> = vec![
        ("task_list", json!({})),
        ("task_list", json!({"status": "running", "full": true})),
        ("task_list", json!({"ready": true})),
        ("task_get", json!({"task_id": "t1"})),
        ("task_stats", json!({})),
        ("task_log_query", json!({"task_id": "t1"})),
        (
            "task_log_query",
            json!({"task_id": "t1", "level": "warn", "newest": true, "limit": 2}),
        ),
        ("decision_list", json!({"task_id": "t1"})),
        (
            "decision_list",
            json!({"task_id": "t1", "agent": "w2", "limit": 1}),
        ),
        ("checkpoint_list", json!({"task_id": "t1"})),
        (
            "lock_check",
            json!({"agent": "w3", "paths": ["repo/src/lib.rs", "repo/docs/a.md"]}),
        ),
        ("lock_list", json!({})),
        ("lock_stats", json!({})),
    ];
    for name in &read_tools {
        assert!(
            calls.iter().any(|(n, _)| n == name),
            "the read tool {name} is not compared: give it arguments here"
        );
    }
    let mut lines = vec![
        init(),
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    ];
    for (i, (name, args)) in calls.iter().enumerate() {
        lines.push(tool(i as u64 + 2, name, args.clone()));
    }
    let (from_a, from_b) = (session(&a, &lines), session(&b, &lines));
    assert_eq!(from_a.len(), lines.len(), "{from_a:?}");
    for (i, (x, y)) in from_a.iter().zip(&from_b).enumerate() {
        let what = match i {
            0 => "initialize".to_owned(),
            1 => "tools/list".to_owned(),
            _ => format!("MCP {} {}", calls[i - 2].0, calls[i - 2].1),
        };
        assert!(x["result"]["isError"] != true, "{what}: {x}");
        // The answer's text is its structured content as JSON: both compared without their
        // PER_READING keys.
        let answer = |m: &Value| {
            let mut m = m.clone();
            if let Some(text) = m["result"]["content"][0]["text"].as_str() {
                m["result"]["content"][0]["text"] = Value::String(unclocked_json(text));
            }
            unclocked(&mut m["result"]["structuredContent"]);
            m.to_string()
        };
        diffs.check(&what, &answer(x), &answer(y));
    }

    // Every page, from an `oc serve` on each host.
    let (sa, sb) = (
        crate::serve::serve(&a, "127.0.0.1:0"),
        crate::serve::serve(&b, "127.0.0.1:0"),
    );
    let (status, page) = crate::serve::get(&sa.1, "/ui/tasks/t1");
    assert!(status.contains("200"), "{status}");
    let entries = linked_ids(&page, "?entry=");
    let decisions = linked_ids(&page, "?decision=");
    assert!(
        !entries.is_empty() && !decisions.is_empty(),
        "cut texts link to themselves: {page}"
    );
    let mut paths: Vec<String> = [
        "/",
        "/ui/tasks",
        "/ui/tasks?status=running",
        "/ui/tasks?status=failed&order=oldest",
        "/ui/tasks?label=db",
        "/ui/tasks/t1",
        "/ui/tasks/t1?log=2",
        "/ui/tasks/t1?decisions=1",
        "/ui/tasks/t1?checkpoints=1",
        "/ui/tasks/t1?history=1",
        "/ui/tasks/t1?entry=999999",
        "/ui/tasks/t1?decision=999999",
        "/ui/tasks/d1",
        "/ui/tasks/t2",
        "/ui/tasks/t3",
        "/ui/tasks/epic",
        "/ui/tasks/nope",
        "/ui/locks",
        "/ui/agents",
        "/ui/alerts",
        "/api/stats",
        "/metrics",
        "/healthz",
    ]
    .map(str::to_owned)
    .to_vec();
    paths.extend(entries.iter().map(|id| format!("/ui/tasks/t1?entry={id}")));
    paths.extend(
        decisions
            .iter()
            .map(|id| format!("/ui/tasks/t1?decision={id}")),
    );
    for path in &paths {
        let (ha, pa) = crate::serve::get(&sa.1, path);
        let (hb, pb) = crate::serve::get(&sb.1, path);
        diffs.check(&format!("GET {path} (status)"), &ha, &hb);
        let (pa, pb) = match path.as_str() {
            "/metrics" => (store_series(&pa), store_series(&pb)),
            "/api/stats" => (unclocked_json(&pa), unclocked_json(&pb)),
            _ => (unclocked_html(&pa), unclocked_html(&pb)),
        };
        diffs.check(&format!("GET {path}"), &pa, &pb);
    }
    drop((sa, sb));

    assert!(
        diffs.0.is_empty(),
        "hosts A and B answer differently:\n{}",
        diffs.0.join("\n")
    );
    nothing_in_their_data_directories(&[&a, &b]);
}

/// `oc logs ship` on PostgreSQL ships what any data directory appended, each collector after
/// its own cursor in the database, whichever host ships; nothing in the data directories.
#[test]
fn ship_on_postgres_sends_what_any_host_appended_once_per_collector() {
    let Some((a, url)) = oc("cli_ship") else {
        return;
    };
    let b = Oc::on_database(&url);
    crate::logs::ship_from_two_hosts_to_two_collectors(&a, &b);
    nothing_in_their_data_directories(&[&a, &b]);
}

/// `oc logs retain` on PostgreSQL: one host retains what another appended.
#[test]
fn retain_on_postgres_deletes_for_every_host() {
    let Some((a, url)) = oc("cli_retain") else {
        return;
    };
    let b = Oc::on_database(&url);
    crate::logs::retain_from_another_host(&a, &b);
    nothing_in_their_data_directories(&[&a, &b]);
}

/// The task files of `hosts` are in the database: none of their data directories has `tasks/`.
fn nothing_in_their_data_directories(hosts: &[&Oc]) {
    for oc in hosts {
        assert!(
            !oc.data_dir().join("tasks").exists(),
            "nothing in the data directory {}",
            oc.data_dir().display()
        );
    }
}
