//! `oc serve --oauth-issuer` against a real authorization server: `oidc-provider` (npm, a
//! certified OpenID provider) started by `tests/node/issuer.mjs`, and the official MCP
//! TypeScript SDK's OAuth client (`tests/node/client.mjs`) going the whole way: a 401 naming
//! the metadata, discovery, authorization with PKCE, the token, the calls.
//!
//! Needs `npm ci --prefix crates/cli/tests/node`; with `OC_REQUIRE_OIDC_PROVIDER` set (CI) a
//! missing install fails the test instead of skipping it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

use crate::util::Oc;

fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node")
}

/// `node` of the harness, or `None` (skipped) when it is not installed and not required.
fn node() -> Option<PathBuf> {
    let dir = harness();
    let node = dir.join("node_modules/.bin/node");
    if node.exists() && dir.join("node_modules/oidc-provider").exists() {
        return Some(node);
    }
    assert!(
        std::env::var_os("OC_REQUIRE_OIDC_PROVIDER").is_none(),
        "OC_REQUIRE_OIDC_PROVIDER is set but {} is not installed: run npm ci --prefix crates/cli/tests/node",
        node.display()
    );
    eprintln!("skipped: oidc-provider is not installed (npm ci --prefix crates/cli/tests/node)");
    None
}

/// A child process killed on drop.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd` and reads the JSON line it prints once ready; the rest of its output goes to
/// our stderr.
fn start(mut cmd: Command, what: &str) -> (Kill, Value) {
    // issuer.mjs stops when its stdin closes: ours stays open while the child lives.
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let child = Kill(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let what = what.to_owned();
    let tag = what.clone();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            eprintln!("{tag}: {l}");
        }
    });
    let doc = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{what} did not start: {e}: {line:?}"));
    (child, doc)
}

/// A port free a moment ago: the resource URL (the audience the issuer puts in tokens) must be
/// known before `oc serve` binds, so the test picks the port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// A client-credentials token of `oc-machine` (its `sub`) for `resource` with `scope`.
fn machine_token(issuer: &str, resource: &str, scope: &str) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    let mut res = http()
        .post(format!("{issuer}/token"))
        // oc-machine:oc-machine-secret
        .header(
            "Authorization",
            "Basic b2MtbWFjaGluZTpvYy1tYWNoaW5lLXNlY3JldA==",
        )
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(format!(
            "grant_type=client_credentials&scope={}&resource={}",
            enc(scope),
            enc(resource)
        ))
        .unwrap();
    let doc: Value = serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
    doc["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token: {doc}"))
        .to_owned()
}

