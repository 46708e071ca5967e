//! `locks.*`: the documented loop on the in-memory lock manager, latencies, contention, SQLite.

use oc_benches::locks;
use oc_locks::{LockManager, MemoryLockManager, SqliteLockManager};

use crate::{Figures, per_sec};

/// locks.*: the documented loop on `MemoryLockManager`, latencies, contention, and SQLite.
pub(crate) fn figures(runs: usize) -> anyhow::Result<()> {
    let reqs = locks::requests();
    let mut f = Figures::default();
    for _ in 0..runs {
        let m = MemoryLockManager::new();
        // Warm the allocator and caches the way a long-running agent would be.
        locks::acquire_release(&m, &reqs, 100_000)?;
        let d = locks::acquire_release(&m, &reqs, locks::PAIRS)?;
        f.add("locks.acquire_release", "pairs/s", per_sec(locks::PAIRS, d));
        let mut lat = locks::acquisition_latencies(&m, &reqs, locks::PAIRS)?;
        lat.sort_unstable();
        let mut con = locks::conflict_latencies(&m, locks::REFUSALS)?;
        con.sort_unstable();
        for ([p50, p99, max], sorted) in [
            (
                [
                    "locks.acquisition_latency_p50",
                    "locks.acquisition_latency_p99",
                    "locks.acquisition_latency_max",
                ],
                &lat,
            ),
            (
                [
                    "locks.conflict_detection_p50",
                    "locks.conflict_detection_p99",
                    "locks.conflict_detection_max",
                ],
                &con,
            ),
        ] {
            f.add(p50, "ns", locks::quantile(sorted, 0.5) as f64);
            f.add(p99, "ns", locks::quantile(sorted, 0.99) as f64);
            f.add(max, "ns", *sorted.last().unwrap_or(&0) as f64);
        }
        let d = locks::contended(&m, 2, 200_000)?;
        f.add("locks.contended_2t", "pairs/s", per_sec(200_000, d));
        let dir = tempfile::tempdir()?;
        let s = SqliteLockManager::open(dir.path().join("locks.db"))?;
        let d = locks::acquire_release(&s, &reqs, 5_000)?;
        f.add("locks.sqlite_acquire_release", "pairs/s", per_sec(5_000, d));
        let _ = s.stats()?;
    }
    f.emit();
    Ok(())
}
