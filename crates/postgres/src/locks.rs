//! `PgLockManager`: locks shared by agents on many machines through PostgreSQL.
//!
//! Every operation is one call of a server-side function that first takes an advisory lock per
//! path it touches (exclusive on the resource, shared on its ancestors: `lock_serialize`), then
//! decides and writes in one statement (decision 0053: a short one for the common case, a
//! general one otherwise): operations on overlapping resources run one at a time, the others
//! in parallel, and no lock is held across a network round trip, so a client cut off
//! mid-operation stalls nobody. A decision sees every grant on an overlapping resource
//! committed before it (each statement of a `VOLATILE` function takes a fresh snapshot, after
//! the advisory locks were granted). Tokens come from a sequence, the counters are rows of
//! changes folded now and then (decision 0048). The functions follow `oc_locks`' rules
//! (`decide`): the conformance suite and the model-based property test check that they agree
//! with the memory and SQLite managers.
//!
//! One concept per file: the schema's versions (`migrations.rs`, `migrations/*.sql`) and its
//! server-side functions (`functions/NNNN/*.sql`), the statements (`statements.rs`,
//! `sql/*.sql`), rows to locks (`row.rs`), the options (`options.rs`), acquiring and waiting (`acquire.rs`), and giving
//! back a keyed grant (`forget.rs`). This file holds the manager and the [`LockManager`] methods.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::backend::{Counters, stats};
use oc_locks::{
    Error, IdempotencyKey, KeepWaiting, Keyed, Lock, LockManager, LockRequest, LockStats, Owner,
    Resource, Result, Timestamp,
};
use tokio_postgres::Row;

use crate::errors::lock_error;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;

/// In a keyed transaction's body: the value of an `Ok`, or the store's answer `Err(e)` returned
/// from the body as `Ok(Err(e))` (a database error goes up with `?` instead).
macro_rules! inner {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        }
    };
}

mod acquire;
mod forget;
mod migrations;
mod options;
mod row;
mod statements;

use acquire::Freed;
use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;
pub use options::PgLockOptions;
use row::{corrupt, ms, row_lock};
use statements::LockStatements;

/// A [`LockManager`] on PostgreSQL: every host connected to the same database and schema
/// shares the locks.
///
/// Exclusive and shared modes on hierarchical resources, re-entrant holds, TTLs and fencing
/// tokens, as the other managers; expiry is judged by the database's clock; waiting is first
/// come, first served across hosts (waiter rows with tickets), woken by `LISTEN/NOTIFY` with
/// polling as the fallback.
pub struct PgLockManager {
    pool: Pool<LockStatements>,
    opts: PgLockOptions,
    freed: Arc<Freed>,
    listening: Arc<std::sync::atomic::AtomicBool>,
    /// Operations since this handle was made, for folding the counters now and then.
    calls: std::sync::atomic::AtomicU64,
}

/// How many rows of changes to the counters one fold takes at most (one statement, bounded).
const FOLD_BATCH: i64 = 10_000;

/// How many rows of changes the counters may gather before a reader of the statistics folds
/// them.
const FOLD_AT: i64 = 1_000;

/// How many operations a handle makes between folds of its own, so that the rows of changes
/// stay few when nobody reads the statistics.
const CALLS_PER_FOLD: u64 = 4_096;

impl std::fmt::Debug for PgLockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockManager")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

