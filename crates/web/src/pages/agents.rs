//! `/ui/agents`: each agent with its running tasks, their leases, its last sign of life, and
//! the locks it holds.

use std::collections::BTreeMap;

use maud::html;
use oc_locks::Lock;
use oc_tasks::{Order, Task, TaskFilter, TaskQuery, TaskStatus};

use super::{layout, when};
use crate::Web;
use crate::http::Response;

/// Running tasks read for the page.
const RUNNING: usize = 500;

#[derive(Default)]
struct Agent<'a> {
    running: Vec<&'a Task>,
    locks: Vec<&'a Lock>,
}

pub(crate) fn page(web: &Web) -> Response {
    let store = web.store();
    let read = store
        .list(
            &TaskQuery::new(TaskFilter::new().status(TaskStatus::Running))
                .order(Order::Oldest)
                .limit(RUNNING),
        )
        .map_err(|e| e.to_string())
        .and_then(|p| Ok((p, web.locks.list().map_err(|e| e.to_string())?)));
    let (page, locks) = match read {
        Ok(r) => r,
        Err(e) => return super::refused(web, "Agents", &e, "/"),
    };
    let now = store.now();
    let mut agents: BTreeMap<&str, Agent<'_>> = BTreeMap::new();
    for t in &page.tasks {
        agents
            .entry(t.owner.as_deref().unwrap_or("(no owner)"))
            .or_default()
            .running
            .push(t);
    }
    for l in &locks {
        agents.entry(l.owner.as_str()).or_default().locks.push(l);
    }
    let body = html! {
        @if agents.is_empty() {
            p { "No agent is running a task or holding a lock." }
        }
        @if page.next.is_some() {
            p { "Showing the agents of the " (RUNNING) " oldest running tasks." }
        }
        @for (name, a) in &agents {
            section aria-label=(name) {
                h2 { (name) }
                @let last = a.running.iter().map(|t| t.updated_at).max();
                p {
                    (a.running.len()) " running task(s), " (a.locks.len()) " lock(s)"
                    @if let Some(l) = last { "; last heard from " (when(l, now)) }
                }
                @if !a.running.is_empty() {
                    ul {
                        @for t in &a.running {
                            li {
                                a href={ "/ui/tasks/" (t.id) } { (t.name) }
                                @if let Some(l) = t.lease { ": lease expires " (when(l.expires_at, now)) } @else { ": no lease" }
                            }
                        }
                    }
                }
                @if !a.locks.is_empty() {
                    p { "Locks: " @for (i, l) in a.locks.iter().enumerate() { @if i > 0 { ", " } code { (l.resource.as_str()) } } }
                }
            }
        }
    };
    Response::html(200, layout(web, now, "Agents", "/ui/agents", true, body))
}
