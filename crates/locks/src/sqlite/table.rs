//! The lock table's rows on a connection: reading locks, granting, recording a release.

use std::fmt;
use std::time::Duration;

use rusqlite::{Connection, Row, Transaction};

use oc_sqlite::Fence;
use oc_time::Timestamp;

use crate::model::{Blocked, Decision, decide};
use crate::{Error, Holder, Lock, LockMode, LockRequest, Owner, Resource, Result};

pub(super) const COLS: &str = "resource, owner, mode, token, holds, acquired_at, expires_at";

pub(super) fn corrupt(resource: &str, reason: impl fmt::Display) -> Error {
    Error::Corrupt {
        resource: resource.to_owned(),
        reason: reason.to_string(),
    }
}

pub(super) fn row_to_lock(r: &Row<'_>) -> Result<Lock> {
    let resource: String = r.get(0)?;
    let owner: String = r.get(1)?;
    let mode: String = r.get(2)?;
    let token: i64 = r.get(3)?;
    Ok(Lock {
        owner: Owner::new(&owner).map_err(|e| corrupt(&resource, e))?,
        mode: mode.parse().map_err(|e| corrupt(&resource, e))?,
        token: u64::try_from(token).map_err(|e| corrupt(&resource, e))?,
        holds: r.get(4)?,
        acquired_at: Timestamp::from_millis(r.get(5)?),
        expires_at: Timestamp::from_millis(r.get(6)?),
        resource: Resource::new(&resource).map_err(|e| corrupt(&resource, e))?,
    })
}

pub(super) fn query_locks(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<Lock>> {
    let mut stmt = c.prepare_cached(sql)?;
    let mut rows = stmt.query(params)?;
    let mut v = Vec::new();
    while let Some(r) = rows.next()? {
        v.push(row_to_lock(r)?);
    }
    Ok(v)
}

/// Live locks on `res`, its descendants and its ancestors.
pub(super) fn overlapping(c: &Connection, res: &Resource, now: Timestamp) -> Result<Vec<Lock>> {
    let mut v = query_locks(
        c,
        &format!(
            "SELECT {COLS} FROM oc_locks WHERE expires_at > ?2
             AND (resource = ?1 OR (resource >= ?1 || '/' AND resource < ?1 || '0'))"
        ),
        (res.as_str(), now.as_millis()),
    )?;
    for a in res.ancestors() {
        v.extend(query_locks(
            c,
            &format!("SELECT {COLS} FROM oc_locks WHERE resource = ?1 AND expires_at > ?2"),
            (a, now.as_millis()),
        )?);
    }
    Ok(v)
}

/// Live waiters with a ticket below `before` (all live waiters when `None`), in ticket order.
pub(super) fn waiters(
    c: &Connection,
    before: Option<i64>,
    now: Timestamp,
) -> Result<Vec<(Resource, Owner, LockMode)>> {
    let mut stmt = c.prepare_cached(
        "SELECT resource, owner, mode FROM oc_lock_waiters
         WHERE expires_at > ?1 AND (?2 IS NULL OR ticket < ?2) ORDER BY ticket",
    )?;
    let mut rows = stmt.query((now.as_millis(), before))?;
    let mut v = Vec::new();
    while let Some(r) = rows.next()? {
        let res: String = r.get(0)?;
        let owner: String = r.get(1)?;
        let mode: String = r.get(2)?;
        v.push((
            Resource::new(&res).map_err(|e| corrupt(&res, e))?,
            Owner::new(&owner).map_err(|e| corrupt(&res, e))?,
            mode.parse().map_err(|e| corrupt(&res, e))?,
        ));
    }
    Ok(v)
}

pub(super) fn bump(tx: &Connection, key: &str, by: u64) -> Result<i64> {
    Ok(tx
        .prepare_cached(
            "UPDATE oc_locks_meta SET value = value + ?2 WHERE key = ?1 RETURNING value",
        )?
        .query_row((key, i64::try_from(by).unwrap_or(i64::MAX)), |r| r.get(0))?)
}

pub(super) fn record_release(tx: &Connection, lock: &Lock, now: Timestamp) -> Result<()> {
    let held = now
        .as_millis()
        .saturating_sub(lock.acquired_at.as_millis())
        .max(0);
    bump(tx, "released", 1)?;
    bump(tx, "hold_total_ms", u64::try_from(held).unwrap_or(0))?;
    tx.prepare_cached("UPDATE oc_locks_meta SET value = max(value, ?1) WHERE key = 'hold_max_ms'")?
        .execute([held])?;
    Ok(())
}

pub(super) fn delete_lock(tx: &Connection, l: &Lock) -> Result<()> {
    tx.prepare_cached("DELETE FROM oc_locks WHERE resource = ?1 AND owner = ?2")?
        .execute((l.resource.as_str(), l.owner.as_str()))?;
    Ok(())
}

pub(super) fn own_lock(tx: &Connection, res: &Resource, owner: &Owner) -> Result<Option<Lock>> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {COLS} FROM oc_locks WHERE resource = ?1 AND owner = ?2"
    ))?;
    let mut rows = stmt.query((res.as_str(), owner.as_str()))?;
    rows.next()?.map(row_to_lock).transpose()
}

