//! Timestamps and clocks shared by the opencode-tools crates: time is an input, so tests never
//! sleep.
//!
//! - [`Timestamp`]: milliseconds since the Unix epoch, rendered as RFC 3339 (`2026-02-19T10:00:00.000Z`).
//! - [`Clock`]: where stores and managers read the current time; [`SystemClock`] in production,
//!   [`CoarseClock`] where a system call per reading is too dear (1 ms ticks),
//!   [`ManualClock`] in tests, which moves only when told to.
//!
//! ```
//! use std::time::Duration;
//! use oc_time::{Clock, ManualClock, Timestamp};
//! let clock = ManualClock::new(Timestamp::from_millis(1_000));
//! clock.advance(Duration::from_secs(2));
//! assert_eq!(clock.now(), Timestamp::from_millis(3_000));
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

use std::fmt;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time, in milliseconds since the Unix epoch (UTC).
///
/// Stored as an integer (cheap to compare and index), rendered as RFC 3339 with milliseconds
/// (`2026-02-19T10:00:00.000Z`) in JSON and on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The timestamp `ms` milliseconds after the Unix epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The current system time.
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }

    /// This timestamp plus `d`, saturating at the end of time.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }

    /// The time from `earlier` to `self`, or zero if `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// As a [`SystemTime`] (times before the epoch clamp to the epoch).
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(u64::try_from(self.0).unwrap_or(0))
    }

    /// RFC 3339 with whole seconds, as the seed's `task-stats` prints it (`2026-02-19T10:00:00Z`).
    pub fn to_rfc3339_seconds(self) -> String {
        humantime::format_rfc3339_seconds(self.to_system_time()).to_string()
    }

    /// Parses RFC 3339 (`2026-02-19T10:00:00Z`, fractional seconds allowed).
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
            .ok()
            .map(Self::from)
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => Timestamp(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
            Err(e) => Timestamp(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&humantime::format_rfc3339_millis(self.to_system_time()), f)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid RFC 3339 timestamp {s:?}")))
    }
}

/// A source of the current time.
///
/// Stores read it for `created_at`, lease expiry and the like; tests pass a [`ManualClock`].
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The wall clock read through a shared 1 ms ticker: one atomic load per call instead of a
/// system call.
///
/// Reading the system clock costs 50 to 70 ns on the virtual machines we measure on, more than
/// the rest of an in-memory lock acquisition. A single process-wide thread (`oc-coarse-clock`)
/// stores the time every millisecond while the clock is in use, and parks itself after about
/// 200 ms without readers; a read while it is parked takes the system clock and wakes it.
/// Readings are at most a couple of milliseconds behind the system clock, which is nothing
/// next to lock TTLs of a second or more. If the thread cannot be started, every read takes the
/// system clock.
///
/// ```
/// use oc_time::{Clock, CoarseClock, Timestamp};
/// let t = CoarseClock.now();
/// assert!(Timestamp::now().since(t).as_millis() < 1000);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CoarseClock;

struct Ticker {
    now_ms: AtomicI64,
    /// Set by readers, cleared by the ticker: has anyone read since the last check?
    used: AtomicBool,
    /// The ticker is storing the time.
    running: AtomicBool,
    thread: Option<std::thread::Thread>,
}

const IDLE_TICKS: u32 = 200;

fn ticker() -> &'static Ticker {
    static TICKER: OnceLock<Ticker> = OnceLock::new();
    TICKER.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("oc-coarse-clock".into())
            .spawn(tick);
        Ticker {
            now_ms: AtomicI64::new(Timestamp::now().as_millis()),
            used: AtomicBool::new(false),
            running: AtomicBool::new(false),
            thread: spawned.ok().map(|h| h.thread().clone()),
        }
    })
}

fn tick() {
    let t = ticker();
    let mut idle = 0;
    loop {
        if !t.running.load(Ordering::Acquire) {
            std::thread::park();
            idle = 0;
            continue;
        }
        t.now_ms
            .store(Timestamp::now().as_millis(), Ordering::Release);
        std::thread::sleep(Duration::from_millis(1));
        if t.used.swap(false, Ordering::Relaxed) {
            idle = 0;
        } else {
            idle += 1;
            if idle > IDLE_TICKS {
                t.running.store(false, Ordering::Release);
            }
        }
    }
}

impl Clock for CoarseClock {
    fn now(&self) -> Timestamp {
        let t = ticker();
        t.used.store(true, Ordering::Relaxed);
        if t.running.load(Ordering::Acquire) {
            return Timestamp(t.now_ms.load(Ordering::Acquire));
        }
        let now = Timestamp::now();
        if let Some(thread) = &t.thread {
            t.now_ms.store(now.as_millis(), Ordering::Release);
            if !t.running.swap(true, Ordering::AcqRel) {
                thread.unpark();
            }
        }
        now
    }
}

/// A clock that moves only when told to; clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock(Arc::new(AtomicI64::new(start.as_millis())))
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: Duration) {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_rfc3339() {
        let t = Timestamp::from_millis(1_771_495_200_123);
        assert_eq!(t.to_string(), "2026-02-19T10:00:00.123Z");
        assert_eq!(t.to_rfc3339_seconds(), "2026-02-19T10:00:00Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2026-02-19T10:00:00.123Z"),
            Some(t)
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
    }

    #[test]
    fn coarse_clock_follows_the_system_clock() {
        for _ in 0..1000 {
            let before = Timestamp::now();
            let t = CoarseClock.now();
            let after = Timestamp::now();
            // At most a few ticks behind, never ahead.
            assert!(t <= after, "{t} after {after}");
            assert!(
                before.since(t) < Duration::from_millis(50),
                "{t} lags {before}"
            );
        }
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(Timestamp::from_millis(1000));
        let shared = c.clone();
        c.advance(Duration::from_millis(500));
        assert_eq!(shared.now(), Timestamp::from_millis(1500));
        assert_eq!(
            shared.now().since(Timestamp::from_millis(1000)),
            Duration::from_millis(500)
        );
    }
}
