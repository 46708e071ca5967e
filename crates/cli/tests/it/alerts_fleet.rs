//! Two `oc serve --alerts` on one PostgreSQL database, notifying a real Prometheus
//! Alertmanager (Debian's `prometheus-alertmanager`): the evaluator is killed with SIGKILL
//! while its alert fires, the other takes the lease over once it lapses, and Alertmanager
//! receives exactly one firing and one resolved notification per change.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use oc_postgres::testkit::{PgServer, postgres_for_tests};

use crate::util::Oc;

const ALERTMANAGER: &str = "prometheus-alertmanager";

/// Kills and reaps its process on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The body of `GET path` from `addr` (HTTP/1.0), if it answered 200 within 2 seconds.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let sock = addr.parse().ok()?;
    let mut s = std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut reply = String::new();
    s.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    head.lines()
        .next()?
        .contains(" 200")
        .then(|| body.to_owned())
}

/// `alertmanager_alerts_received_total` by status, summed over its other labels.
fn received(base: &str) -> Option<(u64, u64)> {
    let text = http_get(base.strip_prefix("http://")?, "/metrics")?;
    let (mut firing, mut resolved) = (0.0, 0.0);
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("alertmanager_alerts_received_total{") else {
            continue;
        };
        let value: f64 = rest.rsplit(' ').next()?.parse().ok()?;
        if rest.contains("status=\"firing\"") {
            firing += value;
        } else if rest.contains("status=\"resolved\"") {
            resolved += value;
        }
    }
    Some((firing as u64, resolved as u64))
}

/// Waits (at most `limit`) until `f` holds, saying `what` otherwise.
fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start_alertmanager(dir: &std::path::Path) -> (Killed, String) {
    let config = dir.join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let am = Killed(
        Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for("Alertmanager to start", Duration::from_secs(30), || {
        received(&base).is_some()
    });
    (am, base)
}

/// `oc serve --alerts cfg` on `oc`'s data directory and database; waits for its address.
fn serve(oc: &Oc, cfg: &str) -> Killed {
    let mut child = oc
        .command()
        .args(["--json", "serve", "--addr", "127.0.0.1:0", "--alerts", cfg])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert!(line.contains("\"addr\""), "serve did not start: {line}");
    Killed(child)
}

/// One `psql` answer, trimmed.
fn sql(pg: &PgServer, db: &str, query: &str) -> String {
    pg.psql(db, query).unwrap().trim().to_owned()
}

/// The process id in the lease holder's name (`host/pid/tag`), if a lease is held.
fn holder_pid(pg: &PgServer, db: &str) -> Option<u32> {
    let h = sql(
        pg,
        db,
        "SELECT holder FROM oc.alert_lease WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint",
    );
    h.split('/').nth(1)?.parse().ok()
}

fn undelivered(pg: &PgServer, db: &str) -> String {
    sql(
        pg,
        db,
        "SELECT count(*) FROM oc.alert_outbox WHERE delivered_at IS NULL",
    )
}

#[test]
fn a_fleet_on_one_database_notifies_once_per_change_when_its_evaluator_is_killed() {
    if Command::new(ALERTMANAGER)
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            !in_ci() && std::env::var_os("OC_REQUIRE_ALERTMANAGER").is_none(),
            "{ALERTMANAGER} is required here but missing"
        );
        eprintln!("{ALERTMANAGER} not installed: skipping");
        return;
    }
    let Some(pg) = postgres_for_tests() else {
        assert!(!in_ci(), "PostgreSQL is required under CI=true but missing");
        return;
    };
    let db = "alerts_fleet";
    pg.psql("postgres", &format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = pg.url(db);
    let scratch = tempfile::tempdir().unwrap();
    let (_am, base) = start_alertmanager(scratch.path());

    let cfg = scratch.path().join("alerts.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"builtin = false
interval = "300ms"

[[rule]]
name = "OcFleetProbe"
severity = "high"
metric = "opencode_tasks"
match = {{ status = "pending" }}
op = ">"
threshold = 0
summary = "{{{{value}}}} tasks wait"

[[receiver]]
name = "am"
kind = "alertmanager"
url = "{base}"
"#
        ),
    )
    .unwrap();
    let cfg = cfg.to_str().unwrap();

    // Two hosts: their own data directories, one database.
    let (a, b) = (Oc::on_database(&url), Oc::on_database(&url));
    a.json(&["db", "migrate"]);
    assert_eq!(sql(&pg, db, "SELECT count(*) FROM oc.alert_lease"), "0");
    let mut serving = vec![serve(&a, cfg), serve(&b, cfg)];
    wait_for("a lease holder", Duration::from_secs(30), || {
        holder_pid(&pg, db).is_some()
    });

    // A change: a task waits, the alert fires, one notification.
    a.json(&["task", "create", "probe", "--id", "p1"]);
    wait_for("the firing notification", Duration::from_secs(30), || {
        received(&base).is_some_and(|(f, _)| f >= 1)
    });
    wait_for("the row marked delivered", Duration::from_secs(30), || {
        undelivered(&pg, db) == "0"
    });

    // The evaluator dies while its alert fires; the alert resolves meanwhile.
    let dead = holder_pid(&pg, db).unwrap();
    let i = serving
        .iter()
        .position(|s| s.0.id() == dead)
        .unwrap_or_else(|| panic!("the holder {dead} is neither server"));
    let mut victim = serving.remove(i);
    sigkill(&mut victim.0);
    let killed_at = Instant::now();
    b.json(&["task", "cancel", "p1"]);

    // The other takes over once the lease lapsed (15 s) and sends the resolution, once.
    wait_for("the resolved notification", Duration::from_secs(60), || {
        received(&base).is_some_and(|(_, r)| r >= 1)
    });
    assert!(
        killed_at.elapsed() >= Duration::from_secs(10),
        "handed over only once the lease lapsed: {:?}",
        killed_at.elapsed()
    );
    let survivor = serving[0].0.id();
    assert_eq!(holder_pid(&pg, db), Some(survivor));

    // Another change under the new evaluator: fires and resolves once each.
    a.json(&["task", "create", "probe again", "--id", "p2"]);
    wait_for("the second firing", Duration::from_secs(30), || {
        received(&base).is_some_and(|(f, _)| f >= 2)
    });
    a.json(&["task", "cancel", "p2"]);
    wait_for("the second resolution", Duration::from_secs(30), || {
        received(&base).is_some_and(|(_, r)| r >= 2)
    });
    wait_for("every row delivered", Duration::from_secs(30), || {
        undelivered(&pg, db) == "0"
    });
    // Several more evaluations by the survivor: nothing more is sent.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        received(&base),
        Some((2, 2)),
        "one firing and one resolved notification per change"
    );
    assert_eq!(
        sql(&pg, db, "SELECT count(*) FROM oc.alert_outbox"),
        "4",
        "four notifications committed in all"
    );

    // Both hosts read the shared state.
    let listed = b.json(&["alerts", "--config", cfg, "list"]);
    let alerts = listed["rules"][0]["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{listed}");
    assert_eq!(alerts[0]["state"], "resolved");
}

