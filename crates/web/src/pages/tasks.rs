//! `/ui/tasks` (filters kept in the URL, keyset paging) and `/ui/tasks/{id}` (every field, the
//! graph around it, the newest of its history, log, decisions and checkpoints with pages to
//! the rest, and the actions its state allows).
//!
//! Agents write without bound, so a task's page shows a bounded amount whatever they wrote:
//! the newest [`HISTORY_SHOWN`] transitions, [`LOG_TAIL`] log entries, [`DECISIONS_SHOWN`]
//! decisions and [`CHECKPOINTS_SHOWN`] checkpoints, each list with links to older and newer
//! pages (`?history=`, `?log=`, `?decisions=`, `?checkpoints=`: how many of the newest to
//! skip). Each text an agent wrote is cut past [`oc_jsonl::SHOWN_BYTES`], saying so; a cut log
//! entry or decision links to itself whole (`?entry=<id>`, `?decision=<id>`, the store's
//! [`EntryId`]). The log, the decisions and the checkpoints come from one
//! [`TaskFileStore::overview`](oc_jsonl::TaskFileStore::overview) call, read from their newest
//! end at the cost of the entries shown and skipped (on disk, the task's directory opened once);
//! a list the store cannot read says why in its section, and the others are shown.

use maud::{Markup, html};
use oc_jsonl::{EntryId, OverviewRequest, SHOWN_BYTES, Stored};
use oc_tasks::{Cursor, Order, Task, TaskFilter, TaskId, TaskQuery, TaskStatus};
use oc_time::Timestamp;

use super::{layout, next_link, not_found, status, submit, task_filter, when};
use crate::Web;
use crate::http::{Request, Response};

/// Tasks per page.
const PAGE: usize = 50;
/// Log entries a task's page shows.
const LOG_TAIL: usize = 20;
/// Decisions a task's page shows.
const DECISIONS_SHOWN: usize = 20;
/// Transitions a task's page shows.
const HISTORY_SHOWN: usize = 50;
/// Checkpoints a task's page shows.
const CHECKPOINTS_SHOWN: usize = 20;
/// The query parameters that show one entry whole instead of the page.
const WHOLE: [&str; 2] = ["entry", "decision"];

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

