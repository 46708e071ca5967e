//! The synchronisation the group commit uses: `parking_lot`'s and the standard library's, or,
//! built with `RUSTFLAGS="--cfg shuttle"`, shuttle's, so that its scheduler can explore the
//! hand-off between appenders and the leader that syncs for them (`tests/shuttle.rs`). A cfg
//! rather than a feature: `--all-features` must never put shuttle's primitives (which only
//! work inside shuttle's runtime) into a build.

#[cfg(not(shuttle))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(shuttle))]
pub(crate) use std::sync::atomic::AtomicU64;
#[cfg(not(shuttle))]
pub(crate) use std::thread::{Thread, current, park, yield_now};

/// Runs `f` with `guard`'s lock released, and takes it again.
#[cfg(not(shuttle))]
pub(crate) fn unlocked<T, R>(guard: &mut MutexGuard<'_, T>, f: impl FnOnce() -> R) -> R {
    MutexGuard::unlocked(guard, f)
}

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::AtomicU64;
#[cfg(shuttle)]
pub(crate) use shuttle::thread::{Thread, current, park, yield_now};
#[cfg(shuttle)]
pub(crate) use shuttled::{Condvar, Mutex, MutexGuard, unlocked};

#[cfg(shuttle)]
mod shuttled {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// `parking_lot::Mutex`'s face over shuttle's.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// A held lock; its guard is `None` only while released inside [`unlocked`] or a wait.
    pub(crate) struct MutexGuard<'a, T> {
        mutex: &'a Mutex<T>,
        guard: Option<shuttle::sync::MutexGuard<'a, T>>,
    }

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(v))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard {
                mutex: self,
                guard: Some(self.0.lock().unwrap_or_else(|e| e.into_inner())),
            }
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.guard
                .as_deref()
                .unwrap_or_else(|| unreachable!("guard released"))
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.guard
                .as_deref_mut()
                .unwrap_or_else(|| unreachable!("guard released"))
        }
    }

    pub(crate) fn unlocked<T, R>(guard: &mut MutexGuard<'_, T>, f: impl FnOnce() -> R) -> R {
        drop(guard.guard.take());
        let r = f();
        guard.guard = Some(guard.mutex.0.lock().unwrap_or_else(|e| e.into_inner()));
        r
    }

    /// `parking_lot::Condvar`'s face for shuttle: a count of notifications that a timed wait
    /// watches while yielding, for up to 16 turns of the scheduler, then times out. Shuttle
    /// chooses who runs at each turn, so a wait ends notified or timed out in every order a real
    /// one could, and never blocks: a deadline always passes (shuttle's own timed waits never
    /// time out, which would report a deadlock where the real code waits out its deadline).
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(shuttle::sync::atomic::AtomicU64);

    pub(crate) struct WaitResult(bool);

    impl WaitResult {
        pub(crate) fn timed_out(&self) -> bool {
            self.0
        }
    }

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(shuttle::sync::atomic::AtomicU64::new(0))
        }

        pub(crate) fn notify_one(&self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }

        pub(crate) fn wait_until<T>(
            &self,
            guard: &mut MutexGuard<'_, T>,
            _deadline: Instant,
        ) -> WaitResult {
            let seen = self.0.load(std::sync::atomic::Ordering::SeqCst);
            unlocked(guard, || {
                for _ in 0..16 {
                    shuttle::thread::yield_now();
                    if self.0.load(std::sync::atomic::Ordering::SeqCst) != seen {
                        return WaitResult(false);
                    }
                }
                WaitResult(true)
            })
        }
    }
}
