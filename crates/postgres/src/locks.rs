//! `PgLockManager`: locks shared by agents on many machines through PostgreSQL.
//!
//! Every operation is one call of a server-side function that first locks the manager's row,
//! then decides and writes: no lock is held across a network round trip, so a client cut off
//! mid-operation stalls nobody, and a decision sees every grant committed before it (each
//! statement of a `VOLATILE` function takes a fresh snapshot, after the row lock was granted).
//! The functions follow `oc_locks`' rules (`decide`): the conformance suite and the model-based
//! property test check that they agree with the memory and SQLite managers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oc_locks::backend::{
    Counters, Patience, canonical_items, conflict, next_lapse, stats, unexpired,
};
use oc_locks::{
    Error, Holder, KeepWaiting, Lock, LockManager, LockRequest, LockStats, Owner, Resource, Result,
    Timestamp, TtlPolicy,
};
use parking_lot::{Condvar, Mutex};
use tokio_postgres::{AsyncMessage, Client, Row, Statement};

use crate::errors::lock_error;
use crate::options::PgOptions;
use crate::pool::{Pool, Prepare};
use crate::schema::migrate;

mod migrations;
use migrations::COMPONENT;
pub(crate) use migrations::MIGRATIONS;

const LOCK_COLS: &str = "resource, owner, mode, token, holds, acquired_at, expires_at";

pub(crate) struct LockStatements {
    acquire: Statement,
    enqueue: Statement,
    abandon: Statement,
    own: Statement,
    release_owner: Statement,
    sweep: Statement,
    holders: Statement,
    list: Statement,
    counters: Statement,
    now: Statement,
}

impl Prepare for LockStatements {
    async fn prepare(c: &Client, schema: &str) -> std::result::Result<Self, tokio_postgres::Error> {
        let s = format!("\"{schema}\"");
        Ok(LockStatements {
            acquire: c
                .prepare(&format!(
                    "SELECT * FROM {s}.lock_acquire($1, $2, $3, $4, $5, $6, $7, $8)"
                ))
                .await?,
            enqueue: c
                .prepare(&format!("SELECT {s}.lock_enqueue($1, $2, $3, $4, $5)"))
                .await?,
            abandon: c.prepare(&format!("SELECT {s}.lock_abandon($1)")).await?,
            own: c
                .prepare(&format!("SELECT * FROM {s}.lock_own($1, $2, $3, $4)"))
                .await?,
            release_owner: c
                .prepare(&format!(
                    "SELECT {LOCK_COLS} FROM {s}.lock_release_owner($1, $2) ORDER BY resource"
                ))
                .await?,
            sweep: c
                .prepare(&format!(
                    "SELECT {LOCK_COLS} FROM {s}.lock_sweep($1) ORDER BY resource, owner"
                ))
                .await?,
            holders: c
                .prepare(&format!(
                    "SELECT {LOCK_COLS} FROM {s}.locks l, (SELECT $1::text AS r,
                        {s}.lock_ancestors($1) AS a, {s}.lock_now($2) AS t) q
                     WHERE l.expires_at > q.t AND (l.resource = q.r OR l.resource = ANY(q.a)
                        OR (l.resource >= (q.r || '/') COLLATE \"C\"
                            AND l.resource < (q.r || '0') COLLATE \"C\"))
                     ORDER BY l.resource, l.owner"
                ))
                .await?,
            list: c
                .prepare(&format!(
                    "SELECT {LOCK_COLS} FROM {s}.locks WHERE expires_at > {s}.lock_now($1)
                     ORDER BY resource, owner"
                ))
                .await?,
            counters: c
                .prepare(&format!(
                    "SELECT (SELECT json_object_agg(key, value) FROM {s}.lock_meta)::text,
                        (SELECT count(DISTINCT ticket) FROM {s}.lock_waiters
                         WHERE expires_at > {s}.lock_now($1)),
                        {s}.lock_now($1)"
                ))
                .await?,
            now: c.prepare(&format!("SELECT {s}.lock_now($1)")).await?,
        })
    }
}

/// Wakes waiters of this process when a lock is freed: by a release here, or by a
/// notification from the server (a release on any host). Notifications are hints, since they
/// can be lost; waiters poll as well.
#[derive(Default)]
struct Freed {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Freed {
    fn wake(&self) {
        *self.generation.lock() += 1;
        self.cond.notify_all();
    }
}

/// How to open a [`PgLockManager`].
#[derive(Debug, Clone)]
pub struct PgLockOptions {
    pg: PgOptions,
    ttl: TtlPolicy,
    waiter_lease: Duration,
    max_poll: Duration,
}

impl PgLockOptions {
    /// Options over the connection settings `pg`: the default TTL policy (30 s, 1 s to 1 h),
    /// waiters polling at most every 50 ms between notifications.
    pub fn new(pg: PgOptions) -> Self {
        PgLockOptions {
            pg,
            ttl: TtlPolicy::default(),
            waiter_lease: Duration::from_secs(2),
            max_poll: Duration::from_millis(50),
        }
    }
    /// The TTL policy.
    pub fn ttl(mut self, ttl: TtlPolicy) -> Self {
        self.ttl = ttl;
        self
    }
    /// The longest a waiter sleeps between looks when no notification wakes it (default
    /// 50 ms): notifications can be lost, so waiters poll too, backing off from 1 ms to this.
    pub fn max_poll(mut self, d: Duration) -> Self {
        self.max_poll = d.max(Duration::from_millis(1));
        self
    }
}

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
}

impl std::fmt::Debug for PgLockManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgLockManager")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

fn corrupt(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        resource: what.to_owned(),
        reason: reason.to_string(),
    }
}

