//! The tools: their definitions (names every client accepts, flat schemas, annotations) and
//! what each does with the [`Toolbox`].

use std::sync::Arc;
use std::time::Duration;

use oc_hooks::TaskLifecycle;
use oc_locks::{Error as LockError, Holder, Lock, LockManager, LockMode, LockRequest, Resource};
use oc_tasks::{
    Error as TaskError, LabelFilter, NewTask, Readiness, Task, TaskFilter, TaskId, TaskQuery,
    TaskStatus,
};
use serde_json::{Map, Value, json};

/// What the tools act on.
pub struct Toolbox {
    life: TaskLifecycle,
    locks: Arc<dyn LockManager>,
    default_agent: Option<String>,
}

impl std::fmt::Debug for Toolbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Toolbox")
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
            default_agent: None,
        }
    }

    /// The agent name a write uses when its call names none (`oc mcp` passes `OC_AGENT`).
    /// Several agents may share one server: the name is an argument, never the connection.
    pub fn default_agent(mut self, agent: Option<String>) -> Toolbox {
        self.default_agent = agent.filter(|a| !a.is_empty());
        self
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
            TaskError::InvalidId { .. }
            | TaskError::InvalidInput { .. }
            | TaskError::Cycle { .. }
            | TaskError::HasDependents { .. } => "INVALID_ARGUMENT",
            _ => return ToolError::Internal(e.to_string()),
        };
        ToolError::refused(code, e.to_string())
    }
}

fn holders_json(holders: &[Holder]) -> Value {
    Value::Array(
        holders
            .iter()
            .map(|h| {
                json!({
                    "path": h.resource.as_str(), "holder": h.owner.as_str(), "mode": h.mode,
                    "expires_at": h.expires_at.map(|t| t.to_string()),
                    "waiting": h.expires_at.is_none(),
                })
            })
            .collect(),
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
                    details: json!({ "conflicts": holders_json(holders) }),
                }
            }
            LockError::NotHeld { holders, .. } => ToolError::Refused {
                code: "NOT_HELD",
                message,
                details: json!({ "holders": holders_json(holders) }),
            },
            LockError::Expired { .. } => ToolError::refused("EXPIRED", message),
            LockError::InvalidResource { .. }
            | LockError::InvalidOwner { .. }
            | LockError::InvalidTtl { .. }
            | LockError::InvalidInput { .. } => ToolError::refused("INVALID_ARGUMENT", message),
            _ => ToolError::Internal(message),
        }
    }
}

