//! Waiting for work: [`Waiting`], what a waiting claim watches, and [`ReadySignal`], the
//! in-process wake a store bumps when a write may have made a task ready
//! (`docs/decisions/0041-waiting-for-work.md`).

use std::fmt;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::{Change, LabelFilter, Result, Task, TaskStore, Timestamp};

/// How often a waiting claim calls its watcher (so a cancellation is seen within this).
pub const WATCH_EVERY: Duration = Duration::from_millis(100);

/// The default bound between two claim attempts without a signal (another process's writes,
/// a lost notification).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// The first pause of a store without a [`ReadySignal`]; it doubles up to the poll bound.
const FIRST_BACKOFF: Duration = Duration::from_millis(10);

/// How a claim waits for a ready task ([`TaskStore::claim_next_watched`]): for at most
/// `timeout`, trying again at least every `poll` (and at once when the store's
/// [`ReadySignal`] says a task may be ready), calling the watcher at least every
/// [`WATCH_EVERY`] with the time waited: the wait stops when it answers `false`.
#[derive(Clone, Copy)]
pub struct Waiting<'a> {
    timeout: Duration,
    poll: Duration,
    watcher: &'a (dyn Fn(Duration) -> bool + Sync),
}

impl fmt::Debug for Waiting<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waiting")
            .field("timeout", &self.timeout)
            .field("poll", &self.poll)
            .finish_non_exhaustive()
    }
}

fn always(_: Duration) -> bool {
    true
}

