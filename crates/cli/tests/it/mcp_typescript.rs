//! The official MCP TypeScript SDK (`Client` over `StreamableHTTPClientTransport`, pinned in
//! `tests/node/package-lock.json`) runs the workflow over `/mcp` of a real `oc serve`, with
//! work tokens from `oc token create` (`tests/node/client_http.mjs`).

use std::process::Command;

use crate::mcp_conformance::node_tools;
use crate::serve::serve_with;
use crate::util::Oc;

/// A token `oc token create` prints, for `agent` with `scope`.
fn token(oc: &Oc, agent: &str, scope: &str) -> String {
    let made = oc.json(&["token", "create", "--agent", agent, "--scope", scope]);
    made["token"].as_str().unwrap().to_owned()
}

/// Alice lists the tools, creates, claims, logs to, heartbeats and finishes a task, and
/// acquires and releases a lock, as her token says (no `agent` argument); bob, with a work
/// token of his own, is refused when he tries to finish or heartbeat her task or release her
/// lock. Both at 2025-11-25 and at 2025-03-26: SDK 1.32.2 speaks the handshake era only.
#[test]
fn the_official_typescript_client_runs_the_workflow_with_work_tokens() {
    let Some((dir, node)) = node_tools() else {
        return;
    };
    let oc = Oc::new();
    let alice = token(&oc, "alice", "work");
    let bob = token(&oc, "bob", "work");
    let served = serve_with(&oc, &["--addr", "127.0.0.1:0", "--mcp-tools", "all"]);
    let url = format!("http://{}/mcp", served.1);
    let out = Command::new(&node)
        .arg(dir.join("client_http.mjs"))
        .args([&url, &alice, &bob])
        .current_dir(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, "2025-11-25: ok\n2025-03-26: ok\n");
    // What alice did is in the store, done by alice.
    let tasks = oc.json(&["task", "list", "--status", "completed"]);
    let done: Vec<_> = tasks["tasks"].as_array().unwrap().iter().collect();
    assert_eq!(done.len(), 2, "{tasks}");
    assert!(done.iter().all(|t| t["owner"] == "alice"), "{tasks}");

    // Without a token, or with a wrong one, the SDK's client is refused before any tool runs.
    let out = Command::new(&node)
        .arg(dir.join("client_http.mjs"))
        .args([&url, "oct_not-a-token", &bob])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("code: 401") && stderr.contains("a valid bearer token is required"),
        "{stderr}"
    );
}
