//! `SqliteLockManager`: locks shared by the processes of one machine through a SQLite file.
//!
//! The tables live beside the task store's in the same file (`oc_locks`, `oc_lock_waiters`,
//! `oc_locks_meta`), migrated by this crate alone under its own row of `oc_schema`; the connection is
//! opened and migrated by `oc_sqlite` (`Connect`, `migrate`), so a file where WAL cannot be enabled
//! is refused, as the task store refuses it.
//! Every operation is one `BEGIN IMMEDIATE` transaction, so the processes sharing the file see
//! one consistent lock table; fencing tokens and counters live in `oc_locks_meta`, so they grow
//! across processes and restarts. Expiry is judged by the wall clock, which all processes on
//! one machine share.
//!
//! Waiting across processes: a waiter takes a ticket and records its request in
//! `oc_lock_waiters` (with a short lease it refreshes, so a killed waiter drops out), and polls
//! with exponential backoff up to 25 ms; releases in the same process wake it at once.
//! A request never overtakes an earlier live waiter it conflicts with, whichever process that is.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior};

use oc_sqlite::{Connect, Durability, Fence};
use oc_time::{Clock, SystemClock, Timestamp};

use crate::backend::{Patience, canonical_items, conflict, fingerprint, unexpired};
use crate::model::{Blocked, Counters, next_lapse};
use crate::{Error, Lock, LockManager, LockRequest, LockStats, Owner, Resource, Result, TtlPolicy};
use crate::{IdempotencyKey, KeepWaiting, Keyed};

mod keys;
mod table;

use keys::{KeyArg, key_forget, key_remember, key_replay};
use table::{
    COLS, bump, delete_lock, others_on, overlapping, own_lock, query_locks, record_release,
    try_grant,
};

const COMPONENT: &str = "oc-locks";
const MIGRATIONS: &[&str] = &[
    // 1: locks, waiters, token and counters.
    "CREATE TABLE oc_locks (
        resource    TEXT NOT NULL,
        owner       TEXT NOT NULL,
        mode        TEXT NOT NULL CHECK (mode IN ('exclusive', 'shared')),
        token       INTEGER NOT NULL,
        holds       INTEGER NOT NULL CHECK (holds > 0),
        acquired_at INTEGER NOT NULL,
        expires_at  INTEGER NOT NULL,
        PRIMARY KEY (resource, owner)
    ) WITHOUT ROWID;
    CREATE INDEX oc_locks_owner ON oc_locks (owner);
    CREATE INDEX oc_locks_expiry ON oc_locks (expires_at);
    CREATE TABLE oc_lock_waiters (
        ticket     INTEGER NOT NULL,
        resource   TEXT NOT NULL,
        owner      TEXT NOT NULL,
        mode       TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (ticket, resource)
    ) WITHOUT ROWID;
    CREATE TABLE oc_locks_meta (key TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO oc_locks_meta (key, value) VALUES
        ('token', 0), ('ticket', 0), ('total', 0), ('expired', 0), ('conflicts', 0), ('released', 0),
        ('reentrant', 0), ('hold_total_ms', 0), ('hold_max_ms', 0), ('waits', 0), ('timeouts', 0);",
    // 2: the synced ceiling of fencing tokens (`oc_sqlite::Fence`): no token above it was ever
    // handed out.
    "INSERT INTO oc_locks_meta (key, value)
        SELECT 'token_ceiling', value FROM oc_locks_meta WHERE key = 'token';",
    // 3: idempotency keys (`IdempotencyKey`), per acting agent: the request's fingerprint and
    // the locks it was given (JSON), written in the transaction of the grant or release.
    "CREATE TABLE oc_lock_keys (
        agent   TEXT NOT NULL,
        key     TEXT NOT NULL,
        request TEXT NOT NULL,
        result  TEXT NOT NULL,
        at      INTEGER NOT NULL,
        PRIMARY KEY (agent, key)
    );
    CREATE INDEX oc_lock_keys_at ON oc_lock_keys (at);",
];