impl PgLockManager {
    /// Connects and migrates (once, whatever other hosts do at the same time).
    pub fn connect(opts: PgLockOptions) -> Result<Self> {
        let pool = Pool::new(&opts.pg, "locks").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
            source: Box::new(e),
        })?;
        let schema = opts.pg.schema.clone();
        let migrations: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| m.replace("{n}", &schema))
            .collect();
        let found = pool
            .dedicated(move |mut c| async move {
                let refs: Vec<&str> = migrations.iter().map(String::as_str).collect();
                migrate(&mut c, &schema, COMPONENT, &refs).await
            })
            .map_err(lock_error)?;
        if let Err(found) = found {
            return Err(Error::SchemaTooNew {
                found,
                supported: i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX),
            });
        }
        Ok(PgLockManager {
            pool,
            opts,
            freed: Arc::new(Freed::default()),
            listening: Arc::default(),
            calls: std::sync::atomic::AtomicU64::new(0),
        })
    }

    pub(super) fn clock_ms(&self) -> Option<i64> {
        self.opts.pg.clock.as_ref().map(|c| c.now().as_millis())
    }

    pub(super) fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<Conn<LockStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(lock_error)
    }

    pub(super) fn now_of_db(&self) -> Result<Timestamp> {
        let now = self.clock_ms();
        let row =
            self.call(move |c| async move { c.client.query_one(&c.stmts.now, &[&now]).await })?;
        Ok(Timestamp::from_millis(
            row.try_get(0).map_err(|e| corrupt("(now)", e))?,
        ))
    }

    /// Release (`renew_ttl` None) or renew the owner's lock.
    fn own(&self, resource: &Resource, owner: &Owner, renew_ttl: Option<i64>) -> Result<Lock> {
        let (r, o, now) = (resource.to_string(), owner.to_string(), self.clock_ms());
        let rows = self.call(move |c| async move {
            c.client
                .query(&c.stmts.own, &[&r, &o, &renew_ttl, &now])
                .await
        })?;
        self.tick();
        let first = rows
            .first()
            .ok_or_else(|| corrupt(resource.as_str(), "no outcome"))?;
        let outcome: String = first.try_get(0).map_err(|e| corrupt("(outcome)", e))?;
        match outcome.as_str() {
            "not_held" => Err(Error::NotHeld {
                resource: resource.to_string(),
                owner: owner.to_string(),
                holders: rows[1..]
                    .iter()
                    .map(|r| row_lock(r, 1).map(|l| l.holder()))
                    .collect::<Result<_>>()?,
            }),
            "expired" => {
                self.freed.wake();
                Err(Error::Expired {
                    resource: resource.to_string(),
                    owner: owner.to_string(),
                })
            }
            _ => {
                let l = row_lock(first, 1)?;
                if l.holds == 0 {
                    self.freed.wake();
                }
                Ok(l)
            }
        }
    }

    /// Counts an operation; every [`CALLS_PER_FOLD`]th folds the counters' rows of changes.
    pub(super) fn tick(&self) {
        let n = self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n % CALLS_PER_FOLD == CALLS_PER_FOLD - 1 {
            // Best effort: a fold that fails leaves the rows for the next one, and the
            // operation that triggered it has already succeeded.
            let _ = self.fold();
        }
    }

    /// Folds at most [`FOLD_BATCH`] rows of changes to the counters into one (none while
    /// another handle folds).
    fn fold(&self) -> Result<()> {
        let schema = self.opts.pg.schema.clone();
        self.call(move |c| async move {
            c.client
                .execute(&c.stmts.fold, &[&schema, &FOLD_BATCH])
                .await
        })
        .map(drop)
    }

    fn locks(&self, rows: &[Row]) -> Result<Vec<Lock>> {
        rows.iter().map(|r| row_lock(r, 0)).collect()
    }
}