pub(crate) fn detail(web: &Web, id: &str, req: &Request) -> Response {
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
    if req.param("entry").is_some() || req.param("decision").is_some() {
        return whole(web, &task, req, now);
    }
    let history = store.history(&id).unwrap_or_default();
    let history_skip = skip(req, "history");
    let history_end = history.len().saturating_sub(history_skip);
    let history_start = history_end.saturating_sub(HISTORY_SHOWN);
    let history_page = &history[history_start..history_end];
    let children = store
        .list(&TaskQuery::new(TaskFilter::new().parent(id.clone())).limit(PAGE))
        .map(|p| p.tasks)
        .unwrap_or_default();
    let dependents = store
        .list(&TaskQuery::new(TaskFilter::new().dependents_of(id.clone())).limit(PAGE))
        .map(|p| p.tasks)
        .unwrap_or_default();
    let log_skip = skip(req, "log");
    let decisions_skip = skip(req, "decisions");
    let checkpoints_skip = skip(req, "checkpoints");
    // One call for the three lists (the disk store opens the task's directory once); a part
    // that cannot be read says why in its section, and the others are shown.
    let overview = web.files.as_ref().map(|f| {
        f.overview(
            id.as_str(),
            &OverviewRequest::new(
                (log_skip, LOG_TAIL),
                (decisions_skip, DECISIONS_SHOWN),
                (checkpoints_skip, CHECKPOINTS_SHOWN),
            ),
        )
    });
    let (log, decisions, checkpoints) = match overview {
        None => (
            Ok(Default::default()),
            Ok(Default::default()),
            Ok(Default::default()),
        ),
        Some(o) => (
            o.log.map(|p| (p.entries, p.more)),
            o.decisions.map(|p| (p.entries, p.more)),
            o.checkpoints,
        ),
    };
    let (log_problem, decisions_problem, checkpoints_problem) = (
        log.as_ref().err().map(ToString::to_string),
        decisions.as_ref().err().map(ToString::to_string),
        checkpoints.as_ref().err().map(ToString::to_string),
    );
    let (log, log_more) = log.unwrap_or_default();
    let (decisions, decisions_more) = decisions.unwrap_or_default();
    let (checkpoints_page, checkpoints_more) = checkpoints.unwrap_or_default();
    let here = format!("/ui/tasks/{id}");
    let pages = |name: &str, per: usize, skipped: usize, more: bool| {
        paging(&here, req, name, per, skipped, more)
    };
    let note = web.file_notes.as_ref().and_then(|n| n(task.id.as_str()));
    let body = html! {
        @if let Some(note) = &note {
            section class="banner" role="status" aria-label="Task files" { (note) }
        }
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
            (links("Waits for", &task.depends_on.iter().take(PAGE).map(|d| (d.to_string(), None)).collect::<Vec<_>>()))
            @if task.depends_on.len() > PAGE { p { "… and " (task.depends_on.len() - PAGE) " more (" code { "oc task show " (task.id) } ")" } }
            (links("Needed by", &dependents.iter().map(|t| (t.id.to_string(), Some(t.status))).collect::<Vec<_>>()))
            (links("Children", &children.iter().map(|t| (t.id.to_string(), Some(t.status))).collect::<Vec<_>>()))
        }
        section aria-labelledby="history-h" {
            h2 id="history-h" { "History" (range(history_skip, history_page.len())) }
            ol class="history" {
                @for h in history_page {
                    li { (when(h.at, now)) " " (cut(&h.describe(), None)) }
                }
            }
            (pages("history", HISTORY_SHOWN, history_skip, history_start > 0))
        }
        section aria-labelledby="log-h" {
            h2 id="log-h" { "Log" (range(log_skip, LOG_TAIL)) }
            @if let Some(e) = &log_problem { p class="error" role="alert" { (e) } }
            @else if log.is_empty() { p { "Nothing logged." } } @else {
                ol class="log" {
                    @for Stored { id: at, record: e } in &log {
                        @let link = entry_link(&here, "entry", *at);
                        li class={ "level " (e.level.as_str()) } {
                            (when(e.timestamp, now)) " " strong { (e.level.as_str()) } " " (cut(&e.message, Some(&link)))
                            @if !e.data.is_empty() { " " code { (cut(&serde_json::Value::Object(e.data.clone()).to_string(), Some(&link))) } }
                        }
                    }
                }
            }
            (pages("log", LOG_TAIL, log_skip, log_more))
        }
        section aria-labelledby="decisions-h" {
            h2 id="decisions-h" { "Decisions" (range(decisions_skip, DECISIONS_SHOWN)) }
            @if let Some(e) = &decisions_problem { p class="error" role="alert" { (e) } }
            @else if decisions.is_empty() { p { "None recorded." } } @else {
                ul { @for Stored { id: at, record: d } in &decisions {
                    @let link = entry_link(&here, "decision", *at);
                    li { (when(d.timestamp, now)) " " strong { (cut(&d.agent, Some(&link))) } ": " (cut(&d.decision, Some(&link))) @if !d.reasoning.is_empty() { " — " (cut(&d.reasoning, Some(&link))) } }
                } }
            }
            (pages("decisions", DECISIONS_SHOWN, decisions_skip, decisions_more))
        }
        section aria-labelledby="checkpoints-h" {
            h2 id="checkpoints-h" { "Checkpoints" (range(checkpoints_skip, CHECKPOINTS_SHOWN)) }
            @if let Some(e) = &checkpoints_problem { p class="error" role="alert" { (e) } }
            @else if checkpoints_page.is_empty() { p { "None." } } @else {
                ul { @for c in &checkpoints_page { li { code { (c.id) } " " (when(c.created_at, now)) " " (cut(&c.description, None)) " (" (c.files.len()) " file(s), " (c.bytes()) " bytes)" } } }
            }
            (pages("checkpoints", CHECKPOINTS_SHOWN, checkpoints_skip, checkpoints_more))
        }
    };
    Response::html(200, layout(web, now, &task.name, "/ui/tasks", true, body))
}

/// How many of the newest entries of list `name` to skip (`?name=N`); anything but a number
/// is 0.
fn skip(req: &Request, name: &str) -> usize {
    req.param(name).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// What a heading adds for a page of a list: nothing for the newest page.
fn range(skipped: usize, per: usize) -> String {
    if skipped == 0 {
        format!(" (newest {per})")
    } else {
        format!(" ({per} before the newest {skipped})")
    }
}

/// Links to the older and the newer page of list `name` (`per` entries a page, `skipped` of
/// the newest skipped now), keeping the other lists' pages.
fn paging(
    here: &str,
    req: &Request,
    name: &str,
    per: usize,
    skipped: usize,
    older: bool,
) -> Markup {
    let to = |n: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in req
            .query
            .iter()
            .filter(|(k, _)| k != name && !WHOLE.contains(&k.as_str()))
        {
            q.append_pair(k, v);
        }
        q.append_pair(name, &n.to_string());
        format!("{here}?{}", q.finish())
    };
    html! {
        @if older || skipped > 0 {
            p class="paging" {
                @if skipped > 0 { a rel="prev" href=(to(skipped.saturating_sub(per))) { "← Newer" } " " }
                @if older { a rel="next" href=(to(skipped.saturating_add(per))) { "Older →" } }
            }
        }
    }
}

