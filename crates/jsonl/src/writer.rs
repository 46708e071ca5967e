//! `JsonlWriter`: appends with a chosen durability, repairs torn tails, rotates.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::sync::{
    AtomicU64, Condvar, Mutex, MutexGuard, Thread, current, park, unlocked, yield_now,
};
use serde::Serialize;

use crate::error::io;
use crate::fsx::Dir;
use crate::{Error, Result};

mod open;
mod rotated;

use open::{MAX_REOPENS, open_append, repair, replaced, torn, unlinked};
pub(crate) use rotated::existing_rotated_in;
use rotated::{compress, gz_name, rotated_name};
pub use rotated::{existing_rotated, rotated_path};

/// When an append counts as done. What each survives:
///
/// | Mode | `append` returns once the record is | survives a process crash | survives power loss |
/// |---|---|---|---|
/// | `Buffered` | in this process's buffer (written out at 64 KiB, `flush`, or drop) | no: buffered records are lost | no |
/// | `Os` | handed to the operating system (one `write`) | yes | no: the OS may not have written it yet |
/// | `Fsync` | written and `fdatasync`ed, alone | yes | yes |
/// | `GroupCommit` | written and covered by an `fdatasync` shared with concurrent appenders | yes | yes |
///
/// `GroupCommit` has the guarantee of `Fsync` at a fraction of the cost when several threads
/// append: while one `fdatasync` runs, the records appended meanwhile gather in the buffer, and
/// the next sync hands them to the OS in one `write` and covers them all. If that write or sync
/// fails, its appenders get the error and the writer refuses to call anything durable again
/// ([`Error::WriterBroken`](crate::Error::WriterBroken)): after a failed `fdatasync`, a later
/// one can succeed without the lost pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Buffered in process memory.
    Buffered,
    /// One `write` per append (the default).
    #[default]
    Os,
    /// One `fdatasync` per append.
    Fsync,
    /// Appenders share `fdatasync`s; each returns once its record is durable.
    GroupCommit,
}

/// When to start a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Rotate once the file reaches this many bytes.
    pub max_bytes: Option<u64>,
    /// Rotate once the file has this many lines.
    pub max_lines: Option<u64>,
    /// Rotated files to keep (`name.1` newest … `name.N` oldest); older ones are deleted.
    pub keep: usize,
    /// Gzip rotated files (`name.1.gz` …); readers decompress them transparently.
    pub compress: bool,
}

impl Rotation {
    fn due(&self, bytes: u64, lines: u64) -> bool {
        self.max_bytes.is_some_and(|m| bytes >= m) || self.max_lines.is_some_and(|m| lines >= m)
    }
}

/// How to open a [`JsonlWriter`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WriterOptions {
    /// When an append counts as done.
    pub durability: Durability,
    /// When to rotate (never, by default).
    pub rotation: Rotation,
    /// Group commit only: how long an appender waiting for its `fdatasync` yields the CPU in a
    /// loop before it sleeps (zero, the default: it sleeps at once; at most [`MAX_SPIN`]).
    ///
    /// Spinning keeps the CPUs awake through the sync, so appenders resume without being woken
    /// from an idle CPU: on a 2-core VM with a 0.1 ms `fdatasync`, 16 writers appended 15 to 45 %
    /// faster with 300 µs (100 µs gained less, 1 ms no more), at the price of both cores busy
    /// during every sync. Worth it on a machine given to the writer; not on a laptop shared with
    /// the user.
    pub spin: Duration,
}

/// The longest [`WriterOptions::spin`] accepted.
pub const MAX_SPIN: Duration = Duration::from_millis(10);

struct Inner {
    file: Arc<File>,
    buf: Vec<u8>,
    /// Bytes in the current file, buffered ones included.
    bytes: u64,
    /// Lines in the current file, buffered ones included.
    lines: u64,
    /// Records handed to the OS so far (all files), for group commit.
    written: u64,
    /// Records in `buf`.
    pending: u64,
    /// Why a write or an `fdatasync` failed: the file may end in a torn record, and after a
    /// failed sync a later one can succeed without the lost pages, so nothing more is written
    /// or called durable until the file is reopened (which cuts the torn tail).
    broken: Option<String>,
}

