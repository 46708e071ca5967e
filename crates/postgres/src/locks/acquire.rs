//! Acquiring: one attempt that grants every request or none, and waiting in line (a waiter
//! row with a ticket) woken by `LISTEN/NOTIFY`, polling as the fallback.

use std::time::{Duration, Instant};

use oc_locks::backend::{Patience, canonical_items, conflict, fingerprint, next_lapse, unexpired};
use oc_locks::{
    Error, Holder, IDEMPOTENCY_KEY_TTL, IDEMPOTENCY_SWEEP_BATCH, IdempotencyKey, KeepWaiting,
    Keyed, Lock, LockRequest, Owner, Resource, Result, Timestamp,
};
use parking_lot::{Condvar, Mutex};
use tokio_postgres::AsyncMessage;
use tokio_postgres::types::ToSql;

use super::PgLockManager;
use super::row::{corrupt, ms, row_holder, row_lock};
use super::statements::LockStatements;
use crate::errors::lock_error;

/// Wakes waiters of this process when a lock is freed: by a release here, or by a
/// notification from the server (a release on any host). Notifications are hints, since they
/// can be lost; waiters poll as well.
#[derive(Default)]
pub(super) struct Freed {
    generation: Mutex<u64>,
    cond: Condvar,
}

impl Freed {
    pub(super) fn wake(&self) {
        *self.generation.lock() += 1;
        self.cond.notify_all();
    }
}

type Blocked = (String, Vec<Holder>);

/// The parameters of `sql/acquire.sql` by name (`lock_acquire`'s arguments): the requests, who
/// asks, the waiter's ticket and the time. `sql/enqueue.sql` takes some of them.
struct AcquireParams {
    /// The resources requested, in the canonical order of the requests.
    resources: Vec<String>,
    /// The owner of the requests (of the first; they all have the same).
    owner: String,
    /// Each request's mode.
    modes: Vec<String>,
    /// Each request's lease in milliseconds.
    ttls: Vec<i64>,
    /// The waiter's ticket, or `None` for the first attempt, before waiting in line.
    ticket: Option<i64>,
    /// How long the waiter's row lives unless an attempt renews it, in milliseconds.
    lease: i64,
    /// Whether a conflict is counted: on the first attempt only.
    count_conflict: bool,
    /// The manager's clock in milliseconds, or `None` for the database's.
    now: Option<i64>,
}

impl AcquireParams {
    /// The parameters of an attempt at `items` by the waiter `ticket` (if any), with waiters'
    /// rows living `waiter_lease`, at `now`.
    fn new(
        items: &[(&LockRequest, Duration)],
        ticket: Option<i64>,
        waiter_lease: Duration,
        now: Option<i64>,
    ) -> Self {
        AcquireParams {
            resources: items.iter().map(|(r, _)| r.resource.to_string()).collect(),
            owner: items
                .first()
                .map(|(r, _)| r.owner.to_string())
                .unwrap_or_default(),
            modes: items
                .iter()
                .map(|(r, _)| r.mode.as_str().to_owned())
                .collect(),
            ttls: items.iter().map(|(_, t)| ms(*t)).collect(),
            ticket,
            lease: ms(waiter_lease),
            count_conflict: ticket.is_none(),
            now,
        }
    }

    /// The parameters in the order of `sql/acquire.sql` (`$1` … `$8`).
    fn params(&self) -> [&(dyn ToSql + Sync); 8] {
        [
            &self.resources,
            &self.owner,
            &self.modes,
            &self.ttls,
            &self.ticket,
            &self.lease,
            &self.count_conflict,
            &self.now,
        ]
    }

    /// The parameters of `sql/enqueue.sql` (`$1` … `$5`): the requests, who asks, the lease of
    /// the waiter's row and the time.
    fn enqueue_params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.resources,
            &self.owner,
            &self.modes,
            &self.lease,
            &self.now,
        ]
    }
}

