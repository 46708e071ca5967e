//! The server over real sockets on 127.0.0.1: what it refuses, and the headers it sends.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

use oc_tasks::{TaskId, TaskStatus, TaskStore};
use oc_web::{ServeOptions, ServerHandle, Web, serve};

use crate::filled;

/// Sends `head` (request line and headers, without the blank line) and `body`; returns the
/// status code and the whole answer.
fn send(addr: SocketAddr, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    s.write_all(&req).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let status = reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, reply)
}

fn started(web: Web, opts: ServeOptions) -> ServerHandle {
    serve("127.0.0.1:0".parse().unwrap(), Arc::new(web), opts).unwrap()
}

fn status_of(store: &Arc<dyn TaskStore>, id: &str) -> TaskStatus {
    store
        .get(&TaskId::new(id).unwrap())
        .unwrap()
        .unwrap()
        .status
}

#[test]
fn pages_carry_the_security_headers_and_foreign_hosts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let server = started(web, ServeOptions::default());
    let a = server.addr();
    let (status, reply) = send(a, &format!("GET / HTTP/1.1\r\nHost: {a}"), b"");
    assert_eq!(status, 200);
    for header in [
        "Content-Security-Policy: default-src 'none'; script-src 'self'",
        "X-Content-Type-Options: nosniff",
        "Referrer-Policy: no-referrer",
        "X-Frame-Options: DENY",
        "Cache-Control: no-store",
    ] {
        assert!(reply.contains(header), "{header} in {reply}");
    }
    let (status, _) = send(a, "GET / HTTP/1.1\r\nHost: evil.example", b"");
    assert_eq!(status, 403, "DNS rebinding: a foreign Host");
    let (status, _) = send(
        a,
        &format!("GET /metrics HTTP/1.1\r\nHost: localhost:{}", a.port()),
        b"",
    );
    assert_eq!(status, 200);
    let (status, _) = send(a, &format!("PUT / HTTP/1.1\r\nHost: {a}"), b"");
    assert_eq!(status, 405);
}

#[test]
fn only_same_origin_posts_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let server = started(web, ServeOptions::default());
    let a = server.addr();
    let retry = format!("POST /ui/tasks/f1/retry HTTP/1.1\r\nHost: {a}");
    for foreign in [
        "Sec-Fetch-Site: cross-site",
        "Sec-Fetch-Site: same-site",
        "Origin: http://127.0.0.1:1",
        "Origin: null",
    ] {
        let (status, _) = send(a, &format!("{retry}\r\n{foreign}"), b"");
        assert_eq!(status, 403, "{foreign}");
        assert_eq!(
            status_of(&store, "f1"),
            TaskStatus::Failed,
            "{foreign} changed nothing"
        );
    }
    let (status, reply) = send(
        a,
        &format!("{retry}\r\nSec-Fetch-Site: same-origin\r\nOrigin: http://{a}"),
        b"",
    );
    assert_eq!(status, 303, "{reply}");
    assert_eq!(status_of(&store, "f1"), TaskStatus::Pending);
    let big = vec![b'x'; oc_web::MAX_BODY_BYTES + 1];
    let (status, _) = send(
        a,
        &format!("POST /ui/locks/release HTTP/1.1\r\nHost: {a}"),
        &big,
    );
    assert_eq!(status, 413);
}

#[test]
fn a_read_only_server_refuses_every_action() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let server = started(web.read_only(true), ServeOptions::default());
    let a = server.addr();
    let (status, reply) = send(
        a,
        &format!("POST /ui/tasks/f1/retry HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: same-origin"),
        b"",
    );
    assert_eq!(status, 403);
    assert!(reply.contains("read-only"));
    assert_eq!(status_of(&store, "f1"), TaskStatus::Failed);
    assert_eq!(
        send(a, &format!("GET /ui/tasks HTTP/1.1\r\nHost: {a}"), b"").0,
        200
    );
}

#[test]
fn a_token_is_asked_for_and_required_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let opts = ServeOptions {
        token: Some("s3cret".into()),
        ..ServeOptions::default()
    };
    let server = started(web, opts);
    let a = server.addr();
    let (status, reply) = send(a, &format!("GET / HTTP/1.1\r\nHost: {a}"), b"");
    assert_eq!(status, 401);
    assert!(reply.contains("WWW-Authenticate: Basic"));
    let (status, _) = send(
        a,
        &format!("GET / HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer s3cret"),
        b"",
    );
    assert_eq!(status, 200);
    // "oc:s3cret", as a browser sends it after its prompt.
    let (status, _) = send(
        a,
        &format!("GET / HTTP/1.1\r\nHost: {a}\r\nAuthorization: Basic b2M6czNjcmV0"),
        b"",
    );
    assert_eq!(status, 200);

    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let web = Arc::new(web);
    let e = serve(
        "0.0.0.0:0".parse().unwrap(),
        Arc::clone(&web),
        ServeOptions::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
    let empty = ServeOptions {
        token: Some(String::new()),
        ..ServeOptions::default()
    };
    let e = serve("0.0.0.0:0".parse().unwrap(), web, empty).unwrap_err();
    assert!(
        e.to_string().contains("token"),
        "an empty token is none: {e}"
    );
}
