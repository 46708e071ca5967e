//! `oc mcp` as a real process on a data directory: only MCP messages on stdout, the workflow
//! through its tools, and two servers on one directory as two agents racing for one task and
//! one file lock.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::{Oc, session};

pub(crate) fn init() -> Value {
    json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}})
}

pub(crate) fn tool(id: u64, name: &str, args: Value) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":args}})
}

pub(crate) fn body(answer: &Value) -> Value {
    serde_json::from_str(answer["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}

#[test]
fn mcp_serves_the_workflow_on_the_data_directory() {
    let oc = Oc::new();
    let out = session(
        &oc,
        &[
            init(),
            json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
            tool(
                1,
                "task_create",
                json!({"agent":"planner","name":"<script>x</script>"}),
            ),
            tool(2, "task_claim", json!({"agent":"alice"})),
            tool(
                3,
                "lock_acquire",
                json!({"agent":"alice","paths":["repo/src"]}),
            ),
        ],
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(out[0]["result"]["protocolVersion"], "2025-06-18");
    let claimed = body(&out[2]);
    assert_eq!(claimed["claimed"], true);
    assert!(body(&out[3])["locks"][0]["fencing_token"].is_u64());
    // The same store, seen by the CLI: the task is running for alice.
    let shown = oc
        .run(&["--json", "task", "list", "--status", "running"])
        .data();
    assert_eq!(shown["tasks"][0]["owner"], "alice", "{shown}");
}

#[test]
fn two_servers_race_for_one_task_and_one_lock() {
    let oc = Oc::new();
    session(
        &oc,
        &[
            init(),
            tool(1, "task_create", json!({"agent":"p","name":"only one"})),
        ],
    );
    let race = |agent: &'static str| {
        let oc = &oc;
        move || {
            session(
                oc,
                &[
                    init(),
                    tool(1, "task_claim", json!({ "agent": agent })),
                    tool(
                        2,
                        "lock_acquire",
                        json!({ "agent": agent, "paths": ["repo/file.rs"], "ttl_secs": 600 }),
                    ),
                ],
            )
        }
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(race("alice"));
        let b = s.spawn(race("bob"));
        (a.join().unwrap(), b.join().unwrap())
    });
    let claims = [
        body(&a[1])["claimed"].clone(),
        body(&b[1])["claimed"].clone(),
    ];
    assert_eq!(
        claims.iter().filter(|c| **c == json!(true)).count(),
        1,
        "exactly one wins the task: {claims:?}"
    );
    let errors = [
        a[2]["result"]["isError"].clone(),
        b[2]["result"]["isError"].clone(),
    ];
    assert_eq!(
        errors.iter().filter(|e| **e == json!(true)).count(),
        1,
        "one gets the lock"
    );
    let loser = if errors[0] == json!(true) {
        &a[2]
    } else {
        &b[2]
    };
    let refusal = body(loser);
    assert_eq!(refusal["error"]["code"], "LOCK_CONFLICT");
    let winner = if errors[0] == json!(true) {
        "bob"
    } else {
        "alice"
    };
    assert_eq!(
        refusal["error"]["conflicts"][0]["holder"], winner,
        "the loser is told who holds it"
    );
}

/// The official MCP Python SDK drives `oc mcp` in both protocol generations
/// (`tests/mcp/client.py`): `OC_MCP_PYTHON` names the Python of a virtual environment with the
/// pinned SDK (`.ci/run` makes it); without it the test skips, unless `OC_REQUIRE_MCP_SDK` is
/// set (as CI sets it).
#[test]
fn the_official_python_client_runs_the_workflow_in_both_generations() {
    let Some(python) = std::env::var_os("OC_MCP_PYTHON") else {
        assert!(
            std::env::var_os("OC_REQUIRE_MCP_SDK").is_none(),
            "the MCP Python SDK is required (OC_REQUIRE_MCP_SDK is set) but OC_MCP_PYTHON is not"
        );
        eprintln!("OC_MCP_PYTHON is not set: skipping the official MCP client");
        return;
    };
    let oc = Oc::new();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_oc"))
        .arg(oc.data_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("legacy: ok") && stdout.contains("auto: ok"),
        "{stdout}"
    );
}

/// `oc mcp` as a child process whose answers arrive line by line.
struct Live {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Live {
    fn start(oc: &Oc) -> Live {
        let mut child = oc
            .command()
            .arg("mcp")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for l in std::io::BufReader::new(stdout).lines() {
                let _ = tx.send(serde_json::from_str(&l.unwrap()).unwrap());
            }
        });
        let stdin = child.stdin.take();
        let mut live = Live {
            child,
            stdin,
            lines,
        };
        live.send(&init());
        assert_eq!(live.next()["id"], 0);
        live
    }

    fn send(&mut self, msg: &Value) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{msg}").unwrap();
        stdin.flush().unwrap();
    }

    /// The next line written, within a bound far above what it takes.
    fn next(&self) -> Value {
        self.lines
            .recv_timeout(std::time::Duration::from_secs(20))
            .expect("an answer")
    }

    /// Closes stdin; the exit status, if the process exits within `bound`.
    fn close(&mut self, bound: std::time::Duration) -> Option<std::process::ExitStatus> {
        drop(self.stdin.take());
        let deadline = std::time::Instant::now() + bound;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Every line written until the end.
    fn rest(&self) -> Vec<Value> {
        self.lines.iter().collect()
    }
}

fn wait_for(id: u64, agent: &str, path: &str, wait_ms: u64) -> Value {
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"lock_acquire",
        "arguments":{"agent":agent,"paths":[path],"wait_ms":wait_ms},"_meta":{"progressToken":id}}})
}

