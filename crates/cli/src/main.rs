//! `oc`: the command-line face of opencode-tools.
//!
//! Glue only: argument parsing, composition of the library crates, output and exit codes.
//! Exit codes: 0 ok, 1 error, 2 usage or invalid input, 3 not found, 4 conflict.
//!
//! Every store is chosen once, in [`Site`]: tasks and locks in `<data-dir>/opencode.db` and task
//! files under `<data-dir>/tasks`, or all of them on PostgreSQL with `--database`, where every
//! read command, MCP tool and page answers the same from every host (the test
//! `postgres::hosts_a_and_b_answer_alike` compares them).
//!
//! A tenant's store ([`Site::tenant`], `oc --tenant T`) is a whole store of its own:
//! `<data-dir>/tenants/<T>/`, or the schema `oc_t_<T>` of the same database; tokens stay in
//! the default store. `oc serve` serves each token from its tenant's store (decision 0044).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod alerts;
mod args;
mod demo;
mod graph;
mod import;
mod lock;
mod logs;
mod ops;
mod output;
mod prune;
mod task;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use oc_auth::{SqliteTokenStore, TokenStore};
use oc_jsonl::{DirFileStore, TaskFileStore};
use oc_locks::LockManager;
use oc_postgres::{
    PgFileStore, PgLockManager, PgLockOptions, PgOptions, PgTaskStore, PgTokenStore,
};
use oc_tasks::{SqliteTaskStore, StorageSource, TaskStore};

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
            exit_for(e.is_invalid_input(), e.is_not_found(), e.is_conflict())
        } else if let Some(e) = cause.downcast_ref::<oc_alerts::Error>() {
            exit_for(e.is_invalid_input(), false, false)
        } else if let Some(e) = cause.downcast_ref::<oc_auth::AuthError>() {
            exit_for(
                matches!(e, oc_auth::AuthError::Invalid { .. }),
                matches!(e, oc_auth::AuthError::NotFound { .. }),
                false,
            )
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

/// The error in one line: the chain joined, outermost context first, down to a storage
/// backend's failure, whose message already says what its source (the driver's own error)
/// says, in one line and without a password.
pub(crate) fn one_line(err: &anyhow::Error) -> String {
    let mut parts = Vec::new();
    for cause in err.chain() {
        parts.push(cause.to_string());
        if is_backend_failure(cause) {
            break;
        }
    }
    parts.join(": ")
}

/// Whether `e` is a storage backend's failure, or an error that shows one (transparently).
fn is_backend_failure(e: &(dyn std::error::Error + 'static)) -> bool {
    let task = |t: &oc_tasks::Error| matches!(t, oc_tasks::Error::Backend { .. });
    let lock = |l: &oc_locks::Error| matches!(l, oc_locks::Error::Backend { .. });
    let files = |f: &oc_jsonl::Error| matches!(f, oc_jsonl::Error::Backend { .. });
    if let Some(t) = e.downcast_ref::<oc_tasks::Error>() {
        task(t)
    } else if let Some(l) = e.downcast_ref::<oc_locks::Error>() {
        lock(l)
    } else if let Some(f) = e.downcast_ref::<oc_jsonl::Error>() {
        files(f)
    } else if let Some(h) = e.downcast_ref::<oc_hooks::Error>() {
        match h {
            oc_hooks::Error::Task(t) => task(t),
            oc_hooks::Error::Files(f) => files(f),
            _ => false,
        }
    } else if let Some(m) = e.downcast_ref::<oc_metrics::Error>() {
        match m {
            oc_metrics::Error::Tasks(t) => task(t),
            oc_metrics::Error::Locks(l) => lock(l),
            oc_metrics::Error::Logs(f) => files(f),
            _ => false,
        }
    } else {
        false
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Where the stores live: tasks and locks in `<data-dir>/opencode.db`, logs, decisions, state
/// and checkpoints under `<data-dir>/tasks` ([`Site::files`]); or all of them on PostgreSQL
/// when a database URL is given.
///
/// A tenant's site ([`Site::tenant`]) is a whole store of its own: the data directory
/// `<data-dir>/tenants/<tenant>/`, or the schema `oc_t_<tenant>` of the same database. Tokens
/// stay in the default store whatever the site: they are what chooses the tenant.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub(crate) data_dir: PathBuf,
    /// The default store's data directory, where the tokens are.
    root: PathBuf,
    database: Option<String>,
    database_ca: Option<PathBuf>,
    /// The tenant whose store this is; `None` is the default store.
    tenant: Option<oc_auth::Tenant>,
}

/// The PostgreSQL schema of `tenant`'s store (tenant names are safe in it: `a-z`, `0-9`, `_`,
/// at most 32 characters).
pub(crate) fn tenant_schema(tenant: &oc_auth::Tenant) -> String {
    format!("oc_t_{tenant}")
}

/// The task store a [`Site`] opened: SQLite in the data directory, or PostgreSQL.
#[derive(Clone)]
pub(crate) enum Tasks {
    Sqlite(Arc<SqliteTaskStore>),
    Postgres(Arc<PgTaskStore>),
}

impl Tasks {
    /// The store, for everything the trait does.
    pub(crate) fn store(&self) -> Arc<dyn TaskStore> {
        match self {
            Tasks::Sqlite(db) => db.clone(),
            Tasks::Postgres(pg) => pg.clone(),
        }
    }

    /// Where the database figures come from, shared.
    pub(crate) fn storage_source(&self) -> Arc<dyn StorageSource> {
        match self {
            Tasks::Sqlite(db) => db.clone(),
            Tasks::Postgres(pg) => pg.clone(),
        }
    }

    /// Where the database figures come from.
    fn storage(&self) -> &dyn StorageSource {
        match self {
            Tasks::Sqlite(db) => &**db,
            Tasks::Postgres(pg) => &**pg,
        }
    }

    /// Metric sources over the task store, with its database figures.
    pub(crate) fn sources(&self) -> oc_metrics::Sources<'_> {
        let store: &dyn TaskStore = match self {
            Tasks::Sqlite(db) => &**db,
            Tasks::Postgres(pg) => &**pg,
        };
        oc_metrics::Sources::new(store).storage(self.storage())
    }

    /// The database's own consistency check: SQLite's integrity check, or the PostgreSQL
    /// store's token check. The problems found; empty when healthy.
    pub(crate) fn check(&self) -> anyhow::Result<Vec<String>> {
        Ok(match self {
            Tasks::Sqlite(db) => db.integrity_check()?,
            Tasks::Postgres(pg) => pg.integrity_check()?,
        })
    }

    /// The database's size in bytes.
    pub(crate) fn size(&self) -> anyhow::Result<u64> {
        Ok(self.storage().storage_stats()?.database_bytes())
    }
}

impl Site {
    fn new(g: &args::Global) -> Self {
        let site = Site {
            data_dir: g.data_dir.clone(),
            root: g.data_dir.clone(),
            database: g.database.clone().filter(|u| !u.is_empty()),
            database_ca: g.database_ca.clone(),
            tenant: None,
        };
        match &g.tenant {
            Some(t) => site.tenant(t),
            None => site,
        }
    }

    /// `tenant`'s store, beside this one: `<data-dir>/tenants/<tenant>/` as a data directory of
    /// its own, or the schema `oc_t_<tenant>` of the same database; every store in it is
    /// created and migrated on first use. Tokens stay in the default store.
    pub(crate) fn tenant(&self, tenant: &oc_auth::Tenant) -> Site {
        Site {
            data_dir: self.root.join("tenants").join(tenant.as_str()),
            root: self.root.clone(),
            database: self.database.clone(),
            database_ca: self.database_ca.clone(),
            tenant: Some(tenant.clone()),
        }
    }

    /// The tenant whose store this is; `None` for the default store.
    pub(crate) fn tenant_name(&self) -> Option<&oc_auth::Tenant> {
        self.tenant.as_ref()
    }

    /// `<dir>/opencode.db`, creating the directory on first use.
    fn sqlite_in(dir: &std::path::Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        Ok(dir.join("opencode.db"))
    }

    /// `<data-dir>/opencode.db`, creating the directory on first use.
    fn sqlite_path(&self) -> anyhow::Result<PathBuf> {
        Site::sqlite_in(&self.data_dir)
    }

    /// The PostgreSQL options of the default store, when a database URL was given.
    fn postgres_default(&self) -> anyhow::Result<Option<PgOptions>> {
        let Some(url) = self.database.as_deref() else {
            return Ok(None);
        };
        let opts = PgOptions::new(url)?;
        Ok(Some(match &self.database_ca {
            Some(ca) => opts.tls_ca_file(ca)?,
            None => opts,
        }))
    }

    /// The PostgreSQL options, when a database URL was given: in the tenant's schema for a
    /// tenant's site.
    pub(crate) fn postgres(&self) -> anyhow::Result<Option<PgOptions>> {
        let Some(opts) = self.postgres_default()? else {
            return Ok(None);
        };
        Ok(Some(match &self.tenant {
            Some(t) => opts.schema(&tenant_schema(t))?,
            None => opts,
        }))
    }

    /// Opens the task store (migrating it).
    pub(crate) fn tasks(&self) -> anyhow::Result<Tasks> {
        if let Some(opts) = self.postgres()? {
            let target = opts.target();
            let store = PgTaskStore::connect(opts)
                .with_context(|| format!("cannot open the task store on {target}"))?;
            return Ok(Tasks::Postgres(Arc::new(store)));
        }
        let path = self.sqlite_path()?;
        let store = SqliteTaskStore::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Tasks::Sqlite(Arc::new(store)))
    }

    /// Opens the task store.
    pub(crate) fn store(&self) -> anyhow::Result<Arc<dyn TaskStore>> {
        Ok(self.tasks()?.store())
    }

    /// Opens the store of the tasks' files (logs, decisions, state, checkpoints): on
    /// PostgreSQL when a database URL was given (its own pool, migrating its schema), else the
    /// data directory's. Chosen here once and passed to every command, tool and page.
    pub(crate) fn files(&self) -> anyhow::Result<Arc<dyn TaskFileStore>> {
        if let Some(opts) = self.postgres()? {
            let target = opts.target();
            let files = PgFileStore::connect(opts)
                .with_context(|| format!("cannot open the task files on {target}"))?;
            return Ok(Arc::new(files));
        }
        Ok(Arc::new(DirFileStore::new(&self.data_dir)))
    }

    /// Opens the store of static tokens: in `<data-dir>/opencode.db`, or on PostgreSQL in the
    /// default schema (tokens choose the tenant, so they are global).
    ///
    /// Whatever the tenant of this site: tokens choose the tenant.
    pub(crate) fn tokens(&self) -> anyhow::Result<Arc<dyn TokenStore>> {
        if let Some(opts) = self.postgres_default()? {
            let target = opts.target();
            let tokens = PgTokenStore::connect(opts)
                .with_context(|| format!("cannot open the token store on {target}"))?;
            return Ok(Arc::new(tokens));
        }
        let path = Site::sqlite_in(&self.root)?;
        let tokens = SqliteTokenStore::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Arc::new(tokens))
    }

    /// Opens the lock manager beside the task store.
    pub(crate) fn locks(&self) -> anyhow::Result<Arc<dyn LockManager>> {
        if let Some(opts) = self.postgres()? {
            let target = opts.target();
            let locks = PgLockManager::connect(PgLockOptions::new(opts))
                .with_context(|| format!("cannot open the lock manager on {target}"))?;
            return Ok(Arc::new(locks));
        }
        let path = self.sqlite_path()?;
        let locks = oc_locks::SqliteLockManager::open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(Arc::new(locks))
    }
}