/// SIGKILL (what `Child::kill` sends on Unix), then reaps the process.
fn sigkill(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// A webhook receiver on 127.0.0.1 recording each notification's status.
fn sink() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
    let url = format!("http://{}", server.server_addr().to_ip().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for mut req in server.incoming_requests() {
            let mut body = String::new();
            req.as_reader().read_to_string(&mut body).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            seen.lock()
                .unwrap()
                .push(v["status"].as_str().unwrap_or("").to_owned());
            let _ = req.respond(tiny_http::Response::from_string(""));
        }
    });
    (url, got)
}

/// `oc alerts check` and `silence` from two hosts on one database: the state and silences are
/// shared, and a one-off check gives the lease back, so the next evaluates at once.
#[test]
fn alerts_commands_on_one_database_share_state_and_silences() {
    let Some(pg) = postgres_for_tests() else {
        assert!(!in_ci(), "PostgreSQL is required under CI=true but missing");
        return;
    };
    let db = "alerts_shared";
    pg.psql("postgres", &format!("CREATE DATABASE {db}"))
        .unwrap();
    let url = pg.url(db);
    let (a, b) = (Oc::on_database(&url), Oc::on_database(&url));
    let (hook, got) = sink();
    let cfg = a.dir_file(
        "alerts.toml",
        &format!(
            "builtin = false\n[[rule]]\nname = \"Waiting\"\nseverity = \"high\"\nmetric = \"opencode_tasks\"\nmatch = {{ status = \"pending\" }}\nop = \">\"\nthreshold = 0\n\n[[receiver]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}\"\n"
        ),
    );
    a.json(&["task", "create", "one", "--id", "t1"]);
    assert_eq!(a.json(&["alerts", "--config", &cfg, "check"])["firing"], 1);
    assert_eq!(*got.lock().unwrap(), ["firing"]);
    // The other host reads the same state: still firing, nothing sent again.
    let again = b.json(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(again["firing"], 1, "{again}");
    assert_eq!(again["sent"], serde_json::json!([]));
    // The lease was given back: the resolution goes out at once, from whichever host.
    b.json(&["task", "cancel", "t1"]);
    let resolved = a.json(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(resolved["sent"].as_array().unwrap().len(), 1, "{resolved}");
    assert_eq!(*got.lock().unwrap(), ["firing", "resolved"]);

    // A silence set on b mutes a's evaluation; a lists it.
    b.json(&[
        "alerts",
        "--config",
        &cfg,
        "silence",
        "alertname=Waiting",
        "--for",
        "1h",
        "--comment",
        "from b",
    ]);
    let listed = a.json(&["alerts", "--config", &cfg, "list"]);
    assert_eq!(listed["silences"][0]["comment"], "from b", "{listed}");
    a.json(&["task", "create", "two", "--id", "t2"]);
    let quiet = a.json(&["alerts", "--config", &cfg, "check"]);
    assert_eq!(quiet["firing"], 1);
    assert_eq!(got.lock().unwrap().len(), 2, "silenced from the other host");
    assert!(
        !a.data_dir().join("alerts-state.json").exists(),
        "no state file on a database"
    );
}