#[derive(Default)]
struct SyncState {
    /// Records covered by a completed `fdatasync`.
    synced: u64,
    /// A group is being gathered or synced.
    syncing: bool,
    /// Records written out when the last group was closed: that sync covers them.
    target: u64,
    /// Appenders waiting for a record past `target`: the next group so far.
    fresh: usize,
    /// The size of the last group: how many the next one waits to gather.
    last_group: usize,
    /// How long the last `fdatasync` took: the longest the next one waits to gather its group.
    last_sync: Duration,
    /// Followers parked until a sync completes.
    sleepers: Vec<Thread>,
    /// Why a group's write or `fdatasync` failed, after which nothing more is called durable.
    broken: Option<String>,
}

/// An error and its causes, on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// The longest a group-commit leader waits for its group, however slow the disk.
const MAX_GATHER: Duration = Duration::from_millis(1);

/// How long a group-commit leader yields the CPU in a loop, rather than sleeping, while its
/// group gathers: about as long as waking a group of 16 takes on a 2-core VM. Sleeping there
/// would add a wake-up (and on an idle virtual CPU, a halt and resume) to every sync.
const GATHER_SPIN: Duration = Duration::from_micros(100);

/// Appends JSON records, one per line, to a file.
///
/// Safe to share between threads: a record is written with one `write` call under a lock, so
/// lines never interleave. Opening repairs a torn tail (a last line without its newline, left
/// by a crash) by cutting it off, so a new record is never glued onto half of an old one.
///
/// ```
/// use oc_jsonl::{Durability, JsonlWriter, WriterOptions};
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("log.jsonl");
/// let w = JsonlWriter::open(&path, WriterOptions { durability: Durability::GroupCommit, ..Default::default() })?;
/// w.append(&serde_json::json!({"event": "started"}))?;
/// w.append_batch(&[1, 2, 3])?;
/// assert_eq!(std::fs::read_to_string(&path)?, "{\"event\":\"started\"}\n1\n2\n3\n");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct JsonlWriter {
    path: PathBuf,
    /// The directory the file is in, held open: the file, its rotated files and temporaries are
    /// all reached relative to it, never through a link.
    dir: Dir,
    /// The file's name in `dir`.
    name: OsString,
    opts: WriterOptions,
    inner: Mutex<Inner>,
    sync: Mutex<SyncState>,
    /// `synced`, readable without the lock by woken followers.
    durable: AtomicU64,
    /// Wakes a group-commit leader once its group has gathered.
    gathered: Condvar,
    repaired: u64,
    on_fsync: Option<FsyncObserver>,
    /// A writer of the data directory's stores (decision 0036): every write-out holds
    /// `LOCK_EX` on the file (so a reader's length, taken under `LOCK_SH`, never falls inside
    /// one: a batch is seen whole or not at all), and a file found unlinked (replaced by a
    /// restore or a retention, which hold `LOCK_EX` too) is reopened and written again, so no
    /// append is lost to a replacement. Its torn tail is repaired under `LOCK_EX`.
    guarded: bool,
}

/// Called with the duration of each `fdatasync` a writer runs.
type FsyncObserver = Box<dyn Fn(Duration) + Send + Sync>;

impl std::fmt::Debug for JsonlWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonlWriter")
            .field("path", &self.path)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// Given the locked file and its length, where an append with the same key starts and how many
/// lines it has, if there is one.
pub(crate) type KnownFn<'a> = dyn FnMut(&File, u64) -> Result<Option<(u64, u32)>> + 'a;

/// What [`JsonlWriter::append_store`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// The lines were written starting at this offset of the live file.
    At(u64),
    /// `known` found them there already: nothing was written.
    Known(u64, u32),
}

impl JsonlWriter {
    /// Opens (creating if needed) `path` for appending, repairing a torn tail first.
    ///
    /// The file itself is never reached through a symbolic link, and must be a regular file:
    /// either is refused ([`Error::Unsafe`]) before anything is read, cut or written. The
    /// directories on the way are the caller's to choose (and are created if missing).
    pub fn open(path: impl AsRef<Path>, opts: WriterOptions) -> Result<Self> {
        let path = path.as_ref();
        Self::check_opts(&opts)?;
        let (dir, name) = Dir::of(path, true)?;
        Self::open_in(dir, &name, opts)
    }

