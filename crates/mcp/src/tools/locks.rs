//! Lock tools: acquire (all or nothing, with a wait that reports progress and can be
//! cancelled), renew, release, check, list, statistics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_locks::{Error as LockError, Holder, Keyed, Lock, LockMode, LockRequest, Owner, Resource};
use serde_json::{Value, json};

use super::{
    Args, CallContext, Taken, Tool, ToolError, Toolbox, agent, any_object, boolean,
    idempotency_key, integer, list, replayed, string, strings,
};

/// The longest wait a call may ask for.
const MAX_WAIT_MS: u64 = 600_000;

/// Holders (or waiters) as a model reads them: who holds which path, how, until when.
pub(super) fn holders_json(holders: &[Holder]) -> Value {
    Value::Array(
        holders
            .iter()
            .map(|h| {
                json!({
                    "path": h.resource.as_str(), "holder": h.owner.as_str(), "mode": h.mode,
                    "expires_at": h.expires_at.map(|t| t.to_string()),
                    "waiting": h.expires_at.is_none(),
                })
            })
            .collect(),
    )
}

fn lock_json(l: &Lock) -> Value {
    json!({ "path": l.resource.as_str(), "mode": l.mode, "fencing_token": l.token,
            "holds": l.holds, "expires_at": l.expires_at.to_string() })
}

fn owner_arg(tb: &Toolbox, a: &Args<'_>) -> Result<Owner, ToolError> {
    Owner::new(a.agent(tb)?).map_err(|e| ToolError::invalid("agent", e))
}

fn mode_arg(args: &Args<'_>) -> Result<LockMode, ToolError> {
    match args.opt_str("mode")? {
        None | Some("exclusive") => Ok(LockMode::Exclusive),
        Some("shared") => Ok(LockMode::Shared),
        Some(other) => Err(ToolError::invalid(
            "mode",
            format!("must be exclusive or shared, not {other:?}"),
        )),
    }
}

fn paths_arg(args: &Args<'_>) -> Result<Vec<Resource>, ToolError> {
    let paths = args.strings("paths")?;
    if paths.is_empty() {
        return Err(ToolError::invalid("paths", "must name at least one path"));
    }
    paths
        .iter()
        .map(|p| Resource::new(p).map_err(|e| ToolError::invalid("paths", e)))
        .collect()
}

/// A refusal of `acquire` with, when a holder's lock will lapse, how long until then.
fn refused(tb: &Toolbox, e: LockError) -> ToolError {
    let earliest = e.holders().iter().filter_map(|h| h.expires_at).min();
    let mut refusal = ToolError::from(e);
    if let (
        Some(at),
        ToolError::Refused {
            details: Value::Object(d),
            ..
        },
    ) = (earliest, &mut refusal)
    {
        let ms = at.as_millis().saturating_sub(tb.locks.now().as_millis());
        d.insert("retry_after_ms".into(), json!(ms.max(0)));
    }
    refusal
}

fn lock_acquire(tb: &Toolbox, a: &Args<'_>, ctx: &CallContext<'_>) -> Result<Value, ToolError> {
    let owner = owner_arg(tb, a)?;
    let key = a.lock_key(owner.as_str())?;
    let mode = mode_arg(a)?;
    let ttl = a.secs("ttl_secs", 300)?;
    let reqs: Vec<LockRequest> = paths_arg(a)?
        .into_iter()
        .map(|r| LockRequest::from_parts(r, owner.clone(), mode).ttl(ttl))
        .collect();
    let wait_ms = a.opt_u64("wait_ms", MAX_WAIT_MS)?.unwrap_or(0);
    // Progress about once a second while waiting; a cancelled call stops waiting.
    let reported = AtomicU64::new(0);
    let watcher = |waited: Duration| {
        if ctx.is_cancelled() {
            return false;
        }
        let secs = waited.as_secs();
        if secs > reported.load(Ordering::Relaxed) {
            reported.store(secs, Ordering::Relaxed);
            ctx.report(
                waited.as_millis() as f64,
                Some(wait_ms as f64),
                &format!(
                    "waiting {secs} s of {} s for the paths to be free",
                    wait_ms / 1000
                ),
            );
        }
        true
    };
    let wait = Duration::from_millis(wait_ms);
    let got = match (&key, wait_ms) {
        (Some(k), 0) => tb.locks.acquire_many_keyed(k, &reqs, wait, None),
        (Some(k), _) => tb.locks.acquire_many_keyed(k, &reqs, wait, Some(&watcher)),
        (None, 0) => tb.locks.acquire_many(&reqs, wait).map(fresh),
        (None, _) => tb
            .locks
            .acquire_many_watched(&reqs, wait, &watcher)
            .map(fresh),
    };
    match got {
        // Granted as the client cancelled: a cancelled call takes nothing. A keyed grant is
        // kept for the retry, which replays it (a manager cannot forget a key with a release
        // yet): given back, the retry would be told of a grant no longer held.
        Ok(locks) if ctx.is_cancelled() => {
            if key.is_none() {
                tb.give_back(&locks.value.iter().map(Taken::of).collect::<Vec<_>>());
            }
            Err(ToolError::Cancelled)
        }
        Ok(locks) => {
            // Released again if the answer cannot reach the client (unkeyed: see above).
            if key.is_none() {
                ctx.took(&locks.value);
            }
            let mut out = json!({ "locks": locks.value.iter().map(lock_json).collect::<Vec<_>>() });
            if key.is_some() {
                out["replayed"] = Value::Bool(locks.replayed);
            }
            Ok(out)
        }
        Err(_) if ctx.is_cancelled() => Err(ToolError::Cancelled),
        Err(e) => Err(refused(tb, e)),
    }
}

