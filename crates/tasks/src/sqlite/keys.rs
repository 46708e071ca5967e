//! Idempotency keys in `task_keys`, written in the transaction of the change they guard.

use rusqlite::{OptionalExtension, Transaction};

use crate::backend::{KeyedResult, idempotency_conflict};
use crate::{
    IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, Keyed, Result, Timestamp,
};

/// Runs `op` under `key` in the writer's transaction `tx`, or replays the result recorded for
/// it; sweeps a bounded batch of lapsed keys first. A key past [`IDEMPOTENCY_KEY_TTL`] counts
/// as unknown and is replaced. Without `record_empty`, a claim that claimed nothing is not
/// recorded.
pub(super) fn keyed(
    tx: &Transaction<'_>,
    key: &IdempotencyKey,
    request: &str,
    now: Timestamp,
    record_empty: bool,
    op: impl FnOnce() -> Result<KeyedResult>,
) -> Result<Keyed<KeyedResult>> {
    let ttl = i64::try_from(IDEMPOTENCY_KEY_TTL.as_millis()).unwrap_or(i64::MAX);
    let oldest = now.as_millis().saturating_sub(ttl);
    tx.prepare_cached(
        "DELETE FROM task_keys WHERE rowid IN
           (SELECT rowid FROM task_keys WHERE at <= ?1 ORDER BY at LIMIT ?2)",
    )?
    .execute((
        oldest,
        i64::try_from(IDEMPOTENCY_SWEEP_BATCH).unwrap_or(i64::MAX),
    ))?;
    let known: Option<(String, String)> = tx
        .prepare_cached(
            "SELECT request, result FROM task_keys WHERE agent = ?1 AND key = ?2 AND at > ?3",
        )?
        .query_row((key.agent(), key.key(), oldest), |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    if let Some((known, result)) = known {
        if known != request {
            return Err(idempotency_conflict(key));
        }
        return Ok(Keyed {
            value: KeyedResult::from_json(key, &result)?,
            replayed: true,
        });
    }
    let result = op()?;
    if !record_empty && result.is_empty_claim() {
        return Ok(Keyed {
            value: result,
            replayed: false,
        });
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO task_keys (agent, key, request, result, at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute((
        key.agent(),
        key.key(),
        request,
        result.to_json()?,
        now.as_millis(),
    ))?;
    Ok(Keyed {
        value: result,
        replayed: false,
    })
}

/// Forgets agent `key`'s record, in `tx` (the transaction of the release it goes with).
pub(super) fn forget(tx: &Transaction<'_>, key: &IdempotencyKey) -> Result<()> {
    tx.prepare_cached("DELETE FROM task_keys WHERE agent = ?1 AND key = ?2")?
        .execute((key.agent(), key.key()))?;
    Ok(())
}
