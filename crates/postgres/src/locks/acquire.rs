//! Acquiring: one attempt that grants every request or none, and waiting in line (a waiter
//! row with a ticket) woken by `LISTEN/NOTIFY`, polling as the fallback.

use std::time::{Duration, Instant};

use oc_locks::backend::{Patience, canonical_items, conflict, next_lapse, unexpired};
use oc_locks::{Holder, KeepWaiting, Lock, LockRequest, Result, Timestamp};
use parking_lot::{Condvar, Mutex};
use tokio_postgres::AsyncMessage;
use tokio_postgres::types::ToSql;

use super::PgLockManager;
use super::row::{corrupt, ms, row_holder, row_lock};

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
