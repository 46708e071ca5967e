//! Idempotency keys in `oc_lock_keys`: replayed, recorded, forgotten in the change's transaction.

use rusqlite::{OptionalExtension, Transaction};

use oc_time::Timestamp;

use super::table::corrupt;
use crate::backend::is_acquire;
use crate::{Error, IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Lock, Result};

/// A keyed call's key and request fingerprint.
pub(super) type KeyArg<'a> = (&'a IdempotencyKey, &'a str);

/// Keys recorded at or before this time (milliseconds) have lapsed at `now`.
pub(super) fn key_oldest(now: Timestamp) -> i64 {
    let ttl = i64::try_from(IDEMPOTENCY_KEY_TTL.as_millis()).unwrap_or(i64::MAX);
    now.as_millis().saturating_sub(ttl)
}

/// The request and result recorded for `key` after `oldest`, if any.
pub(super) fn key_lookup(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    oldest: i64,
) -> Result<Option<(String, String)>> {
    Ok(tx
        .prepare_cached(
            "SELECT request, result FROM oc_lock_keys WHERE agent = ?1 AND key = ?2 AND at > ?3",
        )?
        .query_row((key.agent(), key.key(), oldest), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// The locks recorded for `key` if it is live, after sweeping a bounded batch of lapsed keys;
/// `IdempotencyConflict` (inner) if it was recorded for another request.
pub(super) fn key_replay(
    tx: &Transaction<'_>,
    (key, request): KeyArg<'_>,
    now: Timestamp,
) -> Result<Result<Option<Vec<Lock>>>> {
    let oldest = key_oldest(now);
    tx.prepare_cached(
        "DELETE FROM oc_lock_keys WHERE rowid IN
           (SELECT rowid FROM oc_lock_keys WHERE at <= ?1 ORDER BY at LIMIT ?2)",
    )?
    .execute((
        oldest,
        i64::try_from(IDEMPOTENCY_SWEEP_BATCH).unwrap_or(i64::MAX),
    ))?;
    let known = key_lookup(tx, key, oldest)?;
    let Some((known, result)) = known else {
        return Ok(Ok(None));
    };
    if known != request {
        return Ok(Err(key.conflict()));
    }
    serde_json::from_str(&result)
        .map(|locks| Ok(Some(locks)))
        .map_err(|e| corrupt(&format!("idempotency key {:?}", key.key()), e))
}

/// Records `key`'s result in the transaction of the change.
pub(super) fn key_remember(
    tx: &Transaction<'_>,
    (key, request): KeyArg<'_>,
    locks: &[Lock],
    now: Timestamp,
) -> Result<()> {
    let result = serde_json::to_string(locks).map_err(|e| Error::InvalidInput {
        field: "result",
        reason: e.to_string(),
    })?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO oc_lock_keys (agent, key, request, result, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((key.agent(), key.key(), request, result, now.as_millis()))?;
    Ok(())
}

/// Forgets `key` in the transaction of the release: the locks an acquire recorded under it,
/// none if it is unknown or lapsed; `IdempotencyConflict` (inner), keeping it, if a release
/// recorded it.
pub(super) fn key_forget(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    now: Timestamp,
) -> Result<Result<Vec<Lock>>> {
    let oldest = key_oldest(now);
    let known = key_lookup(tx, key, oldest)?;
    if known
        .as_ref()
        .is_some_and(|(request, _)| !is_acquire(request))
    {
        return Ok(Err(key.conflict()));
    }
    tx.prepare_cached("DELETE FROM oc_lock_keys WHERE agent = ?1 AND key = ?2")?
        .execute((key.agent(), key.key()))?;
    match known {
        None => Ok(Ok(Vec::new())),
        Some((_, result)) => serde_json::from_str(&result)
            .map(Ok)
            .map_err(|e| corrupt(&format!("idempotency key {:?}", key.key()), e)),
    }
}
