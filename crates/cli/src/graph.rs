//! `oc task dep|ready|blocked|tree|graph`: the work graph for agents and operators.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use oc_tasks::{
    Blockers, Cursor, Order, Readiness, Rollup, Task, TaskFilter, TaskId, TaskQuery, TaskStatus,
    TaskStore,
};

use crate::Site;
use crate::args::{DepCmd, GraphFormat, LabelArgs, task_id};
use crate::output::{Clean, Output, clean, print_page};

/// Most tasks `oc task graph` draws.
const GRAPH_MAX: usize = 2_000;
/// Deepest level below the root that `oc task tree` shows: a node there with more below says
/// so (and how to go on, with `oc task tree <its id>`). It keeps the walk's recursion, the
/// printed indentation and the `--json` document's nesting (two levels a node, which readers
/// such as `serde_json` stop at 127) bounded whatever chain agents made.
const TREE_DEPTH: usize = 50;

pub(crate) fn dep(site: &Site, cmd: DepCmd, out: &mut Output) -> anyhow::Result<()> {
    let store = site.store()?;
    let (command, t) = match cmd {
        DepCmd::Add { task, on } => (
            "task.dep.add",
            store.add_dependency(&task_id(&task)?, &task_id(&on)?)?,
        ),
        DepCmd::Rm { task, on } => (
            "task.dep.rm",
            store.remove_dependency(&task_id(&task)?, &task_id(&on)?)?,
        ),
    };
    out.emit(command, &t, |w, o| {
        if o.quiet {
            return Ok(());
        }
        let deps: Vec<&str> = t.depends_on.iter().map(TaskId::as_str).collect();
        writeln!(
            w,
            "Task {} waits for: {} (version {})",
            t.id,
            if deps.is_empty() {
                "nothing".to_owned()
            } else {
                deps.join(", ")
            },
            t.version
        )
    })
}

pub(crate) fn ready(
    site: &Site,
    labels: &LabelArgs,
    limit: usize,
    after: Option<String>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let mut filter = TaskFilter::new().readiness(Readiness::Ready);
    filter.labels = labels.filter();
    let after = after.map(|c| c.parse::<Cursor>()).transpose()?;
    let page = site.store()?.list(
        &TaskQuery::new(filter)
            .order(Order::Priority)
            .limit(limit)
            .after(after),
    )?;
    print_page("task.ready", &page, out)
}

pub(crate) fn blocked(
    site: &Site,
    limit: usize,
    after: Option<String>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let store = site.store()?;
    let after = after.map(|c| c.parse::<Cursor>()).transpose()?;
    let page = store.list(
        &TaskQuery::new(TaskFilter::new().readiness(Readiness::Blocked))
            .order(Order::Priority)
            .limit(limit)
            .after(after),
    )?;
    let blocked = page
        .tasks
        .iter()
        .map(|t| store.blockers(&t.id))
        .collect::<Result<Vec<Blockers>, _>>()?;
    let doc = serde_json::json!({ "blocked": &blocked, "next": &page.next });
    out.emit("task.blocked", &doc, |w, o| {
        if o.quiet {
            for b in &blocked {
                writeln!(w, "{}", b.task)?;
            }
            return Ok(());
        }
        if blocked.is_empty() {
            return writeln!(w, "No blocked tasks");
        }
        for (t, b) in page.tasks.iter().zip(&blocked) {
            writeln!(w, "{}  {}: {}", t.id, Clean(&t.name), b.describe())?;
        }
        writeln!(w, "{} blocked task(s)", blocked.len())?;
        if let Some(next) = &page.next {
            writeln!(w, "More: --after {}", String::from(next.clone()))?;
        }
        Ok(())
    })
}

/// The lines `oc task show` adds for the graph fields, when the task has them.
pub(crate) fn print_graph_fields(
    w: &mut dyn Write,
    t: &Task,
    blockers: &Blockers,
    children: &Rollup,
) -> std::io::Result<()> {
    if let Some(p) = &t.parent {
        writeln!(w, "Parent:      {p}")?;
    }
    if !t.depends_on.is_empty() {
        let deps: Vec<&str> = t.depends_on.iter().map(TaskId::as_str).collect();
        writeln!(w, "Depends on:  {}", deps.join(", "))?;
    }
    if !blockers.is_empty() {
        writeln!(w, "Blocked:     {}", blockers.describe())?;
    }
    if children.total > 0 {
        let parts: Vec<String> = children
            .by_status
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        writeln!(
            w,
            "Children:    {} of {} completed ({})",
            children.completed(),
            children.total,
            parts.join(", ")
        )?;
    }
    if !t.labels.is_empty() {
        writeln!(w, "Labels:      {}", Clean(&t.labels.join(", ")))?;
    }
    if let Some(at) = t.run_at {
        writeln!(w, "Run at:      {at}")?;
    }
    if t.retry != oc_tasks::RetryPolicy::None {
        writeln!(w, "Retry:       {}", t.retry)?;
    }
    if let Some(u) = &t.unique {
        writeln!(
            w,
            "Unique key:  {} (held {})",
            Clean(&u.key),
            u.scope.as_str()
        )?;
    }
    Ok(())
}