/// A lock from the columns `resource, owner, mode, token, holds, acquired_at, expires_at`
/// starting at `at`.
fn row_lock(r: &Row, at: usize) -> Result<Lock> {
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
fn row_holder(r: &Row, at: usize) -> Result<Holder> {
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

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

type Blocked = (String, Vec<Holder>);

impl PgLockManager {
    /// Connects and migrates (once, whatever other hosts do at the same time).
    pub fn connect(opts: PgLockOptions) -> Result<Self> {
        let pool = Pool::new(&opts.pg, "locks").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
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
        })
    }

    fn clock_ms(&self) -> Option<i64> {
        self.opts.pg.clock.as_ref().map(|c| c.now().as_millis())
    }

    fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<crate::pool::Conn<LockStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(lock_error)
    }

    /// One attempt at granting `items` (all or none); `Err` carries the first blocked
    /// resource and who blocks it.
    fn attempt(
        &self,
        items: &[(&LockRequest, Duration)],
        ticket: Option<i64>,
    ) -> Result<std::result::Result<Vec<Lock>, Blocked>> {
        let res: Vec<String> = items.iter().map(|(r, _)| r.resource.to_string()).collect();
        let modes: Vec<String> = items
            .iter()
            .map(|(r, _)| r.mode.as_str().to_owned())
            .collect();
        let ttls: Vec<i64> = items.iter().map(|(_, t)| ms(*t)).collect();
        let owner = items
            .first()
            .map(|(r, _)| r.owner.to_string())
            .unwrap_or_default();
        let (lease, count, now) = (
            ms(self.opts.waiter_lease),
            ticket.is_none(),
            self.clock_ms(),
        );
        let rows = self.call(move |c| async move {
            c.client
                .query(
                    &c.stmts.acquire,
                    &[&res, &owner, &modes, &ttls, &ticket, &lease, &count, &now],
                )
                .await
        })?;
        let granted: bool = match rows.first() {
            Some(r) => r.try_get(0).map_err(|e| corrupt("(acquire)", e))?,
            None => {
                return Err(corrupt("(acquire)", "the server granted nothing"));
            }
        };
        if granted {
            Ok(Ok(rows
                .iter()
                .map(|r| row_lock(r, 2))
                .collect::<Result<_>>()?))
        } else {
            let blocked: String = rows[0].try_get(1).map_err(|e| corrupt("(acquire)", e))?;
            let holders = rows
                .iter()
                .map(|r| row_holder(r, 2))
                .collect::<Result<_>>()?;
            Ok(Err((blocked, holders)))
        }
    }

    fn now_of_db(&self) -> Result<Timestamp> {
        let now = self.clock_ms();
        let row =
            self.call(move |c| async move { c.client.query_one(&c.stmts.now, &[&now]).await })?;
        Ok(Timestamp::from_millis(
            row.try_get(0).map_err(|e| corrupt("(now)", e))?,
        ))
    }

    /// Starts listening for releases on every host (once per manager).
    fn listen(&self) {
        if self
            .listening
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return;
        }
        let (config, tls) = (self.opts.pg.config.clone(), self.opts.pg.tls.clone());
        let channel = format!("oc_locks_{}", self.opts.pg.schema);
        let (freed, listening) = (self.freed.clone(), self.listening.clone());
        self.pool.spawn(async move {
            let wake = move |m: AsyncMessage| {
                if let AsyncMessage::Notification(_) = m {
                    freed.wake();
                }
            };
            if let Ok((client, driver)) = crate::pool::connect(&config, &tls, wake).await
                && client
                    .batch_execute(&format!("LISTEN \"{channel}\""))
                    .await
                    .is_ok()
            {
                // The session lasts as long as the connection, which the client keeps open.
                let _ = driver.await;
                drop(client);
            }
            // Lost (or never made): the next wait listens again; waiters poll meanwhile.
            listening.store(false, std::sync::atomic::Ordering::Release);
        });
    }

    /// `locks` if they still live now that the answer arrived (`backend::unexpired`). With a
    /// clock given, by that clock; with the database's, which is a round trip away, by time
    /// elapsed: each lease runs for at least `ttl` from a moment after `sent`, so it surely
    /// lives while less than `ttl` has passed since, and is taken as lapsed after.
    fn delivered(&self, locks: &[Lock], sent: Instant, ttl: Duration) -> Result<()> {
        match self.clock_ms() {
            Some(now) => unexpired(locks, Timestamp::from_millis(now)),
            None if sent.elapsed() < ttl => Ok(()),
            None => unexpired(locks, Timestamp::from_millis(i64::MAX)),
        }
    }

    fn acquire_many_with(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
    ) -> Result<Vec<Lock>> {
        let items = canonical_items(reqs, &self.opts.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        self.acquire_items(&items, wait, watcher)
    }

    fn acquire_items(
        &self,
        items: &[(&LockRequest, Duration)],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
    ) -> Result<Vec<Lock>> {
        let ttl = items.iter().map(|(_, t)| *t).min().unwrap_or_default();
        let sent = Instant::now();
        let (resource, holders) = match self.attempt(items, None)? {
            Ok(locks) => return self.delivered(&locks, sent, ttl).map(|()| locks),
            Err(b) => b,
        };
        if wait.is_zero() {
            return Err(conflict(resource, holders));
        }
        self.listen();
        let patience = Patience::new(wait, watcher, items[0].0);
        let res: Vec<String> = items.iter().map(|(r, _)| r.resource.to_string()).collect();
        let modes: Vec<String> = items
            .iter()
            .map(|(r, _)| r.mode.as_str().to_owned())
            .collect();
        let owner = items
            .first()
            .map(|(r, _)| r.owner.to_string())
            .unwrap_or_default();
        let (lease, now) = (ms(self.opts.waiter_lease), self.clock_ms());
        let row = self.call(move |c| async move {
            c.client
                .query_one(&c.stmts.enqueue, &[&res, &owner, &modes, &lease, &now])
                .await
        })?;
        let ticket: i64 = row.try_get(0).map_err(|e| corrupt("(ticket)", e))?;
        let mut backoff = Duration::from_millis(1);
        loop {
            let seen = *self.freed.generation.lock();
            let sent = Instant::now();
            let holders = match self.attempt(items, Some(ticket))? {
                Ok(locks) => return self.delivered(&locks, sent, ttl).map(|()| locks),
                Err((_, h)) => h,
            };
            let at = Instant::now();
            if patience.over(at) {
                self.call(
                    move |c| async move { c.client.execute(&c.stmts.abandon, &[&ticket]).await },
                )?;
                return Err(patience.timed_out(resource, holders, at));
            }
            let now = self.now_of_db()?;
            let until = [
                Some(patience.wake_by(at)),
                Some(at + backoff),
                next_lapse(&holders, at, now),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(at);
            let mut generation = self.freed.generation.lock();
            if *generation == seen {
                self.freed.cond.wait_until(&mut generation, until);
            }
            backoff = (backoff * 2).min(self.opts.max_poll);
        }
    }

    /// Release (`renew_ttl` None) or renew the owner's lock.
    fn own(&self, resource: &Resource, owner: &Owner, renew_ttl: Option<i64>) -> Result<Lock> {
        let (r, o, now) = (resource.to_string(), owner.to_string(), self.clock_ms());
        let rows = self.call(move |c| async move {
            c.client
                .query(&c.stmts.own, &[&r, &o, &renew_ttl, &now])
                .await
        })?;
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
