//! The pages: one layout, small components, and a module per page. Everything shown passes
//! through `maud`'s escaping; nothing agents wrote is ever spliced in raw.

use maud::{DOCTYPE, Markup, html};
use oc_tasks::{TaskFilter, TaskStatus};
use oc_time::Timestamp;

use crate::Web;
use crate::http::{Response, param};

pub(crate) mod agents;
pub(crate) mod alerts;
pub(crate) mod bulk;
pub(crate) mod chart;
pub(crate) mod locks;
pub(crate) mod login;
pub(crate) mod overview;
pub(crate) mod tasks;

const APP_CSS: &str = include_str!("../../assets/app.css");
const APP_JS: &str = include_str!("../../assets/app.js");

/// The files the pages load (shipped inside the binary).
pub(crate) fn asset(name: &str) -> Response {
    match name {
        "app.css" => Response::new(200, "text/css; charset=utf-8", APP_CSS),
        "app.js" => Response::new(200, "text/javascript; charset=utf-8", APP_JS),
        _ => Response::text(404, "no such file\n"),
    }
}

/// The pages in the navigation bar: path, label.
const NAV: [(&str, &str); 5] = [
    ("/", "Overview"),
    ("/ui/tasks", "Tasks"),
    ("/ui/locks", "Locks"),
    ("/ui/agents", "Agents"),
    ("/ui/alerts", "Alerts"),
];

/// A whole page: `title`, the navigation with `current` marked, `body`, and the time its
/// figures were read (`now`, already read by the page: on PostgreSQL every reading of the
/// store's clock is a round trip). With `live`, the page's script refreshes `main` every few
/// seconds while the tab is visible.
pub(crate) fn layout(
    web: &Web,
    now: Timestamp,
    title: &str,
    current: &str,
    live: bool,
    body: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · oc" }
                link rel="stylesheet" href="/static/app.css";
                script src="/static/app.js" defer {}
            }
            body {
                a class="skip" href="#main" { "Skip to the content" }
                header {
                    nav aria-label="Pages" {
                        span class="brand" { "oc" }
                        ul {
                            @for (path, label) in NAV {
                                li {
                                    @if path == current {
                                        a href=(path) aria-current="page" { (label) }
                                    } @else {
                                        a href=(path) { (label) }
                                    }
                                }
                            }
                        }
                        @if web.read_only {
                            span class="badge" title="Actions are refused by the server" { "read-only" }
                        }
                        @if web.login {
                            form class="session" method="post" action="/login/new" {
                                button type="submit" { "Log in another browser" }
                            }
                            form class="session" method="post" action="/logout" {
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main id="main" data-live=[live.then_some("5")] {
                    h1 { (title) }
                    (body)
                    p class="as-of" role="status" { "As of " (now.to_rfc3339_seconds()) }
                }
            }
        }
    }
}

/// A 404 page naming what was asked for.
pub(crate) fn not_found(web: &Web, what: &str) -> Response {
    Response::html(
        404,
        layout(
            web,
            web.store().now(),
            "Not found",
            "",
            false,
            html! { p { "There is nothing at " code { (what) } "." } },
        ),
    )
}

/// A refused action: what was tried, why not (409), and the way back.
pub(crate) fn refused(web: &Web, title: &str, why: &str, back: &str) -> Response {
    Response::html(
        409,
        layout(
            web,
            web.store().now(),
            title,
            "",
            false,
            html! { p class="error" role="alert" { (why) } p { a href=(back) { "Back" } } },
        ),
    )
}

/// A task status as a coloured badge (the word itself carries the meaning).
pub(crate) fn status(s: TaskStatus) -> Markup {
    html! { span class={ "status " (s.as_str()) } { (s.as_str()) } }
}

/// A time, with how long ago or ahead of `now` it is.
pub(crate) fn when(t: Timestamp, now: Timestamp) -> Markup {
    let ms = t.as_millis() - now.as_millis();
    let rel = if ms >= 0 {
        format!("in {}", span(ms))
    } else {
        format!("{} ago", span(-ms))
    };
    html! { time datetime=(t.to_string()) title=(t.to_string()) { (rel) } }
}

/// A short human span: `45 s`, `12 min`, `3 h`, `2 d`.
fn span(ms: i64) -> String {
    let s = ms / 1000;
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=129_599 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} d", (s + 43_200) / 86_400),
    }
}

/// A page of a list: a link to the next one, keeping the filters.
pub(crate) fn next_link(path: &str, query: &[(String, String)], after: Option<String>) -> Markup {
    let Some(after) = after else {
        return html! {};
    };
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in query.iter().filter(|(k, _)| k != "after") {
        q.append_pair(k, v);
    }
    q.append_pair("after", &after);
    html! { p { a rel="next" href={ (path) "?" (q.finish()) } { "Next page →" } } }
}

/// A form's submit button showing `label`, named `name` for screen readers when given;
/// disabled, with the reason, on a read-only server (which refuses the action anyway).
pub(crate) fn submit(web: &Web, label: &str, name: Option<&str>) -> Markup {
    let why = web.read_only.then_some("This server is read-only");
    html! {
        button type="submit" disabled[web.read_only] title=[why] aria-label=[name] { (label) }
    }
}

/// The filters of the tasks list (`status`, `owner`, `label`, `q`) from a query or a form.
pub(crate) fn task_filter(pairs: &[(String, String)]) -> Result<TaskFilter, String> {
    let mut filter = TaskFilter::new();
    if let Some(s) = param(pairs, "status") {
        filter = filter.status(s.parse::<TaskStatus>().map_err(|e| e.to_string())?);
    }
    if let Some(o) = param(pairs, "owner") {
        filter = filter.owner(o);
    }
    if let Some(l) = param(pairs, "label") {
        filter = filter.label(l);
    }
    if let Some(q) = param(pairs, "q") {
        filter = filter.search(q);
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use super::span;

    #[test]
    fn spans_read_like_people_say_them() {
        assert_eq!(span(5_000), "5 s");
        assert_eq!(span(120_000), "2 min");
        assert_eq!(span(3 * 3_600_000), "3 h");
        assert_eq!(span(49 * 3_600_000), "2 d");
    }
}
