//! Where an engine keeps its alerts, silences and outbox, and who may evaluate: the
//! [`AlertStore`] trait, its lease, and [`FileAlertStore`], the state file of one host.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oc_time::Timestamp;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Notification, Silence};
use crate::{Error, Result};

/// The right to evaluate and notify until `until`, granted by [`AlertStore::lease`].
///
/// Every grant to a new holder has a new token; a holder renewing keeps its own. A
/// [`commit`](AlertStore::commit) under a token that is no longer the store's writes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Names this grant; a new holder gets a new one.
    pub token: String,
    /// When it lapses, by the store's clock (the database's, for a shared store).
    pub until: Timestamp,
}

/// A notification for one receiver, to be committed with the state change that made it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outgoing {
    /// The receiver's name.
    pub receiver: String,
    /// What to send.
    pub notification: Notification,
}

/// A row of the outbox: a notification committed for a receiver and not yet delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Its number in the store, increasing; sent as the `Idempotency-Key` of HTTP channels.
    pub id: u64,
    /// The receiver's name.
    pub receiver: String,
    /// What to send.
    pub notification: Notification,
}

/// Alert states, silences and the outbox of notifications, shared by every replica of an
/// evaluator, and the lease that lets one of them evaluate at a time.
///
/// The holder of the lease reads the states, evaluates, and [`commit`](AlertStore::commit)s
/// the changed states and their notifications together, conditional on still holding it; its
/// dispatcher then sends what [`outbox`](AlertStore::outbox) holds and marks it
/// [`delivered`](AlertStore::delivered). A holder that dies lets its lease lapse, and the next
/// one sends what the outbox still holds before anything new. Replicas without the lease only
/// [`load`](AlertStore::load) the states. Silences are written by any replica.
///
/// Implementations: [`FileAlertStore`] (one host's state file) and `oc_postgres::PgAlertStore`
/// (one database). `testkit` (feature `testkit`) checks that one behaves as this says.
pub trait AlertStore: Send + Sync + std::fmt::Debug {
    /// Every alert state kept (pending, firing, recently resolved).
    fn load(&self) -> Result<Vec<Alert>>;

    /// Grants or renews the lease of `holder` for `ttl` from now; `None` while another holder's
    /// lease has not lapsed.
    fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<Lease>>;

    /// Writes the `changed` states, removes the `gone` fingerprints and appends `outbox`, all
    /// together, if `lease` is still the store's and has not lapsed; `false` (nothing written)
    /// otherwise.
    fn commit(
        &self,
        lease: &Lease,
        changed: &[Alert],
        gone: &[String],
        outbox: &[Outgoing],
    ) -> Result<bool>;

    /// The first `n` undelivered rows of the outbox, oldest first; none once `lease` is no
    /// longer the store's.
    fn outbox(&self, lease: &Lease, n: usize) -> Result<Vec<OutboxEntry>>;

    /// Marks rows delivered (or given up on), so that no holder sends them again. Recorded
    /// whoever holds the lease now: the rows were sent.
    fn delivered(&self, lease: &Lease, ids: &[u64]) -> Result<()>;

    /// Every silence that has not ended long ago.
    fn silences(&self) -> Result<Vec<Silence>>;

    /// Adds `silence` under a new number (its `id` is ignored) and returns it as stored.
    fn add_silence(&self, silence: &Silence) -> Result<Silence>;

    /// Ends silence `id` at `now` (if it ends later); false if there is none.
    fn expire_silence(&self, id: u64, now: Timestamp) -> Result<bool>;

    /// Gives the lease up, so that another holder may take it at once (a one-off evaluation
    /// ending, a server stopping). Nothing happens if `lease` is no longer the store's.
    fn release(&self, _lease: &Lease) -> Result<()> {
        Ok(())
    }
}

