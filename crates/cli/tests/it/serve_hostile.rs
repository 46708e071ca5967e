//! `oc serve` under hostile clients (issue 25, section 1): the real binary as a child process,
//! attacked over real sockets on 127.0.0.1. Each test reproduces one way the server used to
//! die or stall; the figures they print are the ones in docs/RELIABILITY.md.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::util::Oc;

/// `/healthz` must answer within this, whatever else is going on: well under the server's 10 s
/// header timeout (a stall behind idle connections waits that long), with room for a busy machine.
const HEALTHZ_WITHIN: Duration = Duration::from_secs(3);

/// `oc serve` on 127.0.0.1:0, started through `sh -c 'ulimit -n <nofile>; exec oc ...'` so
/// that its descriptor limit is the test's to choose; killed on drop.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    /// Actions open (`--no-auth`), so that a POST's body is read: the bounds on bodies are
    /// what these tests measure, not the login that refuses a stranger before them.
    fn start(oc: &Oc, nofile: u32) -> Server {
        Server::start_with(oc, nofile, &["--no-auth"])
    }

    fn start_with(oc: &Oc, nofile: u32, args: &[&str]) -> Server {
        // Something to show, and a data directory that exists.
        oc.json(&["task", "create", "hostile clients"]);
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_oc"))
            .arg("--data-dir")
            .arg(oc.data_dir())
            .args(["--json", "serve", "--addr", "127.0.0.1:0"])
            .args(args)
            .env_remove("OC_DATA_DIR")
            .env_remove("OC_DATABASE_URL")
            .env_remove("OC_DATABASE_CA")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("oc serve did not start ({e}): {line:?}"));
        let addr = doc["data"]["addr"].as_str().unwrap().to_owned();
        Server { child, addr }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics if the process has exited.
    fn assert_alive(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("oc serve died: {status}");
        }
    }

    /// `/proc/<pid>/status`'s `VmRSS`, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in {status}"))
    }

    /// How many entries `/proc/<pid>/<what>` has (`task`: threads, `fd`: open descriptors).
    fn count(&self, what: &str) -> usize {
        std::fs::read_dir(format!("/proc/{}/{what}", self.pid()))
            .unwrap()
            .count()
    }

    /// Asks `/healthz` once; panics unless it answers 200 within [`HEALTHZ_WITHIN`]. Returns
    /// how long it took.
    fn healthz(&self) -> Duration {
        self.healthz_as(None)
    }

    /// [`healthz`](Self::healthz) with `token` as a Bearer token, if given.
    fn healthz_as(&self, token: Option<&str>) -> Duration {
        let t = Instant::now();
        let answer = healthz_once_as(&self.addr, token);
        let took = t.elapsed();
        match answer {
            Ok(reply) if reply.starts_with("HTTP/1.1 200") && took <= HEALTHZ_WITHIN => took,
            other => panic!(
                "/healthz did not answer 200 within {HEALTHZ_WITHIN:?} ({took:?}): {other:?}"
            ),
        }
    }

    /// Waits (up to 20 s) until `/healthz` answers, for after an attack.
    fn wait_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match healthz_once(&self.addr) {
                Ok(reply) if reply.starts_with("HTTP/1.1 200") => return,
                other => assert!(
                    Instant::now() < deadline,
                    "the server no longer answers: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn healthz_once(addr: &str) -> std::io::Result<String> {
    healthz_once_as(addr, None)
}

fn healthz_once_as(addr: &str, token: Option<&str>) -> std::io::Result<String> {
    let sock = addr.parse().unwrap();
    let mut s = TcpStream::connect_timeout(&sock, HEALTHZ_WITHIN)?;
    s.set_read_timeout(Some(HEALTHZ_WITHIN))?;
    s.set_write_timeout(Some(HEALTHZ_WITHIN))?;
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    s.write_all(
        format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    Ok(reply)
}

/// Connects to `addr` and writes `bytes`, ignoring a refusal to read them (the server may
/// hang up first); the connection stays open while the stream lives.
fn open(addr: &str, bytes: &[u8]) -> Option<TcpStream> {
    let mut s = TcpStream::connect(addr).ok()?;
    let _ = s.write_all(bytes);
    Some(s)
}

/// Whatever the server sends back before it closes (or 5 s pass).
fn reply_of(s: &mut TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply).into_owned()
}

/// Appends `figures` as one line (`{"test": "oc-cli.serve_hostile.<test>", ...}`) to the file
/// `OC_RELIABILITY_OUT` names, as `oc_lincheck::publish` does: `cargo xtask reliability` and
/// `cargo xtask ci` print them. Figures are evidence, not results: a failed write is ignored.
fn publish(test: &str, figures: serde_json::Value) {
    let Some(path) = std::env::var_os("OC_RELIABILITY_OUT") else {
        return;
    };
    let mut line = serde_json::json!({ "test": format!("oc-cli.serve_hostile.{test}") });
    if let (Some(line), serde_json::Value::Object(f)) = (line.as_object_mut(), figures) {
        line.extend(f);
    }
    let mut text = line.to_string();
    text.push('\n');
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(text.as_bytes());
    }
}