/// A tool call's arguments, checked against the tool's declared properties.
struct Args<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn new(map: &'a Map<String, Value>, tool: &Tool) -> Result<Args<'a>, ToolError> {
        let known = tool.input_schema["properties"].as_object();
        for key in map.keys() {
            if !known.is_some_and(|k| k.contains_key(key)) {
                return Err(ToolError::invalid(key, "is not an argument of this tool"));
            }
        }
        Ok(Args { map })
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

    /// The calling agent: the argument, or the server's default (`OC_AGENT`).
    fn agent(&self, tb: &Toolbox) -> Result<String, ToolError> {
        match self.opt_str("agent")? {
            Some(a) => Ok(a.to_owned()),
            None => tb.default_agent.clone().ok_or_else(|| {
                ToolError::invalid(
                    "agent",
                    "is required (or start the server with OC_AGENT set)",
                )
            }),
        }
    }

    fn secs(&self, name: &str, default: u64) -> Result<Duration, ToolError> {
        Ok(Duration::from_secs(
            self.opt_u64(name, 86_400)?.unwrap_or(default),
        ))
    }
}

type Handler = fn(&Toolbox, &Args<'_>) -> Result<Value, ToolError>;

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
    /// JSON Schema of the answer (`structuredContent`).
    pub output_schema: Value,
    /// Changes nothing.
    pub read_only: bool,
    /// Calling it twice does what calling it once does.
    pub idempotent: bool,
    /// May remove something.
    pub destructive: bool,
    /// In the compact default set (the others with `--tools all`).
    pub default_set: bool,
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
    /// Runs the tool on `arguments`.
    pub fn call(&self, tb: &Toolbox, arguments: &Map<String, Value>) -> Result<Value, ToolError> {
        let args = Args::new(arguments, self)?;
        let mut out = (self.handler)(tb, &args)?;
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

/// A flat object schema from `(name, schema)` pairs and the required names.
fn object(props: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({ "type": "object", "properties": properties, "required": required,
            "additionalProperties": false })
}

fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

fn integer(description: &str, min: u64, max: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max, "description": description })
}

fn any_object(description: &str) -> Value {
    json!({ "type": "object", "description": description })
}

fn agent() -> (&'static str, Value) {
    (
        "agent",
        string(
            "Your agent name (defaults to the server's OC_AGENT). Several agents may share one server.",
        ),
    )
}

fn task_json(t: &Task) -> Result<Value, ToolError> {
    serde_json::to_value(t).map_err(|e| ToolError::Internal(e.to_string()))
}

fn brief(t: &Task) -> Value {
    json!({ "id": t.id.as_str(), "name": t.name, "status": t.status, "owner": t.owner,
            "priority": t.priority, "labels": t.labels, "depends_on": t.depends_on })
}

fn lock_json(l: &Lock) -> Value {
    json!({ "path": l.resource.as_str(), "mode": l.mode, "fencing_token": l.token,
            "holds": l.holds, "expires_at": l.expires_at.to_string() })
}

fn mode_arg(args: &Args<'_>) -> Result<LockMode, ToolError> {
    match args.opt_str("mode")? {
        None | Some("exclusive") => Ok(LockMode::Exclusive),
        Some("shared") => Ok(LockMode::Shared),
        Some(other) => Err(ToolError::invalid(
            "mode",
            format!("must be exclusive or shared, not {other:?}"),
        )),
    }
}

fn paths_arg(args: &Args<'_>) -> Result<Vec<Resource>, ToolError> {
    let paths = args.strings("paths")?;
    if paths.is_empty() {
        return Err(ToolError::invalid("paths", "must name at least one path"));
    }
    paths
        .iter()
        .map(|p| Resource::new(p).map_err(|e| ToolError::invalid("paths", e)))
        .collect()
}

fn task_create(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let mut new = NewTask::new(a.str("name")?).owner(a.agent(tb)?);
    if let Some(d) = a.opt_str("description")? {
        new = new.description(d);
    }
    if let Some(p) = a.opt_u64("priority", 1_000_000)? {
        new = new.priority(i32::try_from(p).unwrap_or(i32::MAX));
    }
    for d in a.strings("depends_on")? {
        new = new.depends_on(TaskId::new(d).map_err(|e| ToolError::invalid("depends_on", e))?);
    }
    for l in a.strings("labels")? {
        new = new.label(l);
    }
    if a.opt_str("parent")?.is_some() {
        new = new.parent(a.task_id("parent")?);
    }
    let c = tb.life.create(new)?;
    Ok(json!({ "task": task_json(c.task())?, "duplicate": c.duplicate }))
}

fn task_get(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let id = a.task_id("task_id")?;
    match tb.life.store().get(&id)? {
        Some(t) => Ok(json!({ "task": task_json(&t)? })),
        None => Err(ToolError::refused("NOT_FOUND", format!("no task {id}"))),
    }
}

fn task_list(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let mut filter = TaskFilter::new();
    if let Some(s) = a.opt_str("status")? {
        let status: TaskStatus = s.parse().map_err(|e| ToolError::invalid("status", e))?;
        filter = filter.status(status);
    }
    if let Some(o) = a.opt_str("owner")? {
        filter = filter.owner(o);
    }
    for l in a.strings("labels")? {
        filter = filter.label(l);
    }
    if a.opt_bool("ready")? == Some(true) {
        filter = filter.readiness(Readiness::Ready);
    }
    let limit = a.opt_u64("limit", 100)?.unwrap_or(20) as usize;
    let page = tb.life.store().list(&TaskQuery::new(filter).limit(limit))?;
    let full = a.opt_bool("full")? == Some(true);
    let tasks: Vec<Value> = page
        .tasks
        .iter()
        .map(|t| if full { task_json(t) } else { Ok(brief(t)) })
        .collect::<Result<_, _>>()?;
    Ok(json!({ "tasks": tasks, "truncated": page.next.is_some() }))
}

fn claimed(t: &Task) -> Result<Value, ToolError> {
    let lease = t
        .lease
        .ok_or_else(|| ToolError::Internal(format!("claimed task {} has no lease", t.id)))?;
    Ok(
        json!({ "claimed": true, "task_id": t.id.as_str(), "fencing_token": lease.token,
               "lease_expires_at": lease.expires_at.to_string(), "task": task_json(t)? }),
    )
}

fn task_claim(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let agent = a.agent(tb)?;
    let ttl = a.secs("lease_secs", 300)?;
    if a.opt_str("task_id")?.is_some() {
        let c = tb.life.claim(&a.task_id("task_id")?, &agent, ttl)?;
        return claimed(c.task());
    }
    let mut filter = LabelFilter::any();
    for l in a.strings("labels")? {
        filter = filter.require(l);
    }
    match tb.life.claim_next_matching(&agent, ttl, &filter)? {
        Some(c) => claimed(c.task()),
        None => Ok(json!({ "claimed": false, "reason": "no ready task matches" })),
    }
}

fn token_arg(a: &Args<'_>) -> Result<u64, ToolError> {
    a.opt_u64("fencing_token", u64::MAX)?.ok_or_else(|| {
        ToolError::invalid(
            "fencing_token",
            "is required: the token task_claim returned",
        )
    })
}

fn task_heartbeat(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    a.agent(tb)?;
    let t = tb.life.heartbeat(
        &a.task_id("task_id")?,
        token_arg(a)?,
        a.secs("lease_secs", 300)?,
    )?;
    let expires = t.lease.map(|l| l.expires_at.to_string());
    Ok(json!({ "task_id": t.id.as_str(), "lease_expires_at": expires }))
}

fn task_finish(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    a.agent(tb)?;
    let id = a.task_id("task_id")?;
    let token = Some(token_arg(a)?);
    let c = match a.str("outcome")? {
        "completed" => {
            let result = a.map.get("result").cloned().filter(|v| !v.is_null());
            tb.life.complete(&id, token, result)?
        }
        "failed" => tb
            .life
            .fail(&id, token, a.opt_str("error")?.unwrap_or("failed"))?,
        other => {
            return Err(ToolError::invalid(
                "outcome",
                format!("must be completed or failed, not {other:?}"),
            ));
        }
    };
    Ok(json!({ "task": task_json(c.task())? }))
}

fn lock_acquire(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let owner = oc_locks::Owner::new(a.agent(tb)?).map_err(|e| ToolError::invalid("agent", e))?;
    let mode = mode_arg(a)?;
    let ttl = a.secs("ttl_secs", 300)?;
    let reqs: Vec<LockRequest> = paths_arg(a)?
        .into_iter()
        .map(|r| LockRequest::from_parts(r, owner.clone(), mode).ttl(ttl))
        .collect();
    let wait = Duration::from_millis(a.opt_u64("wait_ms", 60_000)?.unwrap_or(0));
    let locks = tb.locks.acquire_many(&reqs, wait)?;
    Ok(json!({ "locks": locks.iter().map(lock_json).collect::<Vec<_>>() }))
}

/// Renews or releases each path; a per-path outcome, never a bare count.
fn each_path(
    tb: &Toolbox,
    a: &Args<'_>,
    f: &dyn Fn(&Resource, &oc_locks::Owner) -> Result<Lock, LockError>,
) -> Result<Value, ToolError> {
    let owner = oc_locks::Owner::new(a.agent(tb)?).map_err(|e| ToolError::invalid("agent", e))?;
    let mut results = Vec::new();
    for r in paths_arg(a)? {
        results.push(match f(&r, &owner) {
            Ok(l) => json!({ "path": r.as_str(), "ok": true, "lock": lock_json(&l) }),
            Err(e) => match ToolError::from(e) {
                ToolError::Refused { code, message, .. } => {
                    json!({ "path": r.as_str(), "ok": false, "code": code, "message": message })
                }
                internal @ ToolError::Internal(_) => return Err(internal),
            },
        });
    }
    Ok(json!({ "results": results }))
}

fn lock_renew(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let ttl = a.secs("ttl_secs", 300)?;
    each_path(tb, a, &|r, o| tb.locks.renew(r, o, Some(ttl)))
}

fn lock_release(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    each_path(tb, a, &|r, o| tb.locks.release(r, o))
}

fn lock_check(tb: &Toolbox, a: &Args<'_>) -> Result<Value, ToolError> {
    let mode = mode_arg(a)?;
    let me = a.opt_str("agent")?;
    let mut conflicts = Vec::new();
    for r in paths_arg(a)? {
        for l in tb.locks.holders(&r)? {
            if Some(l.owner.as_str()) != me && mode.conflicts_with(l.mode) {
                conflicts.push(l.holder());
            }
        }
    }
    Ok(json!({ "free": conflicts.is_empty(), "conflicts": holders_json(&conflicts) }))
}

fn lock_list(tb: &Toolbox, _: &Args<'_>) -> Result<Value, ToolError> {
    let locks = tb.locks.list()?;
    Ok(json!({ "locks": locks.iter().map(|l| {
        let mut v = lock_json(l);
        if let Value::Object(m) = &mut v {
            m.insert("holder".into(), json!(l.owner.as_str()));
        }
        v
    }).collect::<Vec<_>>() }))
}

fn with_now(mut schema: Value) -> Value {
    if let Some(p) = schema["properties"].as_object_mut() {
        p.insert("now".into(), string("The server's time (RFC 3339)."));
    }
    schema
}

/// Every tool, in the order `tools/list` shows them.
pub(crate) fn all() -> Vec<Tool> {
    let task_id = || ("task_id", string("The task's id."));
    let token = || {
        (
            "fencing_token",
            integer("The token task_claim returned.", 1, u64::MAX),
        )
    };
    let lease = || {
        (
            "lease_secs",
            integer("Lease length in seconds (default 300).", 1, 86_400),
        )
    };
    let paths = || {
        (
            "paths",
            strings(
                "Paths to lock, such as repo/src/lib.rs; a directory covers what is inside it.",
            ),
        )
    };
    let mode = || {
        (
            "mode",
            json!({ "type": "string", "enum": ["exclusive", "shared"], "description": "exclusive (default) or shared" }),
        )
    };
    let task_out = || with_now(object(&[("task", any_object("The task."))], &["task"]));
    vec![
        Tool {
            name: "task_create",
            title: "Create a task",
            description: "Create a pending task, optionally depending on other tasks (it becomes ready once they complete), under a parent, with labels.",
            input_schema: object(
                &[
                    agent(),
                    ("name", string("What the task is.")),
                    ("description", string("Details.")),
                    (
                        "priority",
                        integer("Higher runs first (default 0).", 0, 1_000_000),
                    ),
                    (
                        "depends_on",
                        strings("Ids of tasks that must complete first."),
                    ),
                    ("labels", strings("Labels for routing.")),
                    ("parent", string("Id of the parent task.")),
                ],
                &["name"],
            ),
            output_schema: with_now(object(
                &[
                    ("task", any_object("The task.")),
                    ("duplicate", json!({"type": "boolean"})),
                ],
                &["task"],
            )),
            read_only: false,
            idempotent: false,
            destructive: false,
            default_set: true,
            handler: task_create,
        },
        Tool {
            name: "task_list",
            title: "List tasks",
            description: "List tasks, newest first: by status, owner, labels, or only those ready to claim. Brief by default; full=true for every field.",
            input_schema: object(
                &[
                    (
                        "status",
                        json!({"type": "string", "enum": ["pending", "running", "completed", "failed", "cancelled"]}),
                    ),
                    ("owner", string("Only this owner's tasks.")),
                    ("labels", strings("Only tasks with all these labels.")),
                    (
                        "ready",
                        json!({"type": "boolean", "description": "Only tasks ready to claim."}),
                    ),
                    ("limit", integer("At most this many (default 20).", 1, 100)),
                    (
                        "full",
                        json!({"type": "boolean", "description": "Every field of each task."}),
                    ),
                ],
                &[],
            ),
            output_schema: with_now(object(
                &[
                    ("tasks", json!({"type": "array"})),
                    ("truncated", json!({"type": "boolean"})),
                ],
                &["tasks", "truncated"],
            )),
            read_only: true,
            idempotent: true,
            destructive: false,
            default_set: true,
            handler: task_list,
        },
        Tool {
            name: "task_get",
            title: "Get a task",
            description: "One task with every field: status, owner, lease, dependencies, result or error.",
            input_schema: object(&[task_id()], &["task_id"]),
            output_schema: task_out(),
            read_only: true,
            idempotent: true,
            destructive: false,
            default_set: true,
            handler: task_get,
        },
        Tool {
            name: "task_claim",
            title: "Claim a task",
            description: "Atomically claim the next ready task (or the given one) for `agent`, with a lease. Returns fencing_token and lease_expires_at: pass the token to task_heartbeat and task_finish, and heartbeat before the lease expires or another agent may take the task.",
            input_schema: object(
                &[
                    agent(),
                    task_id(),
                    lease(),
                    (
                        "labels",
                        strings("Claim only a task with all these labels."),
                    ),
                ],
                &[],
            ),
            output_schema: with_now(object(
                &[
                    ("claimed", json!({"type": "boolean"})),
                    ("task_id", string("")),
                    ("fencing_token", json!({"type": "integer"})),
                    ("lease_expires_at", string("")),
                    ("task", any_object("")),
                    ("reason", string("")),
                ],
                &["claimed"],
            )),
            read_only: false,
            idempotent: false,
            destructive: false,
            default_set: true,
            handler: task_claim,
        },
        Tool {
            name: "task_heartbeat",
            title: "Extend a lease",
            description: "Extend your lease on a claimed task. Fails with LEASE_LOST if the token is no longer the task's (the lease lapsed and another agent claimed it): stop working on it then.",
            input_schema: object(
                &[agent(), task_id(), token(), lease()],
                &["task_id", "fencing_token"],
            ),
            output_schema: with_now(object(
                &[("task_id", string("")), ("lease_expires_at", string(""))],
                &["task_id"],
            )),
            read_only: false,
            idempotent: true,
            destructive: false,
            default_set: true,
            handler: task_heartbeat,
        },
        Tool {
            name: "task_finish",
            title: "Finish a task",
            description: "Finish a claimed task as completed (with an optional result) or failed (with an error); a failed task may be retried by its retry policy. Needs the fencing token.",
            input_schema: object(
                &[
                    agent(),
                    task_id(),
                    token(),
                    (
                        "outcome",
                        json!({"type": "string", "enum": ["completed", "failed"]}),
                    ),
                    ("result", any_object("What was done (completed).")),
                    ("error", string("What went wrong (failed).")),
                ],
                &["task_id", "fencing_token", "outcome"],
            ),
            output_schema: task_out(),
            read_only: false,
            idempotent: false,
            destructive: false,
            default_set: true,
            handler: task_finish,
        },
        Tool {
            name: "lock_acquire",
            title: "Lock paths",
            description: "Lock several paths at once, all or none, exclusive (default) or shared, for ttl_secs; optionally wait up to wait_ms for holders to go. A refusal (LOCK_CONFLICT) names who holds what and until when. Pass the fencing tokens to whatever you write, if it checks them.",
            input_schema: object(
                &[
                    agent(),
                    paths(),
                    mode(),
                    (
                        "ttl_secs",
                        integer("Lock length in seconds (default 300).", 1, 86_400),
                    ),
                    (
                        "wait_ms",
                        integer(
                            "How long to wait for conflicting holders (default 0).",
                            0,
                            60_000,
                        ),
                    ),
                ],
                &["paths"],
            ),
            output_schema: with_now(object(&[("locks", json!({"type": "array"}))], &["locks"])),
            read_only: false,
            idempotent: false,
            destructive: false,
            default_set: true,
            handler: lock_acquire,
        },
        Tool {
            name: "lock_renew",
            title: "Renew locks",
            description: "Extend your locks on these paths to ttl_secs from now; each path's outcome separately (EXPIRED or NOT_HELD when it was lost).",
            input_schema: object(
                &[
                    agent(),
                    paths(),
                    (
                        "ttl_secs",
                        integer("New length in seconds (default 300).", 1, 86_400),
                    ),
                ],
                &["paths"],
            ),
            output_schema: with_now(object(
                &[("results", json!({"type": "array"}))],
                &["results"],
            )),
            read_only: false,
            idempotent: true,
            destructive: false,
            default_set: true,
            handler: lock_renew,
        },
        Tool {
            name: "lock_release",
            title: "Release locks",
            description: "Release one hold of your lock on each path; each path's outcome separately.",
            input_schema: object(&[agent(), paths()], &["paths"]),
            output_schema: with_now(object(
                &[("results", json!({"type": "array"}))],
                &["results"],
            )),
            read_only: false,
            idempotent: false,
            destructive: true,
            default_set: true,
            handler: lock_release,
        },
        Tool {
            name: "lock_check",
            title: "Check paths",
            description: "Whether these paths could be locked in this mode now, and if not who holds what until when. Changes nothing.",
            input_schema: object(
                &[
                    (
                        "agent",
                        string("Your agent name: your own locks are no conflict."),
                    ),
                    paths(),
                    mode(),
                ],
                &["paths"],
            ),
            output_schema: with_now(object(
                &[
                    ("free", json!({"type": "boolean"})),
                    ("conflicts", json!({"type": "array"})),
                ],
                &["free", "conflicts"],
            )),
            read_only: true,
            idempotent: true,
            destructive: false,
            default_set: true,
            handler: lock_check,
        },
        Tool {
            name: "lock_list",
            title: "List locks",
            description: "Every live lock: path, holder, mode, fencing token, expiry.",
            input_schema: object(&[], &[]),
            output_schema: with_now(object(&[("locks", json!({"type": "array"}))], &["locks"])),
            read_only: true,
            idempotent: true,
            destructive: false,
            default_set: false,
            handler: lock_list,
        },
    ]
}