impl<S: AlertStore + ?Sized> AlertStore for Arc<S> {
    fn load(&self) -> Result<Vec<Alert>> {
        (**self).load()
    }
    fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        (**self).lease(holder, ttl)
    }
    fn commit(
        &self,
        lease: &Lease,
        changed: &[Alert],
        gone: &[String],
        outbox: &[Outgoing],
    ) -> Result<bool> {
        (**self).commit(lease, changed, gone, outbox)
    }
    fn outbox(&self, lease: &Lease, n: usize) -> Result<Vec<OutboxEntry>> {
        (**self).outbox(lease, n)
    }
    fn delivered(&self, lease: &Lease, ids: &[u64]) -> Result<()> {
        (**self).delivered(lease, ids)
    }
    fn silences(&self) -> Result<Vec<Silence>> {
        (**self).silences()
    }
    fn add_silence(&self, silence: &Silence) -> Result<Silence> {
        (**self).add_silence(silence)
    }
    fn expire_silence(&self, id: u64, now: Timestamp) -> Result<bool> {
        (**self).expire_silence(id, now)
    }
    fn release(&self, lease: &Lease) -> Result<()> {
        (**self).release(lease)
    }
}

/// A new token: random per process (the hasher's keys), distinct per call.
pub(crate) fn new_token(holder: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write(holder.as_bytes());
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_i64(Timestamp::now().as_millis());
    format!("{:016x}", h.finish())
}

/// A name for this process as a lease holder: host, process id, and a random part.
pub fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        .take(64)
        .collect();
    let tag = new_token(&host);
    format!("{host}/{}/{}", std::process::id(), &tag[..8])
}

/// The lease's duration for an evaluator running every `interval`: three intervals, at least
/// 15 seconds (and at most a year).
pub fn lease_ttl(interval: Duration) -> Duration {
    interval
        .saturating_mul(3)
        .clamp(Duration::from_secs(15), Duration::from_secs(365 * 86_400))
}

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    version: u32,
    alerts: Vec<Alert>,
    silences: Vec<Silence>,
    next_silence: u64,
    #[serde(default)]
    outbox: Vec<OutboxEntry>,
    #[serde(default)]
    next_outbox: u64,
    #[serde(default)]
    lease: Option<FileLease>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileLease {
    holder: String,
    token: String,
}

const STATE_VERSION: u32 = 1;

/// The most of a state file read back (alerts and silences; far more than a real one holds).
const MAX_STATE_BYTES: u64 = 64 << 20;

/// The most undelivered notifications a state file keeps: the oldest go first.
const MAX_OUTBOX: usize = 10_000;

/// An [`AlertStore`] in one JSON file (`<data>/alerts-state.json` for `oc`), written
/// atomically; for one host.
///
/// Its lease is always granted: to a new holder with a new token, so that the previous
/// holder's commits are refused from then on. Each call reads, changes and writes the file
/// under an exclusive `flock` of `<file>.lock`, so that processes sharing it (`oc serve`
/// evaluating, `oc alerts silence`) never lose each other's writes. The file is read bounded,
/// never through a symbolic link, and must be a regular file (the lock file too): the data
/// directory is writable by anything that steers an agent.
#[derive(Debug)]
pub struct FileAlertStore {
    path: PathBuf,
    /// Serialises this process's read-modify-write cycles (the file lock, other processes').
    lock: Mutex<()>,
}

impl FileAlertStore {
    /// The store in `path` (created on the first write).
    pub fn new(path: impl AsRef<Path>) -> Self {
        FileAlertStore {
            path: path.as_ref().to_owned(),
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl std::fmt::Display) -> Error {
        Error::State {
            path: self.path.clone(),
            reason: reason.to_string(),
        }
    }

    fn read(&self) -> Result<Saved> {
        match oc_jsonl::read_file(&self.path, MAX_STATE_BYTES) {
            Ok(Some(bytes)) => {
                let saved: Saved = serde_json::from_slice(&bytes).map_err(|e| self.error(e))?;
                if saved.version != STATE_VERSION {
                    return Err(
                        self.error(format!("version {} is not {STATE_VERSION}", saved.version))
                    );
                }
                Ok(saved)
            }
            Ok(None) => Ok(Saved {
                version: STATE_VERSION,
                next_silence: 1,
                next_outbox: 1,
                ..Saved::default()
            }),
            Err(e) => Err(self.error(e)),
        }
    }

    fn write(&self, saved: &Saved) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(saved).map_err(|e| self.error(e))?;
        oc_jsonl::write_atomic(&self.path, &bytes).map_err(|e| self.error(e))
    }