/// How to open a [`SqliteLockManager`].
#[derive(Clone)]
pub struct SqliteLockOptions {
    busy_timeout: Duration,
    ttl: TtlPolicy,
    clock: Arc<dyn Clock>,
    max_poll: Duration,
    waiter_lease: Duration,
    durability: Durability,
}

impl fmt::Debug for SqliteLockOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLockOptions")
            .field("busy_timeout", &self.busy_timeout)
            .field("ttl", &self.ttl)
            .field("max_poll", &self.max_poll)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl Default for SqliteLockOptions {
    fn default() -> Self {
        SqliteLockOptions {
            busy_timeout: Duration::from_secs(5),
            ttl: TtlPolicy::default(),
            clock: Arc::new(SystemClock),
            max_poll: Duration::from_millis(25),
            waiter_lease: Duration::from_secs(2),
            durability: Durability::default(),
        }
    }
}

impl SqliteLockOptions {
    /// The TTL policy (default 30 s, 1 s to 1 h).
    pub fn ttl(mut self, ttl: TtlPolicy) -> Self {
        self.ttl = ttl;
        self
    }
    /// The clock for expiry (the system clock by default, shared by every process).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }
    /// How long a statement waits for another process's transaction.
    pub fn busy_timeout(mut self, d: Duration) -> Self {
        self.busy_timeout = d;
        self
    }
    /// What survives an OS crash or a power loss, at what cost (`oc_sqlite::Durability`:
    /// tokens covered by one synced commit, or a sync at every commit).
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Opens (creating if needed) the database at `path`.
    pub fn open(self, path: impl AsRef<Path>) -> Result<SqliteLockManager> {
        SqliteLockManager::open_with(path.as_ref(), self)
    }
}

/// A [`LockManager`] whose locks live in a SQLite file, shared by every process that opens it.
///
/// ```
/// use oc_locks::{LockManager, LockRequest, Owner, SqliteLockManager};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("opencode.db");
/// let a = SqliteLockManager::open(&path)?;
/// let b = SqliteLockManager::open(&path)?; // as another process would
/// let lock = a.try_acquire(&LockRequest::exclusive("repo/src", "agent-1")?)?;
/// let refused = b.try_acquire(&LockRequest::exclusive("repo/src/lib.rs", "agent-2")?);
/// assert!(refused.unwrap_err().to_string().contains("agent-1"));
/// let e = b.release(&lock.resource, &Owner::new("agent-2")?).unwrap_err(); // not agent-2's lock
/// assert!(e.to_string().contains("held by agent-1"));
/// b.release(&lock.resource, &lock.owner)?; // the owner's release works from any handle
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SqliteLockManager {
    path: PathBuf,
    conn: Mutex<Connection>,
    opts: SqliteLockOptions,
    fence: Fence,
    /// Bumped on every release in this process, to wake its waiters without polling.
    freed: (Mutex<u64>, Condvar),
}

impl fmt::Debug for SqliteLockManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteLockManager")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Whether `e` is SQLite finding the database busy or locked ([`oc_sqlite::retry_busy`]).
fn is_busy(e: &Error) -> bool {
    matches!(
        e,
        Error::Backend {
            backend: "sqlite",
            retryable: true,
            ..
        }
    )
}

/// Retries `f` a few times while SQLite reports the database busy (after its own busy timeout).
fn retry_busy<T>(f: impl FnMut() -> Result<T>) -> Result<T> {
    oc_sqlite::retry_busy(is_busy, f)
}

