//! The tools: their definitions (names every client accepts, flat schemas, annotations) and
//! what each does with the [`Toolbox`]. Tasks are in `tasks`, locks in `locks`, a task's log,
//! decisions and checkpoints in `files`; what a running call may do besides answering in
//! `context` ([`CallContext`]), and the pieces of the tools' schemas in `schema`.

use std::sync::Arc;
use std::time::Duration;

use oc_auth::{AuthError, Identity, Scope};
use oc_hooks::TaskLifecycle;
use oc_jsonl::TaskFileStore;
use oc_locks::{Error as LockError, LockManager};
use oc_tasks::{Error as TaskError, TaskId};
use serde_json::{Map, Value, json};

mod context;
mod files;
mod locks;
mod schema;
mod tasks;

pub use context::CallContext;
pub(crate) use context::{Claimed, Taken, Took};
use schema::{
    IDEMPOTENCY_KEY, agent, answer, any_object, boolean, idempotency_key, integer, list, object,
    replayed, string, strings,
};

/// What the tools act on.
pub struct Toolbox {
    life: TaskLifecycle,
    locks: Arc<dyn LockManager>,
    files: Option<Arc<dyn TaskFileStore>>,
    default_agent: Option<String>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
            .field("files", &self.files.as_ref().map(|f| f.location()))
            .field("default_agent", &self.default_agent)
            .finish_non_exhaustive()
    }
}

impl Toolbox {
    /// Tools over `life` (tasks, with hooks and history) and `locks`.
    pub fn new(life: TaskLifecycle, locks: Arc<dyn LockManager>) -> Toolbox {
        Toolbox {
            life,
            locks,
            files: None,
            default_agent: None,
        }
    }

    /// Serves each task's log, decisions and checkpoints from `files` (a data directory's
    /// `oc_jsonl::DirFileStore`, or PostgreSQL's): without it, those tools are not offered.
    pub fn files(mut self, files: Arc<dyn TaskFileStore>) -> Toolbox {
        self.files = Some(files);
        self
    }

    /// The agent name a write uses when its call names none (`oc mcp` passes `OC_AGENT`).
    /// Several agents may share one server: the name is an argument, never the connection.
    pub fn default_agent(mut self, agent: Option<String>) -> Toolbox {
        self.default_agent = agent.filter(|a| !a.is_empty());
        self
    }

    /// Whether the tools on task files are served ([`Toolbox::files`]).
    pub(crate) fn has_files(&self) -> bool {
        self.files.is_some()
    }

    /// Gives back what calls took whose answers never reached their client: one hold of each
    /// lock, only while the owner still holds it with the fencing token the call was granted.
    /// A lock that lapsed, was released or was granted afresh meanwhile (a new token: another
    /// session using the same agent name) is no longer this call's to give.
    ///
    /// The check and the release are two steps of the [`LockManager`] (which has no release by
    /// token): between them the lock can only change hands if it lapses or its owner releases
    /// it in that instant, and a re-entrant hold keeps its token, so one hold is what goes.
    pub(crate) fn give_back(&self, taken: &[Taken]) {
        for t in taken {
            let still_held = self.locks.holders(&t.resource).is_ok_and(|held| {
                held.iter()
                    .any(|l| l.resource == t.resource && l.owner == t.owner && l.token == t.token)
            });
            if still_held {
                // Nothing to do about a failure: the lock lapses at the end of its TTL.
                let _ = self.locks.release(&t.resource, &t.owner);
            }
        }
    }

    /// Gives back the claims of calls whose answers never reached their client: each task is
    /// released with the fencing token its claim was granted, so a task that was finished,
    /// lost its lease or was claimed afresh meanwhile (a new token) is left alone.
    /// A keyed claim's key is forgotten with the release, in one step
    /// ([`TaskLifecycle::give_back_keyed`]), so a retry with it claims afresh rather than
    /// replaying a grant that was given back.
    pub(crate) fn give_back_claims(&self, claims: &[Claimed]) {
        for c in claims {
            // Nothing to do about a failure: the lease lapses at the end of its TTL.
            let _ = match &c.key {
                Some(key) => self.life.give_back_keyed(key, &c.id, c.token).map(|_| ()),
                None => self.life.release(&c.id, c.token).map(|_| ()),
            };
        }
    }