impl PgLockManager {
    /// One attempt at granting `items` (all or none); `Err` carries the first blocked
    /// resource and who blocks it.
    fn attempt(
        &self,
        items: &[(&LockRequest, Duration)],
        ticket: Option<i64>,
    ) -> Result<std::result::Result<Vec<Lock>, Blocked>> {
        let p = AcquireParams::new(items, ticket, self.opts.waiter_lease, self.clock_ms());
        let rows =
            self.call(move |c| async move { c.client.query(&c.stmts.acquire, &p.params()).await })?;
        self.tick();
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
    pub(super) fn delivered(&self, locks: &[Lock], sent: Instant, ttl: Duration) -> Result<()> {
        match self.clock_ms() {
            Some(now) => unexpired(locks, Timestamp::from_millis(now)),
            None if sent.elapsed() < ttl => Ok(()),
            None => unexpired(locks, Timestamp::from_millis(i64::MAX)),
        }
    }

    pub(super) fn acquire_many_with(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
    ) -> Result<Vec<Lock>> {
        let items = canonical_items(reqs, &self.opts.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        self.acquire_items(&items, wait, watcher)
    }

    pub(super) fn acquire_items(
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
        let p = AcquireParams::new(items, None, self.opts.waiter_lease, self.clock_ms());
        let row = self.call(move |c| async move {
            c.client
                .query_one(&c.stmts.enqueue, &p.enqueue_params())
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
}

/// What one keyed attempt found.
enum Attempt {
    /// The key was known: its first grant.
    Replay(Vec<Lock>),
    /// Granted now (the key recorded with it).
    Granted(Vec<Lock>),
    /// In someone's way (no key recorded).
    Blocked(Blocked),
}

/// Takes the key's lock, sweeps a batch of lapsed keys and looks the key up: the time, and
/// the locks recorded for the same request if any; an inner error for another request.
pub(super) async fn key_begin(
    t: &tokio_postgres::Transaction<'_>,
    st: &LockStatements,
    schema: &str,
    (key, request): (&IdempotencyKey, &str),
    clock: Option<i64>,
) -> std::result::Result<Result<(i64, Option<Vec<Lock>>)>, tokio_postgres::Error> {
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
        return Ok(Ok((now, None)));
    };
    let (known, result): (String, String) = match (r.try_get(0), r.try_get(1)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Ok(Err(corrupt("(idempotency key)", "unreadable row"))),
    };
    if known != request {
        return Ok(Err(key.conflict()));
    }
    Ok(serde_json::from_str(&result)
        .map(|locks| (now, Some(locks)))
        .map_err(|e| corrupt("(idempotency key)", e)))
}

/// Records the key with the locks it was given, in the transaction of the change.
pub(super) async fn key_end(
    t: &tokio_postgres::Transaction<'_>,
    st: &LockStatements,
    (key, request): (&IdempotencyKey, &str),
    locks: &[Lock],
    now: i64,
) -> std::result::Result<Result<()>, tokio_postgres::Error> {
    let json = match serde_json::to_string(locks) {
        Ok(j) => j,
        Err(e) => return Ok(Err(corrupt("(idempotency key)", e))),
    };
    t.execute(
        &st.key_write,
        &[&key.agent(), &key.key(), &request, &json, &now],
    )
    .await?;
    Ok(Ok(()))
}

impl PgLockManager {
    /// One keyed attempt, in one transaction with the key: replay, grant (recording the key),
    /// or blocked. A replay leaves the queue (`ticket`).
    fn attempt_keyed(
        &self,
        items: &[(&LockRequest, Duration)],
        ticket: Option<i64>,
        key: (&IdempotencyKey, &str),
    ) -> Result<Attempt> {
        let p = AcquireParams::new(items, ticket, self.opts.waiter_lease, self.clock_ms());
        let (schema, clock) = (self.opts.pg.schema.clone(), self.clock_ms());
        let (k, request) = (key.0.clone(), key.1.to_owned());
        let out = self.pool.transaction(move |t, st| {
            Box::pin(async move {
                let (now, known) = inner!(key_begin(t, st, &schema, (&k, &request), clock).await?);
                if let Some(locks) = known {
                    if let Some(ticket) = ticket {
                        t.execute(&st.abandon, &[&ticket]).await?;
                    }
                    return Ok(Ok(Attempt::Replay(locks)));
                }
                let rows = t.query(&st.acquire, &p.params()).await?;
                let granted: bool = match rows.first() {
                    Some(r) => inner!(r.try_get(0).map_err(|e| corrupt("(acquire)", e))),
                    None => return Ok(Err(corrupt("(acquire)", "the server granted nothing"))),
                };
                if granted {
                    let locks = inner!(
                        rows.iter()
                            .map(|r| row_lock(r, 2))
                            .collect::<Result<Vec<_>>>()
                    );
                    inner!(key_end(t, st, (&k, &request), &locks, now).await?);
                    Ok(Ok(Attempt::Granted(locks)))
                } else {
                    let blocked: String =
                        inner!(rows[0].try_get(1).map_err(|e| corrupt("(acquire)", e)));
                    let holders = inner!(
                        rows.iter()
                            .map(|r| row_holder(r, 2))
                            .collect::<Result<Vec<_>>>()
                    );
                    Ok(Ok(Attempt::Blocked((blocked, holders))))
                }
            })
        });
        out.map_err(lock_error)?
    }

    /// `acquire_many_keyed`: [`Self::acquire_items`], each attempt keyed.
    pub(super) fn acquire_keyed_items(
        &self,
        items: &[(&LockRequest, Duration)],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
        key: (&IdempotencyKey, &str),
    ) -> Result<Keyed<Vec<Lock>>> {
        let ttl = items.iter().map(|(_, t)| *t).min().unwrap_or_default();
        let replay = |value| Keyed {
            value,
            replayed: true,
        };
        let fresh = |value| Keyed {
            value,
            replayed: false,
        };
        let sent = Instant::now();
        let (resource, holders) = match self.attempt_keyed(items, None, key)? {
            Attempt::Replay(locks) => return Ok(replay(locks)),
            Attempt::Granted(locks) => {
                return self.delivered(&locks, sent, ttl).map(|()| fresh(locks));
            }
            Attempt::Blocked(b) => b,
        };
        if wait.is_zero() {
            return Err(conflict(resource, holders));
        }
        self.listen();
        let patience = Patience::new(wait, watcher, items[0].0);
        let p = AcquireParams::new(items, None, self.opts.waiter_lease, self.clock_ms());
        let row = self.call(move |c| async move {
            c.client
                .query_one(&c.stmts.enqueue, &p.enqueue_params())
                .await
        })?;
        let ticket: i64 = row.try_get(0).map_err(|e| corrupt("(ticket)", e))?;
        let mut backoff = Duration::from_millis(1);
        loop {
            let seen = *self.freed.generation.lock();
            let sent = Instant::now();
            let holders = match self.attempt_keyed(items, Some(ticket), key)? {
                Attempt::Replay(locks) => return Ok(replay(locks)),
                Attempt::Granted(locks) => {
                    return self.delivered(&locks, sent, ttl).map(|()| fresh(locks));
                }
                Attempt::Blocked((_, h)) => h,
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

    /// `release_keyed`: `lock_own` in one transaction with the key.
    pub(super) fn release_keyed_tx(
        &self,
        key: &IdempotencyKey,
        resource: &Resource,
        owner: &Owner,
    ) -> Result<Keyed<Lock>> {
        let request = fingerprint(&[], Some((resource, owner)));
        let (schema, clock) = (self.opts.pg.schema.clone(), self.clock_ms());
        let (k, r, o) = (key.clone(), resource.clone(), owner.clone());
        let out = self.pool.transaction(move |t, st| {
            Box::pin(async move {
                let (now, known) = inner!(key_begin(t, st, &schema, (&k, &request), clock).await?);
                if let Some(mut locks) = known {
                    return Ok(locks
                        .pop()
                        .map(|value| Keyed {
                            value,
                            replayed: true,
                        })
                        .ok_or_else(|| k.conflict()));
                }
                let (rs, os) = (r.to_string(), o.to_string());
                let none: Option<i64> = None;
                let rows = t.query(&st.own, &[&rs, &os, &none, &clock]).await?;
                let Some(first) = rows.first() else {
                    return Ok(Err(corrupt(r.as_str(), "no outcome")));
                };
                let outcome: String = inner!(first.try_get(0).map_err(|e| corrupt("(outcome)", e)));
                match outcome.as_str() {
                    "not_held" => Ok(Err(Error::NotHeld {
                        resource: rs,
                        owner: os,
                        holders: inner!(
                            rows[1..]
                                .iter()
                                .map(|x| row_lock(x, 1).map(|l| l.holder()))
                                .collect::<Result<_>>()
                        ),
                    })),
                    "expired" => Ok(Err(Error::Expired {
                        resource: rs,
                        owner: os,
                    })),
                    _ => {
                        let l = inner!(row_lock(first, 1));
                        inner!(
                            key_end(t, st, (&k, &request), std::slice::from_ref(&l), now).await?
                        );
                        Ok(Ok(Keyed {
                            value: l,
                            replayed: false,
                        }))
                    }
                }
            })
        });
        let out = out.map_err(lock_error)?;
        if matches!(&out, Ok(k) if !k.replayed && k.value.holds == 0)
            || matches!(out, Err(Error::Expired { .. }))
        {
            self.freed.wake();
        }
        out
    }
}