/// One stateless (2026-07-28) `tools/call` of `name` with `bearer`: the status, the
/// `WWW-Authenticate` header, the body.
fn call(url: &str, bearer: &str, name: &str, args: Value) -> (u16, Option<String>, String) {
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}});
    let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":name,"arguments":args,"_meta":meta}});
    let mut res = http()
        .post(url)
        .header("Authorization", format!("Bearer {bearer}"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", name)
        .send(msg.to_string())
        .unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (
        res.status().as_u16(),
        challenge,
        res.body_mut().read_to_string().unwrap(),
    )
}

fn serve(oc: &Oc, args: &[&str]) -> (Kill, String) {
    let mut cmd = oc.command();
    cmd.args(["--json", "serve", "--mcp-tools", "all"])
        .args(args);
    let (child, doc) = start(cmd, "oc serve");
    (child, doc["data"]["addr"].as_str().unwrap().to_owned())
}

/// The whole flow: the SDK meets a 401 naming our metadata, finds oidc-provider through it,
/// authorizes with PKCE, and with the token claims the task as the token's agent (`sub`);
/// beside it a static token still works, a token for another audience is refused with a 401,
/// and an `oc:read` token is refused a writing tool.
#[test]
fn the_sdk_authorizes_at_oidc_provider_and_calls_oc_serve_as_the_tokens_agent() {
    let Some(node) = node() else {
        return;
    };
    let oc = Oc::new();
    let seed = oc.json(&["task", "create", "seed"]);
    let seed_id = seed["id"].as_str().unwrap().to_owned();
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let other = format!("http://127.0.0.1:{port}/other-mcp");
    let redirect = "http://127.0.0.1/callback";
    let mut issuer = Command::new(&node);
    issuer.current_dir(harness()).args([
        "issuer.mjs",
        "--audience",
        &resource,
        "--audience",
        &other,
        "--redirect-uri",
        redirect,
        "--agent",
        "alice",
    ]);
    let (_issuer, ready) = start(issuer, "issuer.mjs");
    let issuer_url = ready["issuer"].as_str().unwrap().to_owned();
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = oc.command();
    cmd.args(["--json", "serve", "--mcp-tools", "all", "--addr", &addr])
        .args(["--oauth-issuer", &issuer_url]);
    let (_serve, started) = start(cmd, "oc serve");
    assert_eq!(started["data"]["addr"], addr.as_str());
    assert_eq!(
        started["data"]["oauth"],
        json!({"issuer": issuer_url, "audience": resource})
    );

    // The metadata, at both paths, with no token.
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let mut res = http().get(format!("http://{addr}{path}")).call().unwrap();
        assert_eq!(res.status().as_u16(), 200, "{path}");
        let doc: Value = serde_json::from_str(&res.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(doc["resource"], resource.as_str(), "{path}");
        assert_eq!(doc["authorization_servers"], json!([issuer_url]), "{path}");
    }
    // Its Host check is every route's.
    let res = http()
        .get(format!(
            "http://{addr}/.well-known/oauth-protected-resource"
        ))
        .header("Host", "evil.example")
        .call()
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);

    // The SDK, from nothing to a tool call.
    let out = Command::new(&node)
        .current_dir(harness())
        .args([
            "client.mjs",
            "--server",
            &resource,
            "--scope",
            "oc:work",
            "--redirect-uri",
            redirect,
            "--tool",
            "task_claim",
            "--arguments",
            &json!({"task_id": seed_id}).to_string(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "client.mjs failed: {stderr}");
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(result["unauthorized_first"], true, "{result}");
    let tools = result["tools"].as_array().unwrap();
    assert!(tools.contains(&json!("task_claim")), "{result}");
    assert_ne!(result["call"]["isError"], true, "{result}");
    // The task is alice's: the agent the token names, with no agent argument given, in the
    // OAuth identities' namespace (no static token's `alice` can be borrowed).
    let task = oc.json(&["task", "show", &seed_id]);
    assert_eq!(task["owner"], "oauth:alice", "{task}");

    // A token the same issuer made for another resource: 401, pointing at our metadata.
    let elsewhere = machine_token(&issuer_url, &other, "oc:work");
    let (status, challenge, _) = call(&resource, &elsewhere, "task_list", json!({}));
    assert_eq!(status, 401);
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\"")
            && challenge.contains(&format!(
                "resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
            )),
        "{challenge}"
    );
    // No token at all: 401 without `error`.
    let res = http().post(&resource).send("{}").unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let missing = res
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        missing.starts_with("Bearer resource_metadata=") && !missing.contains("error="),
        "{missing}"
    );

    // An `oc:read` token reads, and is asked to step up for a writing tool: 403
    // insufficient_scope naming `oc:work` and our metadata (the MCP authorization spec),
    // before the tool runs.
    let reader = machine_token(&issuer_url, &resource, "oc:read");
    let (status, _, body) = call(&resource, &reader, "task_list", json!({}));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("seed"), "{body}");
    let (status, challenge, body) = call(
        &resource,
        &reader,
        "task_create",
        json!({"name": "written by a reader"}),
    );
    assert_eq!(status, 403, "{body}");
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.contains("error=\"insufficient_scope\"")
            && challenge.contains("scope=\"oc:work\"")
            && challenge.contains(&format!(
                "resource_metadata=\"http://{addr}/.well-known/oauth-protected-resource/mcp\""
            )),
        "{challenge}"
    );
    let list = oc.run_json(&["task", "list"]);
    assert!(!list.contains("written by a reader"), "{list}");
    // A token granting none of our scopes: 403 insufficient_scope.
    let none = machine_token(&issuer_url, &resource, "");
    let (status, challenge, body) = call(&resource, &none, "task_list", json!({}));
    assert_eq!(status, 403, "{body}");
    assert!(
        challenge
            .unwrap_or_default()
            .contains("error=\"insufficient_scope\""),
        "{body}"
    );

    // A static token works beside OAuth, as its own agent.
    let bob = oc.json(&["token", "create", "--agent", "bob", "--scope", "work"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = call(
        &resource,
        &bob,
        "task_create",
        json!({"name": "from a static token"}),
    );
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("\"isError\":true"), "{body}");
    let list = oc.run_json(&["task", "list"]);
    assert!(list.contains("from a static token"), "{list}");
}

/// Without `--oauth-issuer` there is no metadata route: a client that finds none falls back to
/// what the 401 says (here, a plain `Bearer` challenge: static tokens only).
#[test]
fn without_an_issuer_there_is_no_metadata_and_the_challenge_names_none() {
    let oc = Oc::new();
    let (_serve, addr) = serve(&oc, &["--addr", "127.0.0.1:0"]);
    for path in [
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
    ] {
        let res = http().get(format!("http://{addr}{path}")).call().unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    let res = http()
        .post(format!("http://{addr}/mcp"))
        .send("{}")
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(!challenge.contains("resource_metadata"), "{challenge}");
}

/// The resource identifier is the URL clients reach `/mcp` at: a port chosen at start cannot
/// be it, so `--oauth-audience` is required then.
#[test]
fn an_issuer_on_a_port_chosen_at_start_needs_an_audience() {
    let oc = Oc::new();
    let run = oc.run(&[
        "serve",
        "--addr",
        "127.0.0.1:0",
        "--oauth-issuer",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--oauth-audience"), "{}", run.stderr);
    // Nor can an address no client uses.
    let run = oc.run(&[
        "serve",
        "--addr",
        "0.0.0.0:9464",
        "--oauth-issuer",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("--oauth-audience"), "{}", run.stderr);
}