/// The link to one log entry (`param` "entry") or decision ("decision") whole.
fn entry_link(here: &str, param: &str, at: EntryId) -> String {
    format!("{here}?{param}={at}")
}

/// Text an agent wrote, cut past [`SHOWN_BYTES`] with its whole length and, when given, a link
/// to the entry whole.
fn cut(text: &str, whole: Option<&str>) -> Markup {
    let (shown, len) = oc_jsonl::cut(text, SHOWN_BYTES);
    html! {
        (shown)
        @if let Some(len) = len {
            "… (cut: " (oc_jsonl::thousands(len as u64)) " bytes"
            @if let Some(href) = whole { "; " a href=(href) { "whole entry" } }
            ")"
        }
    }
}

/// One log entry (`?entry=<id>`) or decision (`?decision=<id>`) whole, read by its
/// [`EntryId`]; 404 when the store has none there (a made-up id, or one restored or retained
/// away).
fn whole(web: &Web, task: &Task, req: &Request, now: Timestamp) -> Response {
    let here = format!("/ui/tasks/{}", task.id);
    let decision = req.param("decision");
    let id = decision
        .or(req.param("entry"))
        .and_then(|v| v.parse::<u64>().ok())
        .map(EntryId);
    let task_id = task.id.as_str();
    let what = if decision.is_some() {
        "decision"
    } else {
        "log entry"
    };
    let body = match (web.files.as_ref(), id) {
        (Some(files), Some(id)) if decision.is_some() => match files.decision(task_id, id) {
            Ok(Some(d)) => Some(html! {
                p { a href=(here) { "← " (task.name) } }
                dl class="fields" {
                    dt { "Recorded" } dd { (when(d.timestamp, now)) }
                    dt { "Agent" } dd { (d.agent) }
                    dt { "Decision" } dd { pre class="whole" { (d.decision) } }
                    dt { "Reasoning" } dd { pre class="whole" { (d.reasoning) } }
                    @if !d.metadata.is_empty() {
                        dt { "Metadata" } dd { pre class="whole" { (serde_json::to_string_pretty(&d.metadata).unwrap_or_default()) } }
                    }
                }
            }),
            Ok(None) => None,
            Err(e) => return unreadable(web, e, &here, now),
        },
        (Some(files), Some(id)) => match files.log_entry(task_id, id) {
            Ok(Some(e)) => Some(html! {
                p { a href=(here) { "← " (task.name) } }
                dl class="fields" {
                    dt { "Logged" } dd { (when(e.timestamp, now)) }
                    dt { "Level" } dd { (e.level.as_str()) }
                    dt { "Message" } dd { pre class="whole" { (e.message) } }
                    @if !e.data.is_empty() {
                        dt { "Data" } dd { pre class="whole" { (serde_json::to_string_pretty(&e.data).unwrap_or_default()) } }
                    }
                }
            }),
            Ok(None) => None,
            Err(e) => return unreadable(web, e, &here, now),
        },
        _ => None,
    };
    let Some(body) = body else {
        let body = html! {
            p { "No " (what) " of " code { (task.id) } " is there (any more)." }
            p { a href=(here) { "← " (task.name) } }
        };
        return Response::html(404, layout(web, now, "Not found", "/ui/tasks", false, body));
    };
    Response::html(200, layout(web, now, &task.name, "/ui/tasks", false, body))
}

/// A failed read of one entry: the backend's failure is the server's (500); anything else (a
/// link or special file refused, a file unreadable) answers as an entry that is not there.
fn unreadable(web: &Web, e: oc_jsonl::Error, here: &str, now: Timestamp) -> Response {
    let (code, title) = match e {
        oc_jsonl::Error::Backend { .. } => (500, "Unavailable"),
        _ => (404, "Not found"),
    };
    let body = html! {
        p class="error" role="alert" { (e) }
        p { a href=(here) { "Back" } }
    };
    Response::html(code, layout(web, now, title, "/ui/tasks", false, body))
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
