//! Criterion benches of the product path: `create_many`, `claim_next` with 1 and 2 threads,
//! and `stats` over 100,000 tasks.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oc_benches::tasks;
use oc_tasks::TaskStore;

const N: usize = 100_000;
const CLAIMS: usize = 2_000;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("tasks");
    g.sample_size(10).warm_up_time(Duration::from_millis(500));

    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("create_many_100k", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    let (store, _dir) = tasks::fresh().expect("store");
                    tasks::create_many(&store, N, i).expect("create")
                })
                .sum()
        })
    });

    for threads in [1, 2] {
        g.throughput(Throughput::Elements(CLAIMS as u64));
        g.bench_function(format!("claim_next_{threads}t"), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|i| {
                        let (store, _dir) = tasks::fresh().expect("store");
                        tasks::create_many(&store, CLAIMS, i).expect("create");
                        tasks::claim_next(Arc::new(store), CLAIMS, threads).expect("claims")
                    })
                    .sum()
            })
        });
    }

    let (store, _dir) = tasks::fresh().expect("store");
    tasks::create_many(&store, N, 1).expect("create");
    g.throughput(Throughput::Elements(1));
    g.bench_function("stats_100k", |b| b.iter(|| store.stats(5).expect("stats")));
    g.finish();
}

criterion_group!(task_benches, benches);
criterion_main!(task_benches);
