//! The server over real sockets on 127.0.0.1: what it refuses, the headers it sends, and the
//! limits that hold before the guard (sizes, timeouts, the busy answer).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use oc_auth::{AuthError, Identity, Scope, Verifier};
use oc_locks::LockManager;
use oc_tasks::{TaskId, TaskStatus, TaskStore};
use oc_web::{Actions, Limits, ServeOptions, ServerHandle, Sessions, Web, serve};

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
    // Reads open (`--no-auth`), so that a page is answered; a refusal carries them too.
    let server = started(
        web,
        ServeOptions {
            actions: Actions::Open,
            ..ServeOptions::default()
        },
    );
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

/// Bearer tokens over a fixed map, as the token store answers.
#[derive(Debug)]
struct Fixed;

impl Verifier for Fixed {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let scope = match bearer {
            "admin-token" => Scope::Admin,
            "work-token" => Scope::Work,
            _ => return Err(AuthError::BadToken("unknown".into())),
        };
        Ok(Identity {
            agent: "agent-2".into(),
            scope,
            tenant: None,
        })
    }
}

/// A server as `oc serve` starts it by default: the login, and bearers through the verifier.
/// Its sessions and the printed login URL's path (`/login?token=…`).
fn logged(web: Web) -> (ServerHandle, Arc<Sessions>, String) {
    let sessions = Arc::new(Sessions::new().unwrap());
    let opts = ServeOptions {
        sessions: Some(Arc::clone(&sessions)),
        verifier: Some(Arc::new(Fixed)),
        ..ServeOptions::default()
    };
    let server = started(web, opts);
    let url = sessions.login_url(server.addr()).unwrap();
    let path = url
        .split_once(&server.addr().to_string())
        .unwrap()
        .1
        .to_owned();
    (server, sessions, path)
}

fn lock_held(locks: &Arc<dyn LockManager>) -> bool {
    locks
        .list()
        .unwrap()
        .iter()
        .any(|l| l.resource.as_str() == "repo/src/lib.rs")
}

/// What an agent with `curl` on this machine could do before: retry, cancel, release locks,
/// bulk actions, all without a word. Every one is refused and changes nothing.
#[test]
fn a_local_process_without_a_session_or_token_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, locks) = filled(dir.path());
    let (server, _, _) = logged(web);
    let a = server.addr();
    let form = |body: &str| body.as_bytes().to_vec();
    for (path, body) in [
        ("/ui/tasks/f1/retry", form("")),
        ("/ui/tasks/r1/cancel", form("")),
        ("/ui/locks/release", form("owner=agent-2")),
        ("/ui/bulk", form("action=retry&status=failed&confirm=1")),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/x-www-form-urlencoded"
        );
        for credential in [
            "",
            "\r\nCookie: oc_session=forged",
            &format!("\r\nCookie: oc_session_{}={}", a.port(), "0".repeat(64)),
            "\r\nAuthorization: Bearer guessed",
        ] {
            let (status, reply) = send(a, &format!("{head}{credential}"), &body);
            assert_eq!(status, 401, "{path} {credential:?}: {reply}");
            assert!(reply.contains("oc serve"), "says how to log in: {reply}");
        }
        let (status, reply) = send(
            a,
            &format!("{head}\r\nAuthorization: Bearer work-token"),
            &body,
        );
        assert_eq!(
            status, 403,
            "a work token may not act on the pages: {reply}"
        );
    }
    assert_eq!(status_of(&store, "f1"), TaskStatus::Failed, "still failed");
    assert_eq!(
        status_of(&store, "r1"),
        TaskStatus::Running,
        "still running"
    );
    assert!(lock_held(&locks), "the lock is still held");
}

