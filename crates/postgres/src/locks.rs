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

use crate::client::{Failure, PgOptions, Pool, Prepare, describe, retryable};
use crate::schema::migrate;

const COMPONENT: &str = "oc-locks";

/// The overlap of a lock's (or waiter's) `resource` column `x` with the requested `r`, whose
/// ancestors are `a`: the same resource, an ancestor, or a descendant (by byte order: `'0'`
/// follows `'/'`), each answered by the B-tree on `resource`.
macro_rules! overlap {
    ($x:literal) => {
        concat!(
            "(",
            $x,
            " = r OR ",
            $x,
            " = ANY(a) OR (",
            $x,
            " >= (r || '/') COLLATE \"C\" AND ",
            $x,
            " < (r || '0') COLLATE \"C\"))"
        )
    };
}

/// The functions every lock operation is one call of, created by the first migration and
/// replaced by later ones whenever they change.
macro_rules! lock_functions {
    () => {
        concat!(
            "    -- The manager's time, read once the operation holds the manager's row: the caller's or the
    -- database's clock, but never behind a time an earlier operation used, so an operation that
    -- waited for the row behind a later one cannot act in the past (and see as live a lock
    -- another operation already took as lapsed).
    CREATE OR REPLACE FUNCTION {s}.lock_clock(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE AS
        $$ UPDATE {s}.lock_meta
           SET value = greatest(value, coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint))
           WHERE key = 'clock' RETURNING value $$;

CREATE OR REPLACE FUNCTION {s}.lock_now(p_now bigint) RETURNS bigint LANGUAGE sql VOLATILE AS
        $$ SELECT coalesce(p_now, (extract(epoch FROM clock_timestamp()) * 1000)::bigint) $$;

    CREATE OR REPLACE FUNCTION {s}.lock_ancestors(r text) RETURNS text[] LANGUAGE sql IMMUTABLE AS
        $$ SELECT coalesce(array_agg(array_to_string((string_to_array(r, '/'))[1:k], '/') ORDER BY k),
                           '{}'::text[])
           FROM generate_series(1, cardinality(string_to_array(r, '/')) - 1) AS k $$;

    -- Every function below is PL/pgSQL with its statements inline: their plans are cached
    -- per session, where a call of an SQL function is planned anew each time.

    -- Grants every request or none; when one is blocked, returns its blockers (granted false).
    CREATE OR REPLACE FUNCTION {s}.lock_acquire(p_res text[], p_owner text, p_mode text[], p_ttl bigint[],
            p_ticket bigint, p_lease bigint, p_count_conflict boolean, p_now bigint)
        RETURNS TABLE (granted boolean, blocked text, resource text, owner text, mode text,
                       token bigint, holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE
        v_now bigint;
        i integer; r text; m text; a text[]; own_mode text; has_own boolean; n bigint; tok bigint;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        IF p_ticket IS NOT NULL THEN
            UPDATE {s}.lock_waiters w SET expires_at = v_now + p_lease WHERE w.ticket = p_ticket;
            DELETE FROM {s}.lock_waiters w WHERE w.expires_at <= v_now;
        END IF;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i]; a := {s}.lock_ancestors(r);
            SELECT l.mode INTO own_mode FROM {s}.locks l
                WHERE l.resource = r AND l.owner = p_owner AND l.expires_at > v_now;
            has_own := FOUND;
            -- Re-entry never waits, but an upgrade needs everyone else gone.
            IF NOT has_own OR (own_mode = 'shared' AND m = 'exclusive') THEN
                IF EXISTS (SELECT 1 FROM {s}.locks l WHERE l.expires_at > v_now
                           AND l.owner <> p_owner AND (l.mode = 'exclusive' OR m = 'exclusive')
                           AND ", overlap!("l.resource"), ") THEN
                    IF p_count_conflict THEN UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'conflicts'; END IF;
                    RETURN QUERY SELECT false, r, l.resource::text, l.owner::text, l.mode,
                            NULL::bigint, NULL::integer, NULL::bigint, l.expires_at
                        FROM {s}.locks l WHERE l.expires_at > v_now
                           AND l.owner <> p_owner AND (l.mode = 'exclusive' OR m = 'exclusive')
                           AND ", overlap!("l.resource"), "
                        ORDER BY l.resource, l.owner;
                    RETURN;
                END IF;
            END IF;
            -- Nor does a new grant overtake an earlier live waiter it conflicts with.
            IF NOT has_own AND EXISTS (SELECT 1 FROM {s}.lock_waiters w WHERE w.expires_at > v_now
                       AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                       AND (w.mode = 'exclusive' OR m = 'exclusive')
                       AND ", overlap!("w.resource"), ") THEN
                IF p_count_conflict THEN UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'conflicts'; END IF;
                RETURN QUERY SELECT false, r, w.resource::text, w.owner::text, w.mode,
                        NULL::bigint, NULL::integer, NULL::bigint, NULL::bigint
                    FROM {s}.lock_waiters w WHERE w.expires_at > v_now
                       AND (p_ticket IS NULL OR w.ticket < p_ticket) AND w.owner <> p_owner
                       AND (w.mode = 'exclusive' OR m = 'exclusive')
                       AND ", overlap!("w.resource"), "
                    ORDER BY w.ticket, w.resource;
                RETURN;
            END IF;
        END LOOP;
        FOR i IN 1 .. cardinality(p_res) LOOP
            r := p_res[i]; m := p_mode[i];
            -- Lapsed locks on this exact resource (the owner's own included) go first.
            DELETE FROM {s}.locks l WHERE l.resource = r AND l.expires_at <= v_now;
            GET DIAGNOSTICS n = ROW_COUNT;
            IF n > 0 THEN UPDATE {s}.lock_meta SET value = value + n WHERE key = 'expired'; END IF;
            UPDATE {s}.locks l SET holds = l.holds + 1,
                    expires_at = greatest(l.expires_at, v_now + p_ttl[i]),
                    mode = CASE WHEN m = 'exclusive' THEN 'exclusive' ELSE l.mode END
                WHERE l.resource = r AND l.owner = p_owner;
            IF FOUND THEN
                UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'reentrant';
            ELSE
                WITH u AS (
                    UPDATE {s}.lock_meta SET value = value + 1 WHERE key IN ('token', 'total')
                    RETURNING key, value
                ) SELECT u.value INTO tok FROM u WHERE u.key = 'token';
                INSERT INTO {s}.locks (resource, owner, mode, token, holds, acquired_at, expires_at)
                    VALUES (r, p_owner, m, tok, 1, v_now, v_now + p_ttl[i]);
            END IF;
            RETURN QUERY SELECT true, NULL::text, l.resource::text, l.owner::text, l.mode,
                    l.token, l.holds, l.acquired_at, l.expires_at
                FROM {s}.locks l WHERE l.resource = r AND l.owner = p_owner;
        END LOOP;
        IF p_ticket IS NOT NULL THEN
            DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
        END IF;
    END $$;

    CREATE OR REPLACE FUNCTION {s}.lock_enqueue(p_res text[], p_owner text, p_mode text[], p_lease bigint,
            p_now bigint) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; t bigint;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'ticket' RETURNING value INTO t;
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'waits';
        INSERT INTO {s}.lock_waiters (ticket, resource, owner, mode, expires_at)
            SELECT t, x.r, p_owner, x.m, v_now + p_lease FROM unnest(p_res, p_mode) AS x(r, m);
        RETURN t;
    END $$;

    CREATE OR REPLACE FUNCTION {s}.lock_abandon(p_ticket bigint) RETURNS void LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        DELETE FROM {s}.lock_waiters w WHERE w.ticket = p_ticket;
        UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'timeouts';
    END $$;

    -- Release or renew the owner's live lock. The first row says what happened
    -- (released, renewed, expired, not_held) with the lock; after a not_held come the holders.
    CREATE OR REPLACE FUNCTION {s}.lock_own(p_res text, p_owner text, p_renew_ttl bigint, p_now bigint)
        RETURNS TABLE (outcome text, resource text, owner text, mode text, token bigint,
                       holds integer, acquired_at bigint, expires_at bigint)
        LANGUAGE plpgsql VOLATILE AS $$
    #variable_conflict use_column
    DECLARE v_now bigint; l {s}.locks%ROWTYPE;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        SELECT * INTO l FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'not_held', NULL::text, NULL::text, NULL::text, NULL::bigint,
                NULL::integer, NULL::bigint, NULL::bigint;
            RETURN QUERY SELECT 'holder', x.resource::text, x.owner::text, x.mode, x.token,
                    x.holds, x.acquired_at, x.expires_at
                FROM {s}.locks x WHERE x.resource = p_res AND x.owner <> p_owner
                   AND x.expires_at > v_now ORDER BY x.owner;
            RETURN;
        END IF;
        IF l.expires_at <= v_now THEN
            DELETE FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner;
            UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'expired';
            PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters);
            RETURN QUERY SELECT 'expired', NULL::text, NULL::text, NULL::text, NULL::bigint,
                NULL::integer, NULL::bigint, NULL::bigint;
            RETURN;
        END IF;
        IF p_renew_ttl IS NOT NULL THEN
            UPDATE {s}.locks x SET expires_at = v_now + p_renew_ttl
                WHERE x.resource = p_res AND x.owner = p_owner;
            l.expires_at := v_now + p_renew_ttl;
            RETURN QUERY SELECT 'renewed', l.resource::text, l.owner::text, l.mode, l.token,
                l.holds, l.acquired_at, l.expires_at;
            RETURN;
        END IF;
        l.holds := l.holds - 1;
        IF l.holds > 0 THEN
            UPDATE {s}.locks x SET holds = l.holds WHERE x.resource = p_res AND x.owner = p_owner;
        ELSE
            DELETE FROM {s}.locks x WHERE x.resource = p_res AND x.owner = p_owner;
            UPDATE {s}.lock_meta SET value = CASE key WHEN 'released' THEN value + 1 WHEN 'hold_total_ms' THEN value + greatest(v_now - l.acquired_at, 0) ELSE greatest(value, v_now - l.acquired_at) END WHERE key IN ('released', 'hold_total_ms', 'hold_max_ms');
            PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters);
        END IF;
        RETURN QUERY SELECT 'released', l.resource::text, l.owner::text, l.mode, l.token,
            l.holds, l.acquired_at, l.expires_at;
    END $$;

    CREATE OR REPLACE FUNCTION {s}.lock_release_owner(p_owner text, p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; l {s}.locks%ROWTYPE;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.owner = p_owner RETURNING * LOOP
            IF l.expires_at <= v_now THEN
                UPDATE {s}.lock_meta SET value = value + 1 WHERE key = 'expired';
            ELSE
                UPDATE {s}.lock_meta SET value = CASE key WHEN 'released' THEN value + 1 WHEN 'hold_total_ms' THEN value + greatest(v_now - l.acquired_at, 0) ELSE greatest(value, v_now - l.acquired_at) END WHERE key IN ('released', 'hold_total_ms', 'hold_max_ms');
            END IF;
            RETURN NEXT l;
        END LOOP;
        PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters);
    END $$;

    CREATE OR REPLACE FUNCTION {s}.lock_sweep(p_now bigint)
        RETURNS SETOF {s}.locks LANGUAGE plpgsql VOLATILE AS $$
    DECLARE v_now bigint; n bigint := 0; l {s}.locks%ROWTYPE;
    BEGIN
        PERFORM 1 FROM {s}.lock_meta WHERE key = 'token' FOR UPDATE;
        v_now := {s}.lock_clock(p_now);
        FOR l IN DELETE FROM {s}.locks x WHERE x.expires_at <= v_now RETURNING * LOOP
            n := n + 1;
            RETURN NEXT l;
        END LOOP;
        UPDATE {s}.lock_meta SET value = value + n WHERE key = 'expired';
        DELETE FROM {s}.lock_waiters w WHERE w.expires_at <= v_now;
        IF n > 0 THEN PERFORM pg_notify('oc_locks_' || '{n}', '') WHERE EXISTS (SELECT 1 FROM {s}.lock_waiters); END IF;
    END $$;"
        )
    };
}