/// The shared plumbing's error as this crate's (a refused journal mode is invalid input).
fn plumbing(e: oc_sqlite::Error) -> Error {
    match e {
        oc_sqlite::Error::Sqlite(e) => e.into(),
        oc_sqlite::Error::SchemaTooNew { found, supported } => {
            Error::SchemaTooNew { found, supported }
        }
        other => Error::InvalidInput {
            field: "database",
            reason: other.to_string(),
        },
    }
}
/// What one attempt to acquire found.
enum Attempt {
    /// The key was known: its first grant.
    Replay(Vec<Lock>),
    /// Granted now.
    Granted(Vec<Lock>),
    /// In someone's way.
    Blocked(Blocked),
}

impl SqliteLockManager {
    /// Opens (creating if needed) the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path.as_ref(), SqliteLockOptions::default())
    }

    /// Options to open a manager with.
    pub fn options() -> SqliteLockOptions {
        SqliteLockOptions::default()
    }

    fn open_with(path: &Path, opts: SqliteLockOptions) -> Result<Self> {
        let connect = Connect::new(opts.busy_timeout, opts.durability);
        let mut conn = retry_busy(|| connect.writer(path).map_err(plumbing))?;
        retry_busy(|| oc_sqlite::migrate(&mut conn, COMPONENT, MIGRATIONS).map_err(plumbing))?;
        Ok(SqliteLockManager {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            fence: opts
                .durability
                .fence("oc_locks_meta", "token", "token_ceiling"),
            opts,
            freed: (Mutex::new(0), Condvar::new()),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate transaction and commits, whatever `f`'s inner answer is:
    /// refusals also record counters and clean-ups. Then makes any fencing token it took
    /// durable before the caller sees it.
    fn write<T>(
        &self,
        mut f: impl FnMut(&Transaction<'_>, Timestamp) -> Result<Result<T>>,
    ) -> Result<T> {
        let mut conn = self.conn.lock();
        let out = retry_busy(|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx, self.opts.clock.now())?;
            tx.commit()?;
            Ok(out)
        })?;
        retry_busy(|| Ok(self.fence.settle(&mut conn)?))?;
        out
    }

    /// Synced commits this handle made so that its fencing tokens survive power loss (one per
    /// reserve of tokens, plus one for its first token).
    pub fn token_syncs(&self) -> u64 {
        self.fence.syncs()
    }

    fn wake(&self) {
        *self.freed.0.lock() += 1;
        self.freed.1.notify_all();
    }

    fn acquire_many_with(
        &self,
        reqs: &[LockRequest],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
    ) -> Result<Vec<Lock>> {
        let items = canonical_items(reqs, &self.opts.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        Ok(self.acquire_items(&items, wait, watcher, None)?.value)
    }

    fn acquire_items(
        &self,
        items: &[(&LockRequest, Duration)],
        wait: Duration,
        watcher: Option<&KeepWaiting<'_>>,
        key: Option<KeyArg<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        let fresh = |value| Keyed {
            value,
            replayed: false,
        };
        let first = self.write(|tx, now| {
            if let Some(k) = key {
                match key_replay(tx, k, now)? {
                    Ok(None) => {}
                    Ok(Some(locks)) => return Ok(Ok(Attempt::Replay(locks))),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(match try_grant(tx, &self.fence, items, None, now)? {
                Ok(locks) => {
                    if let Some(k) = key {
                        key_remember(tx, k, &locks, now)?;
                    }
                    Attempt::Granted(locks)
                }
                Err(blocked) => {
                    bump(tx, "conflicts", 1)?;
                    Attempt::Blocked(blocked)
                }
            }))
        })?;
        let (resource, holders) = match first {
            Attempt::Replay(value) => {
                return Ok(Keyed {
                    value,
                    replayed: true,
                });
            }
            Attempt::Granted(locks) => {
                return unexpired(&locks, self.opts.clock.now()).map(|()| fresh(locks));
            }
            Attempt::Blocked(b) => b,
        };
        if wait.is_zero() {
            return Err(conflict(resource.to_string(), holders));
        }
        let patience = Patience::new(wait, watcher, items[0].0);
        let lease = self.opts.waiter_lease;
        let ticket = self.write(|tx, now| {
            let ticket = bump(tx, "ticket", 1)?;
            bump(tx, "waits", 1)?;
            for (req, _) in items {
                tx.prepare_cached("INSERT INTO oc_lock_waiters (ticket, resource, owner, mode, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute((ticket, req.resource.as_str(), req.owner.as_str(), req.mode.as_str(), now.saturating_add(lease).as_millis()))?;
            }
            Ok(Ok(ticket))
        })?;
        let mut backoff = Duration::from_millis(1);
        loop {
            let seen = *self.freed.0.lock();
            let attempt = self.write(|tx, now| {
                // Keep my place in the queue alive, and drop waiters whose process went away.
                tx.prepare_cached("UPDATE oc_lock_waiters SET expires_at = ?2 WHERE ticket = ?1")?
                    .execute((ticket, now.saturating_add(lease).as_millis()))?;
                tx.prepare_cached("DELETE FROM oc_lock_waiters WHERE expires_at <= ?1")?
                    .execute([now.as_millis()])?;
                let leave = || -> Result<()> {
                    tx.prepare_cached("DELETE FROM oc_lock_waiters WHERE ticket = ?1")?
                        .execute([ticket])?;
                    Ok(())
                };
                // A retry of the same key may have been granted while this one waited.
                if let Some(k) = key {
                    match key_replay(tx, k, now)? {
                        Ok(None) => {}
                        Ok(Some(locks)) => {
                            leave()?;
                            return Ok(Ok((Attempt::Replay(locks), now)));
                        }
                        Err(e) => {
                            leave()?;
                            return Ok(Err(e));
                        }
                    }
                }
                let r = match try_grant(tx, &self.fence, items, Some(ticket), now)? {
                    Ok(locks) => {
                        leave()?;
                        if let Some(k) = key {
                            key_remember(tx, k, &locks, now)?;
                        }
                        Attempt::Granted(locks)
                    }
                    Err(b) => Attempt::Blocked(b),
                };
                Ok(Ok((r, now)))
            })?;
            let (holders, now) = match attempt {
                (Attempt::Replay(value), _) => {
                    return Ok(Keyed {
                        value,
                        replayed: true,
                    });
                }
                (Attempt::Granted(locks), _) => {
                    return unexpired(&locks, self.opts.clock.now()).map(|()| fresh(locks));
                }
                (Attempt::Blocked((_, h)), now) => (h, now),
            };
            let at = Instant::now();
            if patience.over(at) {
                self.write(|tx, _| {
                    tx.prepare_cached("DELETE FROM oc_lock_waiters WHERE ticket = ?1")?
                        .execute([ticket])?;
                    bump(tx, "timeouts", 1)?;
                    Ok(Ok(()))
                })?;
                return Err(patience.timed_out(resource.to_string(), holders, at));
            }
            let until = [
                Some(patience.wake_by(at)),
                Some(at + backoff),
                next_lapse(&holders, at, now),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(at);
            let mut generation = self.freed.0.lock();
            if *generation == seen {
                self.freed.1.wait_until(&mut generation, until);
            }
            backoff = (backoff * 2).min(self.opts.max_poll);
        }
    }

    /// Drops one hold of the owner's lock in `tx`.
    fn release_in(
        tx: &Transaction<'_>,
        resource: &Resource,
        owner: &Owner,
        now: Timestamp,
    ) -> Result<Result<Lock>> {
        let mut l = match Self::own_live(tx, resource, owner, now)? {
            Ok(l) => l,
            Err(e) => return Ok(Err(e)),
        };
        l.holds -= 1;
        if l.holds > 0 {
            tx.prepare_cached("UPDATE oc_locks SET holds = ?3 WHERE resource = ?1 AND owner = ?2")?
                .execute((resource.as_str(), owner.as_str(), l.holds))?;
        } else {
            delete_lock(tx, &l)?;
            record_release(tx, &l, now)?;
        }
        Ok(Ok(l))
    }

    /// Looks up the owner's live lock for `release`/`renew`; removes it if lapsed.
    fn own_live(
        tx: &Transaction<'_>,
        res: &Resource,
        owner: &Owner,
        now: Timestamp,
    ) -> Result<Result<Lock>> {
        match own_lock(tx, res, owner)? {
            None => Ok(Err(Error::NotHeld {
                resource: res.to_string(),
                owner: owner.to_string(),
                holders: others_on(tx, res, owner, now)?,
            })),
            Some(l) if l.is_expired(now) => {
                delete_lock(tx, &l)?;
                bump(tx, "expired", 1)?;
                Ok(Err(Error::Expired {
                    resource: res.to_string(),
                    owner: owner.to_string(),
                }))
            }
            Some(l) => Ok(Ok(l)),
        }
    }
}

impl LockManager for SqliteLockManager {
    fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
        let ttl = self.opts.ttl.resolve(req.ttl)?;
        let mut v = self.acquire_items(&[(req, ttl)], wait, None, None)?.value;
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
        self.write(|tx, now| {
            let mut l = match Self::own_live(tx, resource, owner, now)? {
                Ok(l) => l,
                Err(e) => return Ok(Err(e)),
            };
            l.expires_at = now.saturating_add(ttl);
            tx.prepare_cached(
                "UPDATE oc_locks SET expires_at = ?3 WHERE resource = ?1 AND owner = ?2",
            )?
            .execute((resource.as_str(), owner.as_str(), l.expires_at.as_millis()))?;
            Ok(Ok(l))
        })
        .and_then(|l| unexpired(std::slice::from_ref(&l), self.opts.clock.now()).map(|()| l))
    }

    fn release(&self, resource: &Resource, owner: &Owner) -> Result<Lock> {
        let out = self.write(|tx, now| Self::release_in(tx, resource, owner, now));
        if matches!(&out, Ok(l) if l.holds == 0) || matches!(out, Err(Error::Expired { .. })) {
            self.wake();
        }
        out
    }

    fn acquire_many_keyed(
        &self,
        key: &IdempotencyKey,
        reqs: &[LockRequest],
        wait: Duration,
        keep_waiting: Option<&KeepWaiting<'_>>,
    ) -> Result<Keyed<Vec<Lock>>> {
        let items = canonical_items(reqs, &self.opts.ttl)?;
        let items: Vec<(&LockRequest, Duration)> = items.iter().map(|(r, t)| (r, *t)).collect();
        let request = fingerprint(reqs, None);
        self.acquire_items(&items, wait, keep_waiting, Some((key, &request)))
    }

    fn release_keyed(
        &self,
        key: &IdempotencyKey,
        resource: &Resource,
        owner: &Owner,
    ) -> Result<Keyed<Lock>> {
        let request = fingerprint(&[], Some((resource, owner)));
        let out = self.write(|tx, now| {
            match key_replay(tx, (key, &request), now)? {
                Ok(None) => {}
                Ok(Some(mut v)) => {
                    return Ok(v
                        .pop()
                        .map(|value| Keyed {
                            value,
                            replayed: true,
                        })
                        .ok_or_else(|| key.conflict()));
                }
                Err(e) => return Ok(Err(e)),
            }
            let l = match Self::release_in(tx, resource, owner, now)? {
                Ok(l) => l,
                Err(e) => return Ok(Err(e)),
            };
            key_remember(tx, (key, &request), std::slice::from_ref(&l), now)?;
            Ok(Ok(Keyed {
                value: l,
                replayed: false,
            }))
        });
        if matches!(&out, Ok(l) if !l.replayed && l.value.holds == 0)
            || matches!(out, Err(Error::Expired { .. }))
        {
            self.wake();
        }
        out
    }

    fn release_forgetting(&self, key: &IdempotencyKey) -> Result<Vec<Lock>> {
        let out = self.write(|tx, now| {
            let granted = match key_forget(tx, key, now)? {
                Ok(granted) => granted,
                Err(e) => return Ok(Err(e)),
            };
            let mut released = Vec::with_capacity(granted.len());
            for g in &granted {
                let still = own_lock(tx, &g.resource, &g.owner)?
                    .is_some_and(|l| l.token == g.token && !l.is_expired(now));
                if still {
                    match Self::release_in(tx, &g.resource, &g.owner, now)? {
                        Ok(l) => released.push(l),
                        Err(e) => return Ok(Err(e)),
                    }
                }
            }
            Ok(Ok(released))
        });
        if matches!(&out, Ok(v) if v.iter().any(|l| l.holds == 0)) {
            self.wake();
        }
        out
    }

    fn release_owner(&self, owner: &Owner) -> Result<Vec<Lock>> {
        let out = self.write(|tx, now| {
            let locks = query_locks(
                tx,
                &format!("SELECT {COLS} FROM oc_locks WHERE owner = ?1 ORDER BY resource"),
                [owner.as_str()],
            )?;
            for l in &locks {
                delete_lock(tx, l)?;
                if l.is_expired(now) {
                    bump(tx, "expired", 1)?;
                } else {
                    record_release(tx, l, now)?;
                }
            }
            Ok(Ok(locks))
        });
        self.wake();
        out
    }

    fn sweep_expired(&self) -> Result<Vec<Lock>> {
        let out = self.write(|tx, now| {
            let gone = query_locks(
                tx,
                &format!(
                    "SELECT {COLS} FROM oc_locks WHERE expires_at <= ?1 ORDER BY resource, owner"
                ),
                [now.as_millis()],
            )?;
            for l in &gone {
                delete_lock(tx, l)?;
            }
            bump(tx, "expired", gone.len() as u64)?;
            tx.prepare_cached("DELETE FROM oc_lock_waiters WHERE expires_at <= ?1")?
                .execute([now.as_millis()])?;
            Ok(Ok(gone))
        });
        self.wake();
        out
    }

    fn holders(&self, resource: &Resource) -> Result<Vec<Lock>> {
        let conn = self.conn.lock();
        let mut v = overlapping(&conn, resource, self.opts.clock.now())?;
        v.sort_by(|a, b| (&a.resource, &a.owner).cmp(&(&b.resource, &b.owner)));
        Ok(v)
    }

    fn list(&self) -> Result<Vec<Lock>> {
        let conn = self.conn.lock();
        query_locks(
            &conn,
            &format!("SELECT {COLS} FROM oc_locks WHERE expires_at > ?1 ORDER BY resource, owner"),
            [self.opts.clock.now().as_millis()],
        )
    }

    fn stats(&self) -> Result<LockStats> {
        // Sweep first, so `expiredLocks` counts every lock that has lapsed by now.
        self.sweep_expired()?;
        let conn = self.conn.lock();
        let now = self.opts.clock.now();
        let meta: std::collections::HashMap<String, i64> = {
            let mut stmt = conn.prepare_cached("SELECT key, value FROM oc_locks_meta")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let get = |k: &str| u64::try_from(meta.get(k).copied().unwrap_or(0)).unwrap_or(0);
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
        let live = query_locks(
            &conn,
            &format!("SELECT {COLS} FROM oc_locks WHERE expires_at > ?1"),
            [now.as_millis()],
        )?;
        let waiting: i64 = conn
            .prepare_cached(
                "SELECT COUNT(DISTINCT ticket) FROM oc_lock_waiters WHERE expires_at > ?1",
            )?
            .query_row([now.as_millis()], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        Ok(counters.into_stats(live.iter(), u64::try_from(waiting).unwrap_or(0), now))
    }

    fn now(&self) -> Timestamp {
        self.opts.clock.now()
    }
}
