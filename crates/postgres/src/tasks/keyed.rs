//! Idempotency keys: each keyed change runs in one transaction that takes the key's advisory
//! lock, looks the key up (`sql/key_read.sql`), makes the change and records the key and its
//! result (`sql/key_write.sql`); a known key replays its result and changes nothing.

use std::time::Duration;

use oc_tasks::backend::{KeyedRequest, KeyedResult, given_back, idempotency_conflict};
use oc_tasks::{
    Change, Error, HistoryEntry, IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey,
    Keyed, LabelFilter, Result, Task, TaskId, TaskStatus, Timestamp, Unique, transition,
};
use tokio_postgres::Transaction;

use super::PgTaskStore;
use super::row::{corrupt, row_task};
use super::statements::TaskStatements;
use super::transition::{CAS_ATTEMPTS, TransitionParams, UNIQUE_KEY};
use crate::errors::{Failure, classify, task_error};
use crate::keys::task_lock_key;

/// What a keyed transaction found under its key.
pub(super) enum Found {
    /// Nothing live: make the change at this time.
    New(i64),
    /// The result recorded for the same request.
    Replay(KeyedResult),
}

/// Takes the key's lock, sweeps a batch of lapsed keys and looks the key up; an inner error
/// for a key recorded for another request, or a result that does not decode.
pub(super) async fn key_begin(
    t: &Transaction<'_>,
    st: &TaskStatements,
    schema: &str,
    key: &IdempotencyKey,
    request: &str,
    clock: Option<i64>,
) -> std::result::Result<Result<Found>, tokio_postgres::Error> {
    t.execute(&st.key_lock, &[&schema, &key.agent(), &key.key()])
        .await?;
    let row = t.query_one(&st.now, &[&clock]).await?;
    let now: i64 = match row.try_get(0) {
        Ok(n) => n,
        Err(e) => return Ok(Err(corrupt("(now)", e))),
    };
    let ttl = i64::try_from(IDEMPOTENCY_KEY_TTL.as_millis()).unwrap_or(i64::MAX);
    let oldest = now.saturating_sub(ttl);
    let batch = i64::try_from(IDEMPOTENCY_SWEEP_BATCH).unwrap_or(i64::MAX);
    t.execute(&st.key_sweep, &[&oldest, &batch]).await?;
    let Some(r) = t
        .query_opt(&st.key_read, &[&key.agent(), &key.key(), &oldest])
        .await?
    else {
        return Ok(Ok(Found::New(now)));
    };
    let (known, result): (String, String) = match (r.try_get(0), r.try_get(1)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok(Err(corrupt("(idempotency key)", "unreadable row"))),
    };
    if known != request {
        return Ok(Err(idempotency_conflict(key)));
    }
    Ok(KeyedResult::from_json(key, &result).map(Found::Replay))
}

/// Records the key's result in the transaction of the change.
pub(super) async fn key_end(
    t: &Transaction<'_>,
    st: &TaskStatements,
    key: &IdempotencyKey,
    request: &str,
    result: &KeyedResult,
    now: i64,
) -> std::result::Result<Result<()>, tokio_postgres::Error> {
    let json = match result.to_json() {
        Ok(j) => j,
        Err(e) => return Ok(Err(e)),
    };
    t.execute(
        &st.key_write,
        &[&key.agent(), &key.key(), &request, &json, &now],
    )
    .await?;
    Ok(Ok(()))
}

/// Returns the inner error of a step from the transaction's closure.
macro_rules! inner {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}
pub(super) use inner;

/// One attempt of a keyed claim.
enum Step {
    Done(Keyed<Vec<Task>>),
    /// Found nothing while ready tasks were held locked by others: try again.
    Again,
}

