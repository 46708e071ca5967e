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
             {as_pg}'{postgres}' -D '{dir}/data' -c listen_addresses='' \
               -c unix_socket_directories='{dir}' -c port=5432 -c fsync=off \
               -c synchronous_commit=off -c full_page_writes=off -c autovacuum=off \
               -c max_connections=100 >'{dir}/log' 2>&1 & pid=$!; echo started; \
             read _; kill -INT $pid; \
             for i in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done; \
             kill -KILL $pid 2>/dev/null; wait $pid; rm -rf '{dir}'",
            initdb = bin.join("initdb").display(),
            postgres = bin.join("postgres").display(),
            dir = dir.display()
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
                .args(["-p", "5432", "-U", "postgres", "-q"])
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

    /// The directory of the server's Unix socket (and its cluster).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// A connection string for database `db` as the superuser `postgres`, over the socket.
    pub fn url(&self, db: &str) -> String {
        format!(
            "host={} port=5432 user=postgres dbname={db}",
            self.dir.display()
        )
    }

    /// Runs `sql` as the superuser in database `db` (through `psql`); returns its rows, one
    /// per line, columns separated by `|`.
    pub fn psql(&self, db: &str, sql: &str) -> io::Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", "5432", "-U", "postgres", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
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