/// Whom `oc lock list` shows holding something.
fn holders(oc: &Oc) -> Vec<String> {
    oc.json(&["lock", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["owner"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_client_that_goes_away_mid_wait_ends_the_process_and_takes_nothing() {
    let oc = Oc::new();
    oc.run(&["lock", "acquire", "repo/f", "--owner", "a", "--ttl", "1h"]);
    let mut live = Live::start(&oc);
    live.send(&wait_for(1, "b", "repo/f", 60_000));
    // The first progress notification: b is queued.
    assert_eq!(live.next()["method"], "notifications/progress");
    let status = live
        .close(std::time::Duration::from_secs(5))
        .expect("oc mcp exits at the end of input, not when its 60 s wait runs out");
    assert!(status.success(), "{status:?}");
    assert!(live.rest().iter().all(|m| m["id"] != 1), "nothing answered");
    // Once a lets go, the lock is free: b left the queue.
    oc.run(&["lock", "release", "repo/f", "--owner", "a"]);
    assert_eq!(holders(&oc), Vec::<String>::new());
    let c = oc.run(&["lock", "acquire", "repo/f", "--owner", "c"]);
    assert_eq!(c.code, 0, "{c:?}");
}

#[test]
fn a_grant_as_the_client_goes_away_is_released_unless_it_was_answered() {
    let oc = Oc::new();
    for round in 0..5 {
        let path = format!("repo/f{round}");
        oc.run(&["lock", "acquire", &path, "--owner", "a", "--ttl", "1h"]);
        let mut live = Live::start(&oc);
        live.send(&wait_for(1, "b", &path, 60_000));
        assert_eq!(live.next()["method"], "notifications/progress");
        // The lock frees and the client goes, at once.
        let release = tool(2, "lock_release", json!({"agent":"a","paths":[&path]}));
        live.send(&release);
        let status = live
            .close(std::time::Duration::from_secs(5))
            .expect("exits");
        assert!(status.success());
        let answered = live
            .rest()
            .iter()
            .any(|m| m["id"] == 1 && m["result"]["isError"] == false);
        let held: Vec<String> = oc
            .json(&["lock", "list"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["resource"] == path.as_str())
            .map(|l| l["owner"].as_str().unwrap().to_owned())
            .collect();
        // b holds the lock only if its grant was written before the input ended.
        let expected: Vec<String> = if answered { vec!["b".into()] } else { vec![] };
        assert_eq!(held, expected, "round {round}, answered: {answered}");
    }
}

#[test]
fn thirty_three_waits_keep_the_reader_reading() {
    let oc = Oc::new();
    oc.run(&["lock", "acquire", "repo/f", "--owner", "a", "--ttl", "1h"]);
    let mut live = Live::start(&oc);
    let limit = 32;
    for i in 1..=limit + 1 {
        live.send(
            &json!({"jsonrpc":"2.0","id":i,"method":"tools/call","params":{"name":"lock_acquire",
            "arguments":{"agent":format!("b{i}"),"paths":["repo/f"],"wait_ms":60_000}}}),
        );
    }
    live.send(
        &json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}),
    );
    live.send(&json!({"jsonrpc":"2.0","id":"ping","method":"ping"}));
    // The 33rd is refused at once, naming the limit; the ping is answered.
    let refused = live.next();
    assert_eq!(refused["id"], limit + 1, "{refused}");
    let text = body(&refused);
    assert_eq!(text["error"]["code"], "TOO_MANY_WAITS", "{text}");
    assert!(text["error"]["message"].as_str().unwrap().contains("32"));
    assert_eq!(live.next()["id"], "ping");
    let status = live
        .close(std::time::Duration::from_secs(10))
        .expect("exits");
    assert!(status.success());
    assert!(
        live.rest().is_empty(),
        "nothing for the cancelled or abandoned waits"
    );
    oc.run(&["lock", "release", "repo/f", "--owner", "a"]);
    assert_eq!(holders(&oc), Vec::<String>::new());
}

#[test]
fn the_cli_says_who_holds_a_task_and_that_a_finished_one_is_finished() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    let claim = oc.json(&["task", "claim", "t1", "--agent", "alice"]);
    let (token, until) = (
        claim["lease"]["token"].to_string(),
        claim["lease"]["expires_at"].as_str().unwrap().to_owned(),
    );
    let r = oc.run(&["task", "claim", "t1", "--agent", "bob"]);
    assert_eq!(r.code, 4, "{r:?}");
    assert!(
        r.stderr
            .contains(&format!("task t1 is running: alice holds it until {until}")),
        "{}",
        r.stderr
    );
    oc.json(&["task", "complete", "t1", "--token", &token]);
    let at = oc.json(&["task", "show", "t1"])["finished_at"]
        .as_str()
        .unwrap()
        .to_owned();
    for args in [
        &["task", "complete", "t1", "--token", &token][..],
        &["task", "fail", "t1", "--token", &token, "--error", "x"],
    ] {
        let r = oc.run(args);
        assert_eq!(r.code, 4, "{r:?}");
        assert!(
            r.stderr
                .contains(&format!("task t1 is already completed at {at}")),
            "{args:?}: {}",
            r.stderr
        );
    }
}

/// The official MCP Python SDK's streamable HTTP client drives `oc serve`'s `/mcp` in both
/// protocol generations with bearer tokens (`tests/mcp/client_http.py`): the workflow, SSE
/// progress, a wait given up on taking nothing, and a `work` token refused another agent's
/// task and lock. Needs `OC_MCP_PYTHON` as the stdio test does.
#[test]
fn the_official_python_client_runs_the_workflow_over_http_with_tokens() {
    let Some(python) = std::env::var_os("OC_MCP_PYTHON") else {
        assert!(
            std::env::var_os("OC_REQUIRE_MCP_SDK").is_none(),
            "the MCP Python SDK is required (OC_REQUIRE_MCP_SDK is set) but OC_MCP_PYTHON is not"
        );
        eprintln!("OC_MCP_PYTHON is not set: skipping the official MCP client over HTTP");
        return;
    };
    let oc = Oc::new();
    oc.command()
        .args(["task", "create", "seed"])
        .output()
        .unwrap();
    let token = |agent: &str| {
        oc.json(&["token", "create", "--agent", agent, "--scope", "work"])["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (alice, bob) = (token("alice"), token("bob"));
    let mut serve = oc
        .command()
        .args([
            "--json",
            "serve",
            "--addr",
            "127.0.0.1:0",
            "--mcp-tools",
            "all",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(serve.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let _serve = Kill(serve);
    let doc: Value = serde_json::from_str(&line).unwrap();
    let url = format!("http://{}/mcp", doc["data"]["addr"].as_str().unwrap());
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client_http.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args([&url, alice.as_str(), bob.as_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("legacy: ok") && stdout.contains("auto: ok"),
        "{stdout}"
    );
}
