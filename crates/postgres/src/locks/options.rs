//! [`PgLockOptions`]: how to open a lock manager.

use std::time::Duration;

use oc_locks::TtlPolicy;

use crate::options::PgOptions;

/// How to open a [`PgLockManager`](crate::PgLockManager).
#[derive(Debug, Clone)]
pub struct PgLockOptions {
    pub(super) pg: PgOptions,
    pub(super) ttl: TtlPolicy,
    pub(super) waiter_lease: Duration,
    pub(super) max_poll: Duration,
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
