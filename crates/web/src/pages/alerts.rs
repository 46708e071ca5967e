//! `/ui/alerts`: every rule, every alert with its state (pending, firing, resolved) and
//! value, and the silences.

use maud::html;
use oc_alerts::State;

use super::{layout, when};
use crate::Web;
use crate::http::Response;

pub(crate) fn page(web: &Web) -> Response {
    let Some((engine, _)) = &web.alerting else {
        let body = html! {
            p { "This server evaluates no alert rules. Start it with " code { "oc serve --alerts FILE" } " to see them here." }
        };
        return Response::html(200, layout(web, "Alerts", "/ui/alerts", false, body));
    };
    let now = web.store().now();
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
                @for s in engine.silences() {
                    li { "#" (s.id) " until " (when(s.ends_at, now)) ": " (s.comment) }
                }
            }
        }
    };
    Response::html(200, layout(web, "Alerts", "/ui/alerts", true, body))
}