impl<'a> Waiting<'a> {
    /// A wait of at most `timeout` (zero: one attempt), polling every [`DEFAULT_POLL`],
    /// watched by nobody.
    pub fn new(timeout: Duration) -> Waiting<'a> {
        Waiting {
            timeout,
            poll: DEFAULT_POLL,
            watcher: &always,
        }
    }

    /// Tries again at least this often without a signal (another process's writes, a lost
    /// notification); at least 10 ms.
    pub fn poll(mut self, every: Duration) -> Waiting<'a> {
        self.poll = every.max(FIRST_BACKOFF);
        self
    }

    /// Calls `watcher` with the time waited, before each attempt and at least every
    /// [`WATCH_EVERY`]: `false` stops the wait (a cancellation), and a task claimed as it
    /// answers `false` is released.
    pub fn watch(mut self, watcher: &'a (dyn Fn(Duration) -> bool + Sync)) -> Waiting<'a> {
        self.watcher = watcher;
        self
    }

    /// The longest wait.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// A store's in-process wake for waiting claims: a generation bumped by every write that may
/// make a task ready, and the earliest `run_at` ahead a write set (a backoff), at which
/// waiters wake by themselves. Writes of other processes do not bump it: waiters poll too.
#[derive(Debug, Default)]
pub struct ReadySignal {
    state: Mutex<SignalState>,
    cond: Condvar,
}

/// The most timed wakes a signal keeps: past that the latest are dropped (their waiters poll).
const MAX_WAKES: usize = 64;

#[derive(Debug, Default)]
struct SignalState {
    generation: u64,
    /// The `run_at`s ahead that writes set, earliest first.
    wake_at: std::collections::BTreeSet<Timestamp>,
}

impl ReadySignal {
    /// A signal nobody bumped yet.
    pub fn new() -> ReadySignal {
        ReadySignal::default()
    }

    /// A task may have become ready: wakes every waiter.
    pub fn bump(&self) {
        let mut st = self.state.lock();
        st.generation = st.generation.wrapping_add(1);
        drop(st);
        self.cond.notify_all();
    }

    /// A task becomes ready at `at` (a `run_at` ahead): waiters wake then.
    pub fn ready_at(&self, at: Timestamp) {
        let mut st = self.state.lock();
        let earliest = st.wake_at.first().is_none_or(|w| at < *w);
        st.wake_at.insert(at);
        if st.wake_at.len() > MAX_WAKES {
            st.wake_at.pop_last();
        }
        drop(st);
        if earliest {
            // Waiters sleeping past `at` must shorten their sleep.
            self.cond.notify_all();
        }
    }

    /// After a write that may have made a task ready: wakes every waiter, and sets a timed
    /// wake for each of `tasks` whose `run_at` is ahead of `now` (a backoff). Writes with no
    /// task to show call [`ReadySignal::bump`].
    pub fn after(&self, tasks: &[&Task], now: Timestamp) {
        for t in tasks {
            match t.run_at {
                Some(at) if at > now => self.ready_at(at),
                _ => {}
            }
        }
        self.bump();
    }

    /// The generation now: read before a claim attempt, passed to [`ReadySignal::wait`].
    pub fn generation(&self) -> u64 {
        self.state.lock().generation
    }

    /// Waits until the generation moves past `since`, a timed wake passes (by the store's
    /// clock, `now`), or `until`; returns the generation.
    pub fn wait(&self, since: u64, until: Instant, now: &dyn Fn() -> Timestamp) -> u64 {
        let mut st = self.state.lock();
        loop {
            if st.generation != since {
                return st.generation;
            }
            let mut deadline = until;
            if let Some(&at) = st.wake_at.first() {
                let now = now();
                let ahead = at.as_millis().saturating_sub(now.as_millis());
                if ahead <= 0 {
                    // The first waiter to see the time pass wakes them all.
                    st.wake_at.retain(|w| *w > now);
                    st.generation = st.generation.wrapping_add(1);
                    self.cond.notify_all();
                    return st.generation;
                }
                let ahead = Duration::from_millis(u64::try_from(ahead).unwrap_or(u64::MAX));
                if let Some(t) = Instant::now().checked_add(ahead) {
                    deadline = deadline.min(t);
                }
            }
            if Instant::now() >= until {
                return st.generation;
            }
            self.cond.wait_until(&mut st, deadline);
        }
    }
}

/// Whether `change` can make a task ready (itself, or its dependents): every change but a
/// start, claim, heartbeat or cancellation.
pub(crate) fn may_ready(change: &Change) -> bool {
    !matches!(
        change,
        Change::Start { .. } | Change::Claim { .. } | Change::Heartbeat { .. } | Change::Cancel
    )
}

/// [`TaskStore::claim_next_watched`]'s loop over [`Waiting::run`].
pub(crate) fn claim_watched<S: TaskStore + ?Sized>(
    store: &S,
    owner: &str,
    ttl: Duration,
    filter: &LabelFilter,
    w: &Waiting<'_>,
) -> Result<Option<Task>> {
    w.run(
        store.ready_signal(),
        &|| store.now(),
        &mut || store.claim_next_matching(owner, ttl, filter),
        &mut |t: Task| {
            if let Some(lease) = t.lease {
                match store.release(&t.id, lease.token) {
                    Ok(_) | Err(crate::Error::LeaseLost { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        },
    )
}

impl Waiting<'_> {
    /// The loop of a waiting claim, for callers claiming their own way (with hooks, say):
    /// tries `attempt` at once, then again when `signal` moves (a store's
    /// [`TaskStore::ready_signal`]; `now` is its clock), at least every poll bound (a backoff
    /// from 10 ms up to it without a signal), never past the timeout or once the watcher said
    /// stop; what an attempt took as the watcher said stop goes to `give_back`, and the answer
    /// is `None`.
    pub fn run<T, E>(
        &self,
        signal: Option<&ReadySignal>,
        now: &dyn Fn() -> Timestamp,
        attempt: &mut dyn FnMut() -> std::result::Result<Option<T>, E>,
        give_back: &mut dyn FnMut(T) -> std::result::Result<(), E>,
    ) -> std::result::Result<Option<T>, E> {
        let start = Instant::now();
        let deadline = start.checked_add(self.timeout);
        let mut backoff = FIRST_BACKOFF.min(self.poll);
        loop {
            if !(self.watcher)(start.elapsed()) {
                return Ok(None);
            }
            let seen = signal.map(ReadySignal::generation);
            if let Some(t) = attempt()? {
                if (self.watcher)(start.elapsed()) {
                    return Ok(Some(t));
                }
                // Stopped as it was claimed: a stopped wait takes nothing.
                give_back(t)?;
                return Ok(None);
            }
            let pause = if signal.is_some() { self.poll } else { backoff };
            backoff = (backoff * 2).min(self.poll);
            let next_try = Instant::now() + pause;
            loop {
                let at = Instant::now();
                if let Some(d) = deadline
                    && at >= d
                {
                    return Ok(None);
                }
                if !(self.watcher)(start.elapsed()) {
                    return Ok(None);
                }
                if at >= next_try {
                    break;
                }
                let mut until = next_try.min(at + WATCH_EVERY);
                if let Some(d) = deadline {
                    until = until.min(d);
                }
                match (signal, seen) {
                    (Some(s), Some(seen)) => {
                        if s.wait(seen, until, now) != seen {
                            break;
                        }
                    }
                    _ => std::thread::sleep(until.saturating_duration_since(at)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    /// Timed wakes come each at its time, by the store's clock, earliest first; one set
    /// before an earlier one is not lost.
    #[test]
    fn timed_wakes_come_in_order_and_none_is_lost() {
        let s = ReadySignal::new();
        let now = AtomicI64::new(1_000);
        let clock = || Timestamp::from_millis(now.load(Ordering::SeqCst));
        let soon = || Instant::now() + Duration::from_millis(20);
        let later = || Instant::now() + Duration::from_secs(30);
        s.ready_at(Timestamp::from_millis(3_000));
        s.ready_at(Timestamp::from_millis(2_000));
        let g = s.generation();
        assert_eq!(s.wait(g, soon(), &clock), g, "neither is due");
        now.store(2_000, Ordering::SeqCst);
        let g2 = s.wait(g, later(), &clock);
        assert_ne!(g2, g, "the first is due");
        assert_eq!(s.wait(g2, soon(), &clock), g2, "the second is not yet");
        now.store(3_500, Ordering::SeqCst);
        let g3 = s.wait(g2, later(), &clock);
        assert_ne!(g3, g2, "the second is due");
        assert_eq!(s.wait(g3, soon(), &clock), g3, "nothing is left");
        s.bump();
        assert_ne!(s.generation(), g3);
    }
}
