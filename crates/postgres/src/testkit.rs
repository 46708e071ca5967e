//! A throwaway PostgreSQL server for tests: Debian's server binaries, a cluster in a temporary
//! directory, listening on a Unix socket there (no port, no network), `fsync=off`.
//!
//! Run as root, the server runs as the `postgres` user (PostgreSQL refuses root), through
//! `runuser` (`initdb`) and `setpriv` (the server). The server is started by a small shell that stops it and removes the directory
//! when this process's end of a pipe closes, so the cluster goes away when the test process
//! ends, whether it returns, panics or is killed with SIGKILL.
//!
//! ```no_run
//! let Some(pg) = oc_postgres::testkit::postgres_for_tests() else { return };
//! let url = pg.url("postgres");
//! # let _ = url;
//! ```

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running throwaway server; stopped and removed on drop (or when the process ends).
#[derive(Debug)]
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    guard: Child,
    stdin: Option<ChildStdin>,
    netns: Option<String>,
    port: u16,
}

/// Where a [`PgServer`] listens besides its Unix socket.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Run the server inside this network namespace.
    pub netns: Option<String>,
    /// Listen on this TCP address too (inside the namespace, when one is given).
    pub listen: Option<String>,
    /// Let clients from this network (CIDR) in without a password.
    pub trust: Option<String>,
    /// Let clients from this network (CIDR) in with a password (SCRAM).
    pub password_network: Option<String>,
    /// Commit only once the WAL reached the OS (`synchronous_commit=on`), so a server crash
    /// loses no acknowledged commit; off by default, for speed (`fsync` stays off either way:
    /// the tests crash the server, not the machine).
    pub durable_commits: bool,
    /// The port (default 5432; it also names the Unix socket, so any free one will do).
    pub port: Option<u16>,
    /// Serve TLS with this certificate and key (PEM files), copied into the cluster.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// The directory holding `initdb` and `postgres`: `$OC_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else whatever `pg_config --bindir` says.
pub fn server_binaries() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("OC_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    bin.join("postgres").exists().then_some(bin)
}