    fn check_opts(opts: &WriterOptions) -> Result<()> {
        if opts.spin > MAX_SPIN {
            return Err(Error::InvalidInput {
                field: "spin",
                reason: format!("{:?} is longer than the {MAX_SPIN:?} allowed", opts.spin),
            });
        }
        Ok(())
    }

    /// Opens `name` in `dir` (a directory already opened without following links).
    pub(crate) fn open_in(dir: Dir, name: &OsStr, opts: WriterOptions) -> Result<Self> {
        Self::open_with(dir, name, opts, false)
    }

    /// Opens `name` in `dir` as a guarded writer (see [`JsonlWriter::guarded`]): for the data
    /// directory's task files, which a restore or a retention may replace while it is open.
    pub(crate) fn open_guarded(dir: Dir, name: &OsStr, opts: WriterOptions) -> Result<Self> {
        Self::open_with(dir, name, opts, true)
    }

    fn open_with(dir: Dir, name: &OsStr, opts: WriterOptions, guarded: bool) -> Result<Self> {
        Self::check_opts(&opts)?;
        let count = opts.rotation.max_lines.is_some();
        let (file, bytes, lines, repaired) = open_append(&dir, name, count, guarded)?;
        Ok(JsonlWriter {
            path: dir.join(name),
            dir,
            name: name.to_owned(),
            opts,
            inner: Mutex::new(Inner {
                file: Arc::new(file),
                buf: Vec::with_capacity(256),
                bytes,
                lines,
                written: 0,
                pending: 0,
                broken: None,
            }),
            sync: Mutex::new(SyncState::default()),
            durable: AtomicU64::new(0),
            gathered: Condvar::new(),
            repaired,
            on_fsync: None,
            guarded,
        })
    }