/// An unkeyed outcome as a keyed one that was not replayed.
fn fresh<T>(value: T) -> Keyed<T> {
    Keyed {
        value,
        replayed: false,
    }
}

/// Renews or releases each path; a per-path outcome, never a bare count. When no path
/// succeeded, the call is refused (with the outcomes).
fn each_path(
    tb: &Toolbox,
    a: &Args<'_>,
    f: &dyn Fn(&Resource, &Owner) -> Result<Lock, LockError>,
) -> Result<Value, ToolError> {
    let owner = owner_arg(tb, a)?;
    let mut results = Vec::new();
    let mut failed = None;
    for r in paths_arg(a)? {
        results.push(match f(&r, &owner) {
            Ok(l) => json!({ "path": r.as_str(), "ok": true, "lock": lock_json(&l) }),
            Err(e) => match ToolError::from(e) {
                ToolError::Refused { code, message, .. } => {
                    let outcome = json!({ "path": r.as_str(), "ok": false, "code": code, "message": message });
                    failed.get_or_insert((code, message));
                    outcome
                }
                other => return Err(other),
            },
        });
    }
    match failed {
        Some((code, message)) if results.iter().all(|r| r["ok"] == false) => {
            Err(ToolError::Refused {
                code,
                message,
                details: json!({ "results": results }),
            })
        }
        _ => Ok(json!({ "results": results })),
    }
}

fn lock_renew(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let ttl = a.secs("ttl_secs", 300)?;
    each_path(tb, a, &|r, o| tb.locks.renew(r, o, Some(ttl)))
}

fn lock_release(tb: &Toolbox, a: &Args<'_>, ctx: &CallContext<'_>) -> Result<Value, ToolError> {
    let owner = owner_arg(tb, a)?;
    if let Some(key) = a.lock_key(owner.as_str())? {
        // One key names one release: one path.
        let [r] = <[Resource; 1]>::try_from(paths_arg(a)?).map_err(|_| {
            ToolError::invalid("paths", "with an idempotency_key, name exactly one path")
        })?;
        let got = tb.locks.release_keyed(&key, &r, &owner)?;
        if !got.replayed {
            ctx.released(&r, &owner);
        }
        return Ok(
            json!({ "results": [{ "path": r.as_str(), "ok": true, "lock": lock_json(&got.value) }],
                          "replayed": got.replayed }),
        );
    }
    each_path(tb, a, &|r, o| {
        let lock = tb.locks.release(r, o)?;
        ctx.released(r, o);
        Ok(lock)
    })
}

fn lock_check(tb: &Toolbox, a: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let mode = mode_arg(a)?;
    let me = a.opt_str("agent")?;
    let mut conflicts = Vec::new();
    for r in paths_arg(a)? {
        for l in tb.locks.holders(&r)? {
            if Some(l.owner.as_str()) != me && mode.conflicts_with(l.mode) {
                conflicts.push(l.holder());
            }
        }
    }
    Ok(json!({ "free": conflicts.is_empty(), "conflicts": holders_json(&conflicts) }))
}