/// The printed URL, opened once, sets a session cookie and goes to the overview; the session
/// acts; the URL opens nothing a second time; logout ends the session.
#[test]
fn the_printed_url_logs_in_once_and_the_session_acts() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, locks) = filled(dir.path());
    let (server, _, login) = logged(web);
    let a = server.addr();
    let (status, reply) = send(
        a,
        &format!("GET {login} HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: none"),
        b"",
    );
    assert_eq!(status, 303, "{reply}");
    assert!(reply.contains("\r\nLocation: /\r\n"), "{reply}");
    let set = reply
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"));
    let cookie = set
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    let (status, reply) = send(
        a,
        &format!("GET {login} HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: none"),
        b"",
    );
    assert_eq!(status, 403, "replayed: {reply}");
    assert!(
        !reply
            .to_ascii_lowercase()
            .contains("set-cookie: oc_session_"),
        "{reply}"
    );

    let post = |path: &str, body: &str, extra: &str| {
        send(
            a,
            &format!(
                "POST {path} HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: same-origin\r\nCookie: {cookie}{extra}"
            ),
            body.as_bytes(),
        )
    };
    let (status, reply) = post("/ui/tasks/f1/retry", "", "");
    assert_eq!(status, 303, "{reply}");
    assert_eq!(status_of(&store, "f1"), TaskStatus::Pending);
    // An admin bearer acts too, with no session.
    let (status, reply) = send(
        a,
        &format!(
            "POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nAuthorization: Bearer admin-token"
        ),
        b"owner=agent-2",
    );
    assert_eq!(status, 303, "{reply}");
    assert!(!lock_held(&locks));

    let (status, _) = post("/logout", "", "");
    assert_eq!(status, 200);
    let (status, _) = post("/ui/tasks/r1/cancel", "", "");
    assert_eq!(status, 401, "logged out");
    assert_eq!(status_of(&store, "r1"), TaskStatus::Running);
}

/// `--no-auth`: today's behaviour, every same-origin POST acts.
#[test]
fn only_same_origin_posts_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let (web, store, _) = filled(dir.path());
    let opts = ServeOptions {
        actions: Actions::Open,
        ..ServeOptions::default()
    };
    let server = started(web, opts);
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
        401,
        "reads need a credential there too"
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
    // Header names are case-insensitive (hyper writes this one `Www-Authenticate`).
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("www-authenticate: basic")
    );
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

/// A server on 127.0.0.1 with `limits` lowered for the test.
fn limited(web: Web, workers: usize, limits: Limits) -> ServerHandle {
    started(
        web,
        // Actions open, so that a POST's body is read (the limits on it are what is tested).
        ServeOptions {
            workers,
            limits,
            actions: Actions::Open,
            ..ServeOptions::default()
        },
    )
}

/// Everything the server sends before it closes the connection (or 10 s pass).
fn rest_of(s: &mut std::net::TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// Whether the server closed `s` (as opposed to the 10 s read timeout running out).
fn closed(s: &mut std::net::TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn head_is_answered_as_get_without_a_body() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let server = started(web, ServeOptions::default());
    let a = server.addr();
    let (status, reply) = send(a, &format!("HEAD /healthz HTTP/1.1\r\nHost: {a}"), b"");
    assert_eq!(status, 200, "{reply}");
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("Content-Length: 3"), "{head}");
    assert!(head.contains("X-Frame-Options: DENY"), "{head}");
    assert_eq!(body, "", "no body");
}