pub(super) fn others_on(
    tx: &Connection,
    res: &Resource,
    owner: &Owner,
    now: Timestamp,
) -> Result<Vec<Holder>> {
    Ok(query_locks(
        tx,
        &format!(
            "SELECT {COLS} FROM oc_locks WHERE resource = ?1 AND owner != ?2 AND expires_at > ?3"
        ),
        (res.as_str(), owner.as_str(), now.as_millis()),
    )?
    .iter()
    .map(Lock::holder)
    .collect())
}

/// Grants all items or reports the first blocked one; writes nothing when blocked.
pub(super) fn try_grant(
    tx: &Transaction<'_>,
    fence: &Fence,
    items: &[(&LockRequest, Duration)],
    ticket: Option<i64>,
    now: Timestamp,
) -> Result<std::result::Result<Vec<Lock>, Blocked>> {
    let queued = waiters(tx, ticket, now)?;
    for (req, _) in items {
        let live = overlapping(tx, &req.resource, now)?;
        if let Decision::Blocked(h) =
            decide(req, live.iter(), queued.iter().map(|(r, o, m)| (r, o, *m)))
        {
            return Ok(Err((req.resource.clone(), h)));
        }
    }
    let mut granted = Vec::with_capacity(items.len());
    let mut tokens = fence.issue(tx)?;
    for (req, ttl) in items {
        let expires_at = now.saturating_add(*ttl);
        // Lapsed locks on this exact resource (the owner's own included) go first.
        let n = tx
            .prepare_cached("DELETE FROM oc_locks WHERE resource = ?1 AND expires_at <= ?2")?
            .execute((req.resource.as_str(), now.as_millis()))?;
        if n > 0 {
            bump(tx, "expired", n as u64)?;
        }
        let lock = match own_lock(tx, &req.resource, &req.owner)? {
            Some(mut own) => {
                own.holds += 1;
                own.expires_at = own.expires_at.max(expires_at);
                if req.mode == LockMode::Exclusive {
                    own.mode = LockMode::Exclusive;
                }
                tx.prepare_cached("UPDATE oc_locks SET holds = ?3, expires_at = ?4, mode = ?5 WHERE resource = ?1 AND owner = ?2")?
                    .execute((own.resource.as_str(), own.owner.as_str(), own.holds, own.expires_at.as_millis(), own.mode.as_str()))?;
                bump(tx, "reentrant", 1)?;
                own
            }
            None => {
                let token = tokens.take();
                bump(tx, "total", 1)?;
                let lock = Lock {
                    resource: req.resource.clone(),
                    owner: req.owner.clone(),
                    mode: req.mode,
                    token,
                    holds: 1,
                    acquired_at: now,
                    expires_at,
                };
                tx.prepare_cached(&format!(
                    "INSERT INTO oc_locks ({COLS}) VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6)"
                ))?
                .execute((
                    lock.resource.as_str(),
                    lock.owner.as_str(),
                    lock.mode.as_str(),
                    i64::try_from(token).unwrap_or(i64::MAX),
                    now.as_millis(),
                    expires_at.as_millis(),
                ))?;
                lock
            }
        };
        granted.push(lock);
    }
    tokens.save(tx)?;
    Ok(Ok(granted))
}