pub(crate) const MIGRATIONS: &[&str] = &[
    concat!(
        // 1: locks, waiters, counters, and the functions every operation is one call of.
        "CREATE TABLE {s}.lock_meta (key text PRIMARY KEY, value bigint NOT NULL);
    INSERT INTO {s}.lock_meta (key, value) VALUES
        ('token', 0), ('ticket', 0), ('total', 0), ('expired', 0), ('conflicts', 0),
        ('released', 0), ('reentrant', 0), ('hold_total_ms', 0), ('hold_max_ms', 0),
        ('waits', 0), ('timeouts', 0);
    CREATE TABLE {s}.locks (
        resource    text COLLATE \"C\" NOT NULL,
        owner       text COLLATE \"C\" NOT NULL,
        mode        text NOT NULL CHECK (mode IN ('exclusive', 'shared')),
        token       bigint NOT NULL,
        holds       integer NOT NULL CHECK (holds > 0),
        acquired_at bigint NOT NULL,
        expires_at  bigint NOT NULL,
        PRIMARY KEY (resource, owner)
    );
    CREATE INDEX locks_owner ON {s}.locks (owner);
    CREATE INDEX locks_expiry ON {s}.locks (expires_at);
    CREATE TABLE {s}.lock_waiters (
        ticket     bigint NOT NULL,
        resource   text COLLATE \"C\" NOT NULL,
        owner      text COLLATE \"C\" NOT NULL,
        mode       text NOT NULL,
        expires_at bigint NOT NULL,
        PRIMARY KEY (ticket, resource)
    );
    CREATE INDEX lock_waiters_resource ON {s}.lock_waiters (resource);",
        lock_functions!()
    ),
    // 2: the manager's time is read after its row is locked, and never goes back.
    concat!(
        "INSERT INTO {s}.lock_meta (key, value) VALUES ('clock', 0) ON CONFLICT (key) DO NOTHING;",
        lock_functions!()
    ),
];

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

fn lock_error(f: Failure) -> Error {
    let (message, retryable) = match f {
        Failure::Pg(e) => (describe(&e), retryable(&e)),
        Failure::Stopped => ("the client's runtime thread stopped".to_owned(), false),
    };
    Error::Backend {
        backend: "postgres",
        message,
        retryable,
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
        f: impl FnOnce(Arc<crate::client::Conn<LockStatements>>) -> Fut + Send + 'static,
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
            if let Ok((client, driver)) = crate::client::connect(&config, &tls, wake).await
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
