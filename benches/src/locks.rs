//! Lock workloads (`locks.*` figures).

use std::time::{Duration, Instant};

use oc_locks::{LockManager, LockRequest};

/// Iterations of the throughput loop.
pub const PAIRS: usize = 1_000_000;
/// Refusals timed by the conflict-detection workload.
pub const REFUSALS: usize = 100_000;

/// The ten requests of the throughput loop: iteration i locks `task-<i % 10>` for
/// `agent-<i % 5>` (exclusive, 1 s TTL); built once, as interned names would be.
pub fn requests() -> Vec<LockRequest> {
    (0..10)
        .map(|i| {
            LockRequest::exclusive(&format!("task-{i}"), &format!("agent-{}", i % 5))
                .map(|r| r.ttl(Duration::from_secs(1)))
        })
        .collect::<oc_locks::Result<_>>()
        .unwrap_or_default()
}

/// `throughput`: `n` uncontended acquire+release pairs; returns the time.
#[inline(never)]
pub fn acquire_release(
    m: &dyn LockManager,
    reqs: &[LockRequest],
    n: usize,
) -> oc_locks::Result<Duration> {
    let start = Instant::now();
    for i in 0..n {
        let r = &reqs[i % reqs.len()];
        let l = m.try_acquire(r)?;
        m.release(&l.resource, &l.owner)?;
    }
    Ok(start.elapsed())
}

/// `acquisition_latency`: the time of each acquire in `n` pairs, in nanoseconds.
pub fn acquisition_latencies(
    m: &dyn LockManager,
    reqs: &[LockRequest],
    n: usize,
) -> oc_locks::Result<Vec<u64>> {
    let mut v = Vec::with_capacity(n);
    for i in 0..n {
        let r = &reqs[i % reqs.len()];
        let t = Instant::now();
        let l = m.try_acquire(r)?;
        v.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        m.release(&l.resource, &l.owner)?;
    }
    Ok(v)
}

/// `conflict_detection`: one owner holds `task-0`; another's exclusive `try_acquire` is
/// refused `n` times; the time of each refusal in nanoseconds.
pub fn conflict_latencies(m: &dyn LockManager, n: usize) -> oc_locks::Result<Vec<u64>> {
    let holder = LockRequest::exclusive("task-0", "holder")?;
    let other = LockRequest::exclusive("task-0", "other")?;
    let held = m.try_acquire(&holder)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let refused = m.try_acquire(&other).is_err();
        v.push(u64::try_from(t.elapsed().as_nanos()).unwrap_or(u64::MAX));
        assert!(refused, "the second owner must be refused");
    }
    m.release(&held.resource, &held.owner)?;
    Ok(v)
}

/// Contended throughput: `threads` threads each doing `n / threads` pairs on the same ten
/// resources (thread t uses owner `agent-t`), waiting when a resource is taken.
pub fn contended(m: &dyn LockManager, threads: usize, n: usize) -> oc_locks::Result<Duration> {
    let start = Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> oc_locks::Result<()> {
                    let reqs: Vec<LockRequest> = (0..10)
                        .map(|i| {
                            LockRequest::exclusive(&format!("task-{i}"), &format!("agent-{t}"))
                        })
                        .collect::<oc_locks::Result<_>>()?;
                    for i in 0..n / threads {
                        let l = m.acquire(&reqs[i % 10], Duration::from_secs(10))?;
                        m.release(&l.resource, &l.owner)?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("lock thread"))
    })?;
    Ok(start.elapsed())
}

/// The value at quantile `q` of sorted `v` (index ⌊n·q⌋, as the seed's tracker takes it).
pub fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[i]
}