/// A chunked body has no declared length: it is cut as it streams, past the limit.
#[test]
fn a_chunked_body_over_the_limit_gets_413() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    // Actions open: the guard lets the POST through, so its body is read.
    let opts = ServeOptions {
        actions: Actions::Open,
        ..ServeOptions::default()
    };
    let server = started(web, opts);
    let a = server.addr();
    let mut s = std::net::TcpStream::connect(a).unwrap();
    s.write_all(
        format!(
            "POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let chunk = format!("1000\r\n{}\r\n", "x".repeat(0x1000));
    for _ in 0..(oc_web::MAX_BODY_BYTES / 0x1000 + 1) {
        s.write_all(chunk.as_bytes()).unwrap();
    }
    let reply = rest_of(&mut s);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
}

/// Headers beyond the limits get 431, before the guard (the token is not asked for).
#[test]
fn too_many_or_too_long_headers_get_431() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let opts = ServeOptions {
        token: Some("s3cret".into()),
        ..ServeOptions::default()
    };
    let server = started(web, opts);
    let a = server.addr();
    let long = format!(
        "GET / HTTP/1.1\r\nHost: {a}\r\nX-Long: {}",
        "a".repeat(20_000)
    );
    assert_eq!(send(a, &long, b"").0, 431);
    let many: String = (0..100).map(|i| format!("\r\nX-{i}: v")).collect();
    assert_eq!(
        send(a, &format!("GET / HTTP/1.1\r\nHost: {a}{many}"), b"").0,
        431
    );
    assert_eq!(send(a, &format!("GET / HTTP/1.1\r\nHost: {a}"), b"").0, 401);
}

/// A client that sends no request, or stays idle after one, is closed after the header
/// timeout; one whose body does not arrive gets 408 and is closed after the body timeout.
#[test]
fn slow_and_idle_clients_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let server = limited(
        web,
        4,
        Limits {
            header_timeout: Duration::from_millis(200),
            body_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
    );
    let a = server.addr();
    let mut silent = std::net::TcpStream::connect(a).unwrap();
    assert!(closed(&mut silent), "a connection that sends nothing");
    let mut half = std::net::TcpStream::connect(a).unwrap();
    half.write_all(format!("GET / HTTP/1.1\r\nHost: {a}\r\n").as_bytes())
        .unwrap();
    assert!(closed(&mut half), "a request whose headers never end");
    let mut kept = std::net::TcpStream::connect(a).unwrap();
    kept.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
        .unwrap();
    let reply = rest_of(&mut kept);
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "answered, then closed when idle: {reply}"
    );
    let mut slow = std::net::TcpStream::connect(a).unwrap();
    slow.write_all(
        format!("POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nContent-Length: 10\r\n\r\nab")
            .as_bytes(),
    )
    .unwrap();
    let reply = rest_of(&mut slow);
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
}

/// With every thread of the app busy and no room to wait, a request gets 503 and
/// `Retry-After` at once; the busy one still completes.
#[test]
fn a_busy_server_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let (entered, wait_entered) = std::sync::mpsc::channel::<()>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (entered, released) = (
        std::sync::Mutex::new(entered),
        std::sync::Mutex::new(released),
    );
    let web = web.health(move || {
        entered.lock().unwrap().send(()).unwrap();
        released.lock().unwrap().recv().unwrap();
        Ok(Vec::new())
    });
    let server = limited(
        web,
        1,
        Limits {
            max_queued: 0,
            ..Limits::default()
        },
    );
    let a = server.addr();
    let busy =
        std::thread::spawn(move || send(a, &format!("GET /healthz HTTP/1.1\r\nHost: {a}"), b""));
    wait_entered.recv().unwrap();
    let (status, reply) = send(a, &format!("GET /api/stats HTTP/1.1\r\nHost: {a}"), b"");
    assert_eq!(status, 503, "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("retry-after: 1"),
        "{reply}"
    );
    release.send(()).unwrap();
    assert_eq!(busy.join().unwrap().0, 200);
}

/// A client that asks and never reads is cut off once a write has been blocked for the write
/// timeout, instead of holding its connection for ever.
#[test]
fn a_client_that_does_not_read_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let server = limited(
        web,
        4,
        Limits {
            write_timeout: Duration::from_millis(200),
            ..Limits::default()
        },
    );
    let a = server.addr();
    let mut s = std::net::TcpStream::connect(a).unwrap();
    let request = format!("GET /ui/tasks HTTP/1.1\r\nHost: {a}\r\n\r\n");
    let asked = 5000;
    let mut sent = 0;
    s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for _ in 0..asked {
        if s.write_all(request.as_bytes()).is_err() {
            break;
        }
        sent += 1;
    }
    // Time for the server's writes to block, and for its timeout to pass.
    std::thread::sleep(Duration::from_secs(2));
    let reply = rest_of(&mut s);
    let answers = reply.matches("HTTP/1.1 200").count();
    assert!(
        answers > 0 && answers < sent,
        "{answers} answers to {sent} requests"
    );
}

