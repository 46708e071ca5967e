//! The conformance suite against both managers.

mod memory {
    use std::sync::Arc;

    use oc_locks::{LockManager, ManualClock, MemoryLockManager, TtlPolicy};

    fn make(clock: ManualClock) -> Arc<dyn LockManager> {
        Arc::new(MemoryLockManager::with(
            Arc::new(clock),
            TtlPolicy::default(),
        ))
    }

    oc_locks::lock_conformance_tests!(make, 8, 1000);
}

mod sqlite {
    use std::sync::Arc;

    use oc_locks::{LockManager, ManualClock, SqliteLockManager};

    fn make(clock: ManualClock) -> Arc<dyn LockManager> {
        // Kept until the process ends: the manager outlives this function.
        let dir = tempfile::tempdir().unwrap().keep();
        Arc::new(
            SqliteLockManager::options()
                .clock(Arc::new(clock))
                .open(dir.join("opencode.db"))
                .unwrap(),
        )
    }

    oc_locks::lock_conformance_tests!(make, 4, 100);

    #[test]
    fn check_late_grants_refused() {
        let dir = tempfile::tempdir().unwrap();
        oc_locks::testkit::check_late_grants_refused(&|clock| {
            Arc::new(
                SqliteLockManager::options()
                    .clock(clock)
                    .open(dir.path().join("late.db"))
                    .unwrap(),
            )
        });
    }
}

/// A manager of an embedder's that implements only the required methods: the trait's default
/// `acquire_many_watched` (waiting in slices) still passes.
mod defaults {
    use std::sync::Arc;
    use std::time::Duration;

    use oc_locks::{
        Lock, LockManager, LockRequest, LockStats, MemoryLockManager, Owner, Resource, Result,
        Timestamp, TtlPolicy,
    };

    struct Plain(MemoryLockManager);

    impl LockManager for Plain {
        fn acquire(&self, req: &LockRequest, wait: Duration) -> Result<Lock> {
            self.0.acquire(req, wait)
        }
        fn acquire_many(&self, reqs: &[LockRequest], wait: Duration) -> Result<Vec<Lock>> {
            self.0.acquire_many(reqs, wait)
        }
        fn renew(&self, r: &Resource, o: &Owner, ttl: Option<Duration>) -> Result<Lock> {
            self.0.renew(r, o, ttl)
        }
        fn release(&self, r: &Resource, o: &Owner) -> Result<Lock> {
            self.0.release(r, o)
        }
        fn release_owner(&self, o: &Owner) -> Result<Vec<Lock>> {
            self.0.release_owner(o)
        }
        fn sweep_expired(&self) -> Result<Vec<Lock>> {
            self.0.sweep_expired()
        }
        fn holders(&self, r: &Resource) -> Result<Vec<Lock>> {
            self.0.holders(r)
        }
        fn list(&self) -> Result<Vec<Lock>> {
            self.0.list()
        }
        fn stats(&self) -> Result<LockStats> {
            self.0.stats()
        }
        fn now(&self) -> Timestamp {
            self.0.now()
        }
    }

    /// A manager that keeps no keys refuses to give a keyed grant back, typed.
    #[test]
    fn release_forgetting_unsupported() {
        let m = Plain(MemoryLockManager::new());
        let key = oc_locks::IdempotencyKey::new("a", "k").unwrap();
        let e = m.release_forgetting(&key).unwrap_err();
        assert!(matches!(e, oc_locks::Error::IdempotencyUnsupported), "{e}");
    }

    #[test]
    fn check_watched_wait() {
        oc_locks::testkit::check_watched_wait(&|clock| {
            Arc::new(Plain(MemoryLockManager::with(
                Arc::new(clock),
                TtlPolicy::default(),
            ))) as Arc<dyn LockManager>
        });
    }
}