    /// Calls `observe` with the duration of every `fdatasync` this writer runs from now on
    /// (appends under `Fsync` or `GroupCommit`, [`sync`](Self::sync), rotation), for
    /// instance to feed a latency histogram. Without an observer nothing is timed.
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicU32, Ordering}};
    /// use oc_jsonl::{Durability, JsonlWriter, WriterOptions};
    /// let dir = tempfile::tempdir()?;
    /// let syncs = Arc::new(AtomicU32::new(0));
    /// let seen = syncs.clone();
    /// let opts = WriterOptions { durability: Durability::Fsync, ..Default::default() };
    /// let w = JsonlWriter::open(dir.path().join("log.jsonl"), opts)?
    ///     .observe_fsync(move |_took| { seen.fetch_add(1, Ordering::Relaxed); });
    /// w.append(&1)?;
    /// w.append(&2)?;
    /// assert_eq!(syncs.load(Ordering::Relaxed), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn observe_fsync(mut self, observe: impl Fn(Duration) + Send + Sync + 'static) -> Self {
        self.on_fsync = Some(Box::new(observe));
        self
    }

    /// `fdatasync`s `file`, timing it for the observer if there is one.
    fn fdatasync(&self, file: &File) -> Result<()> {
        let res = match &self.on_fsync {
            None => file.sync_data(),
            Some(observe) => {
                let start = Instant::now();
                let res = file.sync_data();
                observe(start.elapsed());
                res
            }
        };
        res.map_err(io(&self.path))
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of a torn tail cut off when the file was opened (0 if it was clean).
    pub fn repaired_bytes(&self) -> u64 {
        self.repaired
    }

    /// Appends one record as a line.
    pub fn append<T: Serialize + ?Sized>(&self, record: &T) -> Result<()> {
        self.append_with(1, |buf| crate::json::write(buf, record))
    }

    /// Appends records as consecutive lines with one write.
    pub fn append_batch<T: Serialize>(&self, records: &[T]) -> Result<()> {
        self.append_with(records.len() as u64, |buf| {
            for (i, r) in records.iter().enumerate() {
                if i > 0 {
                    buf.push(b'\n');
                }
                crate::json::write(buf, r)?;
            }
            Ok(())
        })
    }

    /// Appends `records` lines that `fill` serialises (separated by newlines, without the last).
    fn append_with(
        &self,
        records: u64,
        fill: impl FnOnce(&mut Vec<u8>) -> crate::json::WriteResult,
    ) -> Result<()> {
        if records == 0 {
            return Ok(());
        }
        let (seq, rotated_at) = self.append_locked(records, fill)?;
        if let Some(seq) = rotated_at {
            // Rotation synced the old file: everything written so far is durable.
            self.mark_durable(self.sync.lock(), seq);
        }
        if self.opts.durability == Durability::GroupCommit {
            self.wait_durable(seq)?;
        }
        Ok(())
    }

    /// Serialises and writes under the writer's lock; returns the record sequence number and,
    /// after a rotation, the sequence number the rotation made durable.
    fn append_locked(
        &self,
        records: u64,
        fill: impl FnOnce(&mut Vec<u8>) -> crate::json::WriteResult,
    ) -> Result<(u64, Option<u64>)> {
        // A record too deep to read back is refused here, before anything is written.
        let json = |e: crate::json::WriteError| e.at(&self.path);
        let mut rotated_at = None;
        let seq = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            self.check_broken(inner)?;
            let start = inner.buf.len();
            if let Err(e) = fill(&mut inner.buf) {
                inner.buf.truncate(start);
                return Err(json(e));
            }
            inner.buf.push(b'\n');
            // Serialised JSON escapes newlines inside strings, so each record is one line.
            inner.bytes += (inner.buf.len() - start) as u64;
            inner.lines += records;
            inner.pending += records;
            let buffered = matches!(
                self.opts.durability,
                Durability::Buffered | Durability::GroupCommit
            );
            if !buffered || inner.buf.len() >= 64 * 1024 {
                self.write_out(inner)?;
            }
            if self.opts.durability == Durability::Fsync {
                self.sync_locked(inner)?;
            }
            if self.opts.rotation.due(inner.bytes, inner.lines) {
                self.rotate(inner)?;
                rotated_at = Some(inner.written);
            }
            inner.written + inner.pending
        };
        Ok((seq, rotated_at))
    }

    fn write_out(&self, inner: &mut Inner) -> Result<()> {
        if inner.buf.is_empty() {
            return Ok(());
        }
        let res = if self.guarded {
            // `LOCK_EX`: a reader's length, taken under `LOCK_SH`, never falls inside it.
            self.lock_live(inner, true).and_then(|file| {
                let res = (&*file).write_all(&inner.buf).map_err(io(&self.path));
                crate::fsx::unlock(&*file);
                res
            })
        } else {
            let file: &File = &inner.file;
            (&*file).write_all(&inner.buf).map_err(io(&self.path))
        };
        inner.buf.clear();
        let n = std::mem::take(&mut inner.pending);
        if let Err(e) = res {
            return Err(Self::broke(inner, e));
        }
        inner.written += n;
        Ok(())
    }

    /// Takes `flock` (`exclusive` or shared) on the live file, first reopening it while the file
    /// held turns out to be unlinked (a restore or a retention renamed another over it);
    /// returns the file locked, to unlock once written.
    fn lock_live(&self, inner: &mut Inner, exclusive: bool) -> Result<Arc<File>> {
        for _ in 0..MAX_REOPENS {
            let file = inner.file.clone();
            crate::fsx::flock(&*file, exclusive, &self.path)?;
            if !unlinked(&file, &self.path)? {
                return Ok(file);
            }
            crate::fsx::unlock(&*file);
            let (file, bytes, _, _) = open_append(&self.dir, &self.name, false, true)?;
            inner.file = Arc::new(file);
            inner.bytes = bytes;
        }
        Err(replaced(&self.path))
    }

    /// Appends `lines` (`records` complete lines) for a store under `LOCK_EX`, when `keyed`
    /// after asking `known` (given the locked file and its length) whether they are there
    /// already. Returns where they start in the live file, and
    /// once `durable`, waits until an (`fdatasync` shared by concurrent appenders) covers them.
    /// Only for guarded writers with nothing buffered of their own (`Os` durability).
    pub(crate) fn append_store(
        &self,
        lines: &[u8],
        records: u64,
        keyed: bool,
        durable: bool,
        known: &mut KnownFn<'_>,
    ) -> Result<Wrote> {
        let (wrote, seq) = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            self.check_broken(inner)?;
            self.write_out(inner)?;
            // Always `LOCK_EX`: a reader's length, taken under `LOCK_SH`, never falls inside
            // the write, so the lines are seen all or none.
            let file = self.lock_live(inner, true)?;
            let known = if keyed {
                // Under `LOCK_EX` no write is under way: a last line without its newline was
                // left by a crash, and is cut before anything is looked up or glued onto it.
                file.metadata()
                    .map_err(io(&self.path))
                    .and_then(|m| match torn(&file, m.len(), &self.path)? {
                        true => repair(&file, &self.path)
                            .and_then(|_| file.metadata().map_err(io(&self.path))),
                        false => Ok(m),
                    })
                    .and_then(|m| known(&file, m.len()))
            } else {
                Ok(None)
            };
            let wrote = match known {
                Ok(Some((first, count))) => Ok(Wrote::Known(first, count)),
                Ok(None) => match (&*file).write_all(lines) {
                    Ok(()) => (&*file)
                        .stream_position()
                        .map(|end| Wrote::At(end.saturating_sub(lines.len() as u64)))
                        .map_err(io(&self.path)),
                    // A failed write may have left part of the lines: nothing more goes
                    // through this writer (the store opens another, which cuts the torn tail).
                    Err(e) => Err(Self::broke(inner, io(&self.path)(e))),
                },
                Err(e) => Err(e),
            };
            crate::fsx::unlock(&*file);
            let wrote = wrote?;
            if let Wrote::At(_) = wrote {
                inner.written += records;
                inner.bytes += lines.len() as u64;
                inner.lines += records;
            }
            (wrote, inner.written)
        };
        if durable {
            self.wait_durable(seq)?;
        }
        Ok(wrote)
    }

    /// `fdatasync`s the current file; a failure breaks the writer.
    fn sync_locked(&self, inner: &mut Inner) -> Result<()> {
        self.fdatasync(&inner.file)
            .map_err(|e| Self::broke(inner, e))
    }

    /// Records that the writer is broken by `e` (the first cause is kept); returns `e`.
    fn broke(inner: &mut Inner, e: Error) -> Error {
        inner.broken.get_or_insert_with(|| error_chain(&e));
        e
    }

    /// `WriterBroken` once a write or a sync failed.
    fn check_broken(&self, inner: &Inner) -> Result<()> {
        match &inner.broken {
            Some(cause) => Err(Error::WriterBroken {
                path: self.path.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Waits until record `seq` is covered by an `fdatasync`, running one if nobody is.
    ///
    /// Group commit: the first waiter to find no sync running leads. It waits (at most as long
    /// as the last `fdatasync` took, at most [`MAX_GATHER`]; yielding for the first
    /// [`GATHER_SPIN`], then asleep) until as many appenders wait as the last group had, then
    /// syncs every record written so far; the others sleep until a sync covers theirs. Without
    /// the gathering, groups alternate between the few who were ready when a sync started and
    /// the many who arrived during it.
    ///
    /// Followers park on their own thread and, once woken, read the durable mark from an
    /// atomic: a covered follower returns without queueing for the lock again.
    fn wait_durable(&self, seq: u64) -> Result<()> {
        let mut s = self.sync.lock();
        if seq > s.target {
            s.fresh += 1;
            if s.syncing && s.fresh >= s.last_group {
                self.gathered.notify_one();
            }
        }
        loop {
            if s.synced >= seq {
                return Ok(());
            }
            if let Some(cause) = &s.broken {
                return Err(Error::WriterBroken {
                    path: self.path.clone(),
                    cause: cause.clone(),
                });
            }
            if s.syncing {
                s.sleepers.push(current());
                drop(s);
                if self.spin_until_durable(seq) {
                    return Ok(());
                }
                park();
                if self.durable.load(Ordering::Acquire) >= seq {
                    // Covered: no need to queue for the lock again.
                    return Ok(());
                }
                s = self.sync.lock();
                continue;
            }
            s.syncing = true;
            let deadline = Instant::now() + s.last_sync.min(MAX_GATHER);
            let spin_until = deadline.min(Instant::now() + GATHER_SPIN);
            while s.fresh < s.last_group && Instant::now() < spin_until {
                unlocked(&mut s, yield_now);
            }
            while s.fresh < s.last_group {
                if self.gathered.wait_until(&mut s, deadline).timed_out() {
                    break;
                }
            }
            // Close the group: every fresh waiter appended before arriving, so the buffer holds
            // their records, and one `write` hands them all to the OS. (The one place both
            // locks are held, always in this order; appenders never take this lock while
            // holding `inner`.)
            let closed = {
                let mut i = self.inner.lock();
                self.write_out(&mut i).map(|()| (i.written, i.file.clone()))
            };
            let start = Instant::now();
            let res = closed.and_then(|(target, file)| {
                s.target = target;
                s.last_group = std::mem::take(&mut s.fresh);
                unlocked(&mut s, || self.fdatasync(&file))?;
                Ok(target)
            });
            s.syncing = false;
            s.last_sync = start.elapsed();
            tracing::debug!(
                target: "oc_jsonl",
                path = %self.path.display(),
                appends = s.last_group,
                took_us = u64::try_from(s.last_sync.as_micros()).unwrap_or(u64::MAX),
                ok = res.is_ok(),
                "group commit synced"
            );
            match res {
                Ok(target) => {
                    self.mark_durable(s, target);
                    s = self.sync.lock();
                }
                Err(e) => {
                    // Whatever was in the group is lost or of unknown fate, and after a failed
                    // `fdatasync` a later one can succeed without the lost pages: no record
                    // past this point can be called durable any more, nor written.
                    s.broken = Some(error_chain(&e));
                    self.inner
                        .lock()
                        .broken
                        .get_or_insert_with(|| error_chain(&e));
                    self.mark_durable(s, 0);
                    return Err(e);
                }
            }
        }
    }

    /// Yields the CPU in a loop for up to [`WriterOptions::spin`]; whether `seq` became durable.
    fn spin_until_durable(&self, seq: u64) -> bool {
        if self.opts.spin.is_zero() {
            return false;
        }
        let until = Instant::now() + self.opts.spin;
        loop {
            yield_now();
            if self.durable.load(Ordering::Acquire) >= seq {
                // Still on the leader's list: its unpark leaves a token that makes a later
                // `park` return at once, which the wait loop tolerates.
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
        }
    }

    /// Records everything up to `upto` as durable and wakes every sleeping follower (those
    /// still not covered go back to waiting, and one of them leads the next sync).
    fn mark_durable(&self, mut s: MutexGuard<'_, SyncState>, upto: u64) {
        s.synced = s.synced.max(upto);
        self.durable.store(s.synced, Ordering::Release);
        let sleepers = std::mem::take(&mut s.sleepers);
        drop(s);
        for t in sleepers {
            t.unpark();
        }
    }

    /// Writes out buffered records (they reach the OS; see [`Durability`]).
    pub fn flush(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        self.check_broken(&inner)?;
        self.write_out(&mut inner)
    }

    /// Writes out and `fdatasync`s everything appended so far.
    pub fn sync(&self) -> Result<()> {
        let mut inner = self.inner.lock();
        self.check_broken(&inner)?;
        self.write_out(&mut inner)?;
        self.sync_locked(&mut inner)
    }

    fn rotate(&self, inner: &mut Inner) -> Result<()> {
        self.write_out(inner)?;
        self.sync_locked(inner)?;
        let keep = self.opts.rotation.keep;
        // Every name below is `name` plus a fixed suffix, in the directory held open: a link
        // planted on one is removed or renamed itself, never followed.
        let (dir, name) = (&self.dir, self.name.as_os_str());
        if keep == 0 {
            dir.remove_file(name)?;
        } else {
            if let Some(oldest) = existing_rotated_in(dir, name, keep)? {
                dir.remove_file(&oldest)?;
            }
            for n in (1..keep).rev() {
                if let Some(from) = existing_rotated_in(dir, name, n)? {
                    let mut to = rotated_name(name, n + 1);
                    if Path::new(&from).extension().is_some_and(|e| e == "gz") {
                        to = gz_name(&to);
                    }
                    dir.rename(&from, &to)?;
                }
            }
            let first = rotated_name(name, 1);
            dir.rename(name, &first)?;
            if self.opts.rotation.compress {
                compress(dir, &first)?;
            }
        }
        let count = self.opts.rotation.max_lines.is_some();
        let (file, bytes, lines, _) = open_append(dir, name, count, self.guarded)?;
        dir.sync()?;
        inner.file = Arc::new(file);
        inner.bytes = bytes;
        inner.lines = lines;
        Ok(())
    }
}

impl Drop for JsonlWriter {
    fn drop(&mut self) {
        // Buffered records reach the OS; errors have nowhere to go here (call `flush` to see them).
        let _ = self.flush();
    }
}
