//! Criterion benches of the `sqlite.*` workloads, exactly as `benchmarks.md` defines them.
//! One iteration is one whole workload; throughput is reported per row, read or query.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oc_benches::sqlite;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("sqlite");
    g.sample_size(10).warm_up_time(Duration::from_millis(500));

    g.throughput(Throughput::Elements(sqlite::ROWS as u64));
    g.bench_function("batch_insert", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let mut db = sqlite::open_fresh().expect("fresh db");
                    sqlite::batch_insert(&mut db).expect("insert")
                })
                .sum()
        })
    });

    let mut db = sqlite::loaded().expect("loaded db");
    g.throughput(Throughput::Elements(sqlite::READS as u64));
    g.bench_function("single_read", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| sqlite::single_read(&mut db).expect("reads"))
                .sum()
        })
    });
    g.throughput(Throughput::Elements(sqlite::RANGES as u64));
    g.bench_function("range_query", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| sqlite::range_query(&mut db).expect("ranges"))
                .sum()
        })
    });
    g.throughput(Throughput::Elements(sqlite::UPDATES as u64));
    g.bench_function("update", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| sqlite::update(&mut db).expect("updates"))
                .sum()
        })
    });
    g.throughput(Throughput::Elements(sqlite::ROWS as u64));
    g.bench_function("full_scan", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| sqlite::full_scan(&mut db).expect("scan").0)
                .sum()
        })
    });
    g.finish();
}

criterion_group!(sqlite_benches, benches);
criterion_main!(sqlite_benches);
