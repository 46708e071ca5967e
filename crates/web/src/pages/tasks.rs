//! `/ui/tasks` (filters kept in the URL, keyset paging) and `/ui/tasks/{id}` (every field, the
//! graph around it, its history, the tail of its log, decisions, checkpoints, and the actions
//! its state allows).

use maud::{Markup, html};
use oc_jsonl::TaskFiles;
use oc_tasks::{Cursor, Order, TaskFilter, TaskId, TaskQuery, TaskStatus};

use super::{layout, next_link, not_found, status, submit, task_filter, when};
use crate::Web;
use crate::http::{Request, Response};

/// Tasks per page.
const PAGE: usize = 50;
/// Log lines a task's page shows.
const LOG_TAIL: usize = 20;

pub(crate) fn list(web: &Web, req: &Request) -> Response {
    let mut problems = Vec::new();
    let filter = task_filter(&req.query).unwrap_or_else(|e| {
        problems.push(e);
        TaskFilter::new()
    });
    let order = match req.param("order") {
        Some("oldest") => Order::Oldest,
        Some("priority") => Order::Priority,
        _ => Order::Newest,
    };
    let after = match req.param("after").map(|a| Cursor::try_from(a.to_owned())) {
        Some(Ok(c)) => Some(c),
        Some(Err(e)) => {
            problems.push(e.to_string());
            None
        }
        None => None,
    };
    let page = if problems.is_empty() {
        web.store()
            .list(&TaskQuery::new(filter).order(order).limit(PAGE).after(after))
            .map_err(|e| e.to_string())
    } else {
        Err(problems.join("; "))
    };
    let now = web.store().now();
    let selected = |name: &str, value: &str| req.param(name) == Some(value);
    let body = html! {
        form method="get" action="/ui/tasks" class="filters" role="search" {
            label { "Status "
                select name="status" {
                    option value="" { "any" }
                    @for s in TaskStatus::ALL {
                        option value=(s.as_str()) selected[selected("status", s.as_str())] { (s.as_str()) }
                    }
                }
            }
            label { "Owner " input type="text" name="owner" value=[req.param("owner")]; }
            label { "Label " input type="text" name="label" value=[req.param("label")]; }
            label { "Text " input type="search" name="q" value=[req.param("q")]; }
            label { "Order "
                select name="order" {
                    option value="newest" { "newest first" }
                    option value="oldest" selected[selected("order", "oldest")] { "oldest first" }
                    option value="priority" selected[selected("order", "priority")] { "claim order" }
                }
            }
            button type="submit" { "Show" }
        }
        @match &page {
            Err(e) => p class="error" role="alert" { (e) },
            Ok(page) if page.tasks.is_empty() => p { "No task matches." },
            Ok(page) => {
                table {
                    caption class="sr-only" { "Tasks" }
                    thead { tr {
                        th scope="col" { "Task" } th scope="col" { "Status" } th scope="col" { "Owner" }
                        th scope="col" { "Priority" } th scope="col" { "Labels" } th scope="col" { "Created" }
                    } }
                    tbody {
                        @for t in &page.tasks {
                            tr {
                                td { a href={ "/ui/tasks/" (t.id) } { (t.name) } br; small { code { (t.id) } } }
                                td { (status(t.status)) }
                                td { (t.owner.as_deref().unwrap_or("—")) }
                                td { (t.priority) }
                                td { (t.labels.join(", ")) }
                                td { (when(t.created_at, now)) }
                            }
                        }
                    }
                }
                (next_link("/ui/tasks", &req.query, page.next.clone().map(String::from)))
                (super::bulk::offer(req))
            }
        }
    };
    Response::html(200, layout(web, now, "Tasks", "/ui/tasks", true, body))
}