impl PgTaskStore {
    pub(super) fn apply_keyed_tx(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        change: Change,
        expect: Option<u64>,
    ) -> Result<Keyed<Task>> {
        let request = KeyedRequest::apply(id, &change, expect)?;
        let (schema, clock) = (self.opts.schema.clone(), self.clock_ms());
        let lock = task_lock_key(&self.table_schema(), id);
        let (k, tid) = (key.clone(), id.clone());
        let out = self.pool.transaction(move |t, st| {
            Box::pin(async move {
                let now = match inner!(key_begin(t, st, &schema, &k, &request, clock).await?) {
                    Found::New(now) => now,
                    Found::Replay(r) => {
                        return Ok(r.apply(&k).map(|value| Keyed {
                            value,
                            replayed: true,
                        }));
                    }
                };
                let next = inner!(cas_apply(t, st, &tid, &change, expect, now, lock).await?);
                let result = KeyedResult::Apply(Box::new(next.clone()));
                inner!(key_end(t, st, &k, &request, &result, now).await?);
                Ok(Ok(Keyed {
                    value: next,
                    replayed: false,
                }))
            })
        });
        match out {
            Ok(r) => r,
            Err(Failure::Pg(e)) if classify(&e).violates(UNIQUE_KEY) => {
                let task = self.read(id)?.0;
                let key = task
                    .as_ref()
                    .and_then(|t| Unique::held_by(t).map(str::to_owned))
                    .unwrap_or_default();
                let holder = self.holder(&key)?.map_or_else(|| id.clone(), |h| h.id);
                Err(Error::UniqueKeyHeld { key, holder })
            }
            Err(f) => Err(task_error(f)),
        }
    }

    /// [`oc_tasks::TaskStore::release_forgetting`]: under the key's lock, forgets the key and
    /// releases the task by `token` in one transaction, which commits the forgetting even when
    /// the lease is no longer `token`'s.
    pub(super) fn release_forgetting_tx(
        &self,
        key: &IdempotencyKey,
        id: &TaskId,
        token: u64,
    ) -> Result<Option<Task>> {
        let change = Change::Release { token };
        change.validate()?;
        let (schema, clock) = (self.opts.schema.clone(), self.clock_ms());
        let lock = task_lock_key(&self.table_schema(), id);
        let (k, tid) = (key.clone(), id.clone());
        let out = self.pool.transaction(move |t, st| {
            Box::pin(async move {
                t.execute(&st.key_lock, &[&schema, &k.agent(), &k.key()])
                    .await?;
                t.execute(&st.key_forget, &[&k.agent(), &k.key()]).await?;
                let row = t.query_one(&st.now, &[&clock]).await?;
                let now: i64 = inner!(row.try_get(0).map_err(|e| corrupt("(now)", e)));
                let released = cas_apply(t, st, &tid, &change, None, now, lock).await?;
                Ok(given_back(released))
            })
        });
        out.map_err(task_error)?
    }