impl LockManager for PgLockManager {
    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        let ttl = self.opts.ttl.resolve(req.ttl)?;
        let mut v = self.acquire_items(&[(req, ttl)], wait, None)?;
        v.pop().ok_or_else(|| Error::InvalidInput {
            field: "request",
            reason: "nothing was granted".into(),
        })
    }

    fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
        self.acquire_many_with(reqs, wait, None)
    }

    fn acquire_many_watched(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: &KeepWaiting<'_>,
    ) -> Result<Vec<Lock>> {
        self.acquire_many_with(reqs, wait, Some(keep_waiting))
    }

    fn renew(&self, resource: &Resource, owner: &Owner, ttl: Option<Duration>) -> Result<Lock> {
        let ttl = self.opts.ttl.resolve(ttl)?;
        let sent = Instant::now();
        let l = self.own(resource, owner, Some(ms(ttl)))?;
        self.delivered(std::slice::from_ref(&l), sent, ttl)
            .map(|()| l)
    }

    fn release(&self, resource: &Resource, owner: &Owner) -> Result<Lock> {
        self.own(resource, owner, None)
    }

    fn acquire_many_keyed(
        &self,
        key: &IdempotencyKey,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: Option<&KeepWaiting<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        let items = oc_locks::backend::canonical_items(reqs, &self.opts.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        let request = oc_locks::backend::fingerprint(reqs, None);
        self.acquire_keyed_items(&items, wait, keep_waiting, (key, &request))
    }

    fn release_keyed(
        &self,
        key: &IdempotencyKey,
        resource: &Resource,
        owner: &Owner,
    ) -> Result<Keyed<Lock>> {
        self.release_keyed_tx(key, resource, owner)
    }

    fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        self.release_forgetting_tx(key)
    }

    fn release_owner(&self, owner: &Owner) -> Result<Vec<Lock>> {
        let (o, now) = (owner.to_string(), self.clock_ms());
        let rows = self.call(move |c| async move {
            c.client.query(&c.stmts.release_owner, &[&o, &now]).await
        })?;
        self.freed.wake();
        self.locks(&rows)
    }

    fn sweep_expired(&self) -> Result<Vec<Lock>> {
        let now = self.clock_ms();
        let rows =
            self.call(move |c| async move { c.client.query(&c.stmts.sweep, &[&now]).await })?;
        self.freed.wake();
        self.locks(&rows)
    }

    fn holders(&self, resource: &Resource) -> Result<Vec<Lock>> {
        let (r, now) = (resource.to_string(), self.clock_ms());
        let rows =
            self.call(move |c| async move { c.client.query(&c.stmts.holders, &[&r, &now]).await })?;
        self.locks(&rows)
    }

    fn list(&self) -> Result<Vec<Lock>> {
        let now = self.clock_ms();
        let rows =
            self.call(move |c| async move { c.client.query(&c.stmts.list, &[&now]).await })?;
        self.locks(&rows)
    }

    fn stats(&self) -> Result<LockStats> {
        // Sweep first, so `expiredLocks` counts every lock that has lapsed by now.
        self.sweep_expired()?;
        let live = self.list()?;
        let now = self.clock_ms();
        let row = self
            .call(move |c| async move { c.client.query_one(&c.stmts.counters, &[&now]).await })?;
        let rows: i64 = row.try_get(3).map_err(|e| corrupt("(stats)", e))?;
        if rows > FOLD_AT {
            // The sums stay what they are; the next reader sums fewer rows.
            self.fold()?;
        }
        let meta: Option<String> = row.try_get(0).map_err(|e| corrupt("(stats)", e))?;
        let meta: serde_json::Value = serde_json::from_str(meta.as_deref().unwrap_or("{}"))
            .map_err(|e| corrupt("(stats)", e))?;
        let waiting: i64 = row.try_get(1).map_err(|e| corrupt("(stats)", e))?;
        let now = Timestamp::from_millis(row.try_get(2).map_err(|e| corrupt("(stats)", e))?);
        let get = |k: &str| meta.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
        let counters = Counters {
            total: get("total"),
            expired: get("expired"),
            conflicts: get("conflicts"),
            released: get("released"),
            reentrant: get("reentrant"),
            hold_total_ms: get("hold_total_ms"),
            hold_max_ms: get("hold_max_ms"),
            waits: get("waits"),
            timeouts: get("timeouts"),
        };
        Ok(stats(
            counters,
            live.iter(),
            u64::try_from(waiting).unwrap_or(0),
            now,
        ))
    }

    fn now(&self) -> Timestamp {
        self.now_of_db().unwrap_or_else(|_| Timestamp::now())
    }
}
