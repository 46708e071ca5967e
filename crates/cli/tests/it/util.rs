//! Running `oc` in a scratch data directory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

/// A scratch data directory and a way to run `oc` against it.
pub(crate) struct Oc {
    dir: tempfile::TempDir,
    database: Option<String>,
}

/// What one `oc` run produced.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    /// The `data` of a `--json` document, after checking the envelope.
    pub(crate) fn data(&self) -> Value {
        assert_eq!(self.code, 0, "oc failed: {self:?}");
        let doc: Value =
            serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {self:?}"));
        assert_eq!(doc["schema_version"], 1);
        assert!(doc["command"].is_string());
        doc["data"].clone()
    }
}

impl Oc {
    pub(crate) fn new() -> Self {
        Oc {
            dir: tempfile::tempdir().unwrap(),
            database: None,
        }
    }

    /// A scratch data directory, with tasks and locks on the PostgreSQL database at `url`.
    pub(crate) fn on_database(url: &str) -> Self {
        Oc {
            database: Some(url.to_owned()),
            ..Oc::new()
        }
    }

    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub(crate) fn db(&self) -> PathBuf {
        self.data_dir().join("opencode.db")
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.command().args(args).output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// `oc` on this data directory (and database), its environment cleared of ours.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_oc"));
        cmd.arg("--data-dir").arg(self.data_dir());
        if let Some(url) = &self.database {
            cmd.arg("--database").arg(url);
        }
        cmd.env_remove("OC_DATA_DIR")
            .env_remove("OC_DATABASE_URL")
            .env_remove("OC_DATABASE_CA");
        cmd
    }

    /// Writes `name` in the scratch directory (beside the data directory); returns its path.
    pub(crate) fn dir_file(&self, name: &str, contents: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, contents).unwrap();
        p.to_str().unwrap().to_owned()
    }

    /// `oc --json <args>`'s whole standard output, after checking it succeeded: for comparing
    /// two runs byte for byte.
    pub(crate) fn run_json(&self, args: &[&str]) -> String {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let run = self.run(&all);
        assert_eq!(run.code, 0, "oc failed: {run:?}");
        run.stdout
    }

    /// `oc --json <args>` and its data.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).data()
    }
}

/// Every row of the tasks table, in id order, and every dependency edge, as text: to prove a
/// failed command wrote nothing.
pub(crate) fn dump(db: &Path) -> Vec<String> {
    if !db.exists() {
        return Vec::new();
    }
    let c = rusqlite::Connection::open(db).unwrap();
    let mut stmt = c.prepare("SELECT * FROM tasks ORDER BY id").unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map([], |r| {
            let cols: Vec<String> = (0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect();
            Ok(cols.join("|"))
        })
        .unwrap();
    let mut all: Vec<String> = rows.map(Result::unwrap).collect();
    if let Ok(mut stmt) = c.prepare("SELECT task_id, depends_on FROM task_deps ORDER BY 1, 2") {
        let edges = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{} -> {}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?
                ))
            })
            .unwrap();
        all.extend(edges.map(Result::unwrap));
    }
    all
}

/// Runs `oc mcp --tools all` (every tool, the default set among them) with `lines` on stdin,
/// then the end of input; checks that it exits 0 and returns its stdout lines, each an MCP
/// message.
pub(crate) fn session(oc: &Oc, lines: &[Value]) -> Vec<Value> {
    let mut child = oc
        .command()
        .args(["mcp", "--tools", "all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "oc mcp exits 0 at the end of input: {out:?}"
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not an MCP message: {l:?}: {e}"))
        })
        .collect()
}
