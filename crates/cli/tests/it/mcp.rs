//! `oc mcp` as a real process on a data directory: only MCP messages on stdout, the workflow
//! through its tools, and two servers on one directory as two agents racing for one task and
//! one file lock.

use std::io::Write;
use std::process::Stdio;

use serde_json::{Value, json};

use crate::util::Oc;

/// Runs `oc mcp` with `lines` on stdin (then end of input); returns its stdout lines as JSON.
pub(crate) fn session(oc: &Oc, lines: &[Value]) -> Vec<Value> {
    let mut child = oc
        .command()
        .arg("mcp")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = String::new();
    for l in lines {
        input.push_str(&l.to_string());
        input.push('\n');
    }
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "oc mcp exits 0 at the end of input: {out:?}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not an MCP message: {l:?}: {e}"))
        })
        .collect()
}

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