/// Every task of the listing `filter`, page by page, up to `max`.
fn all(store: &dyn TaskStore, filter: TaskFilter, max: usize) -> anyhow::Result<Vec<Task>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store.list(
            &TaskQuery::new(filter.clone())
                .order(Order::Oldest)
                .limit(500)
                .after(after),
        )?;
        out.extend(page.tasks);
        match page.next {
            Some(c) if out.len() < max => after = Some(c),
            _ => {
                out.truncate(max);
                return Ok(out);
            }
        }
    }
}

/// A node of `oc task tree`: the task, and below it what it waits for and its children.
#[derive(Debug, serde::Serialize)]
struct Node {
    id: TaskId,
    name: String,
    status: TaskStatus,
    /// How it hangs below its parent node: `depends_on` or `child` (empty for the root).
    relation: &'static str,
    /// Already shown higher up: not expanded again.
    repeated: bool,
    /// At [`TREE_DEPTH`] with dependencies or children not shown.
    truncated: bool,
    below: Vec<Node>,
}

/// The node of `t` at `depth` below the root, and below it (to [`TREE_DEPTH`]) what it waits
/// for and its children. Recursion is bounded by [`TREE_DEPTH`].
fn node(
    store: &dyn TaskStore,
    t: Task,
    relation: &'static str,
    depth: usize,
    seen: &mut HashSet<TaskId>,
) -> anyhow::Result<Node> {
    let mut n = Node {
        id: t.id.clone(),
        name: t.name.clone(),
        status: t.status,
        relation,
        repeated: seen.contains(&t.id),
        truncated: false,
        below: Vec::new(),
    };
    if n.repeated {
        return Ok(n);
    }
    let children = TaskFilter::new().parent(t.id.clone());
    if depth >= TREE_DEPTH {
        // Not marked as seen: met again higher up, it is shown there with what is below it.
        n.truncated = !t.depends_on.is_empty()
            || !store
                .list(&TaskQuery::new(children).limit(1))?
                .tasks
                .is_empty();
        return Ok(n);
    }
    seen.insert(t.id.clone());
    for d in &t.depends_on {
        if let Some(dep) = store.get(d)? {
            n.below
                .push(node(store, dep, "depends_on", depth + 1, seen)?);
        }
    }
    for child in all(store, children, GRAPH_MAX)? {
        n.below.push(node(store, child, "child", depth + 1, seen)?);
    }
    Ok(n)
}

pub(crate) fn tree(site: &Site, id: &TaskId, out: &mut Output) -> anyhow::Result<()> {
    let store = site.store()?;
    let root = node(&*store, store.require(id)?, "", 0, &mut HashSet::new())?;
    out.emit("task.tree", &root, |w, o| print_node(w, o, &root, ""))
}

fn print_node(w: &mut dyn Write, o: &Output, n: &Node, indent: &str) -> std::io::Result<()> {
    let relation = match n.relation {
        "depends_on" => "needs ",
        "child" => "child ",
        _ => "",
    };
    write!(
        w,
        "{indent}{relation}{} ({}) {}",
        n.id,
        o.status(n.status),
        Clean(&n.name),
    )?;
    if n.repeated {
        write!(w, " (shown above)")?;
    }
    if n.truncated {
        write!(w, " (more below: oc task tree {})", n.id)?;
    }
    writeln!(w)?;
    let deeper = format!("{indent}  ");
    for b in &n.below {
        print_node(w, o, b, &deeper)?;
    }
    Ok(())
}

