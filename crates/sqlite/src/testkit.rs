//! A simulated power loss for a SQLite database in WAL mode, from what `strace` saw a process
//! write and sync.
//!
//! A power loss keeps what reached the disk and drops what sat in the page cache. For a WAL
//! database whose main file is not written meanwhile (no checkpoint), what reached the disk is
//! the main file as it was and the log up to its last `fdatasync`. [`PowerLoss::record`] runs a
//! workload under `strace`, which reports every `pwrite64` with its offset and length and every
//! sync; the workload appends a line to a marks file (one `write` each) whenever it hands
//! something out, a token say. [`PowerLoss::crash_after`] then writes the database a power loss
//! right after any mark would have left: the main file, and the log cut at the end of the last
//! write synced before that mark. Opening it runs SQLite's own recovery, as a reboot would.
//!
//! A real power loss may keep more than was synced, never less; the log is checksummed, so
//! recovery keeps a prefix of the commits. The cut here is the least that must survive, the
//! worst case for a promise such as "no token is handed out twice".

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use oc_lincheck::strace::{strace_available, strace_for_tests};

/// The marks file of a recorded workload: each mark is one `write` of one line, which is how
/// [`PowerLoss`] tells marks apart from the workload's other writes.
#[derive(Debug)]
pub struct Marks(std::fs::File);

impl Marks {
    /// Opens (creating) the marks file at `path` for appending.
    pub fn open(path: &Path) -> io::Result<Marks> {
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map(Marks)
    }

    /// Appends `mark` as one line, in one `write`.
    pub fn mark(&mut self, mark: impl fmt::Display) -> io::Result<()> {
        use std::io::Write;
        self.0.write_all(format!("{mark}\n").as_bytes())
    }
}

/// One system call of interest, in the order they finished.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Call {
    /// `pwrite64` to `path` of `len` bytes at `offset`.
    Write { path: String, offset: u64, len: u64 },
    /// `fsync` or `fdatasync` of `path`.
    Sync { path: String },
    /// A line appended to the marks file.
    Mark(String),
}

/// A recorded workload: what it wrote and synced, the database as it started, and its log as
/// it ended.
pub struct PowerLoss {
    calls: Vec<Call>,
    db: String,
    wal: String,
    main: Vec<u8>,
    log: Vec<u8>,
}

impl fmt::Debug for PowerLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PowerLoss")
            .field("db", &self.db)
            .field("calls", &self.calls.len())
            .field("marks", &self.marks().len())
            .finish_non_exhaustive()
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl PowerLoss {
    /// Checkpoints `db` (so its log is empty and its main file synced), then runs `cmd` under
    /// `strace`, tracing writes and syncs. `marks` is the file the workload appends its marks to,
    /// one `write` per line. Keep another connection to `db` open meanwhile: then the workload's
    /// last close does not checkpoint, and the log it leaves is the log it wrote.
    pub fn record(cmd: &Command, db: &Path, marks: &Path) -> io::Result<PowerLoss> {
        let conn = rusqlite::Connection::open(db).map_err(io::Error::other)?;
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .map_err(io::Error::other)?;
        drop(conn);
        if busy != 0 {
            return Err(invalid(
                "the database is busy: cannot checkpoint before recording",
            ));
        }
        let main = std::fs::read(db)?;
        let trace = trace_path(db, "strace")?;
        let mut traced = oc_lincheck::strace::traced(cmd, "pwrite64,write,fsync,fdatasync", &trace);
        let status = traced.status()?;
        if !status.success() {
            return Err(io::Error::other(format!(
                "the traced workload failed: {status}"
            )));
        }
        let text = std::fs::read_to_string(&trace)?;
        std::fs::remove_file(&trace)?;
        let name = |p: &Path| p.to_string_lossy().into_owned();
        let wal = format!("{}-wal", name(db));
        let log = std::fs::read(&wal).unwrap_or_default();
        Ok(PowerLoss {
            calls: calls(&text, &name(marks))?,
            db: name(db),
            wal,
            main,
            log,
        })
    }

    /// The marks, in the order they were written.
    pub fn marks(&self) -> Vec<&str> {
        self.calls
            .iter()
            .filter_map(|c| match c {
                Call::Mark(m) => Some(m.as_str()),
                _ => None,
            })
            .collect()
    }

    /// Syncs of the log before mark `i` (counted from 0).
    pub fn syncs_before(&self, i: usize) -> usize {
        self.before(i)
            .iter()
            .filter(|c| matches!(c, Call::Sync { path } if *path == self.wal))
            .count()
    }

    fn before(&self, i: usize) -> &[Call] {
        let mut seen = 0;
        let end = self
            .calls
            .iter()
            .position(|c| {
                let hit = matches!(c, Call::Mark(_)) && seen == i;
                seen += usize::from(matches!(c, Call::Mark(_)));
                hit
            })
            .unwrap_or(self.calls.len());
        &self.calls[..end]
    }

    /// Writes into `dir` the database as a power loss right after mark `i` would leave it, and
    /// returns its path (with the same file name as the recorded one). Fails when the trace
    /// cannot tell: the main file was written, or the log restarted, before that mark.
    pub fn crash_after(&self, i: usize, dir: &Path) -> io::Result<PathBuf> {
        let before = self.before(i + 1);
        let (mut written, mut synced, mut header) = (0u64, 0u64, false);
        for c in before {
            match c {
                Call::Write { path, .. } if *path == self.db => {
                    return Err(invalid(
                        "the main database file was written (a checkpoint): cannot simulate",
                    ));
                }
                Call::Write { path, offset, len } if *path == self.wal => {
                    if *offset == 0 {
                        if header {
                            return Err(invalid("the log restarted: cannot simulate"));
                        }
                        header = true;
                    }
                    written = written.max(offset + len);
                }
                Call::Sync { path } if *path == self.wal => synced = written,
                _ => {}
            }
        }
        let synced = usize::try_from(synced).unwrap_or(usize::MAX);
        if synced > self.log.len() {
            return Err(invalid("the log is shorter than what was synced"));
        }
        let file = Path::new(&self.db)
            .file_name()
            .ok_or_else(|| invalid("the database path has no file name"))?;
        let dest = dir.join(file);
        std::fs::write(&dest, &self.main)?;
        let mut wal = dest.clone().into_os_string();
        wal.push("-wal");
        if synced > 0 {
            std::fs::write(&wal, &self.log[..synced])?;
        }
        Ok(dest)
    }
}