/// For tests: a fresh server, or `None` (after saying so on stderr) when no PostgreSQL server
/// binaries are installed. With `OC_REQUIRE_POSTGRES` set (as CI sets it), a missing or broken
/// server panics instead, so the suite fails rather than skipping quietly.
#[allow(clippy::print_stderr)]
pub fn postgres_for_tests() -> Option<PgServer> {
    let required = std::env::var_os("OC_REQUIRE_POSTGRES").is_some();
    match PgServer::start() {
        Ok(s) => Some(s),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !required => {
            eprintln!("skipped: {e}");
            None
        }
        Err(e) => panic!("cannot start a throwaway PostgreSQL server: {e}"),
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

impl PgServer {
    /// Initialises a cluster in a new temporary directory and starts a server on a Unix socket
    /// there. `NotFound` when no server binaries are installed.
    pub fn start() -> io::Result<PgServer> {
        Self::start_with(&ServerOptions::default())
    }

    /// As [`PgServer::start`], listening also where `opts` says (inside a network namespace,
    /// on a TCP address, trusting a network).
    pub fn start_with(opts: &ServerOptions) -> io::Result<PgServer> {
        let bin = server_binaries().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "no PostgreSQL server binaries (install postgresql, or set OC_PG_BIN)",
            )
        })?;
        // Short: a socket path may not exceed 107 bytes.
        let dir = std::env::temp_dir().join(format!(
            "ocpg-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        std::fs::create_dir(&dir)?;
        let cleanup = |e: io::Error| {
            let _ = std::fs::remove_dir_all(&dir);
            e
        };
        if is_root() {
            let out = Command::new("chown")
                .arg("postgres:postgres")
                .arg(&dir)
                .output()
                .map_err(cleanup)?;
            if !out.status.success() {
                return Err(cleanup(io::Error::other(format!(
                    "chown postgres {}: {}",
                    dir.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))));
            }
        }
        // The guard shell does it all, so that whenever this process ends, even during
        // `initdb`, the cluster is stopped and removed: `initdb`, then the server (setpriv execs
        // it, so `$!` is the server itself); then it waits for our pipe to close, stops the
        // server (fast shutdown, then kill) and removes the directory. `setsid` keeps it out of
        // our process group, so a test runner that kills the group does not kill the guard, and
        // it ignores SIGPIPE, so saying "started" to a reader that died does not kill it either.
        let as_pg = if is_root() {
            "setpriv --reuid=postgres --regid=postgres --init-groups -- "
        } else {
            ""
        };
        let script = format!(
            "trap '' PIPE; {as_pg}'{initdb}' -D '{dir}/data' -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
               --no-sync >'{dir}/initdb.log' 2>&1 || {{ echo initdb-failed; cat '{dir}/initdb.log'; \
               rm -rf '{dir}'; exit 1; }}; \
             {trust} \
             {netns}{as_pg}'{postgres}' -D '{dir}/data' -c listen_addresses='{listen}' \
               -c unix_socket_directories='{dir}' -c port={port} -c fsync=off {ssl} \
               -c synchronous_commit={sync} -c full_page_writes=off -c autovacuum=off \
               -c max_connections=100 >'{dir}/log' 2>&1 & pid=$!; echo started; \
             read _; p=$(head -n1 '{dir}/data/postmaster.pid' 2>/dev/null); p=${{p:-$pid}}; \
             kill -INT $p; \
             for i in $(seq 100); do kill -0 $p 2>/dev/null || break; sleep 0.1; done; \
             kill -KILL $p 2>/dev/null; wait $pid; rm -rf '{dir}'",
            initdb = bin.join("initdb").display(),
            postgres = bin.join("postgres").display(),
            dir = dir.display(),
            listen = opts.listen.as_deref().unwrap_or(""),
            sync = if opts.durable_commits { "on" } else { "off" },
            port = opts.port.unwrap_or(5432),
            ssl = if opts.tls.is_some() {
                format!(
                    "-c ssl=on -c ssl_cert_file='{d}/server.crt' -c ssl_key_file='{d}/server.key'",
                    d = dir.display()
                )
            } else {
                String::new()
            },
            netns = opts
                .netns
                .as_deref()
                .map_or(String::new(), |n| format!("ip netns exec '{n}' ")),
            trust = {
                let mut t = opts.trust.as_deref().map_or(String::new(), |cidr| {
                    format!(
                        "echo 'host all all {cidr} trust' >> '{}/data/pg_hba.conf';",
                        dir.display()
                    )
                });
                if let Some(cidr) = &opts.password_network {
                    // First, before initdb's trust lines: the first matching line decides.
                    t.push_str(&format!(
                        "sed -i '1i host all all {cidr} scram-sha-256' '{}/data/pg_hba.conf';",
                        dir.display()
                    ));
                }
                if let Some((cert, key)) = &opts.tls {
                    t.push_str(&format!(
                        "cp '{c}' '{d}/server.crt'; cp '{k}' '{d}/server.key'; \
                         chmod 600 '{d}/server.key'; {own}",
                        c = cert.display(),
                        k = key.display(),
                        d = dir.display(),
                        own = if is_root() {
                            format!(
                                "chown postgres:postgres '{d}/server.crt' '{d}/server.key';",
                                d = dir.display()
                            )
                        } else {
                            String::new()
                        }
                    ));
                }
                t
            },
        );
        let mut guard = Command::new("setsid")
            .args(["sh", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(cleanup)?;
        let mut said = String::new();
        if let Some(out) = guard.stdout.take() {
            let mut out = std::io::BufReader::new(out);
            std::io::BufRead::read_line(&mut out, &mut said)?;
            if said.trim() != "started" {
                let mut rest = String::new();
                let _ = std::io::Read::read_to_string(&mut out, &mut rest);
                let _ = guard.wait();
                return Err(io::Error::other(format!("initdb failed: {}", rest.trim())));
            }
        }
        let stdin = guard.stdin.take();
        let server = PgServer {
            dir,
            bin,
            guard,
            stdin,
            netns: opts.netns.clone(),
            port: opts.port.unwrap_or(5432),
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&self) -> io::Result<()> {
        let started = Instant::now();
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .arg("-h")
                .arg(&self.dir)
                .args(["-p", &self.port.to_string(), "-U", "postgres", "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                return Err(io::Error::other(format!(
                    "the server did not accept connections within {START_TIMEOUT:?}: {log}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server at once, as a crash would (`pg_ctl restart -m immediate`: no
    /// checkpoint, clients cut off), and starts it again; returns once it accepts connections.
    pub fn restart_immediately(&self) -> io::Result<()> {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]);
                c
            }
            None => Command::new("env"),
        };
        if is_root() {
            c.args([
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ]);
        }
        let out = c
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "-l"])
            // A file of the server's user's own: `log` belongs to the guard shell.
            .arg(self.dir.join("restart.log"))
            .arg("restart")
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "pg_ctl restart failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        self.wait_ready()
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory of the server's Unix socket (and its cluster).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A connection string for database `db` as the superuser `postgres`, over the socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={db}",
            self.dir.display(),
            self.port
        )
    }

    /// Runs `sql` as the superuser in database `db` (through `psql`); returns its rows, one
    /// per line, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> io::Result<String> {
        self.psql_args(db, &["-c", sql])
    }

    /// Runs the script `file` (a `pg_dump`, say) as the superuser in database `db`.
    pub fn psql_file(&self, db: &str, file: &Path) -> io::Result<String> {
        let file = file
            .to_str()
            .ok_or_else(|| io::Error::other("a non-UTF-8 path"))?;
        self.psql_args(db, &["-f", file])
    }

    fn psql_args(&self, db: &str, what: &[&str]) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-At"])
            .args(what)
            .output()?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Closing the pipe tells the guard shell to stop the server and remove the directory.
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"\n");
        }
        let _ = self.guard.wait();
    }
}

