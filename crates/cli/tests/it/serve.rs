//! `oc serve`: a real HTTP server on 127.0.0.1, checked by Prometheus's own `promtool`.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

use crate::util::Oc;

/// The server token the tests' `oc serve` is started with ([`serve_with`], through
/// `OC_SERVE_TOKEN`) and [`get`] sends: once auth is on, every read needs a credential.
pub(crate) const TOKEN: &str = "tests-serve-token";

/// A GET over a plain TCP connection with the tests' server token: status line and body.
pub(crate) fn get(addr: &str, path: &str) -> (String, String) {
    get_with(addr, path, &format!("Authorization: Bearer {TOKEN}\r\n"))
}

/// A GET with `headers` (each ending in CRLF; none: no credential): status line and body.
pub(crate) fn get_with(addr: &str, path: &str, headers: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}\r\n").as_bytes())
        .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let (head, body) = reply.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

/// `tool` (a Prometheus program), when installed; CI sets `OC_REQUIRE_PROMTOOL` so that its
/// absence fails there instead of skipping.
fn installed(tool: &'static str) -> Option<&'static str> {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("OC_REQUIRE_PROMTOOL").is_none(),
            "{tool} is required here but missing"
        );
        eprintln!("{tool} not installed: skipping its checks");
        return None;
    }
    Some(tool)
}

/// `promtool`, when installed.
pub(crate) fn promtool() -> Option<&'static str> {
    installed("promtool")
}

