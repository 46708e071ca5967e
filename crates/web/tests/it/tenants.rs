//! Tenants on the real server: a bearer's tenant chooses the app and the MCP endpoint; without
//! [`oc_web::Tenants`] a tenant's bearer is refused by `/mcp` rather than served the default
//! store; past the cap of open tenants, `503`.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use oc_auth::{AuthError, Identity, Scope, Tenant, Verifier};
use oc_hooks::{Hooks, TaskLifecycle};
use oc_locks::MemoryLockManager;
use oc_mcp::{HttpOptions, HttpSessions, Server, Toolbox};
use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};
use oc_web::{McpOptions, ServeOptions, TenantApp, Tenants, Web, serve};

/// `t-<name>` is an admin of tenant `<name>`; `t-root` of the default tenant.
#[derive(Debug)]
struct ByName;

impl Verifier for ByName {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let name = bearer
            .strip_prefix("t-")
            .ok_or_else(|| AuthError::BadToken("unknown".into()))?;
        Ok(Identity {
            agent: "ops".into(),
            scope: Scope::Admin,
            tenant: (name != "root").then(|| Tenant::new(name)).transpose()?,
        })
    }
}

/// An app and MCP endpoint over a memory store holding one task named `name`.
fn app(name: &str) -> TenantApp {
    let store = Arc::new(MemoryTaskStore::new());
    store.create(NewTask::new(name)).unwrap();
    let life = TaskLifecycle::new(store, Arc::new(Hooks::new()));
    let locks = Arc::new(MemoryLockManager::new());
    TenantApp {
        web: Arc::new(Web::new(life.clone(), locks.clone())),
        mcp: Some(Arc::new(HttpSessions::new(
            Server::new(Toolbox::new(life, locks)),
            HttpOptions::default(),
        ))),
    }
}

fn started(tenants: Option<Tenants>) -> oc_web::ServerHandle {
    let root = app("root-task");
    let verifier: Arc<dyn Verifier> = Arc::new(ByName);
    let opts = ServeOptions {
        verifier: Some(Arc::clone(&verifier)),
        mcp: Some(McpOptions::new(root.mcp.unwrap(), Some(verifier))),
        tenants: tenants.map(Arc::new),
        ..ServeOptions::default()
    };
    serve("127.0.0.1:0".parse().unwrap(), root.web, opts).unwrap()
}

fn request(addr: SocketAddr, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!(
            "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\nMcp-Method: tools/call\r\nMcp-Name: task_list\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A stateless `task_list` call on `/mcp`.
fn task_list(addr: SocketAddr, token: &str) -> (u16, String) {
    let msg = serde_json::json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"task_list","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}});
    request(addr, "POST", "/mcp", token, &msg.to_string())
}

#[test]
fn without_tenants_a_tenants_bearer_is_refused_not_served_the_default_store() {
    let server = started(None);
    let (status, body) = task_list(server.addr(), "t-acme");
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("root-task"), "{body}");
    let (status, body) = task_list(server.addr(), "t-root");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("root-task"), "{body}");
}

#[test]
fn each_bearer_is_served_its_tenants_app_and_the_cap_is_a_clear_503() {
    let server = started(Some(
        Tenants::new(|t: &Tenant| Ok(app(&format!("{t}-task")))).max_open(1),
    ));
    let a = server.addr();
    let (status, body) = task_list(a, "t-acme");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("acme-task") && !body.contains("root-task"),
        "{body}"
    );
    let (status, page) = request(a, "GET", "/ui/tasks", "t-acme", "");
    assert_eq!(status, 200);
    assert!(page.contains("acme-task") && !page.contains("root-task"));
    let (_, page) = request(a, "GET", "/ui/tasks", "t-root", "");
    assert!(page.contains("root-task") && !page.contains("acme-task"));
    // One tenant open at most: another is refused, saying why; the open one stays served.
    let (status, body) = task_list(a, "t-beta");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("at most 1 tenants"), "{body}");
    let (status, page) = request(a, "GET", "/api/stats", "t-beta", "");
    assert_eq!(status, 503, "{page}");
    assert_eq!(task_list(a, "t-acme").0, 200);
}