    /// A keyed claim; without `record_empty`, one that claims nothing records no key.
    pub(super) fn claim_keyed_tx(
        &self,
        key: &IdempotencyKey,
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
        record_empty: bool,
    ) -> Result<Keyed<Vec<Task>>> {
        // The claim's SQL takes the owner and TTL itself: only the check and fingerprint here.
        let (_, request) = KeyedRequest::claim(owner, ttl, n, filter)?;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let batch = i64::try_from(n).unwrap_or(i64::MAX);
        for attempt in 0..super::claim::SKIPPED_ATTEMPTS {
            let (schema, clock) = (self.opts.schema.clone(), self.clock_ms());
            let (k, request, owner) = (key.clone(), request.clone(), owner.to_owned());
            let (all, none) = (filter.all.clone(), filter.none.clone());
            let sql = self.claim_batch.clone();
            let out = self.pool.transaction(move |t, st| {
                Box::pin(async move {
                    let now = match inner!(key_begin(t, st, &schema, &k, &request, clock).await?) {
                        Found::New(now) => now,
                        Found::Replay(r) => {
                            return Ok(r.claim(&k).map(|value| {
                                Step::Done(Keyed {
                                    value,
                                    replayed: true,
                                })
                            }));
                        }
                    };
                    let at = Some(now);
                    let rows = match batch {
                        0 => Vec::new(),
                        1 => {
                            t.query(&st.claim_next, &[&owner, &ttl_ms, &at, &all, &none])
                                .await?
                        }
                        _ => {
                            t.query(&*sql, &[&owner, &ttl_ms, &at, &all, &none, &batch])
                                .await?
                        }
                    };
                    if rows.is_empty() && batch > 0 {
                        let row = t.query_one(&st.skipped, &[&at, &all, &none]).await?;
                        let skipped: bool =
                            inner!(row.try_get(0).map_err(|e| corrupt("(skipped)", e)));
                        if skipped {
                            return Ok(Ok(Step::Again));
                        }
                    }
                    let claimed = inner!(
                        rows.iter()
                            .map(|r| row_task(r, 0))
                            .collect::<Result<Vec<_>>>()
                    );
                    let result = KeyedResult::Claim(claimed.clone());
                    if record_empty || !result.is_empty_claim() {
                        inner!(key_end(t, st, &k, &request, &result, now).await?);
                    }
                    Ok(Ok(Step::Done(Keyed {
                        value: claimed,
                        replayed: false,
                    })))
                })
            });
            match out.map_err(task_error)? {
                Ok(Step::Done(k)) => return Ok(k),
                Ok(Step::Again) => {
                    std::thread::sleep(Duration::from_micros(200 << attempt.min(5)));
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::backend(
            "postgres",
            true,
            "ready tasks stayed locked by others while claiming",
        ))
    }
}

/// The check-and-set of `change` on task `tid` at `now`, retried while the task moves under
/// it; `VersionMismatch` when it is not at `expect`.
async fn cas_apply(
    t: &Transaction<'_>,
    st: &TaskStatements,
    tid: &TaskId,
    change: &Change,
    expect: Option<u64>,
    now: i64,
    lock: i64,
) -> std::result::Result<Result<Task>, tokio_postgres::Error> {
    let sid = tid.to_string();
    let at = Some(now);
    for _ in 0..CAS_ATTEMPTS {
        let row = t.query_one(&st.read, &[&sid, &at]).await?;
        let present: Option<String> = inner!(row.try_get(1).map_err(|e| corrupt("(row)", e)));
        if present.is_none() {
            return Ok(Err(Error::NotFound { id: tid.clone() }));
        }
        let prev = inner!(row_task(&row, 1));
        let mut took = false;
        let (mut next, kind) = inner!(transition(
            &prev,
            change,
            expect,
            Timestamp::from_millis(now),
            || {
                took = true;
                0
            }
        ));
        let h = kind.map(|k| HistoryEntry::new(k, Some(&prev), &next));
        let p = inner!(TransitionParams::new(&prev, &next, took, h.as_ref()));
        let completes =
            next.status == TaskStatus::Completed && prev.status != TaskStatus::Completed;
        if completes {
            t.execute(&st.lock_task_key, &[&lock]).await?;
        }
        let rows = t.query(&st.cas, &p.params()).await?;
        let Some(r) = rows.first() else {
            if expect.is_some() {
                let row = t.query_one(&st.read, &[&sid, &at]).await?;
                let now: Option<String> = row.try_get(1).ok().flatten();
                let actual = match now {
                    Some(_) => row_task(&row, 1).map_or(0, |t| t.version),
                    None => 0,
                };
                return Ok(Err(Error::VersionMismatch {
                    id: tid.clone(),
                    expected: prev.version,
                    actual,
                }));
            }
            continue;
        };
        if completes {
            t.execute(&st.release, &[&sid]).await?;
        }
        let token: Option<i64> = inner!(r.try_get(0).map_err(|e| corrupt("(token)", e)));
        if let (Some(lease), Some(token)) = (
            next.lease.as_mut(),
            token.and_then(|t| u64::try_from(t).ok()),
        ) {
            lease.token = token;
        }
        return Ok(Ok(next));
    }
    Ok(Err(Error::backend(
        "postgres",
        true,
        format!("task {tid} kept changing under {CAS_ATTEMPTS} attempts to write it"),
    )))
}