/// Lets this process open `n` descriptors (the storm holds over a thousand sockets).
fn allow_descriptors(n: u64) {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|c| c < n) {
        limit.current = Some(limit.maximum.map_or(n, |m| m.min(n)));
        setrlimit(Resource::Nofile, limit).unwrap();
    }
}

/// One request whose body claims nearly 2^63 bytes (one byte sent, then a half-close) used to
/// abort the process as it allocated the declared length, before authentication, read-only or
/// not: it gets 413 before the guard (the Host is foreign) and the server lives.
#[test]
fn a_body_declaring_exabytes_gets_413_and_the_server_lives() {
    let oc = Oc::new();
    let token = oc.dir_file("token", "s3cret\n");
    for (args, bearer) in [
        (&[][..], None),
        (&["--read-only"][..], None),
        (&["--token-file", &token][..], Some("s3cret")),
    ] {
        let mut server = Server::start_with(&oc, 1024, args);
        let mut s = open(
            &server.addr,
            b"POST / HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 9223372036854775000\r\n\r\nx",
        )
        .unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let reply = reply_of(&mut s);
        assert!(reply.starts_with("HTTP/1.1 413"), "{args:?}: {reply:?}");
        // Alive and answering, in all three configurations.
        server.healthz_as(bearer);
        server.assert_alive();
    }
}

/// More idle connections than the connection cap (992 under `ulimit -n 1024`, soft and hard):
/// the oldest idle ones make room, and `/healthz` answers within 3 s each time, also while
/// the idle clients reconnect. It used to wait until an idle connection timed out.
#[test]
fn idle_connections_beyond_the_cap_do_not_stall_healthz() {
    allow_descriptors(4096);
    let oc = Oc::new();
    let server = Server::start(&oc, 1024);
    server.healthz();
    let a = server.addr.clone();
    let mut idle: Vec<TcpStream> = (0..1100)
        .filter_map(|_| TcpStream::connect(&a).ok())
        .collect();
    assert_eq!(idle.len(), 1100);
    let mut slowest = Duration::ZERO;
    for round in 0..5 {
        slowest = slowest.max(server.healthz());
        // Some reconnect, as a client holding the cap would.
        for s in idle.iter_mut().skip(round * 200).take(200) {
            if let Ok(fresh) = TcpStream::connect(&a) {
                *s = fresh;
            }
        }
        slowest = slowest.max(server.healthz());
    }
    eprintln!("beyond the cap: /healthz slowest {slowest:?} with 1,100 idle connections");
    publish(
        "beyond_the_cap",
        serde_json::json!({ "idle": 1100, "healthz_slowest_ms": slowest.as_secs_f64() * 1e3 }),
    );
    drop(idle);
}

