//! `/`: tasks by status, ready and blocked, the work running now and for whom, locks held and
//! contended, firing alerts.

use maud::html;
use oc_alerts::{Alert, State};
use oc_locks::{Lock, LockStats};
use oc_tasks::{Order, Task, TaskCounts, TaskFilter, TaskQuery, TaskStatus};
use oc_time::Timestamp;

use super::{layout, status, when};
use crate::Web;
use crate::http::Response;

/// How many running tasks the overview lists.
const RUNNING_SHOWN: usize = 20;

/// Where counting ready and blocked tasks stops ("10000+"): the counts by status are kept by
/// the store, but these two depend on the time and the graph, and are counted from indexes.
const COUNT_CAP: u64 = 10_000;

/// What the overview shows, read once and shared by every open page for a second.
#[derive(Debug)]
pub(crate) struct Data {
    now: Timestamp,
    counts: TaskCounts,
    running: Vec<Task>,
    more_running: bool,
    locks: Vec<Lock>,
    lock_stats: LockStats,
    alerts: Vec<Alert>,
}

impl Data {
    pub(crate) fn read(web: &Web) -> Result<Data, String> {
        let store = web.store();
        let now = store.now();
        let counts = store.counts(COUNT_CAP).map_err(|e| e.to_string())?;
        web.samples.lock().record(&counts.entered, now);
        let page = store
            .list(
                &TaskQuery::new(TaskFilter::new().status(TaskStatus::Running))
                    .order(Order::Oldest)
                    .limit(RUNNING_SHOWN),
            )
            .map_err(|e| e.to_string())?;
        let alerts = web
            .alerting
            .as_ref()
            .map(|(engine, _)| {
                engine
                    .lock()
                    .alerts()
                    .filter(|a| a.state != State::Resolved)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        Ok(Data {
            now,
            counts,
            more_running: page.next.is_some(),
            running: page.tasks,
            locks: web.locks.list().map_err(|e| e.to_string())?,
            lock_stats: web.locks.stats().map_err(|e| e.to_string())?,
            alerts,
        })
    }
}

pub(crate) fn page(web: &Web) -> Response {
    let d = match web.overview() {
        Ok(d) => d,
        Err(e) => return super::refused(web, "Overview", &e, "/"),
    };
    let agents: std::collections::BTreeSet<&str> = d
        .running
        .iter()
        .filter_map(|t| t.owner.as_deref())
        .collect();
    let firing = d.alerts.iter().filter(|a| a.state == State::Firing).count();
    let body = html! {
        @if firing > 0 {
            section class="banner" role="alert" aria-label="Firing alerts" {
                strong { (firing) " alert(s) firing: " }
                @for a in d.alerts.iter().filter(|a| a.state == State::Firing) {
                    a href="/ui/alerts" class={ "sev " (a.severity.as_str()) } { (a.rule) } " "
                }
            }
        }
        section aria-labelledby="tasks-h" {
            h2 id="tasks-h" { "Tasks" }
            dl class="cards" {
                div { dt { "All" } dd { a href="/ui/tasks" { (d.counts.total()) } } }
                @for (s, n) in &d.counts.by_status {
                    div {
                        dt { (status(*s)) }
                        dd { a href={ "/ui/tasks?status=" (s.as_str()) } { (n) } }
                    }
                }
                div { dt { "Ready" } dd { (d.counts.ready) } }
                div { dt { "Blocked" } dd { (d.counts.blocked) } }
            }
        }
        section aria-labelledby="throughput-h" {
            h2 id="throughput-h" { "Throughput" }
            (web.samples.lock().render(d.now))
        }
        section aria-labelledby="running-h" {
            h2 id="running-h" { "Running now" }
            p { (d.counts.count(TaskStatus::Running)) " running, for " (agents.len()) " agent(s). " a href="/ui/agents" { "By agent" } }
            @if d.running.is_empty() {
                p { "Nothing is running." }
            } @else {
                table {
                    caption class="sr-only" { "Running tasks, oldest first" }
                    thead { tr { th scope="col" { "Task" } th scope="col" { "Agent" } th scope="col" { "Started" } th scope="col" { "Lease expires" } th scope="col" { "Attempt" } } }
                    tbody {
                        @for t in &d.running {
                            tr {
                                td { a href={ "/ui/tasks/" (t.id) } { (t.name) } }
                                td { (t.owner.as_deref().unwrap_or("—")) }
                                td { @if let Some(s) = t.started_at { (when(s, d.now)) } }
                                td { @if let Some(l) = t.lease { (when(l.expires_at, d.now)) } @else { "no lease" } }
                                td { (t.attempts) " of " (t.max_attempts) }
                            }
                        }
                    }
                }
                @if d.more_running { p { a href="/ui/tasks?status=running" { "All running tasks" } } }
            }
        }
        section aria-labelledby="locks-h" {
            h2 id="locks-h" { "Locks" }
            p {
                (d.locks.len()) " held, " (d.lock_stats.waiting) " waiting, "
                (d.lock_stats.conflicts_detected) " conflict(s) since the start. "
                a href="/ui/locks" { "All locks" }
            }
        }
        section aria-labelledby="alerts-h" {
            h2 id="alerts-h" { "Alerts" }
            @if web.alerting.is_none() {
                p { "No alert rules are evaluated by this server (start it with " code { "--alerts FILE" } ")." }
            } @else if d.alerts.is_empty() {
                p { "Nothing pending or firing." }
            } @else {
                ul {
                    @for a in &d.alerts {
                        li { span class={ "sev " (a.severity.as_str()) } { (a.severity.as_str()) } " " (a.rule) " — " (format!("{:?}", a.state).to_lowercase()) " since " (when(a.since, d.now)) }
                    }
                }
            }
        }
    };
    Response::html(200, layout(web, d.now, "Overview", "/", true, body))
}