    /// The store's time, for answers that carry `now`.
    pub(crate) fn now(&self) -> String {
        self.life.store().now().to_string()
    }
}

/// Why a tool call failed: a business outcome the model can act on (`isError` result), or an
/// internal failure (a JSON-RPC error).
#[derive(Debug, Clone, PartialEq)]
pub enum ToolError {
    /// A refusal with a stable code (`LOCK_CONFLICT`, `LEASE_LOST`, `NOT_FOUND`,
    /// `INVALID_ARGUMENT`...), a message, and details.
    Refused {
        /// Stable, upper-case code.
        code: &'static str,
        /// What happened and what to do about it.
        message: String,
        /// Machine-readable details (conflicting holders, the current state...).
        details: Value,
    },
    /// The backend failed (a database error): the call's outcome is unknown.
    Internal(String),
    /// The caller cancelled the call while it waited: nothing is answered.
    Cancelled,
}

impl ToolError {
    fn refused(code: &'static str, message: impl Into<String>) -> ToolError {
        ToolError::Refused {
            code,
            message: message.into(),
            details: Value::Null,
        }
    }

    fn invalid(arg: &str, reason: impl std::fmt::Display) -> ToolError {
        ToolError::refused("INVALID_ARGUMENT", format!("argument `{arg}`: {reason}"))
    }
}

impl From<TaskError> for ToolError {
    fn from(e: TaskError) -> ToolError {
        let code = match &e {
            TaskError::NotFound { .. } | TaskError::MissingReference { .. } => "NOT_FOUND",
            TaskError::LeaseLost { .. } => "LEASE_LOST",
            TaskError::InvalidTransition { .. } => "INVALID_TRANSITION",
            TaskError::VersionMismatch { .. } => "CONFLICT",
            TaskError::UniqueKeyHeld { .. } => "DUPLICATE",
            TaskError::IdempotencyConflict { .. } => return key_conflict(&e),
            TaskError::InvalidId { .. }
            | TaskError::InvalidInput { .. }
            | TaskError::Cycle { .. }
            | TaskError::HasDependents { .. } => "INVALID_ARGUMENT",
            _ => return ToolError::Internal(e.to_string()),
        };
        ToolError::refused(code, e.to_string())
    }
}

/// Same key, another request: the key rule said, so the agent knows to pick a new key.
fn key_conflict(e: &dyn std::fmt::Display) -> ToolError {
    ToolError::refused(
        "IDEMPOTENCY_CONFLICT",
        format!(
            "{e}: an idempotency key names one request (per agent, for 24 hours); retry that request with it, or use a new key for a new request"
        ),
    )
}

impl From<oc_hooks::Error> for ToolError {
    fn from(e: oc_hooks::Error) -> ToolError {
        match e {
            oc_hooks::Error::Task(t) => t.into(),
            oc_hooks::Error::Vetoed { .. } => ToolError::refused("VETOED", e.to_string()),
            oc_hooks::Error::InvalidInput { .. } => {
                ToolError::refused("INVALID_ARGUMENT", e.to_string())
            }
            other => ToolError::Internal(other.to_string()),
        }
    }
}

impl From<LockError> for ToolError {
    fn from(e: LockError) -> ToolError {
        let message = e.to_string();
        match &e {
            LockError::Conflict { holders, .. } | LockError::Timeout { holders, .. } => {
                ToolError::Refused {
                    code: "LOCK_CONFLICT",
                    message,
                    details: json!({ "conflicts": locks::holders_json(holders) }),
                }
            }
            LockError::NotHeld { holders, .. } => ToolError::Refused {
                code: "NOT_HELD",
                message,
                details: json!({ "holders": locks::holders_json(holders) }),
            },
            LockError::Expired { .. } => ToolError::refused("EXPIRED", message),
            LockError::IdempotencyConflict { .. } => key_conflict(&e),
            LockError::InvalidResource { .. }
            | LockError::InvalidOwner { .. }
            | LockError::InvalidTtl { .. }
            | LockError::InvalidInput { .. } => ToolError::refused("INVALID_ARGUMENT", message),
            _ => ToolError::Internal(message),
        }
    }
}

