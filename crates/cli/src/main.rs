//! `oc`: the command-line face of opencode-tools.
//!
//! Glue only: argument parsing, composition of the library crates, output and exit codes.
//! Exit codes: 0 ok, 1 error, 2 usage or invalid input, 3 not found, 4 conflict.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod alerts;
mod args;
mod demo;
mod lock;
mod logs;
mod ops;
mod output;
mod task;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use oc_tasks::SqliteTaskStore;

use crate::args::{Cli, Command};
use crate::output::Output;

/// The documented exit codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Error = 1,
    Usage = 2,
    NotFound = 3,
    Conflict = 4,
}

impl Exit {
    fn code(self) -> &'static str {
        match self {
            Exit::Error => "error",
            Exit::Usage => "usage",
            Exit::NotFound => "not_found",
            Exit::Conflict => "conflict",
        }
    }
}

/// An error in what the user typed (bad JSON, a bad duration...): exit code 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Something named on the command line does not exist: exit code 3.
#[derive(Debug)]
pub(crate) struct NotFoundError(pub(crate) String);

impl std::fmt::Display for NotFoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFoundError {}

/// Which exit code an error maps to.
fn classify(err: &anyhow::Error) -> Exit {
    for cause in err.chain() {
        if cause.is::<UsageError>() {
            return Exit::Usage;
        }
        if cause.is::<NotFoundError>() {
            return Exit::NotFound;
        }
        let class = if let Some(e) = cause.downcast_ref::<oc_tasks::Error>() {
            exit_for(e.is_invalid_input(), e.is_not_found(), e.is_conflict())
        } else if let Some(e) = cause.downcast_ref::<oc_locks::Error>() {
            exit_for(e.is_invalid_input(), e.is_not_found(), e.is_conflict())
        } else if let Some(e) = cause.downcast_ref::<oc_hooks::Error>() {
            exit_for(
                e.is_invalid_input(),
                e.is_not_found(),
                e.is_conflict() || e.is_vetoed(),
            )
        } else if let Some(e) = cause.downcast_ref::<oc_jsonl::Error>() {
            exit_for(e.is_invalid_input(), e.is_not_found(), false)
        } else if let Some(e) = cause.downcast_ref::<oc_alerts::Error>() {
            let invalid = matches!(
                e,
                oc_alerts::Error::Invalid { .. } | oc_alerts::Error::Config { .. }
            );
            exit_for(invalid, false, false)
        } else {
            None
        };
        if let Some(exit) = class {
            return exit;
        }
    }
    Exit::Error
}

fn exit_for(invalid: bool, not_found: bool, conflict: bool) -> Option<Exit> {
    match (invalid, not_found, conflict) {
        (true, _, _) => Some(Exit::Usage),
        (_, true, _) => Some(Exit::NotFound),
        (_, _, true) => Some(Exit::Conflict),
        _ => None,
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// `<data-dir>/opencode.db`, creating the directory on first use.
fn database(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    Ok(data_dir.join("opencode.db"))
}

/// Opens the task store at `<data-dir>/opencode.db`.
pub(crate) fn open_store(data_dir: &Path) -> anyhow::Result<SqliteTaskStore> {
    let path = database(data_dir)?;
    SqliteTaskStore::open(&path).with_context(|| format!("cannot open {}", path.display()))
}

/// Opens the lock manager on the same database file.
pub(crate) fn open_locks(data_dir: &Path) -> anyhow::Result<oc_locks::SqliteLockManager> {
    let path = database(data_dir)?;
    oc_locks::SqliteLockManager::open(&path)
        .with_context(|| format!("cannot open {}", path.display()))
}

fn run(cli: Cli, out: &mut Output) -> anyhow::Result<()> {
    match cli.command {
        Command::Task(cmd) => task::run(&cli.global.data_dir, cmd, out),
        Command::TaskStats => task::stats(&cli.global.data_dir, out),
        Command::Lock(cmd) => lock::run(&cli.global.data_dir, cmd, out),
        Command::Logs(cmd) => logs::logs(&cli.global.data_dir, cmd, out),
        Command::TaskHistory(q) => logs::query(&cli.global.data_dir, "task-history", q, out),
        Command::Decisions(cmd) => logs::decisions(&cli.global.data_dir, cmd, out),
        Command::Checkpoint(cmd) => logs::checkpoint(&cli.global.data_dir, cmd, out),
        Command::Metrics { format } => ops::metrics(&cli.global.data_dir, format, out),
        Command::Db(cmd) => ops::db(&cli.global.data_dir, cmd, out),
        Command::Health => ops::health(&cli.global.data_dir, out),
        Command::Serve { addr, alerts } => {
            ops::serve(&cli.global.data_dir, addr, alerts.as_deref(), out)
        }
        Command::Alerts { config, cmd } => {
            alerts::run(&cli.global.data_dir, config.as_deref(), cmd, out)
        }
        Command::Demo(args) => demo::run(&cli.global.data_dir, args, out),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "oc", &mut script);
            let script = String::from_utf8(script)?;
            let data = serde_json::json!({ "shell": shell.to_string(), "script": script });
            out.emit("completions", &data, |w, _| w.write_all(script.as_bytes()))
        }
    }
}

/// Prints an error as one line (or one JSON document) on stderr and returns its exit code.
fn report(json: bool, exit: Exit, message: &str) -> ExitCode {
    if json {
        let doc = serde_json::json!({
            "schema_version": output::SCHEMA_VERSION,
            "error": { "code": exit.code(), "exit_code": exit as u8, "message": message },
        });
        eprintln!("{doc}");
    } else {
        // Messages quote what agents wrote (a lock holder, a task's error): one escaped line.
        eprintln!("oc: error: {}", output::Clean(message));
    }
    ExitCode::from(exit as u8)
}

/// clap's usage errors, squeezed into one line: the message with the arguments or the valid
/// values it lists, and clap's tips (a similar subcommand, `--` before a value like a flag).
fn usage_line(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let lines: Vec<&str> = rendered.lines().map(str::trim).collect();
    let text = lines
        .split(|l| l.is_empty())
        .enumerate()
        .filter(|(i, p)| *i == 0 || p.first().is_some_and(|l| l.starts_with("tip:")))
        .map(|(_, p)| p.join(" "))
        .collect::<Vec<_>>()
        .join("; ");
    let text = text.strip_prefix("error: ").unwrap_or(&text);
    let text = if text.is_empty() {
        "invalid usage"
    } else {
        text
    };
    format!("{text}; see oc --help")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            let json = std::env::args_os().any(|a| a == "--json");
            return report(json, Exit::Usage, &usage_line(&e));
        }
    };
    let mut out = Output::new(&cli.global);
    let json = cli.global.json;
    match run(cli, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain joined, outermost context first.
            let message = e
                .chain()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join(": ");
            report(json, classify(&e), &message)
        }
    }
}
