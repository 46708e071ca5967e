//! `oc alerts`: check, list, silence, test, exit codes; the demo's alerts.

use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::util::Oc;

fn sink() -> (String, Arc<Mutex<Vec<Value>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            seen.lock()
                .unwrap()
                .push(serde_json::from_str(&body).unwrap());
            let _ = req.respond(tiny_http::Response::from_string(""));
        }
    });
    (url, got)
}

#[test]
fn check_sends_once_and_remembers_across_runs() {
    let oc = Oc::new();
    for t in ["a", "b"] {
        oc.json(&["task", "create", t]);
    }
    let (url, got) = sink();
    let cfg = oc.data_dir().join("alerts.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"builtin = false
[[rule]]
name = "Backlog"
severity = "high"
metric = "opencode_tasks"
match = {{ status = "pending" }}
op = ">="
threshold = 2
summary = "{{{{value}}}} tasks wait"

[[receiver]]
name = "hook"
kind = "webhook"
url = "{url}"
"#
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    let first = oc.json(&["alerts", "--config", cfg, "check"]);
    assert_eq!(first["firing"], 1, "{first}");
    assert_eq!(first["sent"].as_array().unwrap().len(), 1);
    assert_eq!(first["deliveries"][0]["sent"], 1);
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(got.lock().unwrap()[0]["alert"]["summary"], "2 tasks wait");

    // A new process: the alert is still firing, and nothing is sent again.
    let human = oc.run(&["alerts", "--config", cfg, "check"]);
    assert_eq!(human.code, 0, "exit 0 also when alerts fire: {human:?}");
    assert!(
        human.stdout.contains("1 alert(s) firing."),
        "{}",
        human.stdout
    );
    assert!(
        human.stdout.contains("Sent 0 notification(s)."),
        "{}",
        human.stdout
    );
    assert_eq!(got.lock().unwrap().len(), 1);

    let list = oc.json(&["alerts", "--config", cfg, "list"]);
    assert_eq!(list["rules"][0]["alerts"][0]["state"], "firing", "{list}");

    // Silenced while it resolves and fires again: nothing is sent.
    let s = oc.json(&[
        "alerts",
        "--config",
        cfg,
        "silence",
        "alertname=Backlog",
        "--for",
        "1h",
    ]);
    assert_eq!(s["id"], 1);
    let id = oc.json(&["task", "list"])["tasks"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    oc.json(&["task", "cancel", &id]);
    oc.json(&["alerts", "--config", cfg, "check"]);
    assert_eq!(
        got.lock().unwrap().len(),
        2,
        "the resolution of a sent alert is sent"
    );
    assert_eq!(got.lock().unwrap()[1]["status"], "resolved");
    oc.json(&["task", "create", "c"]);
    let quiet = oc.json(&["alerts", "--config", cfg, "check"]);
    assert_eq!(quiet["firing"], 1);
    assert_eq!(got.lock().unwrap().len(), 2, "silenced");
    oc.json(&["alerts", "--config", cfg, "unsilence", "1"]);
    let list = oc.json(&["alerts", "--config", cfg, "list"]);
    assert_eq!(
        list["silences"],
        serde_json::json!([]),
        "an ended silence is not listed"
    );
    oc.json(&["alerts", "--config", cfg, "check"]);
    assert_eq!(got.lock().unwrap().len(), 3, "sent once the silence ends");

    // A test notification, on demand.
    oc.json(&["alerts", "--config", cfg, "test", "hook"]);
    let last = got.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["alert"]["rule"], "OcTestNotification");
}

#[test]
fn bad_input_exits_with_usage_or_not_found() {
    let oc = Oc::new();
    let cfg = oc.dir_file("bad.toml", "[[rule]]\nname = \"x\"\n");
    let r = oc.run(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("bad.toml"), "{}", r.stderr);
    let r = oc.run(&["alerts", "silence", "no-equals-sign"]);
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("no-equals-sign"), "{}", r.stderr);
    let r = oc.run(&["alerts", "test", "nobody"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("receivers: log"), "{}", r.stderr);
    let r = oc.run(&["alerts", "unsilence", "42"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = oc.run(&["alerts", "--config", "/nonexistent.toml", "list"]);
    assert_eq!(r.code, 2, "{r:?}");
}

#[test]
fn the_demo_reports_the_alerts_it_would_fire() {
    let oc = Oc::new();
    let demo = oc.json(&["demo", "--agents", "3", "--tasks", "40", "--seed", "7"]);
    let names: Vec<&str> = demo["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    let l = &demo["lock_stats"];
    let conflict_rate =
        l["conflictsDetected"].as_f64().unwrap() / l["totalLocks"].as_f64().unwrap();
    assert_eq!(
        names.contains(&"OpencodeHighLockConflictRate"),
        conflict_rate > 0.2,
        "conflict rate {conflict_rate}: {names:?}"
    );
    let t = &demo["task_stats"];
    let failure_rate = t["by_status"]["failed"].as_f64().unwrap() / t["total"].as_f64().unwrap();
    assert_eq!(
        names.contains(&"OpencodeHighTaskFailureRate"),
        failure_rate > 0.1,
        "failure rate {failure_rate}: {names:?}"
    );
    let missed = !demo["goal_violations"].as_array().unwrap().is_empty();
    assert_eq!(
        names.contains(&"OpencodePerformanceGoalMissed"),
        missed,
        "{names:?}"
    );
}

#[test]
fn run_evaluates_in_the_foreground_until_stopped() {
    let oc = Oc::new();
    oc.json(&["task", "create", "a"]);
    let cfg = oc.dir_file(
        "alerts.toml",
        "builtin = false\ninterval = \"50ms\"\n[[rule]]\nname = \"AnyTask\"\nseverity = \"low\"\nmetric = \"opencode_tasks\"\nop = \">\"\nthreshold = 0\n",
    );
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_oc"))
        .arg("--data-dir")
        .arg(oc.data_dir())
        .args(["alerts", "--config", &cfg, "run"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = oc.data_dir().join("alerts.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("AnyTask")) {
        assert!(std::time::Instant::now() < deadline, "run never notified");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed mid-flight, its state file is whole: a check sees the alert firing, sends nothing.
    let check = oc.json(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(check["firing"], 1, "{check}");
    assert_eq!(check["sent"].as_array().unwrap().len(), 0, "{check}");
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The secrets a webhook URL carries: credentials, a token in the path, one in the query.
const URL_SECRETS: [&str; 4] = ["s3cr3tpw", "T000", "XXXXTOKEN", "qtok123"];

#[test]
fn failing_webhooks_never_show_their_credentials() {
    let oc = Oc::new();
    oc.json(&["task", "create", "a"]);
    let url = format!(
        "http://ops:s3cr3tpw@127.0.0.1:{}/services/T000/B000/XXXXTOKEN?token=qtok123",
        closed_port()
    );
    let cfg = oc.dir_file(
        "alerts.toml",
        &format!(
            r#"builtin = false
[retry]
attempts = 1
[[rule]]
name = "Backlog"
severity = "high"
metric = "opencode_tasks"
match = {{ status = "pending" }}
op = ">="
threshold = 1
summary = "tasks wait"

[[receiver]]
name = "hook"
kind = "webhook"
url = "{url}"
"#
        ),
    );
    let test = oc.run(&["alerts", "--config", &cfg, "test", "hook"]);
    assert_ne!(test.code, 0, "{test:?}");
    let check = oc.run(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(check.code, 0, "{check:?}");
    assert!(
        check
            .stdout
            .contains("Receiver hook failed 1 time(s): http://***@127.0.0.1:"),
        "{}",
        check.stdout
    );
    let json = oc.run(&["--json", "alerts", "--config", &cfg, "check"]);
    for run in [&test, &check, &json] {
        for secret in URL_SECRETS {
            assert!(
                !run.stdout.contains(secret) && !run.stderr.contains(secret),
                "{secret} shown: {run:?}"
            );
        }
    }
    // Still names the endpoint that failed.
    assert!(test.stderr.contains("127.0.0.1"), "{}", test.stderr);
}

#[test]
fn config_errors_name_the_line_but_not_the_secret() {
    let oc = Oc::new();
    let receiver = "[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\n";
    for (text, line, secret) in [
        // Not TOML: the parser's own message quotes the line.
        (
            format!("{receiver}password = hunter2\n"),
            "line 4",
            "hunter2",
        ),
        (
            format!("{receiver}url = \"http://u:hunter2@h/x\" junk\n"),
            "line 4",
            "hunter2",
        ),
        // TOML, but a value the field cannot take: quoted back by the parser.
        (
            format!("{receiver}url = \"x\"\nrouting_key = 2202\n"),
            "line 5",
            "2202",
        ),
        (format!("{receiver}password = 31337\n"), "line 4", "31337"),
        // Valid TOML, and refused: no line to name, but what to do instead.
        (
            format!("{receiver}url = \"http://h/x\"\npassword = \"hunter2\"\n"),
            "name the environment variable that holds it (`password_env`)",
            "hunter2",
        ),
    ] {
        let cfg = oc.dir_file("alerts.toml", &text);
        let r = oc.run(&["alerts", "--config", &cfg, "check"]);
        assert_eq!(r.code, 2, "{text}: {r:?}");
        assert!(!r.stderr.contains(secret), "{text}: {}", r.stderr);
        assert!(!r.stdout.contains(secret), "{text}: {}", r.stdout);
        assert!(r.stderr.contains(line), "{text}: {}", r.stderr);
    }
}