impl From<AuthError> for ToolError {
    fn from(e: AuthError) -> ToolError {
        let code = match &e {
            AuthError::Forbidden { .. } => "FORBIDDEN",
            AuthError::NotYourAgent { .. } => "NOT_YOUR_AGENT",
            AuthError::Invalid { what: "agent", .. } => {
                return ToolError::invalid(
                    "agent",
                    "is required (or start the server with OC_AGENT set)",
                );
            }
            AuthError::Invalid { .. } => "INVALID_ARGUMENT",
            _ => "UNAUTHORIZED",
        };
        ToolError::refused(code, e.to_string())
    }
}

/// A tool call's arguments, checked against the tool's declared properties, and who calls.
struct Args<'a> {
    map: &'a Map<String, Value>,
    identity: &'a Identity,
}

impl<'a> Args<'a> {
    fn new(
        map: &'a Map<String, Value>,
        tool: &Tool,
        identity: &'a Identity,
    ) -> Result<Args<'a>, ToolError> {
        let known = tool.input_schema["properties"].as_object();
        for key in map.keys() {
            if !known.is_some_and(|k| k.contains_key(key)) {
                return Err(ToolError::invalid(key, "is not an argument of this tool"));
            }
        }
        Ok(Args { map, identity })
    }

    fn opt_str(&self, name: &str) -> Result<Option<&'a str>, ToolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ToolError::invalid(
                name,
                format!("must be a string, not {other}"),
            )),
        }
    }

    fn str(&self, name: &str) -> Result<&'a str, ToolError> {
        self.opt_str(name)?
            .ok_or_else(|| ToolError::invalid(name, "is required"))
    }

    fn opt_u64(&self, name: &str, max: u64) -> Result<Option<u64>, ToolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= max => Ok(Some(n)),
                _ => Err(ToolError::invalid(
                    name,
                    format!("must be an integer from 0 to {max}, not {v}"),
                )),
            },
        }
    }

    fn opt_bool(&self, name: &str) -> Result<Option<bool>, ToolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(ToolError::invalid(
                name,
                format!("must be true or false, not {other}"),
            )),
        }
    }

    fn strings(&self, name: &str) -> Result<Vec<&'a str>, ToolError> {
        match self.map.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str().ok_or_else(|| {
                        ToolError::invalid(name, format!("must hold strings, not {v}"))
                    })
                })
                .collect(),
            Some(other) => Err(ToolError::invalid(
                name,
                format!("must be a list of strings, not {other}"),
            )),
        }
    }

    fn task_id(&self, name: &str) -> Result<TaskId, ToolError> {
        TaskId::new(self.str(name)?).map_err(|e| ToolError::invalid(name, e))
    }

    /// The agent a write acts as, as the caller's identity allows
    /// ([`Identity::acting_as`]): a `work` identity is its own agent whatever the argument
    /// asks (a name not its own is refused, `NOT_YOUR_AGENT`); an `admin` one (the local
    /// process's) is the argument, or the server's default (`OC_AGENT`).
    fn agent(&self, tb: &Toolbox) -> Result<String, ToolError> {
        let requested = self.opt_str("agent")?;
        Ok(self
            .identity
            .acting_as(requested, tb.default_agent.as_deref())?
            .to_owned())
    }

    /// The `idempotency_key` argument, checked by the rule the libraries and task-file
    /// appends share (1 to 200 bytes, no control character): `None` without one.
    fn idempotency_key(&self) -> Result<Option<&'a str>, ToolError> {
        let Some(k) = self.opt_str(IDEMPOTENCY_KEY)? else {
            return Ok(None);
        };
        oc_jsonl::check_append_key(k).map_err(|e| ToolError::invalid(IDEMPOTENCY_KEY, e))?;
        Ok(Some(k))
    }

    /// The `idempotency_key` argument as the task store's key of `agent` (the acting agent).
    fn task_key(&self, agent: &str) -> Result<Option<oc_tasks::IdempotencyKey>, ToolError> {
        self.idempotency_key()?
            .map(|k| {
                oc_tasks::IdempotencyKey::new(agent, k)
                    .map_err(|e| ToolError::invalid(IDEMPOTENCY_KEY, e))
            })
            .transpose()
    }

    /// The `idempotency_key` argument as the lock manager's key of `agent`.
    fn lock_key(&self, agent: &str) -> Result<Option<oc_locks::IdempotencyKey>, ToolError> {
        self.idempotency_key()?
            .map(|k| {
                oc_locks::IdempotencyKey::new(agent, k)
                    .map_err(|e| ToolError::invalid(IDEMPOTENCY_KEY, e))
            })
            .transpose()
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, ToolError> {
        Ok(Duration::from_secs(
            self.opt_u64(name, 86_400)?.unwrap_or(default),
        ))
    }
}