fn lock_list(tb: &Toolbox, _: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let locks = tb.locks.list()?;
    Ok(json!({ "locks": locks.iter().map(|l| {
        let mut v = lock_json(l);
        if let Value::Object(m) = &mut v {
            m.insert("holder".into(), json!(l.owner.as_str()));
        }
        v
    }).collect::<Vec<_>>() }))
}

fn lock_stats(tb: &Toolbox, _: &Args<'_>, _: &CallContext<'_>) -> Result<Value, ToolError> {
    let stats =
        serde_json::to_value(tb.locks.stats()?).map_err(|e| ToolError::Internal(e.to_string()))?;
    Ok(json!({ "stats": stats }))
}

pub(super) fn tools() -> Vec<Tool> {
    let paths = || {
        (
            "paths",
            strings(
                "Paths to lock, such as repo/src/lib.rs; a directory covers what is inside it.",
            ),
        )
    };
    let mode = || {
        (
            "mode",
            json!({ "type": "string", "enum": ["exclusive", "shared"], "description": "exclusive (default) or shared" }),
        )
    };
    let results = [(
        "results",
        list("Per path: ok, and the lock or the code and message."),
    )];
    let locks = [("locks", list("The locks."))];
    vec![
        Tool::new(
            "lock_acquire",
            "Lock paths",
            "Lock several paths at once, all or none, exclusive (default) or shared, for ttl_secs; optionally wait up to wait_ms for holders to go (progress is reported while waiting, and cancelling the call stops the wait). A refusal (LOCK_CONFLICT) names who holds what and until when, and retry_after_ms. Pass the fencing tokens to whatever you write, if it checks them.",
            lock_acquire,
        )
        .args(
            &[
                agent(),
                paths(),
                mode(),
                (
                    "ttl_secs",
                    integer("Lock length in seconds (default 300).", 1, 86_400),
                ),
                (
                    "wait_ms",
                    integer(
                        "How long to wait for conflicting holders (default 0: answer at once).",
                        0,
                        MAX_WAIT_MS,
                    ),
                ),
                idempotency_key(
                    "returns the first grant (same fencing tokens), even once released, and holds nothing more",
                ),
            ],
            &["paths"],
        )
        .answers(&[locks[0].clone(), replayed()], &["locks"])
        .waits_on("wait_ms"),
        Tool::new(
            "lock_renew",
            "Renew locks",
            "Extend your locks on these paths to ttl_secs from now; each path's outcome separately (EXPIRED or NOT_HELD when it was lost).",
            lock_renew,
        )
        .args(
            &[
                agent(),
                paths(),
                (
                    "ttl_secs",
                    integer("New length in seconds (default 300).", 1, 86_400),
                ),
            ],
            &["paths"],
        )
        .answers(&results, &["results"])
        .idempotent(),
        Tool::new(
            "lock_release",
            "Release locks",
            "Release one hold of your lock on each path; each path's outcome separately.",
            lock_release,
        )
        .args(
            &[
                agent(),
                paths(),
                idempotency_key("(one path only) releases nothing more"),
            ],
            &["paths"],
        )
        .answers(&[results[0].clone(), replayed()], &["results"])
        .destructive(),
        Tool::new(
            "lock_check",
            "Check paths",
            "Whether these paths could be locked in this mode now, and if not who holds what until when. Changes nothing.",
            lock_check,
        )
        .args(
            &[
                (
                    "agent",
                    string("Your agent name: your own locks are no conflict."),
                ),
                paths(),
                mode(),
            ],
            &["paths"],
        )
        .answers(
            &[
                ("free", boolean("Nothing conflicts.")),
                ("conflicts", list("Who holds or waits for what.")),
            ],
            &["free", "conflicts"],
        )
        .read_only(),
        Tool::new(
            "lock_list",
            "List locks",
            "Every live lock: path, holder, mode, fencing token, expiry.",
            lock_list,
        )
        .answers(&locks, &["locks"])
        .read_only()
        .extra(),
        Tool::new(
            "lock_stats",
            "Lock statistics",
            "Locks granted, active, expired and released, conflicts, waits and timeouts, hold times.",
            lock_stats,
        )
        .answers(
            &[("stats", any_object("The statistics."))],
            &["stats"],
        )
        .read_only()
        .extra(),
    ]
}
