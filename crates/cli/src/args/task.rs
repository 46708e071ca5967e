//! `oc task`'s arguments: the subcommands, their filters and the values they parse.

use std::time::Duration;

use clap::{Args, Subcommand};
use oc_tasks::{Order, TaskId, TaskStatus};

use super::parse_duration;

/// The longest `oc task claim --next --wait`.
const MAX_CLAIM_WAIT: Duration = Duration::from_secs(3600);

fn parse_wait(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > MAX_CLAIM_WAIT {
        return Err(format!("at most {} (1h)", MAX_CLAIM_WAIT.as_secs()));
    }
    Ok(d)
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCmd {
    /// Create a pending task.
    Create {
        /// Task name.
        name: String,
        /// Id to use (generated when absent).
        #[arg(long)]
        id: Option<String>,
        /// Description.
        #[arg(long, short)]
        description: Option<String>,
        /// Initial owner.
        #[arg(long, short)]
        owner: Option<String>,
        /// Priority; higher is claimed first.
        #[arg(long, short, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Metadata as a JSON object.
        #[arg(long, short)]
        metadata: Option<String>,
        /// Runs allowed before an expired lease fails the task (or its retries end).
        #[arg(long)]
        max_attempts: Option<u32>,
        /// A task that must complete before this one is ready (repeatable).
        #[arg(long = "depends-on", value_name = "ID")]
        depends_on: Vec<String>,
        /// The task this one is part of.
        #[arg(long, value_name = "ID")]
        parent: Option<String>,
        /// A label; claims can ask for labels (repeatable).
        #[arg(long = "label", value_name = "LABEL")]
        labels: Vec<String>,
        /// Not ready before this time: RFC 3339, or a delay from now (`10m`).
        #[arg(long, value_name = "TIME", value_parser = parse_when)]
        run_at: Option<When>,
        /// While an unfinished task holds this key, creating another with it returns that one.
        #[arg(long, value_name = "KEY")]
        unique_key: Option<String>,
        /// The unique key stays held after the task finishes.
        #[arg(long, requires = "unique_key")]
        unique_always: bool,
        /// What a failed run does: `none`, or `backoff:BASE..CAP[:JITTER_PCT]` (back to pending
        /// after BASE, doubling up to CAP, until the attempts are spent).
        #[arg(long, value_name = "POLICY", value_parser = parse_retry)]
        retry: Option<oc_tasks::RetryPolicy>,
    },
    /// List tasks, newest first.
    List {
        /// Only these statuses (repeatable).
        #[arg(long, short, value_enum)]
        status: Vec<StatusArg>,
        /// Only this owner.
        #[arg(long, short)]
        owner: Option<String>,
        #[command(flatten)]
        labels: LabelArgs,
        /// Only the children of this task.
        #[arg(long, value_name = "ID")]
        parent: Option<String>,
        /// Page size.
        #[arg(long, short, default_value_t = 50)]
        limit: usize,
        /// Order.
        #[arg(long, value_enum, default_value_t = OrderArg::Newest)]
        order: OrderArg,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one task.
    Show {
        /// Task id.
        id: String,
    },
    /// Search names, descriptions and metadata (case-insensitive).
    Find {
        /// Text to look for.
        query: String,
        /// Only these statuses (repeatable).
        #[arg(long, short, value_enum)]
        status: Vec<StatusArg>,
        /// Only this owner.
        #[arg(long, short)]
        owner: Option<String>,
        /// Page size.
        #[arg(long, short, default_value_t = 50)]
        limit: usize,
    },
    /// pending → running for an agent, without a lease.
    Start {
        /// Task id.
        id: String,
        /// The agent.
        #[arg(long, short)]
        agent: String,
    },
    /// Claim a task (or the next ready one) with a lease; prints the id and lease token.
    Claim {
        /// Task id (or --next).
        #[arg(required_unless_present = "next", conflicts_with = "next")]
        id: Option<String>,
        /// Claim the highest-priority, oldest ready task.
        #[arg(long)]
        next: bool,
        /// With --next: only tasks with these labels, or without.
        #[command(flatten)]
        labels: LabelArgs,
        /// The agent.
        #[arg(long, short)]
        agent: String,
        /// Lease length.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        lease: Duration,
        /// With --next: wait up to this long (at most 1h) for a ready task; 0 answers at once.
        #[arg(long, default_value = "0s", value_parser = parse_wait)]
        wait: Duration,
    },
    /// Extend a lease.
    Heartbeat {
        /// Task id.
        id: String,
        /// The lease token from the claim.
        #[arg(long, short)]
        token: u64,
        /// New lease length from now.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        lease: Duration,
    },
    /// running → pending: give a claimed task back (the attempt is refunded).
    Release {
        /// Task id.
        id: String,
        /// The lease token from the claim.
        #[arg(long, short)]
        token: u64,
    },
    /// running → completed.
    Complete {
        /// Task id.
        id: String,
        /// The lease token, for claimed tasks.
        #[arg(long, short)]
        token: Option<u64>,
        /// Result as JSON.
        #[arg(long, short)]
        result: Option<String>,
    },
    /// running → failed.
    Fail {
        /// Task id.
        id: String,
        /// The lease token, for claimed tasks.
        #[arg(long, short)]
        token: Option<u64>,
        /// What went wrong.
        #[arg(long, short)]
        error: String,
    },
    /// pending | running → cancelled.
    Cancel {
        /// Task id.
        id: String,
    },
    /// failed | cancelled → pending.
    Retry {
        /// Task id.
        id: String,
    },
    /// Delete a task (refused while others depend on it or it has children, unless told).
    Delete {
        /// Task id.
        id: String,
        /// Delete what depends on it and its children too, transitively.
        #[arg(long, conflicts_with = "drop_edges")]
        cascade: bool,
        /// Keep what depends on it: drop their edges to it, and clear their parent.
        #[arg(long)]
        drop_edges: bool,
    },
    /// Return tasks whose lease lapsed to pending (or fail them when out of attempts).
    Reap,
    /// Add or remove a dependency.
    #[command(subcommand)]
    Dep(DepCmd),
    /// Ready tasks, in the order claims take them.
    Ready {
        #[command(flatten)]
        labels: LabelArgs,
        /// Page size.
        #[arg(long, short, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<String>,
    },
    /// Pending tasks that wait, each with what it waits for.
    Blocked {
        /// Page size.
        #[arg(long, short, default_value_t = 50)]
        limit: usize,
        /// Continue after this cursor (printed at the end of a page).
        #[arg(long)]
        after: Option<String>,
    },
    /// A task's dependencies and children as an indented tree.
    Tree {
        /// Task id.
        id: String,
    },
    /// The work graph as Graphviz `dot` or Mermaid, statuses marked.
    Graph {
        /// Output format.
        #[arg(long, value_enum, default_value_t = GraphFormat::Dot)]
        format: GraphFormat,
        /// Only what this task depends on and its children, transitively.
        #[arg(long, value_name = "ID")]
        root: Option<String>,
    },
}

/// Label filters of listings and claims.
#[derive(Debug, Clone, Args)]
pub(crate) struct LabelArgs {
    /// Only tasks with this label (repeatable: all of them).
    #[arg(long = "label", value_name = "LABEL")]
    pub(crate) labels: Vec<String>,
    /// Only tasks without this label (repeatable: none of them).
    #[arg(long = "without-label", value_name = "LABEL")]
    pub(crate) without: Vec<String>,
}

impl LabelArgs {
    pub(crate) fn filter(&self) -> oc_tasks::LabelFilter {
        let mut f = oc_tasks::LabelFilter::any();
        f.all.clone_from(&self.labels);
        f.none.clone_from(&self.without);
        f
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum DepCmd {
    /// Make TASK wait for ON.
    Add {
        /// The task that waits.
        task: String,
        /// The task it waits for.
        on: String,
    },
    /// Stop TASK waiting for ON.
    Rm {
        /// The task that waits.
        task: String,
        /// The task it waits for.
        on: String,
    },
}

/// How `oc task graph` draws.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// Mermaid (a Markdown viewer draws it in a ```mermaid block).
    Mermaid,
}

/// A time on the command line: absolute, or a delay from the store's now.
#[derive(Debug, Clone, Copy)]
pub(crate) enum When {
    At(oc_time::Timestamp),
    In(Duration),
}

fn parse_when(s: &str) -> Result<When, String> {
    if let Some(t) = oc_time::Timestamp::parse_rfc3339(s) {
        return Ok(When::At(t));
    }
    humantime::parse_duration(s)
        .map(When::In)
        .map_err(|_| format!("{s:?} is neither an RFC 3339 time nor a delay (10m, 2h)"))
}

fn parse_retry(s: &str) -> Result<oc_tasks::RetryPolicy, String> {
    s.parse().map_err(|e: oc_tasks::Error| e.to_string())
}

/// A task status on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum StatusArg {
    Pending,
    Running,
    Completed,
    Failed,
    Cancelled,
}

impl From<StatusArg> for TaskStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Pending => TaskStatus::Pending,
            StatusArg::Running => TaskStatus::Running,
            StatusArg::Completed => TaskStatus::Completed,
            StatusArg::Failed => TaskStatus::Failed,
            StatusArg::Cancelled => TaskStatus::Cancelled,
        }
    }
}

/// A listing order on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum OrderArg {
    Newest,
    Oldest,
    Priority,
}

impl From<OrderArg> for Order {
    fn from(o: OrderArg) -> Self {
        match o {
            OrderArg::Newest => Order::Newest,
            OrderArg::Oldest => Order::Oldest,
            OrderArg::Priority => Order::Priority,
        }
    }
}

/// A task id as typed, checked by the store's rules.
pub(crate) fn task_id(s: &str) -> anyhow::Result<TaskId> {
    Ok(TaskId::new(s)?)
}
