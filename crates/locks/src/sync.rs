//! The synchronisation `MemoryLockManager` uses: `parking_lot`'s, or, built with
//! `RUSTFLAGS="--cfg shuttle"`, shuttle's, so that its scheduler can explore the interleavings of
//! the waiter queue (`tests/shuttle.rs`). A cfg rather than a feature: `--all-features` must
//! never put shuttle's primitives (which only work inside shuttle's runtime) into a build.

#[cfg(not(shuttle))]
pub(crate) use parking_lot::{Condvar, Mutex};

#[cfg(shuttle)]
pub(crate) use shuttled::{Condvar, Mutex};

#[cfg(shuttle)]
mod shuttled {
    use std::ops::{Deref, DerefMut};
    use std::time::Instant;

    /// `parking_lot::Mutex`'s face over shuttle's.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    /// A held lock; `None` only inside [`Condvar::wait_until`].
    pub(crate) struct MutexGuard<'a, T>(Option<shuttle::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(v))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(|e| e.into_inner())))
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            self.0
                .as_deref()
                .unwrap_or_else(|| unreachable!("guard taken"))
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            self.0
                .as_deref_mut()
                .unwrap_or_else(|| unreachable!("guard taken"))
        }
    }

    /// `parking_lot::Condvar`'s face over shuttle's (whose timed waits never time out: a
    /// waiter is only woken by a notification, which is what the tests exercise).
    #[derive(Debug, Default)]
    pub(crate) struct Condvar(shuttle::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Condvar(shuttle::sync::Condvar::new())
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }

        pub(crate) fn wait_until<T>(&self, guard: &mut MutexGuard<'_, T>, _deadline: Instant) {
            if let Some(g) = guard.0.take() {
                guard.0 = Some(self.0.wait(g).unwrap_or_else(|e| e.into_inner()));
            }
        }
    }
}