pub(crate) fn promtool_check_metrics(text: &str) {
    let Some(p) = promtool() else { return };
    let mut c = Command::new(p)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `oc serve`: the process, the address, and the login URL it printed.
pub(crate) struct Served(Child, pub(crate) String, pub(crate) Option<String>);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn serve(oc: &Oc, addr: &str) -> Served {
    serve_with(oc, &["--addr", addr])
}

/// `oc serve` with `args`, and the tests' server token ([`TOKEN`]) unless the arguments say
/// `--no-auth` or name a token file.
pub(crate) fn serve_with(oc: &Oc, args: &[&str]) -> Served {
    let own = args
        .iter()
        .any(|a| *a == "--no-auth" || *a == "--token-file");
    serve_as(oc, args, (!own).then_some(TOKEN))
}

/// `oc serve` with `args` and `token` as its server token (`OC_SERVE_TOKEN`), if any.
pub(crate) fn serve_as(oc: &Oc, args: &[&str], token: Option<&str>) -> Served {
    let mut cmd = oc.command();
    cmd.args(["--json", "serve"]).args(args);
    match token {
        Some(t) => cmd.env("OC_SERVE_TOKEN", t),
        None => cmd.env_remove("OC_SERVE_TOKEN"),
    };
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    let bound = doc["data"]["addr"].as_str().unwrap().to_owned();
    let login = doc["data"]["login_url"].as_str().map(str::to_owned);
    Served(child, bound, login)
}

#[test]
fn serves_metrics_health_and_stats() {
    let oc = Oc::new();
    oc.json(&["demo", "--agents", "2", "--tasks", "20", "--seed", "3"]);
    let s = serve(&oc, "127.0.0.1:0");
    let (status, body) = get(&s.1, "/metrics");
    assert!(status.contains("200"), "{status}");
    let now: f64 = body
        .lines()
        .filter(|l| l.starts_with("opencode_tasks{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(now, 20.0, "the demo's tasks, by status: {body}");
    promtool_check_metrics(&body);
    let (status, body) = get(&s.1, "/healthz");
    assert!(status.contains("200") && body == "ok\n", "{status} {body}");
    let (status, body) = get(&s.1, "/api/stats");
    assert!(status.contains("200"));
    let stats: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stats["tasks"]["total"], 20);
    assert_eq!(
        stats["latency"][0]["operation"], "db_query",
        "scrapes time themselves"
    );
    assert!(get(&s.1, "/nope").0.contains("404"));

    // The same address again: a clear error, not a hang.
    let taken = oc.run(&["serve", "--addr", &s.1]);
    assert_eq!(taken.code, 1, "{taken:?}");
    assert!(
        taken.stderr.contains("cannot listen on"),
        "{}",
        taken.stderr
    );
}

/// A real Prometheus scrapes `oc serve` while `oc demo` runs, and its HTTP API reports the
/// demo's counts.
#[test]
fn a_real_prometheus_scrapes_the_demo() {
    let Some(prometheus) = installed("prometheus") else {
        return;
    };
    let oc = Oc::new();
    oc.run(&["task-stats"]);
    // Prometheus scrapes without a credential: `--metrics-open` lets loopback clients read
    // /metrics, and nothing else.
    let served = serve_with(&oc, &["--addr", "127.0.0.1:0", "--metrics-open"]);
    assert!(get_with(&served.1, "/metrics", "").0.contains("200"));
    assert!(get_with(&served.1, "/api/stats", "").0.contains("401"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: oc\n    static_configs:\n      - targets: ['{}']\n", served.1),
    )
    .unwrap();
    let prom = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("tsdb").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = Served(prom, String::new(), None);
    let demo = oc.json(&["demo", "--agents", "2", "--tasks", "30", "--seed", "5"]);
    let created = demo["summary"]["hook_events"]["created"].as_f64().unwrap();
    let prom_addr = format!("127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    loop {
        // Prometheus scrapes on its own schedule: ask until it has seen the finished demo.
        let pending_total = std::net::TcpStream::connect(&prom_addr).ok().and_then(|_| {
            let (status, body) = get(
                &prom_addr,
                "/api/v1/query?query=opencode_tasks_total%7Bstatus%3D%22pending%22%7D",
            );
            if !status.contains("200") {
                return None;
            }
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            v["data"]["result"][0]["value"][1]
                .as_str()?
                .parse::<f64>()
                .ok()
        });
        if pending_total.is_some_and(|n| n >= created) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Prometheus never reported the demo's {created} tasks (last: {pending_total:?})"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// `oc serve --alerts FILE` evaluates in the background; /metrics reports what fires.
#[test]
fn serve_evaluates_alerts_and_exports_them() {
    let oc = Oc::new();
    oc.json(&["task", "create", "one"]);
    let cfg = oc.data_dir().join("alerts.toml");
    std::fs::write(
        &cfg,
        "builtin = false\ninterval = \"50ms\"\n[[rule]]\nname = \"AnyPending\"\nseverity = \"high\"\nmetric = \"opencode_tasks\"\nmatch = { status = \"pending\" }\nop = \">\"\nthreshold = 0\n",
    )
    .unwrap();
    let s = serve_with(
        &oc,
        &["--addr", "127.0.0.1:0", "--alerts", cfg.to_str().unwrap()],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let body = loop {
        let (_, body) = get(&s.1, "/metrics");
        // Delivery is asynchronous: the alert fires, then its notification is sent.
        let sent = "opencode_alert_notifications_total{receiver=\"log\",result=\"sent\"} 1";
        if body.contains("opencode_alerts_firing{severity=\"high\"} 1") && body.contains(sent) {
            break body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never fired and sent: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    promtool_check_metrics(&body);
    let log = std::fs::read_to_string(oc.data_dir().join("alerts.jsonl")).unwrap();
    assert_eq!(log.lines().count(), 1, "one notification in the log: {log}");
    assert!(log.contains("\"rule\":\"AnyPending\""), "{log}");
    let (status, page) = get(&s.1, "/ui/alerts");
    assert!(
        status.contains("200") && page.contains("AnyPending"),
        "{page}"
    );
}

/// A POST over a plain TCP connection, as from a page of the server itself, with `headers`
/// (a cookie); the status line.
fn post_with(addr: &str, path: &str, headers: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("POST {path} HTTP/1.0\r\nHost: {addr}\r\nSec-Fetch-Site: same-origin\r\n{headers}Content-Length: 0\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply.lines().next().unwrap_or_default().to_owned()
}

fn post(addr: &str, path: &str) -> String {
    post_with(addr, path, "")
}

/// Opens the login URL as a browser does: the status line and the `Cookie` header its
/// session cookie makes (`Cookie: name=value\r\n`).
fn log_in(addr: &str, url: &str) -> (String, Option<String>) {
    let path = url.split_once(addr).unwrap().1;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nSec-Fetch-Site: none\r\n\r\n").as_bytes(),
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let cookie = reply
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .map(|c| format!("Cookie: {}\r\n", c.split(';').next().unwrap()));
    (reply.lines().next().unwrap_or_default().to_owned(), cookie)
}

/// The pages on the data directory: a failed task retried from its page once logged in
/// through the printed URL, and never without; `--read-only` refuses the same action;
/// `--no-auth` acts without a login and warns; a token is required beyond loopback, and read
/// from its file.
#[test]
fn serve_shows_pages_and_acts_unless_read_only() {
    let oc = Oc::new();
    oc.json(&["task", "create", "<b>flaky</b> job", "--id", "f"]);
    oc.json(&["task", "start", "f", "--agent", "a1"]);
    oc.json(&["task", "fail", "f", "--error", "boom"]);
    let ro = serve_with(&oc, &["--addr", "127.0.0.1:0", "--read-only"]);
    let (status, page) = get(&ro.1, "/ui/tasks/f");
    assert!(status.contains("200"), "{status}");
    assert!(page.contains("&lt;b&gt;flaky&lt;/b&gt; job") && page.contains("disabled"));
    let server_token = format!("Authorization: Bearer {TOKEN}\r\n");
    assert!(post_with(&ro.1, "/ui/tasks/f/retry", &server_token).contains("403"));
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "failed");
    assert!(
        get_with(&ro.1, "/ui/tasks/f", "").0.contains("401"),
        "reads need a login"
    );
    let (status, cookie) = log_in(&ro.1, ro.2.as_deref().expect("a login, to read"));
    assert!(status.contains("303"), "{status}");
    let (status, _) = get_with(&ro.1, "/ui/tasks/f", &cookie.expect("a session cookie"));
    assert!(status.contains("200"), "{status}");
    drop(ro);

    let rw = serve(&oc, "127.0.0.1:0");
    let url = rw.2.clone().expect("a login URL");
    assert!(
        url.starts_with(&format!("http://{}/login?token=", rw.1)),
        "{url}"
    );
    assert!(
        post(&rw.1, "/ui/tasks/f/retry").contains("401"),
        "no session"
    );
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "failed");
    let (status, cookie) = log_in(&rw.1, &url);
    assert!(status.contains("303"), "{status}");
    let cookie = cookie.expect("a session cookie");
    assert!(post_with(&rw.1, "/ui/tasks/f/retry", &cookie).contains("303"));
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "pending");
    assert!(log_in(&rw.1, &url).0.contains("403"), "the URL works once");
    assert!(
        get_with(&rw.1, "/", &cookie).1.contains("Overview"),
        "the session reads"
    );
    assert!(
        get_with(&rw.1, "/", "").0.contains("401"),
        "reads need a login"
    );
    drop(rw);

    oc.json(&["task", "cancel", "f"]);
    let mut child = oc
        .command()
        .args(["serve", "--addr", "127.0.0.1:0", "--no-auth"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut warning = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut warning)
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let open = Served(
        child,
        line.split("http://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned(),
        None,
    );
    assert!(
        warning.contains("--no-auth") && warning.contains("any process"),
        "{warning}"
    );
    assert!(
        post(&open.1, "/ui/tasks/f/retry").contains("303"),
        "today's behaviour"
    );
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "pending");
    drop(open);

    let open = oc.run(&["serve", "--addr", "0.0.0.0:0"]);
    assert_eq!(open.code, 1, "{open:?}");
    assert!(open.stderr.contains("token"), "{}", open.stderr);
    let empty = oc.dir_file("token", "\n");
    let refused = oc.run(&["serve", "--addr", "127.0.0.1:0", "--token-file", &empty]);
    assert_eq!(refused.code, 2, "{refused:?}");
    let file = oc.dir_file("token2", "s3cret\n");
    let guarded = serve_with(&oc, &["--addr", "127.0.0.1:0", "--token-file", &file]);
    assert!(get(&guarded.1, "/").0.contains("401"), "another token");
    assert!(
        post_with(
            &guarded.1,
            "/ui/tasks/f/cancel",
            "Authorization: Bearer s3cret\r\n"
        )
        .contains("303"),
        "the server's token acts as an admin token"
    );
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "cancelled");
}

/// Tokens made by `oc token create` act on the pages by their scope: an `admin` token acts,
/// a `work` token is refused, and a revoked admin token is refused on the next request.
#[test]
fn stored_tokens_act_on_the_pages_by_scope() {
    let oc = Oc::new();
    oc.json(&["task", "create", "job", "--id", "f"]);
    oc.json(&["task", "start", "f", "--agent", "a1"]);
    oc.json(&["task", "fail", "f", "--error", "boom"]);
    let made = |scope: &str| {
        let doc = oc.json(&["token", "create", "--agent", "ops", "--scope", scope]);
        (
            doc["token"].as_str().unwrap().to_owned(),
            doc["id"].as_str().unwrap().to_owned(),
        )
    };
    let (admin, admin_id) = made("admin");
    let (work, _) = made("work");
    let s = serve(&oc, "127.0.0.1:0");
    let bearer = |t: &str| format!("Authorization: Bearer {t}\r\n");
    assert!(post_with(&s.1, "/ui/tasks/f/retry", &bearer(&work)).contains("403"));
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "failed");
    assert!(post_with(&s.1, "/ui/tasks/f/retry", &bearer(&admin)).contains("303"));
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "pending");
    oc.json(&["token", "revoke", &admin_id]);
    assert!(post_with(&s.1, "/ui/tasks/f/cancel", &bearer(&admin)).contains("401"));
    assert_eq!(oc.json(&["task", "show", "f"])["status"], "pending");
}

/// `--workers` sets how many requests are answered at once, within bounds.
#[test]
fn serve_takes_a_bounded_number_of_workers() {
    let oc = Oc::new();
    for bad in ["0", "257", "many"] {
        let r = oc.run(&["serve", "--addr", "127.0.0.1:0", "--workers", bad]);
        assert_eq!(r.code, 2, "{bad}: {r:?}");
    }
    let s = serve_with(&oc, &["--addr", "127.0.0.1:0", "--workers", "32"]);
    assert!(get(&s.1, "/healthz").0.contains("200"));
}

/// Without `--json`, the login URL is printed with what it is for and how long it works.
#[test]
fn serve_prints_the_login_url() {
    let oc = Oc::new();
    let mut child = oc
        .command()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut text = String::new();
    for _ in 0..4 {
        out.read_line(&mut text).unwrap();
    }
    let _served = Served(child, String::new(), None);
    assert!(text.contains("/login?token="), "{text}");
    assert!(text.contains("once") && text.contains("memory"), "{text}");
    assert!(
        text.contains("Without a credential only /healthz answer"),
        "what is open is said: {text}"
    );
}

/// A task's page reads its log, decisions and checkpoints in one `overview` call: the data
/// directory's store walks to the task's directory once for the three (issue 25's regression
/// was a walk per list). Counted with `strace` attached to the running server, when installed.
#[test]
fn a_task_page_opens_the_task_directory_once() {
    let strace_here = Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !strace_here {
        eprintln!("strace not installed: skipping");
        return;
    }
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    for i in 0..3 {
        oc.json(&["logs", "append", "t1", "-m", &format!("step {i}")]);
        oc.json(&[
            "decisions",
            "add",
            "t1",
            "-a",
            "a",
            "-d",
            &format!("d{i}"),
            "-r",
            "r",
        ]);
    }
    oc.json(&["checkpoint", "create", "t1", "-d", "safe point"]);
    let s = serve(&oc, "127.0.0.1:0");
    let trace = oc.data_dir().parent().unwrap().join("trace");
    let mut strace = Command::new("strace")
        .args(["-f", "-e", "trace=openat,open", "-o"])
        .arg(&trace)
        .arg("-p")
        .arg(s.0.id().to_string())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut attached = String::new();
    let mut err = BufReader::new(strace.stderr.take().unwrap());
    err.read_line(&mut attached).unwrap();
    if !attached.contains("attached") {
        // Tracing is not allowed here (a container without ptrace): nothing to count.
        eprintln!("strace cannot attach: {attached}");
        let _ = strace.kill();
        let _ = strace.wait();
        return;
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body) = get(&s.1, "/ui/tasks/t1");
    // strace detaches on SIGINT and writes out what it saw.
    Command::new("kill")
        .args(["-INT", &strace.id().to_string()])
        .status()
        .unwrap();
    strace.wait().unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("step 2") && body.contains("d2") && body.contains("safe point"),
        "{body}"
    );
    let seen = std::fs::read_to_string(&trace).unwrap();
    let task_dir: Vec<&str> = seen
        .lines()
        .filter(|l| l.contains("open") && l.contains("\"t1\""))
        .collect();
    assert_eq!(task_dir.len(), 1, "{task_dir:#?}");
}

/// The security review's finding: with auth on (the default, which serves tenants), a local
/// process with no credential read the default tenant's pages, `/api/stats` and `/metrics`.
/// Now every read needs a session or a token (a `read` one of `oc token create` will do),
/// `/healthz` stays open, `--metrics-open` opens `/metrics` alone to loopback clients, what
/// is open is said at start, and `--no-auth` reads as before.
#[test]
fn reads_need_a_credential_once_auth_is_on() {
    let oc = Oc::new();
    oc.json(&["task", "create", "private", "--id", "p1"]);
    let reader = oc.json(&["token", "create", "--agent", "prom", "--scope", "read"])["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let s = serve_as(&oc, &["--addr", "127.0.0.1:0"], None);
    for path in ["/", "/ui/tasks", "/ui/tasks/p1", "/api/stats", "/metrics"] {
        let (status, body) = get_with(&s.1, path, "");
        assert!(status.contains("401"), "{path}: {status}");
        assert!(!body.contains("private"), "{path}: {body}");
    }
    assert!(get_with(&s.1, "/healthz", "").0.contains("200"));
    let bearer = format!("Authorization: Bearer {reader}\r\n");
    for path in ["/ui/tasks/p1", "/api/stats", "/metrics"] {
        assert!(get_with(&s.1, path, &bearer).0.contains("200"), "{path}");
    }
    drop(s);

    let mut child = oc
        .command()
        .args(["--json", "serve", "--addr", "127.0.0.1:0", "--metrics-open"])
        .env_remove("OC_SERVE_TOKEN")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
    let open = Served(
        child,
        doc["data"]["addr"].as_str().unwrap().to_owned(),
        None,
    );
    assert_eq!(
        doc["data"]["open"],
        serde_json::json!(["/healthz", "/metrics (loopback clients)"]),
        "{doc}"
    );
    let (status, body) = get_with(&open.1, "/metrics", "");
    assert!(
        status.contains("200") && body.contains("opencode_tasks"),
        "{status}"
    );
    for path in ["/", "/api/stats", "/ui/tasks/p1"] {
        assert!(get_with(&open.1, path, "").0.contains("401"), "{path}");
    }
    drop(open);

    let s = serve_as(&oc, &["--addr", "127.0.0.1:0", "--no-auth"], None);
    let (status, body) = get_with(&s.1, "/ui/tasks/p1", "");
    assert!(
        status.contains("200") && body.contains("private"),
        "--no-auth: {status}"
    );
}