pub(crate) fn detail(web: &Web, id: &str) -> Response {
    let Ok(id) = TaskId::new(id) else {
        return not_found(web, id);
    };
    let store = web.store();
    let task = match store.get(&id) {
        Ok(Some(t)) => t,
        Ok(None) => return not_found(web, id.as_str()),
        Err(e) => return super::refused(web, "Task", &e.to_string(), "/ui/tasks"),
    };
    let now = store.now();
    let history = store.history(&id).unwrap_or_default();
    let children = store
        .list(&TaskQuery::new(TaskFilter::new().parent(id.clone())).limit(PAGE))
        .map(|p| p.tasks)
        .unwrap_or_default();
    let dependents = store
        .list(&TaskQuery::new(TaskFilter::new().dependents_of(id.clone())).limit(PAGE))
        .map(|p| p.tasks)
        .unwrap_or_default();
    let files = web
        .data_dir
        .as_ref()
        .and_then(|d| TaskFiles::new(d, id.as_str()).ok());
    let log: Vec<oc_jsonl::LogEntry> = files
        .as_ref()
        .and_then(|f| f.logs().tail(LOG_TAIL).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    let decisions = files
        .as_ref()
        .and_then(|f| f.decisions().ok())
        .map(|(d, _)| d)
        .unwrap_or_default();
    let checkpoints = files
        .as_ref()
        .and_then(|f| f.checkpoints().ok())
        .unwrap_or_default();
    let body = html! {
        p { (status(task.status)) " " code { (task.id) } }
        section aria-labelledby="actions-h" {
            h2 id="actions-h" class="sr-only" { "Actions" }
            (actions(web, &task.id, task.status))
        }
        dl class="fields" {
            @if let Some(d) = &task.description { dt { "Description" } dd { (d) } }
            dt { "Owner" } dd { (task.owner.as_deref().unwrap_or("—")) }
            dt { "Priority" } dd { (task.priority) }
            dt { "Attempts" } dd { (task.attempts) " of " (task.max_attempts) }
            @if let Some(l) = task.lease {
                dt { "Lease" } dd { "token " (l.token) ", expires " (when(l.expires_at, now)) }
            }
            dt { "Created" } dd { (when(task.created_at, now)) }
            @if let Some(s) = task.started_at { dt { "Started" } dd { (when(s, now)) } }
            @if let Some(f) = task.finished_at { dt { "Finished" } dd { (when(f, now)) } }
            @if let Some(r) = task.run_at { dt { "Runs at" } dd { (when(r, now)) } }
            @if !task.labels.is_empty() { dt { "Labels" } dd { (task.labels.join(", ")) } }
            @if let Some(e) = &task.error { dt { "Error" } dd class="error" { (e) } }
            @if let Some(p) = &task.parent { dt { "Parent" } dd { a href={ "/ui/tasks/" (p) } { (p) } } }
            dt { "Version" } dd { (task.version) }
        }
        @if let Some(r) = &task.result {
            details { summary { "Result" } pre { (serde_json::to_string_pretty(r).unwrap_or_default()) } }
        }
        @if !task.metadata.is_empty() {
            details { summary { "Metadata" } pre { (serde_json::to_string_pretty(&task.metadata).unwrap_or_default()) } }
        }
        section aria-labelledby="graph-h" {
            h2 id="graph-h" { "Dependencies and children" }
            (links("Waits for", &task.depends_on.iter().map(|d| (d.to_string(), None)).collect::<Vec<_>>()))
            (links("Needed by", &dependents.iter().map(|t| (t.id.to_string(), Some(t.status))).collect::<Vec<_>>()))
            (links("Children", &children.iter().map(|t| (t.id.to_string(), Some(t.status))).collect::<Vec<_>>()))
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { "History" }
            ol class="history" {
                @for h in &history {
                    li { (when(h.at, now)) " " (h.describe()) }
                }
            }
        }
        section aria-labelledby="log-h" {
            h2 id="log-h" { "Log (last " (LOG_TAIL) " entries)" }
            @if log.is_empty() { p { "Nothing logged." } } @else {
                ol class="log" {
                    @for e in &log {
                        li class={ "level " (e.level.as_str()) } {
                            (when(e.timestamp, now)) " " strong { (e.level.as_str()) } " " (e.message)
                            @if !e.data.is_empty() { " " code { (serde_json::Value::Object(e.data.clone()).to_string()) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="decisions-h" {
            h2 id="decisions-h" { "Decisions" }
            @if decisions.is_empty() { p { "None recorded." } } @else {
                ul { @for d in &decisions { li { (when(d.timestamp, now)) " " strong { (d.agent) } ": " (d.decision) @if !d.reasoning.is_empty() { " — " (d.reasoning) } } } }
            }
        }
        section aria-labelledby="checkpoints-h" {
            h2 id="checkpoints-h" { "Checkpoints" }
            @if checkpoints.is_empty() { p { "None." } } @else {
                ul { @for c in &checkpoints { li { code { (c.id) } " " (when(c.created_at, now)) " " (c.description) " (" (c.files.len()) " file(s), " (c.bytes()) " bytes)" } } }
            }
        }
    };
    Response::html(200, layout(web, now, &task.name, "/ui/tasks", true, body))
}

/// The actions the state machine allows from `s`, as forms (refused by the server when it is
/// read-only, and then shown disabled with the reason).
fn actions(web: &Web, id: &TaskId, s: TaskStatus) -> Markup {
    let allowed: &[(&str, &str)] = match s {
        TaskStatus::Failed | TaskStatus::Cancelled => &[("retry", "Retry")],
        TaskStatus::Pending | TaskStatus::Running => &[("cancel", "Cancel")],
        TaskStatus::Completed => &[],
    };
    html! {
        @for (action, label) in allowed {
            form method="post" action={ "/ui/tasks/" (id) "/" (action) } class="action" {
                (submit(web, label, None))
            }
        }
    }
}

fn links(title: &str, items: &[(String, Option<TaskStatus>)]) -> Markup {
    html! {
        @if !items.is_empty() {
            h3 { (title) }
            ul {
                @for (id, s) in items {
                    li { a href={ "/ui/tasks/" (id) } { (id) } @if let Some(s) = s { " " (status(*s)) } }
                }
            }
        }
    }
}