/// The one statement `PgTaskStore::claim_next` runs on schema `schema` (`$1` owner, `$2` lease
/// in milliseconds, `$3` the time or NULL for the database's, `$4` and `$5` the labels
/// required and excluded): for benchmarks that drive the same statement with `pgbench`.
/// Without the comment lines of its `.sql` file (where a `$n` would be replaced too).
pub fn claim_next_sql(schema: &str) -> String {
    crate::tasks::claim_sql(&format!("\"{schema}\""), false)
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Hosts on one machine, for tests of what crosses a network: a server namespace with a
/// bridge, and client namespaces joined to it by veth links, on a private subnet that a
/// `blackhole` route keeps from ever leaving the machine. Made by `ip netns` (root only);
/// every namespace, link and route is removed on drop.
#[derive(Debug)]
pub struct Network {
    subnet: String,
    server: String,
    hosts: Vec<String>,
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Network {
    /// A server namespace and `hosts` client namespaces. The subnet is `10.231.<n>.0/24`
    /// with `n` from this process's id, the server at `.1`, the hosts from `.2`.
    pub fn create(hosts: usize) -> io::Result<Network> {
        let pid = std::process::id();
        let subnet = format!("10.231.{}", pid % 250);
        // Before anything else: nothing for the test subnet leaves this machine.
        ip(&["route", "add", "blackhole", &format!("{subnet}.0/24")])?;
        let mut net = Network {
            subnet,
            server: format!("ocs{pid}"),
            hosts: Vec::new(),
        };
        let s = net.server.clone();
        ip(&["netns", "add", &s])?;
        ip(&["-n", &s, "link", "set", "lo", "up"])?;
        ip(&["-n", &s, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", &s, "link", "set", "br0", "up"])?;
        ip(&[
            "-n",
            &s,
            "addr",
            "add",
            &format!("{}.1/24", net.subnet),
            "dev",
            "br0",
        ])?;
        for i in 0..hosts {
            let h = format!("och{pid}x{i}");
            ip(&["netns", "add", &h])?;
            net.hosts.push(h.clone());
            let v = format!("v{pid}x{i}");
            ip(&[
                "link", "add", &v, "type", "veth", "peer", "name", "eth0", "netns", &h,
            ])?;
            ip(&["link", "set", &v, "netns", &s])?;
            ip(&["-n", &s, "link", "set", &v, "master", "br0"])?;
            ip(&["-n", &s, "link", "set", &v, "up"])?;
            ip(&["-n", &h, "link", "set", "lo", "up"])?;
            ip(&["-n", &h, "link", "set", "eth0", "up"])?;
            let addr = format!("{}.{}/24", net.subnet, i + 2);
            ip(&["-n", &h, "addr", "add", &addr, "dev", "eth0"])?;
        }
        Ok(net)
    }

    /// The server's namespace.
    pub fn server_netns(&self) -> &str {
        &self.server
    }

    /// The server's address.
    pub fn server_addr(&self) -> String {
        format!("{}.1", self.subnet)
    }

    /// The subnet, as a CIDR.
    pub fn cidr(&self) -> String {
        format!("{}.0/24", self.subnet)
    }

    /// `cmd` to be run inside host `i`'s namespace.
    pub fn on_host(&self, i: usize, cmd: &Command) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.hosts[i]])
            .arg(cmd.get_program())
            .args(cmd.get_args());
        for (k, v) in cmd.get_envs() {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        c
    }

    /// Cuts host `i` off the network (its link goes down).
    pub fn cut(&self, i: usize) -> io::Result<()> {
        ip(&["-n", &self.hosts[i], "link", "set", "eth0", "down"])
    }

    /// Joins host `i` to the network again.
    pub fn heal(&self, i: usize) -> io::Result<()> {
        ip(&["-n", &self.hosts[i], "link", "set", "eth0", "up"])
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes its links (and their veth peers).
        for h in &self.hosts {
            let _ = ip(&["netns", "del", h]);
        }
        let _ = ip(&["netns", "del", &self.server]);
        let _ = ip(&[
            "route",
            "del",
            "blackhole",
            &format!("{}.0/24", self.subnet),
        ]);
    }
}

/// For tests: a [`Network`] of `hosts` client namespaces, or `None` (after saying so on
/// stderr) when namespaces cannot be made here; under `CI=true` that panics instead.
#[allow(clippy::print_stderr)]
pub fn network_for_tests(hosts: usize) -> Option<Network> {
    match Network::create(hosts) {
        Ok(n) => Some(n),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "network namespaces are required under CI=true: {e}"
            );
            eprintln!("skipped: cannot make network namespaces here: {e}");
            None
        }
    }
}
