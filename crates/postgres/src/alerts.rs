//! `PgAlertStore`: the alert engine's states, silences and outbox on PostgreSQL, and the lease
//! that lets one evaluator of a fleet evaluate and notify at a time.
//!
//! The lease is a row (`alert_lease`) with its holder, a token and when it lapses, judged by
//! the database's clock: a holder cut off from the database stops by itself once it cannot
//! renew, where an advisory lock would stay held as long as its session. A commit locks that
//! row, checks the token and the deadline, and writes the changed states and their outbox rows
//! in the same transaction. One concept per file: the schema (`migrations.rs`,
//! `migrations/*.sql`), the statements (`statements.rs`, `sql/*.sql`); this file holds the
//! store.

use std::sync::Arc;
use std::time::Duration;

use oc_alerts::{Alert, AlertStore, Error, Lease, Matcher, OutboxEntry, Outgoing, Result, Silence};
use oc_time::Timestamp;

use crate::errors::{ClientStopped, Failure, describe, retryable};
use crate::options::PgOptions;
use crate::pool::{Conn, Pool};
use crate::schema::migrate;

mod migrations;
mod statements;

use migrations::{COMPONENT, MIGRATIONS};
use statements::AlertStatements;

/// An [`AlertStore`] on PostgreSQL: every `oc serve --alerts` connected to the same database
/// and schema shares the alert states, the silences and the outbox, and one of them at a time
/// holds the lease to evaluate and notify.
///
/// Time is the database's clock (`clock_timestamp()`), or [`PgOptions::clock`] in tests.
pub struct PgAlertStore {
    pool: Pool<AlertStatements>,
    opts: PgOptions,
}

impl std::fmt::Debug for PgAlertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgAlertStore")
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// An alert-store error for a failed call, with the `tokio_postgres::Error` as its source.
fn alert_error(f: Failure) -> Error {
    let (message, retryable, source): (String, bool, Box<dyn std::error::Error + Send + Sync>) =
        match f {
            Failure::Pg(e) => (describe(&e), retryable(&e), Box::new(e)),
            Failure::Stopped => (ClientStopped.to_string(), false, Box::new(ClientStopped)),
        };
    Error::Backend {
        backend: "postgres",
        message,
        retryable,
        source,
    }
}

/// A row that does not read back as written.
fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend {
        backend: "postgres",
        message: format!("alert store: {what} does not read back: {e}"),
        retryable: false,
        source: format!("{what}: {e}").into(),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PgAlertStore {
    /// Connects to the server of `opts` and migrates the alert tables of its schema (once,
    /// whatever other hosts do at the same time).
    pub fn connect(opts: PgOptions) -> Result<Self> {
        let pool = Pool::new(&opts, "alerts").map_err(|e| Error::Backend {
            backend: "postgres",
            message: format!("cannot start the client thread: {e}"),
            retryable: false,
            source: Box::new(e),
        })?;
        let schema = opts.schema.clone();
        let found = pool
            .dedicated(
                move |mut c| async move { migrate(&mut c, &schema, COMPONENT, MIGRATIONS).await },
            )
            .map_err(alert_error)?;
        if let Err(found) = found {
            return Err(Error::Backend {
                backend: "postgres",
                message: format!(
                    "the alert schema is at version {found}, newer than this build's {}",
                    MIGRATIONS.len()
                ),
                retryable: false,
                source: format!("schema version {found}").into(),
            });
        }
        Ok(PgAlertStore { pool, opts })
    }

    /// The injected clock's time, or `None` for the database's.
    fn clock_ms(&self) -> Option<i64> {
        self.opts.clock.as_ref().map(|c| c.now().as_millis())
    }

    fn call<T: Send + 'static, Fut>(
        &self,
        f: impl FnOnce(Arc<Conn<AlertStatements>>) -> Fut + Send + 'static,
    ) -> Result<T>
    where
        Fut: std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>> + Send,
    {
        self.pool.call(f).map_err(alert_error)
    }
}

fn json<T: serde::Serialize>(what: &str, v: &T) -> Result<serde_json::Value> {
    serde_json::to_value(v).map_err(|e| Error::Invalid {
        what: what.to_owned(),
        reason: e.to_string(),
    })
}

impl AlertStore for PgAlertStore {
    fn load(&self) -> Result<Vec<Alert>> {
        let rows = self.call(|c| async move { c.client.query(&c.stmts.load, &[]).await })?;
        rows.iter()
            .map(|r| {
                let body: serde_json::Value = r.try_get(0).map_err(|e| corrupt("a state", e))?;
                serde_json::from_value(body).map_err(|e| corrupt("a state", e))
            })
            .collect()
    }

    fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let (holder, token) = (holder.to_owned(), new_token(holder));
        let (ttl, now) = (millis(ttl), self.clock_ms());
        let row = self.call(move |c| async move {
            c.client
                .query_opt(&c.stmts.lease, &[&holder, &token, &ttl, &now])
                .await
        })?;
        row.map(|r| {
            Ok(Lease {
                token: r.try_get(0).map_err(|e| corrupt("the lease", e))?,
                until: Timestamp::from_millis(r.try_get(1).map_err(|e| corrupt("the lease", e))?),
            })
        })
        .transpose()
    }

    fn commit(
        &self,
        lease: &Lease,
        changed: &[Alert],
        gone: &[String],
        outbox: &[Outgoing],
    ) -> Result<bool> {
        let token = lease.token.clone();
        let now = self.clock_ms();
        let fps: Vec<String> = changed.iter().map(|a| a.fingerprint.clone()).collect();
        let bodies = changed
            .iter()
            .map(|a| json("an alert", a))
            .collect::<Result<Vec<_>>>()?;
        let gone = gone.to_vec();
        let receivers: Vec<String> = outbox.iter().map(|o| o.receiver.clone()).collect();
        let notes = outbox
            .iter()
            .map(|o| json("a notification", &o.notification))
            .collect::<Result<Vec<_>>>()?;
        let done = self
            .pool
            .transaction(move |tx, st| {
                Box::pin(async move {
                    if tx.query_opt(&st.holds, &[&token, &now]).await?.is_none() {
                        return Ok(Err(()));
                    }
                    if !fps.is_empty() {
                        tx.execute(&st.upsert, &[&fps, &bodies]).await?;
                    }
                    if !gone.is_empty() {
                        tx.execute(&st.remove, &[&gone]).await?;
                    }
                    if !receivers.is_empty() {
                        tx.execute(&st.enqueue, &[&receivers, &notes]).await?;
                    }
                    tx.execute(&st.prune, &[&now]).await?;
                    Ok(Ok(()))
                })
            })
            .map_err(alert_error)?;
        Ok(done.is_ok())
    }

    fn outbox(&self, lease: &Lease, n: usize) -> Result<Vec<OutboxEntry>> {
        let token = lease.token.clone();
        let (n, now) = (i64::try_from(n).unwrap_or(i64::MAX), self.clock_ms());
        let rows = self.call(move |c| async move {
            c.client.query(&c.stmts.outbox, &[&token, &n, &now]).await
        })?;
        rows.iter()
            .map(|r| {
                let id: i64 = r.try_get(0).map_err(|e| corrupt("an outbox row", e))?;
                let body: serde_json::Value =
                    r.try_get(2).map_err(|e| corrupt("an outbox row", e))?;
                Ok(OutboxEntry {
                    id: u64::try_from(id).map_err(|e| corrupt("an outbox id", e))?,
                    receiver: r.try_get(1).map_err(|e| corrupt("an outbox row", e))?,
                    notification: serde_json::from_value(body)
                        .map_err(|e| corrupt("an outbox row", e))?,
                })
            })
            .collect()
    }

    fn delivered(&self, _lease: &Lease, ids: &[u64]) -> Result<()> {
        let ids: Vec<i64> = ids.iter().filter_map(|i| i64::try_from(*i).ok()).collect();
        let now = self.clock_ms();
        self.call(
            move |c| async move { c.client.execute(&c.stmts.delivered, &[&ids, &now]).await },
        )?;
        Ok(())
    }

    fn silences(&self) -> Result<Vec<Silence>> {
        let rows = self.call(|c| async move { c.client.query(&c.stmts.silences, &[]).await })?;
        rows.iter()
            .map(|r| {
                let bad = |e: tokio_postgres::Error| corrupt("a silence", e);
                let id: i64 = r.try_get(0).map_err(bad)?;
                let matchers: serde_json::Value = r.try_get(1).map_err(bad)?;
                let matchers: Vec<Matcher> =
                    serde_json::from_value(matchers).map_err(|e| corrupt("a silence", e))?;
                Ok(Silence {
                    id: u64::try_from(id).map_err(|e| corrupt("a silence id", e))?,
                    matchers,
                    starts_at: Timestamp::from_millis(r.try_get(2).map_err(bad)?),
                    ends_at: Timestamp::from_millis(r.try_get(3).map_err(bad)?),
                    comment: r.try_get(4).map_err(bad)?,
                })
            })
            .collect()
    }

    fn add_silence(&self, silence: &Silence) -> Result<Silence> {
        let matchers = json("matchers", &silence.matchers)?;
        let (starts, ends) = (silence.starts_at.as_millis(), silence.ends_at.as_millis());
        let comment = silence.comment.clone();
        let row = self.call(move |c| async move {
            c.client
                .query_one(&c.stmts.add_silence, &[&matchers, &starts, &ends, &comment])
                .await
        })?;
        let id: i64 = row.try_get(0).map_err(|e| corrupt("a silence id", e))?;
        Ok(Silence {
            id: u64::try_from(id).map_err(|e| corrupt("a silence id", e))?,
            ..silence.clone()
        })
    }

    fn expire_silence(&self, id: u64, now: Timestamp) -> Result<bool> {
        let Ok(id) = i64::try_from(id) else {
            return Ok(false);
        };
        let now = now.as_millis();
        let row = self.call(move |c| async move {
            c.client
                .query_opt(&c.stmts.expire_silence, &[&id, &now])
                .await
        })?;
        Ok(row.is_some())
    }

    fn release(&self, lease: &Lease) -> Result<()> {
        let token = lease.token.clone();
        self.call(move |c| async move { c.client.execute(&c.stmts.release, &[&token]).await })?;
        Ok(())
    }
}

/// A new token for `holder`: random (the database checks nothing but equality).
fn new_token(holder: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(holder.as_bytes());
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_i64(Timestamp::now().as_millis());
    let a = h.finish();
    h.write_u64(a);
    format!("{a:016x}{:016x}", h.finish())
}