/// Planted task logs of 1 GiB each (sparse, newline-free) and concurrent `/metrics` scrapes:
/// each scrape reads a bounded budget of log bytes, and `/healthz` has a thread of its own, so
/// it answers within 3 s throughout. Scrapes used to read every log whole (a newline-free one
/// held whole in memory) on the app's four threads, and `/healthz` waited behind them.
#[test]
fn slow_metrics_scrapes_leave_healthz_answering() {
    let oc = Oc::new();
    let server = Server::start(&oc, 1024);
    for t in 0..4 {
        let dir = oc.data_dir().join(format!("tasks/big-{t}"));
        std::fs::create_dir_all(&dir).unwrap();
        let f = std::fs::File::create(dir.join("logs.jsonl")).unwrap();
        f.set_len(1 << 30).unwrap();
    }
    let a = server.addr.clone();
    let scrapes: Vec<_> = (0..6)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let mut s = TcpStream::connect(&a).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                s.write_all(
                    format!("GET /metrics HTTP/1.1\r\nHost: {a}\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .unwrap();
                let mut reply = String::new();
                let _ = s.read_to_string(&mut reply);
                (t.elapsed(), reply.lines().next().unwrap_or("").to_owned())
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while !scrapes.iter().all(std::thread::JoinHandle::is_finished) {
        slowest = slowest.max(server.healthz());
        std::thread::sleep(Duration::from_millis(50));
    }
    let answered: Vec<(Duration, String)> =
        scrapes.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!("metrics scrapes: {answered:?}; /healthz slowest {slowest:?}");
    for (took, status) in &answered {
        assert!(
            status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.1 503"),
            "{answered:?}"
        );
        assert!(*took < Duration::from_secs(30), "{answered:?}");
    }
    assert!(
        answered.iter().any(|(_, s)| s.starts_with("HTTP/1.1 200")),
        "{answered:?}"
    );
    server.healthz();
}

/// Slow clients hold no worker: four bodies declared and never sent, four chunked bodies with
/// no chunk, four `Connection: Upgrade` GETs with nothing after; `/healthz` still answers.
#[test]
fn slow_clients_do_not_stall_the_server() {
    let oc = Oc::new();
    let mut server = Server::start(&oc, 1024);
    let a = server.addr.clone();
    let mut held = Vec::new();
    for _ in 0..4 {
        held.extend(open(
            &a,
            format!("POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: same-origin\r\nContent-Length: 5000\r\n\r\n").as_bytes(),
        ));
        held.extend(open(
            &a,
            format!("POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nSec-Fetch-Site: same-origin\r\nTransfer-Encoding: chunked\r\n\r\n").as_bytes(),
        ));
        held.extend(open(
            &a,
            format!(
                "GET / HTTP/1.1\r\nHost: {a}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            )
            .as_bytes(),
        ));
    }
    assert_eq!(held.len(), 12);
    for _ in 0..5 {
        server.healthz();
    }
    server.assert_alive();
}

/// `GET / HTTP/2.0` lines, the client closing at once, under `ulimit -n 256`: each used to leak
/// a thread and a socket until the accept thread panicked. Afterwards the server still
/// accepts, and its threads and descriptors are back near where they started.
#[test]
fn http2_request_lines_leak_nothing() {
    let oc = Oc::new();
    let mut server = Server::start(&oc, 256);
    server.healthz();
    let (threads, fds) = (server.count("task"), server.count("fd"));
    for _ in 0..1000 {
        drop(open(
            &server.addr,
            format!("GET / HTTP/2.0\r\nHost: {}\r\n\r\n", server.addr).as_bytes(),
        ));
    }
    server.wait_healthy();
    server.healthz();
    server.assert_alive();
    // Connections close as the server gets to them; blocking threads may linger a moment.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = (server.count("task"), server.count("fd"));
        eprintln!(
            "http/2.0 lines: threads {threads} -> {}, fds {fds} -> {}",
            now.0, now.1
        );
        if now.0 <= threads + 4 && now.1 <= fds + 4 {
            publish(
                "http2_request_lines_leak_nothing",
                serde_json::json!({
                    "lines": 1000, "nofile": 256,
                    "threads_before": threads, "threads_after": now.0,
                    "fds_before": fds, "fds_after": now.1,
                }),
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "threads {threads} -> {}, descriptors {fds} -> {}",
            now.0,
            now.1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The resident memory `oc serve` may gain from the two header attacks below.
const HEADER_ATTACK_RSS_KIB: u64 = 8 * 1024;

/// One 48 MiB header line, then 400,000 small headers: refused (431 or a close) and the
/// server's resident memory grows by less than [`HEADER_ATTACK_RSS_KIB`].
#[test]
fn huge_headers_are_refused_in_bounded_memory() {
    let oc = Oc::new();
    let mut server = Server::start(&oc, 1024);
    server.healthz();
    let before = server.rss_kib();
    let a = server.addr.clone();

    let mut s = open(
        &a,
        format!("GET / HTTP/1.1\r\nHost: {a}\r\nX-Big: ").as_bytes(),
    )
    .unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..(48 * 16) {
        if s.write_all(&chunk).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"\r\n\r\n");
    let reply = reply_of(&mut s);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply:?}"
    );
    server.assert_alive();
    let after_line = server.rss_kib();

    let mut s = open(&a, format!("GET / HTTP/1.1\r\nHost: {a}\r\n").as_bytes()).unwrap();
    let many: Vec<u8> = (0..400_000)
        .flat_map(|i| format!("X-{}: v\r\n", i % 100).into_bytes())
        .collect();
    for part in many.chunks(64 * 1024) {
        if s.write_all(part).is_err() {
            break;
        }
    }
    let _ = s.write_all(b"\r\n");
    let reply = reply_of(&mut s);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply:?}"
    );
    server.assert_alive();
    server.healthz();
    let after = server.rss_kib();
    eprintln!(
        "header attacks: VmRSS {before} KiB, {after_line} KiB after the 48 MiB line, {after} KiB after 400,000 headers"
    );
    publish(
        "huge_headers_are_refused_in_bounded_memory",
        serde_json::json!({
            "rss_before_kib": before, "rss_after_line_kib": after_line,
            "rss_after_headers_kib": after, "rss_bound_growth_kib": HEADER_ATTACK_RSS_KIB,
        }),
    );
    assert!(
        after_line.max(after) < before + HEADER_ATTACK_RSS_KIB,
        "VmRSS grew from {before} KiB to {after_line} KiB, then {after} KiB"
    );
}

/// The most resident memory `oc serve` may use during the storm below.
const STORM_RSS_KIB: u64 = 64 * 1024;

/// All at once: 1,000 idle connections, 100 clients trickling a body a byte at a time and
/// 10,000 malformed request lines; `/healthz`, asked every 100 ms, answers within 3 s each
/// time and the resident memory stays under [`STORM_RSS_KIB`].
#[test]
fn a_storm_of_hostile_clients_leaves_healthz_answering() {
    allow_descriptors(4096);
    let oc = Oc::new();
    let mut server = Server::start(&oc, 4096);
    server.healthz();
    let before = server.rss_kib();
    let a = server.addr.clone();

    let idle: Vec<TcpStream> = (0..1000).map(|_| TcpStream::connect(&a).unwrap()).collect();
    let mut slow: Vec<TcpStream> = (0..100)
        .filter_map(|_| {
            open(
                &a,
                format!(
                    "POST /ui/locks/release HTTP/1.1\r\nHost: {a}\r\nContent-Length: 5000\r\n\r\n"
                )
                .as_bytes(),
            )
        })
        .collect();
    assert_eq!(slow.len(), 100);

    let done = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let malformed: Vec<_> = (0..4)
        .map(|t| {
            let (a, answered) = (a.clone(), Arc::clone(&answered));
            std::thread::spawn(move || {
                let lines: [&[u8]; 5] = [
                    b"GET / HTTP/2.0\r\n\r\n",
                    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
                    b"GET\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost\r\n\r\n",
                    b"BREW /pot HTCPCP/1.0 \x00\x01\r\n\r\n",
                ];
                for i in 0..2500 {
                    let Some(mut s) = open(&a, lines[(i + t) % lines.len()]) else {
                        continue;
                    };
                    let _ = s.shutdown(Shutdown::Write);
                    if !reply_of(&mut s).is_empty() {
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    let trickle = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                for s in &mut slow {
                    let _ = s.write_all(b"x");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            slow
        })
    };

    let started = Instant::now();
    let (mut asked, mut slowest, mut peak) = (0, Duration::ZERO, before);
    let (mut fds, mut threads) = (0, 0);
    while !malformed.iter().all(std::thread::JoinHandle::is_finished) {
        slowest = slowest.max(server.healthz());
        asked += 1;
        peak = peak.max(server.rss_kib());
        fds = fds.max(server.count("fd"));
        threads = threads.max(server.count("task"));
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    for t in malformed {
        t.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let slow = trickle.join().unwrap();
    server.assert_alive();
    server.healthz();
    let after = server.rss_kib();
    eprintln!(
        "storm: {took:?}, /healthz asked {asked} times, slowest {slowest:?}; VmRSS {before} KiB before, peak {peak} KiB, {after} KiB after; at most {fds} descriptors and {threads} threads; {} of 10000 malformed lines answered",
        answered.load(Ordering::Relaxed)
    );
    publish(
        "storm",
        serde_json::json!({
            "seconds": took.as_secs_f64(), "healthz_asked": asked,
            "healthz_slowest_ms": slowest.as_secs_f64() * 1e3,
            "rss_before_kib": before, "rss_peak_kib": peak, "rss_after_kib": after,
            "rss_bound_kib": STORM_RSS_KIB, "fds_peak": fds, "threads_peak": threads,
            "malformed_answered": answered.load(Ordering::Relaxed),
        }),
    );
    assert!(asked >= 1);
    assert!(
        fds > 1000,
        "the idle connections were held open: {fds} descriptors"
    );
    assert!(peak < STORM_RSS_KIB, "VmRSS peaked at {peak} KiB");
    drop((idle, slow));
}

/// The same hostile clients against `/mcp`, unauthenticated (issue 28): a body declaring
/// exabytes, bodies that never arrive, and a flood of handshake-era sessions. Each is bounded
/// before the endpoint sees it, sessions beyond the cap push out the least recently used, and
/// `/healthz` answers throughout.
#[test]
fn hostile_clients_of_mcp_are_bounded_too() {
    let oc = Oc::new();
    let mut server = Server::start(&oc, 1024);
    let a = server.addr.clone();
    let mut s = open(
        &a,
        format!("POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Length: 9223372036854775000\r\n\r\nx")
            .as_bytes(),
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let reply = reply_of(&mut s);
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply:?}");
    let big = "x".repeat(oc_web::MAX_BODY_BYTES + 1);
    let mut s = open(
        &a,
        format!("POST /mcp HTTP/1.1\r\nHost: {a}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n", big.len())
            .as_bytes(),
    )
    .unwrap();
    let reply = reply_of(&mut s);
    assert!(
        reply.starts_with("HTTP/1.1 413"),
        "a chunked body past the limit: {reply:?}"
    );

    // Bodies that never arrive hold nothing the pages need.
    let mut held = Vec::new();
    for _ in 0..8 {
        held.extend(open(
            &a,
            format!("POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{{").as_bytes(),
        ));
    }
    for _ in 0..3 {
        server.healthz();
    }

    // A flood of sessions, on a few keep-alive connections.
    let before = server.rss_kib();
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"flood","version":"1"}}}"#;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n\r\n{init}",
        init.len()
    );
    let mut first = None;
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (a, request) = (a.clone(), request.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(&a).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut r = BufReader::new(s.try_clone().unwrap());
                let mut ids = Vec::new();
                for _ in 0..500 {
                    s.write_all(request.as_bytes()).unwrap();
                    let (mut len, mut line) = (0, String::new());
                    loop {
                        line.clear();
                        r.read_line(&mut line).unwrap();
                        if let Some(v) = line.strip_prefix("Content-Length: ") {
                            len = v.trim().parse().unwrap();
                        }
                        if let Some(v) = line.strip_prefix("Mcp-Session-Id: ") {
                            ids.push(v.trim().to_owned());
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).unwrap();
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in threads {
        ids.extend(t.join().unwrap());
    }
    assert_eq!(ids.len(), 2000, "every initialize answered");
    if let Some(id) = ids.first() {
        first = Some(id.clone());
    }
    let grown = server.rss_kib().saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "2,000 sessions grew the server by {grown} KiB"
    );
    // The oldest session made room for newer ones: it is gone (404), the newest answers.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    let ask = |sid: &str| {
        let mut s = open(
            &a,
            format!(
                "POST /mcp HTTP/1.1\r\nHost: {a}\r\nContent-Type: application/json\r\nMcp-Session-Id: {sid}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ping}",
                ping.len()
            )
            .as_bytes(),
        )
        .unwrap();
        reply_of(&mut s)
    };
    let oldest = ask(&first.unwrap());
    assert!(oldest.starts_with("HTTP/1.1 404"), "{oldest:?}");
    let newest = ask(ids.last().unwrap());
    assert!(newest.starts_with("HTTP/1.1 200"), "{newest:?}");
    server.healthz();
    server.assert_alive();
    publish(
        "hostile_clients_of_mcp_are_bounded_too",
        serde_json::json!({ "sessions_opened": 2000, "rss_growth_kib": grown }),
    );
    drop(held);
}
