//! Acting on every task a filter of the list matches: retry the failed or cancelled ones,
//! cancel the pending or running ones. A confirmation page states the count first; one post
//! acts on at most [`MAX_BULK`] tasks, each through the lifecycle, and reports what it did
//! and what was refused.

use maud::{Markup, html};
use oc_tasks::{Order, TaskQuery, TaskStatus};

use super::{layout, submit, task_filter};
use crate::Web;
use crate::http::{Request, Response, param};

/// The most tasks one bulk action touches.
pub(crate) const MAX_BULK: usize = 1_000;

/// The filter fields a bulk action carries along.
const FIELDS: [&str; 4] = ["status", "owner", "label", "q"];

/// The bulk action a status allows: its name and label.
fn action_for(status: TaskStatus) -> Option<(&'static str, &'static str)> {
    match status {
        TaskStatus::Failed | TaskStatus::Cancelled => Some(("retry", "Retry")),
        TaskStatus::Pending | TaskStatus::Running => Some(("cancel", "Cancel")),
        TaskStatus::Completed => None,
    }
}

fn status_of(pairs: &[(String, String)]) -> Option<TaskStatus> {
    param(pairs, "status").and_then(|s| s.parse().ok())
}

/// Under a list filtered by a status, a link to act on every task it matches.
pub(crate) fn offer(req: &Request) -> Markup {
    let Some((action, label)) = status_of(&req.query).and_then(action_for) else {
        return html! {};
    };
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("action", action);
    for f in FIELDS {
        if let Some(v) = req.param(f) {
            q.append_pair(f, v);
        }
    }
    html! { p { a href={ "/ui/bulk?" (q.finish()) } { (label) " every task that matches…" } } }
}

/// The checks both steps make: a status filter, an action it allows.
fn planned(pairs: &[(String, String)]) -> Result<(&'static str, &'static str), String> {
    let status = status_of(pairs).ok_or("a bulk action needs the list filtered by a status")?;
    let (action, label) =
        action_for(status).ok_or(format!("nothing can be done in bulk to {status} tasks"))?;
    if param(pairs, "action") != Some(action) {
        return Err(format!("the bulk action for {status} tasks is {action}"));
    }
    Ok((action, label))
}

/// The confirmation: how many tasks, and a button.
pub(crate) fn confirm(web: &Web, req: &Request) -> Response {
    let plan = planned(&req.query).and_then(|p| {
        let filter = task_filter(&req.query)?;
        let n = web.store().count(&filter).map_err(|e| e.to_string())?;
        Ok((p, n))
    });
    let ((action, label), n) = match plan {
        Ok(p) => p,
        Err(e) => return super::refused(web, "Bulk action", &e, "/ui/tasks"),
    };
    let body = html! {
        p { (label) " " strong { (n) } " task(s) that match "
            @for f in FIELDS { @if let Some(v) = req.param(f) { code { (f) "=" (v) } " " } }
        }
        @if n as usize > MAX_BULK {
            p { "At most " (MAX_BULK) " are acted on at once; do it again for the rest." }
        }
        form method="post" action="/ui/bulk" class="action" {
            input type="hidden" name="action" value=(action);
            @for f in FIELDS { @if let Some(v) = req.param(f) { input type="hidden" name=(f) value=(v); } }
            (submit(web, &format!("{label} {} task(s)", n.min(MAX_BULK as u64)), None))
        }
        p { a href="/ui/tasks" { "Back to the tasks" } }
    };
    bulk_page(web, label, body)
}

/// Acts on up to [`MAX_BULK`] matching tasks, oldest first, each through the lifecycle.
pub(crate) fn apply(web: &Web, req: &Request) -> Response {
    let form = req.form_pairs();
    let page = planned(&form).and_then(|p| {
        let filter = task_filter(&form)?;
        let page = web
            .store()
            .list(&TaskQuery::new(filter).order(Order::Oldest).limit(MAX_BULK))
            .map_err(|e| e.to_string())?;
        Ok((p, page))
    });
    let ((action, label), page) = match page {
        Ok(p) => p,
        Err(e) => return super::refused(web, "Bulk action", &e, "/ui/tasks"),
    };
    let mut done = 0;
    let mut refused = Vec::new();
    for t in &page.tasks {
        let r = match action {
            "retry" => web.life.retry(&t.id),
            _ => web.life.cancel(&t.id),
        };
        match r {
            Ok(_) => done += 1,
            Err(e) => refused.push((t.id.clone(), e.to_string())),
        }
    }
    web.forget_overview();
    let body = html! {
        p role="status" { (label) ": " strong { (done) } " task(s) done, " (refused.len()) " refused." }
        @if page.next.is_some() { p { "More tasks match: do it again for the next " (MAX_BULK) "." } }
        @if !refused.is_empty() {
            ul { @for (id, why) in &refused { li { a href={ "/ui/tasks/" (id) } { (id) } ": " (why) } } }
        }
        p { a href="/ui/tasks" { "Back to the tasks" } }
    };
    bulk_page(web, label, body)
}

/// A bulk page titled by its action.
fn bulk_page(web: &Web, label: &str, body: Markup) -> Response {
    let title = format!("{label} in bulk");
    Response::html(
        200,
        layout(web, web.store().now(), &title, "/ui/tasks", false, body),
    )
}