fn run(cli: Cli, out: &mut Output) -> anyhow::Result<()> {
    let site = Site::new(&cli.global);
    if let Some(task) = import::task_of(&cli.command) {
        import::note(&site, task);
    }
    let key = cli.global.idempotency_key.as_deref();
    if key.is_some()
        && !matches!(
            cli.command,
            Command::Task(_)
                | Command::Lock(_)
                | Command::Logs(_)
                | Command::Decisions(_)
                | Command::Checkpoint(_)
        )
    {
        return Err(UsageError(
            "--idempotency-key goes with the task, lock, logs, decisions and checkpoint commands that change something"
                .into(),
        )
        .into());
    }
    match cli.command {
        Command::Task(cmd) => task::run(&site, cmd, key, out),
        Command::TaskStats => task::stats(&site, out),
        Command::Lock(cmd) => lock::run(&site, cmd, key, out),
        Command::Logs(cmd) => logs::logs(&site, cmd, key, out),
        Command::TaskHistory(q) => logs::history(&site, q, out),
        Command::Decisions(cmd) => logs::decisions(&site, cmd, key, out),
        Command::Checkpoint(cmd) => logs::checkpoint(&site, cmd, key, out),
        Command::Metrics { format } => ops::metrics(&site, format, out),
        Command::Token(cmd) => token::run(&site, cmd, out),
        Command::Db(cmd) => ops::db(&site, cmd, out),
        Command::Health => ops::health(&site, out),
        Command::Serve(args) => ops::serve(&site, args, out),
        Command::Mcp { tools, agent } => {
            let toolbox = oc_mcp::Toolbox::new(task::lifecycle(&site)?, site.locks()?)
                .files(site.files()?)
                .default_agent(agent);
            let mut server = oc_mcp::Server::new(toolbox);
            if tools == args::McpTools::All {
                server = server.all_tools();
            }
            // Only MCP messages on stdout; diagnostics go to stderr.
            oc_mcp::serve(&server, std::io::stdin().lock(), std::io::stdout())?;
            Ok(())
        }
        Command::Alerts { config, cmd } => alerts::run(&site, config.as_deref(), cmd, out),
        Command::Demo(args) => demo::run(&site, args, out),
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
        Err(e) => report(json, classify(&e), &one_line(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver's error that repeats nothing of what the backend's message said.
    #[derive(Debug)]
    struct Driver;

    impl std::fmt::Display for Driver {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("driver detail")
        }
    }

    impl std::error::Error for Driver {}

    fn backend() -> oc_tasks::Error {
        oc_tasks::Error::Backend {
            backend: "postgres",
            message: "relation \"tasks\" does not exist (42P01)".into(),
            retryable: false,
            source: Box::new(Driver),
        }
    }

    #[test]
    fn a_backend_failure_is_printed_once_through_any_wrapper() {
        let line = "listing tasks: postgres: relation \"tasks\" does not exist (42P01)";
        let direct = anyhow::Error::new(backend()).context("listing tasks");
        assert_eq!(one_line(&direct), line);
        let hooked = anyhow::Error::new(oc_hooks::Error::Task(backend())).context("listing tasks");
        assert_eq!(one_line(&hooked), line);
        let metrics =
            anyhow::Error::new(oc_metrics::Error::Tasks(backend())).context("listing tasks");
        assert_eq!(one_line(&metrics), line);
        // The store of task files' failures alike, direct or through a hook or the metrics.
        let files = || {
            oc_jsonl::Error::backend(
                "postgres",
                true,
                "relation \"tasks\" does not exist (42P01)",
            )
        };
        for e in [
            anyhow::Error::new(files()),
            anyhow::Error::new(oc_hooks::Error::Files(files())),
            anyhow::Error::new(oc_metrics::Error::Logs(files())),
        ] {
            let e = e.context("listing tasks");
            assert_eq!(one_line(&e), line);
            assert_eq!(classify(&e), Exit::Error);
        }
        // Other sources are joined as before.
        let io = anyhow::Error::new(std::io::Error::other("disk full")).context("writing");
        assert_eq!(one_line(&io), "writing: disk full");
        assert_eq!(classify(&direct), Exit::Error);
    }

    #[test]
    fn alert_errors_are_classified_by_their_crate() {
        let invalid = oc_alerts::Error::Invalid {
            what: "rule".into(),
            reason: "no name".into(),
        };
        assert_eq!(classify(&invalid.into()), Exit::Usage);
        let state = oc_alerts::Error::State {
            path: "alerts.json".into(),
            reason: "disk full".into(),
        };
        assert_eq!(classify(&state.into()), Exit::Error);
    }
}
