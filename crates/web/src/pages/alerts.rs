//! `/ui/alerts`: every rule, every alert with its state (pending, firing, resolved) and
//! value, and the silences.

use maud::{Markup, html};
use oc_alerts::State;

use super::{layout, submit, when};
use crate::Web;
use crate::http::Response;

pub(crate) fn page(web: &Web) -> Response {
    let now = web.store().now();
    let Some((engine, _)) = &web.alerting else {
        let body = html! {
            p { "This server evaluates no alert rules. Start it with " code { "oc serve --alerts FILE" } " to see them here." }
        };
        return Response::html(200, layout(web, now, "Alerts", "/ui/alerts", false, body));
    };
    let engine = engine.lock();
    let state = |s: State| match s {
        State::Pending => "pending",
        State::Firing => "firing",
        State::Resolved => "resolved",
    };
    let body = html! {
        h2 { "Alerts" }
        @let alerts: Vec<_> = engine.alerts().collect();
        @if alerts.is_empty() { p { "No rule is pending or firing, and none has fired." } } @else {
            table {
                caption class="sr-only" { "Alerts" }
                thead { tr {
                    th scope="col" { "Rule" } th scope="col" { "Severity" } th scope="col" { "State" }
                    th scope="col" { "Since" } th scope="col" { "Value" } th scope="col" { "Summary" }
                    th scope="col" { "Silence" }
                } }
                tbody {
                    @for a in &alerts {
                        tr {
                            td { (a.rule) }
                            td { span class={ "sev " (a.severity.as_str()) } { (a.severity.as_str()) } }
                            td { span class={ "state " (state(a.state)) } { (state(a.state)) } }
                            td { (when(a.since, now)) }
                            td { (a.value) }
                            td { (a.summary) }
                            td { (silence_form(web, &a.rule)) }
                        }
                    }
                }
            }
        }
        h2 { "Rules" }
        ul {
            @for r in engine.rules() {
                li { strong { (r.name) } " (" (r.severity.as_str()) "): " (r.summary) }
            }
        }
        h2 { "Silences" }
        @if engine.silences().is_empty() { p { "None." } } @else {
            ul {
                @for s in engine.silences().iter().filter(|s| s.ends_at > now) {
                    li {
                        form method="post" action="/ui/alerts/unsilence" class="action" {
                            input type="hidden" name="id" value=(s.id);
                            "#" (s.id) " "
                            @for m in &s.matchers { code { (m.to_string()) } " " }
                            "until " (when(s.ends_at, now)) ": " (s.comment) " "
                            (submit(web, "End", Some(&format!("End silence {}", s.id))))
                        }
                    }
                }
            }
        }
    };
    Response::html(200, layout(web, now, "Alerts", "/ui/alerts", true, body))
}

/// How long a silence from the page lasts: seconds, label.
const DURATIONS: [(u64, &str); 4] = [
    (3_600, "1 h"),
    (4 * 3_600, "4 h"),
    (86_400, "1 day"),
    (7 * 86_400, "1 week"),
];

/// A form silencing every alert of `rule`.
fn silence_form(web: &Web, rule: &str) -> Markup {
    html! {
        form method="post" action="/ui/alerts/silence" class="action" {
            input type="hidden" name="matcher" value={ "alertname=" (rule) };
            label { span class="sr-only" { "How long to silence " (rule) } select name="duration_secs" {
                @for (secs, label) in DURATIONS { option value=(secs) { (label) } }
            } }
            " "
            label { span class="sr-only" { "Why" } input type="text" name="comment" placeholder="why"; }
            " "
            (submit(web, "Silence", Some(&format!("Silence {rule}"))))
        }
    }
}