type Handler = fn(&Toolbox, &Args<'_>, &CallContext<'_>) -> Result<Value, ToolError>;

/// A tool: its definition as `tools/list` shows it, and what it does.
pub struct Tool {
    /// `snake_case`, matching `^[a-zA-Z0-9_-]{1,64}$` (every client accepts that).
    pub name: &'static str,
    /// A short human title.
    pub title: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// JSON Schema of the arguments: a flat object, `additionalProperties: false`.
    pub input_schema: Value,
    /// JSON Schema of the answer (`structuredContent`), which always has the server's `now`.
    pub output_schema: Value,
    /// Changes nothing.
    pub read_only: bool,
    /// Calling it twice does what calling it once does.
    pub idempotent: bool,
    /// May remove or overwrite something.
    pub destructive: bool,
    /// In the compact default set (the others with `--tools all`).
    pub default_set: bool,
    /// Works on a task's files (log, decisions, checkpoints): offered only with
    /// [`Toolbox::files`].
    pub needs_files: bool,
    /// The argument (milliseconds) for which a call may wait, if any: such calls run beside
    /// the others, report progress and can be cancelled.
    pub waits_on: Option<&'static str>,
    /// Acts on the lease of the task this argument names (with its `fencing_token`): a `work`
    /// identity may call it only on a task its own agent holds.
    pub on_held_task: Option<&'static str>,
    /// With `on_held_task`: a `work` identity acts only while its own
    /// agent holds the lease (a task nobody holds is refused too); for what replaces a task's
    /// files.
    pub held_only: bool,
    handler: Handler,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Tool {
    /// A tool in the default set that writes, takes no arguments and answers only `now`; the
    /// builder methods below say the rest.
    fn new(
        name: &'static str,
        title: &'static str,
        description: &'static str,
        handler: Handler,
    ) -> Tool {
        Tool {
            name,
            title,
            description,
            input_schema: object(&[], &[]),
            output_schema: answer(&[], &[]),
            read_only: false,
            idempotent: false,
            destructive: false,
            default_set: true,
            needs_files: false,
            waits_on: None,
            on_held_task: None,
            held_only: false,
            handler,
        }
    }

    fn args(mut self, props: &[(&str, Value)], required: &[&str]) -> Tool {
        self.input_schema = object(props, required);
        self
    }

    fn answers(mut self, props: &[(&str, Value)], required: &[&str]) -> Tool {
        self.output_schema = answer(props, required);
        self
    }

    /// Changes nothing (so calling it again is harmless too).
    fn read_only(mut self) -> Tool {
        self.read_only = true;
        self.idempotent = true;
        self
    }

    fn idempotent(mut self) -> Tool {
        self.idempotent = true;
        self
    }

    fn destructive(mut self) -> Tool {
        self.destructive = true;
        self
    }

    /// Only with `--tools all`.
    fn extra(mut self) -> Tool {
        self.default_set = false;
        self
    }

    fn on_files(mut self) -> Tool {
        self.needs_files = true;
        self
    }

    fn waits_on(mut self, arg: &'static str) -> Tool {
        self.waits_on = Some(arg);
        self
    }

    /// Acts on the lease of the task `arg` names ([`Tool::on_held_task`]).
    fn on_held_task(mut self, arg: &'static str) -> Tool {
        self.on_held_task = Some(arg);
        self
    }

    /// Acts only on a task the caller's own agent holds ([`Tool::held_only`]).
    fn held_only(mut self) -> Tool {
        self.held_only = true;
        self
    }

    /// Whether a call with `arguments` may wait (and so should run beside other calls).
    pub fn may_wait(&self, arguments: &Map<String, Value>) -> bool {
        self.waits_on
            .and_then(|a| arguments.get(a))
            .and_then(Value::as_u64)
            .is_some_and(|ms| ms > 0)
    }

    /// Runs the tool on `arguments`, as the context's identity ([`CallContext::identity`])
    /// allows: a tool that changes something needs the `work` scope (`FORBIDDEN` otherwise),
    /// the agent it acts as is checked ([`Identity::acting_as`], `NOT_YOUR_AGENT`), and a
    /// `work` identity acts on a task's lease only while its agent holds that lease.
    pub fn call(
        &self,
        tb: &Toolbox,
        arguments: &Map<String, Value>,
        ctx: &CallContext<'_>,
    ) -> Result<Value, ToolError> {
        let args = Args::new(arguments, self, ctx.identity())?;
        if !self.read_only {
            ctx.identity().require(Scope::Work)?;
        }
        if let Some(arg) = self.on_held_task
            && ctx.identity().scope == Scope::Work
        {
            holds_lease(tb, &args, arg, self.held_only)?;
        }
        let mut out = (self.handler)(tb, &args, ctx)?;
        if let Value::Object(m) = &mut out {
            m.entry("now").or_insert_with(|| Value::String(tb.now()));
        }
        Ok(out)
    }

    /// The definition `tools/list` returns; `outputSchema` and `title` only for clients that
    /// know them (2025-06-18 on).
    pub fn definition(&self, structured: bool) -> Value {
        let mut d = json!({
            "name": self.name,
            "description": self.description,
            "inputSchema": self.input_schema,
            "annotations": {
                "readOnlyHint": self.read_only, "idempotentHint": self.idempotent,
                "destructiveHint": self.destructive, "openWorldHint": false,
            },
        });
        if structured && let Value::Object(m) = &mut d {
            m.insert("title".into(), json!(self.title));
            m.insert("outputSchema".into(), self.output_schema.clone());
        }
        d
    }
}

/// Refuses unless the task `arg` names is held by the caller's own agent under the lease whose
/// fencing token the call passes. Tokens are unique across the store, so a lease seen with the
/// caller's agent and that token stays the caller's: the write that follows, checked against
/// the token, cannot reach another agent's lease. A task that is not running (or a token that
/// is not the lease's) is left to the tool, whose store refuses it with its own explanation.
fn holds_lease(tb: &Toolbox, a: &Args<'_>, arg: &str, held_only: bool) -> Result<(), ToolError> {
    let me = a.agent(tb)?;
    let id = a.task_id(arg)?;
    let Some(task) = tb.life.store().get(&id)? else {
        return Ok(());
    };
    let token = a.opt_u64("fencing_token", u64::MAX)?;
    match (&task.owner, &task.lease) {
        (Some(owner), Some(lease)) if *owner != me => Err(ToolError::Refused {
            code: "NOT_YOUR_AGENT",
            message: format!(
                "task {id} is held by agent {owner:?}, not by {me:?}: this token acts as {me:?} only"
            ),
            details: json!({ "owner": owner, "lease_expires_at": lease.expires_at.to_string() }),
        }),
        (Some(_), Some(lease)) if token.is_some_and(|t| t != lease.token) => {
            Err(ToolError::refused(
                "LEASE_LOST",
                format!(
                    "fencing token {} is not the current lease of task {id}: use the token task_claim returned",
                    token.unwrap_or_default()
                ),
            ))
        }
        (Some(_), Some(_)) => Ok(()),
        _ if held_only => Err(ToolError::refused(
            "NOT_YOUR_AGENT",
            format!(
                "task {id} is not held by {me:?}: this token acts only on a task its agent holds (claim it first, or use an admin token)"
            ),
        )),
        _ => Ok(()),
    }
}

/// Every tool, in the order `tools/list` shows them.
pub(crate) fn all() -> Vec<Tool> {
    let mut all = tasks::tools();
    all.extend(locks::tools());
    all.extend(files::tools());
    all
}
