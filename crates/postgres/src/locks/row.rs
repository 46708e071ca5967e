//! Locks and holders from rows.

use std::time::Duration;

use oc_locks::{Error, Holder, Lock, Owner, Resource, Result, Timestamp};
use tokio_postgres::Row;

/// The columns a lock is read from, in the order [`row_lock`] reads them.
pub(super) const LOCK_COLS: &str = "resource, owner, mode, token, holds, acquired_at, expires_at";

pub(super) fn corrupt(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        resource: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// A lock from the columns `resource, owner, mode, token, holds, acquired_at, expires_at`
/// starting at `at`.
pub(super) fn row_lock(r: &Row, at: usize) -> Result<Lock> {
    let g = |e: tokio_postgres::Error| corrupt("(lock row)", e);
    let resource: String = r.try_get(at).map_err(g)?;
    let owner: String = r.try_get(at + 1).map_err(g)?;
    let mode: String = r.try_get(at + 2).map_err(g)?;
    let token: i64 = r.try_get(at + 3).map_err(g)?;
    let holds: i32 = r.try_get(at + 4).map_err(g)?;
    Ok(Lock {
        owner: Owner::new(&owner).map_err(|e| corrupt(&resource, e))?,
        mode: mode.parse().map_err(|e| corrupt(&resource, e))?,
        token: u64::try_from(token).map_err(|e| corrupt(&resource, e))?,
        holds: u32::try_from(holds).map_err(|e| corrupt(&resource, e))?,
        acquired_at: Timestamp::from_millis(r.try_get(at + 5).map_err(g)?),
        expires_at: Timestamp::from_millis(r.try_get(at + 6).map_err(g)?),
        resource: Resource::new(&resource).map_err(|e| corrupt(&resource, e))?,
    })
}

/// A holder from the columns `resource, owner, mode, …, expires_at` (expires_at at `at + 6`).
pub(super) fn row_holder(r: &Row, at: usize) -> Result<Holder> {
    let g = |e: tokio_postgres::Error| corrupt("(holder row)", e);
    let resource: String = r.try_get(at).map_err(g)?;
    let owner: String = r.try_get(at + 1).map_err(g)?;
    let mode: String = r.try_get(at + 2).map_err(g)?;
    let expires: Option<i64> = r.try_get(at + 6).map_err(g)?;
    Ok(Holder {
        owner: Owner::new(&owner).map_err(|e| corrupt(&resource, e))?,
        mode: mode.parse().map_err(|e| corrupt(&resource, e))?,
        expires_at: expires.map(Timestamp::from_millis),
        resource: Resource::new(&resource).map_err(|e| corrupt(&resource, e))?,
    })
}

pub(super) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