/// Stopping the server closes its connections, kept-alive ones included.
#[test]
fn stopping_closes_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    let server = started(web, ServeOptions::default());
    let a = server.addr();
    let mut idle = std::net::TcpStream::connect(a).unwrap();
    idle.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {a}\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = [0; 1024];
    assert!(idle.read(&mut buf).unwrap() > 0);
    server.stop();
    assert!(closed(&mut idle));
    assert!(
        std::net::TcpStream::connect(a).is_err(),
        "no longer listening"
    );
}

/// `serve` may be called from a thread that drives a tokio runtime (most Rust agents run on
/// one): the server's runtime is built, used and dropped on its own thread, and a taken port is
/// an error there too, not a panic.
#[test]
fn serve_works_from_inside_a_tokio_runtime() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (web, _, _) = filled(dir.path());
        let web = Arc::new(web);
        let server = serve(
            "127.0.0.1:0".parse().unwrap(),
            Arc::clone(&web),
            ServeOptions::default(),
        )
        .unwrap();
        let a = server.addr();
        assert_eq!(
            send(a, &format!("GET /healthz HTTP/1.1\r\nHost: {a}"), b"").0,
            200
        );
        let e = serve(a, web, ServeOptions::default()).unwrap_err();
        assert!(e.to_string().contains("cannot listen on"), "{e}");
        server.stop();
    });
}

/// Out of descriptors (`EMFILE`), the accept loop rests and goes on: once some are free again
/// the server answers. (The old server's accept thread panicked and every later connection
/// was refused.)
///
/// The descriptor limit is the whole process's: lowering it would make other tests running
/// beside this one on threads (`cargo test`) fail, so the test runs itself in a child process,
/// alone.
#[cfg(target_os = "linux")]
#[test]
fn the_accept_loop_survives_running_out_of_descriptors() {
    const ALONE: &str = "OC_WEB_TEST_ALONE";
    if std::env::var_os(ALONE).is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "server::the_accept_loop_survives_running_out_of_descriptors",
                "--test-threads=1",
                "--nocapture",
            ])
            .env(ALONE, "1")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("1 passed"),
            "the test alone: {:?}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    use rustix::process::{Resource, getrlimit, setrlimit};
    let dir = tempfile::tempdir().unwrap();
    let (web, _, _) = filled(dir.path());
    // The connection cap is taken from the limit at start: lowering it afterwards lets the
    // accepts themselves fail.
    let server = started(web, ServeOptions::default());
    let a = server.addr();
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let mut limit = getrlimit(Resource::Nofile);
    let restore = limit;
    limit.current = Some(open + 40);
    setrlimit(Resource::Nofile, limit).unwrap();
    // Client and server share this process's descriptors: the clients take what is left, so
    // the server's accepts fail.
    let mut held = Vec::new();
    while let Ok(s) = std::net::TcpStream::connect(a) {
        held.push(s);
        assert!(held.len() < 1000, "the limit did not hold");
    }
    std::thread::sleep(Duration::from_millis(300));
    drop(held);
    setrlimit(Resource::Nofile, restore).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let answered = std::panic::catch_unwind(|| {
            send(a, &format!("GET /healthz HTTP/1.1\r\nHost: {a}"), b"").0
        });
        if answered.is_ok_and(|status| status == 200) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no longer answers");
        std::thread::sleep(Duration::from_millis(50));
    }
}
