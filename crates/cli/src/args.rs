//! The command line, declared with clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

mod lock;
mod serve;
mod task;

pub(crate) use lock::LockCmd;
pub(crate) use serve::ServeArgs;
pub(crate) use task::{DepCmd, GraphFormat, LabelArgs, TaskCmd, When, task_id};

/// Coordinate AI coding agents: tasks, claims and statistics on an embedded SQLite store.
#[derive(Debug, Parser)]
#[command(name = "oc", version, about, propagate_version = true)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: Global,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Args)]
pub(crate) struct Global {
    /// Data directory; the database is `<DIR>/opencode.db`.
    #[arg(
        long,
        global = true,
        env = "OC_DATA_DIR",
        default_value = "./data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,
    /// Put tasks, locks and task files (logs, decisions, state, checkpoints, ship cursors) on
    /// PostgreSQL (`postgresql://user@host/db`, or libpq `key=value` pairs; `connect_timeout=5`
    /// in it bounds the wait), the same from every host.
    #[arg(
        long,
        global = true,
        env = "OC_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub(crate) database: Option<String>,
    /// Trust the certificate authorities in this PEM file for TLS to the database (instead of
    /// the web PKI's); ask for TLS in the URL (`sslmode=require`).
    #[arg(long, global = true, env = "OC_DATABASE_CA", value_name = "FILE")]
    pub(crate) database_ca: Option<PathBuf>,
    /// Act on a tenant's store (`<DIR>/tenants/<TENANT>/`, or the schema `oc_t_<TENANT>` on
    /// PostgreSQL) instead of the default one: for operators with access to the store (its
    /// files or the database); agents reach a tenant through `oc serve` with a token of it.
    /// With `token create`, the tenant the token reaches.
    #[arg(long, global = true, value_parser = parse_tenant, value_name = "TENANT")]
    pub(crate) tenant: Option<oc_auth::Tenant>,
    /// Name this change for retries (1 to 200 bytes, no control character): a retry with the
    /// same key and arguments prints the first call's answer, changes nothing, and says
    /// `replayed` on stderr; the same key with other arguments is refused (exit 4). For task
    /// create, claim, heartbeat, release, complete and fail, lock acquire and release (keys
    /// are the agent's or owner's, for 24 hours; heartbeat, release, complete and fail are the
    /// `oc` agent's), logs append and decisions add (the task's log or decisions' key, as
    /// `logs append --key`), and checkpoint create (the task's key, kept while its
    /// checkpoint is; the same key names one description).
    #[arg(long, global = true, value_name = "KEY")]
    pub(crate) idempotency_key: Option<String>,
    /// Print one versioned JSON document on stdout.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Print only what scripts need (ids, tokens).
    #[arg(long, short, global = true)]
    pub(crate) quiet: bool,
    /// Never colour the output (NO_COLOR is honoured too).
    #[arg(long, global = true)]
    pub(crate) no_color: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, inspect and move tasks through their lifecycle.
    #[command(subcommand)]
    Task(TaskCmd),
    /// Task statistics: totals, status and owner distribution, recent tasks.
    TaskStats,
    /// Take, release and inspect locks shared by every process using the data directory.
    #[command(subcommand)]
    Lock(LockCmd),
    /// Append to, read and analyse a task's log.
    #[command(subcommand)]
    Logs(LogsCmd),
    /// A task's history: its log, oldest first (the seed's name for `logs query`).
    TaskHistory(QueryArgs),
    /// Record and list the decisions agents made on a task.
    #[command(subcommand)]
    Decisions(DecisionsCmd),
    /// Snapshot a task's state, log and decisions, and restore them.
    #[command(subcommand)]
    Checkpoint(CheckpointCmd),
    /// Metrics from the data directory, as Prometheus text or JSON.
    Metrics {
        /// Output format.
        #[arg(long, value_enum, default_value_t = MetricsFormat::Prometheus)]
        format: MetricsFormat,
    },
    /// Serve the status pages, /metrics (Prometheus), /healthz and /api/stats (JSON) over HTTP
    /// until stopped.
    Serve(ServeArgs),
    /// Serve tasks and locks to coding agents as a Model Context Protocol server over stdin and
    /// stdout (register it with Claude Code, Codex, opencode or Cursor as the command `oc mcp`).
    Mcp {
        /// Which tools to serve: the compact default set, or all of them.
        #[arg(long, value_enum, default_value_t = McpTools::Default)]
        tools: McpTools,
        /// The agent name writes use when a call names none (several agents may share one
        /// server, each passing its own `agent`).
        #[arg(long, env = "OC_AGENT")]
        agent: Option<String>,
    },
    /// Alert rules, their states, silences and receivers.
    Alerts {
        /// Alert configuration (TOML); without it, the built-in rules and a log receiver.
        #[arg(long, global = true, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
        #[command(subcommand)]
        cmd: AlertsCmd,
    },
    /// Create, list and revoke the bearer tokens `oc serve` accepts (shown once; only a hash
    /// is kept).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Database statistics and integrity.
    #[command(subcommand)]
    Db(DbCmd),
    /// Check the database, the data directory and the disk; exits 1 when unhealthy.
    Health,
    /// Run simulated agents against the store, then print the statistics.
    Demo(DemoArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (try 30s, 5m, 1h)"))
}

fn parse_level(s: &str) -> Result<oc_jsonl::Level, String> {
    s.parse().map_err(|e: oc_jsonl::Error| e.to_string())
}

fn parse_time(s: &str) -> Result<oc_time::Timestamp, String> {
    oc_time::Timestamp::parse_rfc3339(s)
        .ok_or_else(|| format!("{s:?} is not an RFC 3339 time (2026-02-19T10:00:00Z)"))
}

#[derive(Debug, Subcommand)]
pub(crate) enum LogsCmd {
    /// Append an entry to a task's log.
    Append {
        /// Task id.
        task: String,
        /// trace, debug, info, warn (or warning), error.
        #[arg(long, short, value_parser = parse_level, default_value = "info")]
        level: oc_jsonl::Level,
        /// What happened.
        #[arg(long, short)]
        message: String,
        /// Structured fields, as a JSON object.
        #[arg(long, short)]
        data: Option<String>,
        /// An idempotency key (at most 200 bytes): a retry with the same key writes nothing
        /// and says it was a duplicate.
        #[arg(long)]
        key: Option<String>,
    },
    /// The last entries of a task's log, reading backwards from the end.
    Tail {
        /// Task id.
        task: String,
        /// How many entries.
        #[arg(short = 'n', long, default_value_t = 10)]
        lines: usize,
        /// Keep printing entries as they are appended (until interrupted).
        #[arg(long, short)]
        follow: bool,
        /// Show each entry whole (text output cuts a message, reasoning or data past
        /// 4 KiB, saying so; `--json` always has entries whole).
        #[arg(long)]
        full: bool,
    },
    /// Entries matching filters.
    Query(QueryArgs),
    /// Counts by level, errors, error rate and time span.
    Analyze {
        /// Task id.
        task: String,
    },
    /// Delete a task's (or every task's) oldest log entries past the bounds: older than
    /// `--max-age`, past the newest `--max-entries`, past the newest `--max-bytes`; prints what
    /// it deleted per task and in total.
    #[command(group(clap::ArgGroup::new("bound").required(true).multiple(true).args(["max_age", "max_entries", "max_bytes"])))]
    Retain {
        /// Task id (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        task: Option<String>,
        /// Every task with anything stored.
        #[arg(long)]
        all: bool,
        /// Entries logged longer ago than this go (30d, 12h).
        #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
        max_age: Option<Duration>,
        /// At most this many entries stay (the newest).
        #[arg(long, value_name = "N")]
        max_entries: Option<u64>,
        /// At most this many bytes of entries stay (the newest).
        #[arg(long, value_name = "BYTES")]
        max_bytes: Option<u64>,
    },
    /// Send log entries not shipped yet to an HTTP collector, as JSON batches.
    Ship {
        /// Task id (or --all).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        task: Option<String>,
        /// Every task with a log.
        #[arg(long)]
        all: bool,
        /// The collector's URL (http:// or https://).
        #[arg(long)]
        to: String,
        /// Only entries at this level or more severe.
        #[arg(long, short, value_parser = parse_level)]
        level: Option<oc_jsonl::Level>,
    },
}

/// Filters of `oc logs query` and `oc task-history`.
#[derive(Debug, Args)]
pub(crate) struct QueryArgs {
    /// Task id.
    pub(crate) task: String,
    /// Entries at this level or more severe.
    #[arg(long, short, value_parser = parse_level)]
    pub(crate) level: Option<oc_jsonl::Level>,
    /// At or after this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) since: Option<oc_time::Timestamp>,
    /// Before this time (RFC 3339).
    #[arg(long, value_parser = parse_time)]
    pub(crate) until: Option<oc_time::Timestamp>,
    /// At most this many entries.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: usize,
    /// Skip this many matches first.
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    /// Newest first (offset and limit count from the newest end).
    #[arg(long)]
    pub(crate) newest: bool,
    /// Show each entry whole (text output cuts a message or data past 4 KiB, saying so;
    /// `--json` always has entries whole).
    #[arg(long)]
    pub(crate) full: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DecisionsCmd {
    /// Record a decision.
    Add {
        /// Task id.
        task: String,
        /// The deciding agent.
        #[arg(long, short)]
        agent: String,
        /// The decision.
        #[arg(long, short)]
        decision: String,
        /// Why.
        #[arg(long, short)]
        reasoning: String,
        /// Anything else, as a JSON object.
        #[arg(long, short)]
        metadata: Option<String>,
    },
    /// List decisions, oldest first.
    List {
        /// Task id.
        task: String,
        /// Only this agent's.
        #[arg(long, short)]
        agent: Option<String>,
        /// Show each entry whole (text output cuts a message, reasoning or data past
        /// 4 KiB, saying so; `--json` always has entries whole).
        #[arg(long)]
        full: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum CheckpointCmd {
    /// Copy the task's state, log and decisions into a new checkpoint.
    Create {
        /// Task id.
        task: String,
        /// Why.
        #[arg(long, short, default_value = "")]
        description: String,
    },
    /// List checkpoints, newest first.
    List {
        /// Task id.
        task: String,
    },
    /// Replace the task's files with a checkpoint's, after verifying its hashes.
    Restore {
        /// Task id.
        task: String,
        /// Checkpoint id.
        checkpoint: String,
    },
    /// Delete the oldest checkpoints: all but the newest `--keep`, then as many more as it takes
    /// for the rest to hold at most `--max-bytes`.
    #[command(group(clap::ArgGroup::new("limit").required(true).multiple(true).args(["keep", "max_bytes"])))]
    Prune {
        /// Task id.
        task: String,
        /// How many to keep.
        #[arg(long)]
        keep: Option<usize>,
        /// The most bytes the checkpoints kept may hold, together.
        #[arg(long)]
        max_bytes: Option<u64>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum AlertsCmd {
    /// The rules and the current state of their alerts.
    List,
    /// Evaluate once now, send what changed, and print what fires (exit 0 also when some do).
    Check,
    /// Send a test notification to a receiver.
    Test {
        /// The receiver's name (`log` when none is configured).
        receiver: String,
    },
    /// Mute alerts matching all of `name=value` / `name!=value` for a while.
    Silence {
        /// Matchers, e.g. `alertname=OpencodeDatabaseSize severity=medium`.
        #[arg(required = true)]
        matchers: Vec<String>,
        /// How long.
        #[arg(long = "for", value_parser = parse_duration, default_value = "2h")]
        duration: Duration,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// End a silence now.
    Unsilence {
        /// The silence's id.
        id: u64,
    },
    /// Run the evaluator in the foreground at the configured interval until stopped.
    Run,
}

/// `oc metrics` output formats.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum MetricsFormat {
    Prometheus,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCmd {
    /// Sizes, pages, cache hits and misses, slow statements.
    Stats,
    /// SQLite's integrity check, or the PostgreSQL store's token check; exits 1 on problems.
    Check,
    /// Brings the schemas of the task store, the lock manager and the token store to this
    /// build's version (every command does it on first use; this does only that).
    Migrate,
    /// Moves the data directory's task files (logs, decisions, state, checkpoints) into the
    /// PostgreSQL database of `--database`: resumable, a rerun moves nothing, nothing deleted;
    /// exits 1 on conflicts or corruption.
    ImportFiles {
        /// Only this task (repeatable); all of the data directory's by default.
        #[arg(long = "task", value_name = "ID")]
        tasks: Vec<String>,
    },
    /// Takes finished tasks (completed, failed, cancelled) out of the store: deleted, or with
    /// `--archive` moved to the archive with their history; in batches, each its own
    /// transaction. A task stays while a task that stays depends on it or is its child.
    Prune {
        /// Tasks finished at least this long ago (30d, 12h, 0s).
        #[arg(long, value_name = "AGE", value_parser = parse_duration)]
        finished_older_than: Duration,
        /// Archive instead of delete (`TaskStore::archived` reads one back).
        #[arg(long)]
        archive: bool,
        /// At most this many tasks per transaction (1 to 10000).
        #[arg(long, default_value_t = oc_tasks::DEFAULT_PRUNE_BATCH, value_name = "N")]
        batch: usize,
    },
}

/// Options of `oc demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Simulated agents (threads).
    #[arg(long, default_value_t = 4)]
    pub(crate) agents: usize,
    /// Tasks to create and work through.
    #[arg(long, default_value_t = 200)]
    pub(crate) tasks: usize,
    /// Seed for the simulated work, to repeat a run.
    #[arg(long)]
    pub(crate) seed: Option<u64>,
}

/// Which tools `oc mcp` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum McpTools {
    /// The compact default set: tasks and locks.
    Default,
    /// Every tool.
    All,
}

fn parse_scope(s: &str) -> Result<oc_auth::Scope, String> {
    oc_auth::Scope::parse(s).map_err(|e| e.to_string())
}

fn parse_tenant(s: &str) -> Result<oc_auth::Tenant, String> {
    oc_auth::Tenant::new(s).map_err(|e| e.to_string())
}

/// The longest `--expires` (about ten years).
const MAX_EXPIRES: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

fn parse_expires(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() || d > MAX_EXPIRES {
        return Err("must be more than 0 and at most 10 years".to_owned());
    }
    Ok(d)
}

/// `oc token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCmd {
    /// Create a token and print it, once: only its hash is kept. `--tenant T` (a-z, 0-9, _)
    /// makes a token of tenant T's store; without it, of the default store.
    Create {
        /// The agent it acts as (a `work` token acts as this agent only).
        #[arg(long)]
        agent: String,
        /// What it may do: read (changes nothing), work (as its own agent), admin (anything,
        /// for any agent).
        #[arg(long, value_parser = parse_scope, value_name = "read|work|admin")]
        scope: oc_auth::Scope,
        /// Refused after this long (30d, 12h); never by default.
        #[arg(long, value_parser = parse_expires)]
        expires: Option<Duration>,
    },
    /// List the tokens (never a secret): id, agent, scope, tenant, state, times.
    List,
    /// Revoke a token by id: refused from the next request on.
    Revoke {
        /// The token's id (the 16 hex digits after `oct_`).
        id: String,
    },
}