/// The tasks `oc task graph` draws: all of them, or what `root` depends on and its children,
/// transitively.
fn graph_tasks(store: &dyn TaskStore, root: Option<&TaskId>) -> anyhow::Result<Vec<Task>> {
    let Some(root) = root else {
        return all(store, TaskFilter::new(), GRAPH_MAX);
    };
    let mut seen: HashSet<TaskId> = HashSet::new();
    let mut todo = vec![store.require(root)?];
    let mut out = Vec::new();
    while let Some(t) = todo.pop() {
        if !seen.insert(t.id.clone()) || out.len() >= GRAPH_MAX {
            continue;
        }
        for d in &t.depends_on {
            if let Some(dep) = store.get(d)? {
                todo.push(dep);
            }
        }
        todo.extend(all(
            store,
            TaskFilter::new().parent(t.id.clone()),
            GRAPH_MAX,
        )?);
        out.push(t);
    }
    out.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    Ok(out)
}

/// Fill colours by status (the same in both formats).
fn colour(s: TaskStatus) -> &'static str {
    match s {
        TaskStatus::Pending => "#e8e8e8",
        TaskStatus::Running => "#cfe2ff",
        TaskStatus::Completed => "#d1f0d1",
        TaskStatus::Failed => "#f8d0d0",
        TaskStatus::Cancelled => "#f0e6c8",
    }
}

/// Text agents wrote, made safe inside a double-quoted DOT string: quotes and backslashes
/// escaped, control characters shown as escapes.
fn dot_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// Text agents wrote, made safe inside a Mermaid `["…"]` label: every character that Mermaid
/// or Markdown gives a meaning to becomes an entity.
fn mermaid_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in clean(s).chars() {
        match c {
            c if c.is_ascii_alphanumeric() || c == ' ' || c == '-' || c == '_' || c == '.' => {
                out.push(c);
            }
            c => out.push_str(&format!("#{};", u32::from(c))),
        }
    }
    out
}

/// The graph as text in `format`: tasks with their status, an arrow from each dependency to
/// the task that waits for it, a dashed one from each parent to its children.
pub(crate) fn render_graph(tasks: &[Task], format: GraphFormat) -> String {
    let shown: BTreeMap<&TaskId, usize> =
        tasks.iter().enumerate().map(|(i, t)| (&t.id, i)).collect();
    let mut s = String::new();
    match format {
        GraphFormat::Dot => {
            s.push_str(
                "digraph tasks {\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\"];\n",
            );
            for t in tasks {
                s.push_str(&format!(
                    "  \"{}\" [label=\"{}\\n{} ({})\", fillcolor=\"{}\"];\n",
                    t.id,
                    t.id,
                    dot_text(&t.name),
                    t.status,
                    colour(t.status)
                ));
            }
            for t in tasks {
                for d in t.depends_on.iter().filter(|d| shown.contains_key(d)) {
                    s.push_str(&format!("  \"{d}\" -> \"{}\";\n", t.id));
                }
                if let Some(p) = t.parent.as_ref().filter(|p| shown.contains_key(p)) {
                    s.push_str(&format!(
                        "  \"{p}\" -> \"{}\" [style=dashed, arrowhead=none];\n",
                        t.id
                    ));
                }
            }
            s.push_str("}\n");
        }
        GraphFormat::Mermaid => {
            s.push_str("flowchart LR\n");
            for (i, t) in tasks.iter().enumerate() {
                s.push_str(&format!(
                    "  t{i}[\"{} {} ({})\"]:::{}\n",
                    t.id,
                    mermaid_text(&t.name),
                    t.status,
                    t.status
                ));
            }
            for (i, t) in tasks.iter().enumerate() {
                for d in &t.depends_on {
                    if let Some(j) = shown.get(d) {
                        s.push_str(&format!("  t{j} --> t{i}\n"));
                    }
                }
                if let Some(j) = t.parent.as_ref().and_then(|p| shown.get(p)) {
                    s.push_str(&format!("  t{j} -.- t{i}\n"));
                }
            }
            for st in TaskStatus::ALL {
                s.push_str(&format!("  classDef {st} fill:{}\n", colour(st)));
            }
        }
    }
    s
}

pub(crate) fn graph(
    site: &Site,
    format: GraphFormat,
    root: Option<&TaskId>,
    out: &mut Output,
) -> anyhow::Result<()> {
    let store = site.store()?;
    let tasks = graph_tasks(&*store, root)?;
    let text = render_graph(&tasks, format);
    let doc = serde_json::json!({ "format": format!("{format:?}").to_lowercase(), "graph": &text });
    out.emit("task.graph", &doc, |w, _| w.write_all(text.as_bytes()))
}