    /// This process's turn and the file's lock (`flock` on `<file>.lock`, opened never
    /// through a link), held until the guard drops: read-modify-write cycles of several
    /// processes (`oc serve` evaluating, `oc alerts silence`) never lose each other's writes.
    fn lock(&self) -> Result<(parking_lot::MutexGuard<'_, ()>, std::os::fd::OwnedFd)> {
        use rustix::fs::{FlockOperation, Mode, OFlags};
        let turn = self.lock.lock();
        let mut name = self
            .path
            .file_name()
            .ok_or_else(|| self.error("the path names no file"))?
            .to_owned();
        name.push(".lock");
        let lock_path = self.path.with_file_name(name);
        let fd = rustix::fs::open(
            &lock_path,
            OFlags::CREATE | OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| self.error(format!("{}: {e}", lock_path.display())))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| self.error(e))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(self.error(format!("{} is not a regular file", lock_path.display())));
        }
        rustix::fs::flock(&fd, FlockOperation::LockExclusive).map_err(|e| self.error(e))?;
        Ok((turn, fd))
    }

    fn holds(saved: &Saved, lease: &Lease) -> bool {
        saved.lease.as_ref().is_some_and(|l| l.token == lease.token)
    }
}

impl AlertStore for FileAlertStore {
    fn load(&self) -> Result<Vec<Alert>> {
        let _g = self.lock()?;
        Ok(self.read()?.alerts)
    }

    fn lease(&self, holder: &str, ttl: Duration) -> Result<Option<Lease>> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        let until = Timestamp::now().saturating_add(ttl);
        if let Some(l) = &saved.lease
            && l.holder == holder
        {
            return Ok(Some(Lease {
                token: l.token.clone(),
                until,
            }));
        }
        let token = new_token(holder);
        saved.lease = Some(FileLease {
            holder: holder.to_owned(),
            token: token.clone(),
        });
        self.write(&saved)?;
        Ok(Some(Lease { token, until }))
    }

    fn commit(
        &self,
        lease: &Lease,
        changed: &[Alert],
        gone: &[String],
        outbox: &[Outgoing],
    ) -> Result<bool> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        if !Self::holds(&saved, lease) {
            return Ok(false);
        }
        saved.alerts.retain(|a| {
            !gone.contains(&a.fingerprint)
                && !changed.iter().any(|c| c.fingerprint == a.fingerprint)
        });
        saved.alerts.extend(changed.iter().cloned());
        saved
            .alerts
            .sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        saved.next_outbox = saved.next_outbox.max(1);
        for o in outbox {
            saved.outbox.push(OutboxEntry {
                id: saved.next_outbox,
                receiver: o.receiver.clone(),
                notification: o.notification.clone(),
            });
            saved.next_outbox += 1;
        }
        let excess = saved.outbox.len().saturating_sub(MAX_OUTBOX);
        saved.outbox.drain(..excess);
        self.write(&saved)?;
        Ok(true)
    }

    fn outbox(&self, lease: &Lease, n: usize) -> Result<Vec<OutboxEntry>> {
        let _g = self.lock()?;
        let saved = self.read()?;
        if !Self::holds(&saved, lease) {
            return Ok(Vec::new());
        }
        Ok(saved.outbox.into_iter().take(n).collect())
    }

    fn delivered(&self, _lease: &Lease, ids: &[u64]) -> Result<()> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        let before = saved.outbox.len();
        saved.outbox.retain(|e| !ids.contains(&e.id));
        if saved.outbox.len() != before {
            self.write(&saved)?;
        }
        Ok(())
    }

    fn silences(&self) -> Result<Vec<Silence>> {
        let _g = self.lock()?;
        Ok(self.read()?.silences)
    }

    fn add_silence(&self, silence: &Silence) -> Result<Silence> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        let s = Silence {
            id: saved.next_silence.max(1),
            ..silence.clone()
        };
        saved.next_silence = s.id + 1;
        // Silences that ended before this one began are of no more use.
        saved.silences.retain(|x| x.ends_at > s.starts_at);
        saved.silences.push(s.clone());
        self.write(&saved)?;
        Ok(s)
    }

    fn expire_silence(&self, id: u64, now: Timestamp) -> Result<bool> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        let Some(s) = saved.silences.iter_mut().find(|s| s.id == id) else {
            return Ok(false);
        };
        s.ends_at = s.ends_at.min(now);
        self.write(&saved)?;
        Ok(true)
    }

    fn release(&self, lease: &Lease) -> Result<()> {
        let _g = self.lock()?;
        let mut saved = self.read()?;
        if Self::holds(&saved, lease) {
            saved.lease = None;
            self.write(&saved)?;
        }
        Ok(())
    }
}
