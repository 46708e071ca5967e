//! `/ui/locks`: every live lock with its holder, mode, fencing token and expiry, what waits,
//! the counters; and releasing all of an owner's locks.

use std::collections::BTreeMap;

use maud::html;

use super::{layout, submit, when};
use crate::Web;
use crate::http::Response;

pub(crate) fn page(web: &Web) -> Response {
    let (locks, stats) = match (web.locks.list(), web.locks.stats()) {
        (Ok(l), Ok(s)) => (l, s),
        (Err(e), _) | (_, Err(e)) => return super::refused(web, "Locks", &e.to_string(), "/"),
    };
    let now = web.locks.now();
    let mut owners: BTreeMap<&str, usize> = BTreeMap::new();
    for l in &locks {
        *owners.entry(l.owner.as_str()).or_default() += 1;
    }
    let body = html! {
        p {
            (locks.len()) " held, " (stats.waiting) " request(s) waiting; since the start "
            (stats.total_locks) " granted, " (stats.conflicts_detected) " conflict(s), "
            (stats.timeouts) " timeout(s), " (stats.expired_locks) " lapsed."
        }
        @if locks.is_empty() {
            p { "No lock is held." }
        } @else {
            table {
                caption class="sr-only" { "Live locks, by path" }
                thead { tr {
                    th scope="col" { "Path" } th scope="col" { "Holder" } th scope="col" { "Mode" }
                    th scope="col" { "Fencing token" } th scope="col" { "Holds" } th scope="col" { "Expires" }
                } }
                tbody {
                    @for l in &locks {
                        tr {
                            td { code { (l.resource.as_str()) } }
                            td { (l.owner.as_str()) }
                            td { (l.mode.as_str()) }
                            td { (l.token) }
                            td { (l.holds) }
                            td { (when(l.expires_at, now)) }
                        }
                    }
                }
            }
            h2 { "Release an owner's locks" }
            p { "For an agent that is gone: every lock it holds is freed at once, whatever its holds." }
            ul class="owners" {
                @for (owner, n) in &owners {
                    li {
                        form method="post" action="/ui/locks/release" class="action" {
                            input type="hidden" name="owner" value=(owner);
                            (owner) " (" (n) " lock(s)) "
                            (submit(web, "Release all", Some(&format!("Release all locks of {owner}"))))
                        }
                    }
                }
            }
        }
    };
    Response::html(200, layout(web, now, "Locks", "/ui/locks", true, body))
}
