//! Criterion benches of the lock workloads: uncontended acquire+release and refused requests on
//! `MemoryLockManager`, two contending threads, and `SqliteLockManager` acquire+release.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oc_benches::locks;
use oc_locks::{LockManager, LockRequest, MemoryLockManager, SqliteLockManager};

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("locks");
    g.warm_up_time(Duration::from_millis(500));
    let reqs = locks::requests();

    let mem = MemoryLockManager::new();
    g.throughput(Throughput::Elements(1));
    g.bench_function("memory_acquire_release", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let l = mem.try_acquire(&reqs[i % 10]).expect("free");
            mem.release(&l.resource, &l.owner).expect("held");
            i += 1;
        })
    });

    let holder = LockRequest::exclusive("task-0", "holder").expect("valid");
    let other = LockRequest::exclusive("task-0", "other").expect("valid");
    let held = mem.try_acquire(&holder).expect("free");
    g.bench_function("memory_conflict_detection", |b| {
        b.iter(|| mem.try_acquire(&other).is_err())
    });
    mem.release(&held.resource, &held.owner).expect("held");

    g.throughput(Throughput::Elements(20_000));
    g.bench_function("memory_contended_2t", |b| {
        let m = Arc::new(MemoryLockManager::new());
        b.iter(|| locks::contended(&*m, 2, 20_000).expect("contended"))
    });

    let dir = tempfile::tempdir().expect("temp dir");
    let sql = SqliteLockManager::open(dir.path().join("locks.db")).expect("open");
    g.throughput(Throughput::Elements(1));
    g.bench_function("sqlite_acquire_release", |b| {
        let mut i = 0usize;
        b.iter(|| {
            let l = sql.try_acquire(&reqs[i % 10]).expect("free");
            sql.release(&l.resource, &l.owner).expect("held");
            i += 1;
        })
    });
    g.finish();
}

criterion_group!(lock_benches, benches);
criterion_main!(lock_benches);
