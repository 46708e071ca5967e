//! `oc lock ...`.

use std::io::Write;

use comfy_table::{ContentArrangement, Table, presets};
use oc_locks::{IdempotencyKey, Lock, LockManager, LockRequest, LockStats, Owner, Resource};

use crate::args::LockCmd;
use crate::output::{Clean, Output, thousands};
use crate::task::note_replayed;
use crate::{Site, UsageError};

fn describe(l: &Lock) -> String {
    format!(
        "{} on {} for {}: token {}, holds {}, expires {}",
        l.mode,
        Clean(l.resource.as_str()),
        Clean(l.owner.as_str()),
        l.token,
        l.holds,
        l.expires_at
    )
}

/// The `--idempotency-key` of `owner`, checked by the libraries' rule.
fn lock_key(key: Option<&str>, owner: &str) -> anyhow::Result<Option<IdempotencyKey>> {
    key.map(|k| {
        IdempotencyKey::new(owner, k)
            .map_err(|e| UsageError(format!("--idempotency-key: {e}")).into())
    })
    .transpose()
}

pub(crate) fn run(
    site: &Site,
    cmd: LockCmd,
    key: Option<&str>,
    out: &mut Output,
) -> anyhow::Result<()> {
    if key.is_some() && !matches!(cmd, LockCmd::Acquire { .. } | LockCmd::Release { .. }) {
        return Err(
            UsageError("--idempotency-key goes with lock acquire and release".into()).into(),
        );
    }
    match cmd {
        LockCmd::Acquire {
            resource,
            owner,
            mode,
            ttl,
            wait,
        } => {
            let req = LockRequest::new(&resource, &owner, mode.into())?.ttl(ttl);
            let key = lock_key(key, &owner)?;
            let l = match &key {
                Some(k) => {
                    let got = site.locks()?.acquire_keyed(k, &req, wait)?;
                    note_replayed(got.replayed);
                    got.value
                }
                None => site.locks()?.acquire(&req, wait)?,
            };
            out.emit("lock.acquire", &l, |w, o| {
                if o.quiet {
                    writeln!(w, "{}", l.token)
                } else {
                    writeln!(w, "Locked {}", describe(&l))
                }
            })
        }
        LockCmd::Release { resource, owner } => {
            let (r, o) = (Resource::new(&resource)?, Owner::new(&owner)?);
            let key = lock_key(key, &owner)?;
            let l = match &key {
                Some(k) => {
                    let got = site.locks()?.release_keyed(k, &r, &o)?;
                    note_replayed(got.replayed);
                    got.value
                }
                None => site.locks()?.release(&r, &o)?,
            };
            out.emit("lock.release", &l, |w, o| {
                if o.quiet {
                    Ok(())
                } else if l.holds == 0 {
                    writeln!(
                        w,
                        "Released {} on {} (token {})",
                        l.mode,
                        Clean(l.resource.as_str()),
                        l.token
                    )
                } else {
                    writeln!(
                        w,
                        "Released one hold; {} still holds {} ({} left)",
                        Clean(l.owner.as_str()),
                        Clean(l.resource.as_str()),
                        l.holds
                    )
                }
            })
        }
        LockCmd::Renew {
            resource,
            owner,
            ttl,
        } => {
            let (r, o) = (Resource::new(&resource)?, Owner::new(&owner)?);
            let l = site.locks()?.renew(&r, &o, Some(ttl))?;
            out.emit("lock.renew", &l, |w, o| {
                if o.quiet {
                    Ok(())
                } else {
                    writeln!(w, "Renewed {}", describe(&l))
                }
            })
        }
        LockCmd::List => {
            let locks = site.locks()?.list()?;
            out.emit("lock.list", &locks, |w, o| {
                if o.quiet {
                    for l in &locks {
                        let (r, o) = (Clean(l.resource.as_str()), Clean(l.owner.as_str()));
                        writeln!(w, "{r} {o}")?;
                    }
                    return Ok(());
                }
                if locks.is_empty() {
                    return writeln!(w, "No locks held");
                }
                let mut t = Table::new();
                t.load_style(presets::NOTHING)
                    .set_content_arrangement(ContentArrangement::Disabled)
                    .set_header([
                        "RESOURCE", "OWNER", "MODE", "TOKEN", "HOLDS", "ACQUIRED", "EXPIRES",
                    ]);
                for l in &locks {
                    t.add_row([
                        Clean(l.resource.as_str()).to_string(),
                        Clean(l.owner.as_str()).to_string(),
                        l.mode.to_string(),
                        l.token.to_string(),
                        l.holds.to_string(),
                        l.acquired_at.to_rfc3339_seconds(),
                        l.expires_at.to_rfc3339_seconds(),
                    ]);
                }
                for line in t.lines() {
                    writeln!(w, "{}", line.trim_end())?;
                }
                writeln!(w, "{} lock(s)", locks.len())
            })
        }
        LockCmd::Stats => {
            let st = site.locks()?.stats()?;
            out.emit("lock.stats", &st, |w, _| render_stats(w, &st))
        }
        LockCmd::Cleanup { owner, expired } => {
            let owner = owner.as_deref().map(Owner::new).transpose()?;
            let locks = site.locks()?;
            let swept = if expired || owner.is_none() {
                locks.sweep_expired()?
            } else {
                Vec::new()
            };
            let freed = match &owner {
                Some(o) => locks.release_owner(o)?,
                None => Vec::new(),
            };
            let data = serde_json::json!({ "expired": swept, "released": freed });
            out.emit("lock.cleanup", &data, |w, o| {
                if o.quiet {
                    return Ok(());
                }
                writeln!(w, "Removed {} lapsed lock(s)", swept.len())?;
                if let Some(owner) = &owner {
                    let owner = Clean(owner.as_str());
                    writeln!(w, "Released {} lock(s) of {owner}", freed.len())?;
                }
                Ok(())
            })
        }
    }
}

/// The seed's lock statistics, one per line, then the extras.
pub(crate) fn render_stats(w: &mut dyn Write, st: &LockStats) -> std::io::Result<()> {
    writeln!(w, "Lock Statistics")?;
    writeln!(w, "===============")?;
    writeln!(w, "Total Locks: {}", thousands(st.total_locks))?;
    writeln!(w, "Active Locks: {}", thousands(st.active_locks))?;
    writeln!(w, "Expired Locks: {}", thousands(st.expired_locks))?;
    writeln!(
        w,
        "Conflicts Detected: {}",
        thousands(st.conflicts_detected)
    )?;
    writeln!(w, "Average Hold Time: {:.0} ms", st.average_hold_time)?;
    writeln!(w, "Max Hold Time: {} ms", st.max_hold_time)?;
    writeln!(w, "Conflict Rate: {:.1}%", st.conflict_rate() * 100.0)?;
    writeln!(
        w,
        "Waits: {}, timeouts: {}, waiting now: {}",
        st.waits, st.timeouts, st.waiting
    )?;
    if !st.by_owner.is_empty() {
        writeln!(w, "Locks by Owner:")?;
        for oc in &st.by_owner {
            writeln!(w, "  - {}: {}", Clean(&oc.owner), oc.count)?;
        }
    }
    if let Some(o) = &st.oldest_lock {
        writeln!(
            w,
            "Oldest Lock: {} ({}, {} ms)",
            Clean(&o.resource),
            Clean(&o.owner),
            o.age_ms
        )?;
    }
    Ok(())
}