impl PowerLoss {
    /// Checks that a store never hands out a token twice: the marks are tokens (numbers, one
    /// per line) and strictly increase, and for a power loss right after each of them,
    /// `next_token`, given the database as the loss would leave it, takes a greater one.
    /// Returns the tokens checked, or what went wrong.
    pub fn check_tokens_never_repeat(
        &self,
        mut next_token: impl FnMut(&Path) -> u64,
    ) -> Result<Vec<u64>, String> {
        let tokens = self
            .marks()
            .iter()
            .map(|m| m.parse::<u64>().map_err(|e| format!("mark {m:?}: {e}")))
            .collect::<Result<Vec<u64>, String>>()?;
        if let Some(w) = tokens.windows(2).find(|w| w[0] >= w[1]) {
            return Err(format!("token {} came after {}", w[1], w[0]));
        }
        for (i, handed_out) in tokens.iter().enumerate() {
            let dir =
                std::env::temp_dir().join(format!("oc-power-loss-{}-{i}", std::process::id()));
            std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
            let next = self
                .crash_after(i, &dir)
                .map(|db| next_token(&db))
                .map_err(|e| e.to_string());
            std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
            let next = next?;
            if next <= *handed_out {
                return Err(format!(
                    "a power loss right after token {handed_out} was handed out: the next one was {next}"
                ));
            }
        }
        Ok(tokens)
    }
}

fn trace_path(db: &Path, ext: &str) -> io::Result<PathBuf> {
    let dir = db
        .parent()
        .ok_or_else(|| invalid("the database path has no directory"))?;
    Ok(dir.join(format!("power-loss.{}.{ext}", std::process::id())))
}

/// The writes to the database, its syncs, and the marks, from `strace`'s output.
fn calls(text: &str, marks: &str) -> io::Result<Vec<Call>> {
    Ok(oc_lincheck::strace::parse(text)?
        .into_iter()
        .filter_map(|c| match c.name.as_str() {
            "pwrite64" => Some(Call::Write {
                path: c.path,
                offset: c.offset?,
                len: c.len?,
            }),
            "fsync" | "fdatasync" => Some(Call::Sync { path: c.path }),
            "write" if c.path == marks => {
                Some(Call::Mark(c.text?.trim_end_matches("\\n").to_owned()))
            }
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_writes_syncs_marks_and_split_calls() {
        let text = r#"11 pwrite64(4</d/x.db-wal>, "7\177\6"..., 32, 0) = 32
11 fdatasync(4</d/x.db-wal>)      = 0
12 pwrite64(4</d/x.db-wal>, "a, b", 24, 32 <unfinished ...>
11 write(6</d/marks>, "token 5\n", 8) = 8
12 <... pwrite64 resumed>) = 24
11 write(1<pipe:[1]>, "token 9\n", 8) = 8
11 fdatasync(4</d/x.db-wal>) = -1 EIO (Input/output error)
"#;
        let calls = calls(text, "/d/marks").unwrap();
        let wal = "/d/x.db-wal".to_owned();
        assert_eq!(
            calls,
            [
                Call::Write {
                    path: wal.clone(),
                    offset: 0,
                    len: 32
                },
                Call::Sync { path: wal.clone() },
                Call::Mark("token 5".into()),
                Call::Write {
                    path: wal,
                    offset: 32,
                    len: 24
                },
            ]
        );
    }
}
