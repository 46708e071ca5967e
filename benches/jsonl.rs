//! Criterion benches of the JSONL workloads: one append handed to the OS, batches of 100,
//! reading every line back, and the tail of a large log.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oc_benches::jsonl;

const N: usize = 100_000;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("jsonl");
    g.sample_size(10).warm_up_time(Duration::from_millis(500));
    let dir = tempfile::tempdir().expect("temp dir");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("simple_append", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    jsonl::simple_append(&dir.path().join(format!("s{i}.jsonl")), N)
                        .expect("append")
                })
                .sum()
        })
    });
    g.bench_function("batch_append", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|i| {
                    jsonl::batch_append(&dir.path().join(format!("b{i}.jsonl")), N).expect("append")
                })
                .sum()
        })
    });
    let p = dir.path().join("read.jsonl");
    jsonl::simple_append(&p, N).expect("append");
    g.bench_function("read_parse", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| jsonl::read_parse(&p).expect("read").0)
                .sum()
        })
    });
    // The last 20 entries of a 44 MB log of 800 KB entries (a task's page, `oc logs tail`).
    let big = dir.path().join("big.jsonl");
    jsonl::large_log(&big, jsonl::TAIL_LOG_ENTRIES).expect("large log");
    g.throughput(Throughput::Elements(jsonl::TAIL_LINES as u64));
    g.bench_function("tail_large", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| jsonl::tail_large(&big, jsonl::TAIL_LINES).expect("tail").0)
                .sum()
        })
    });
    g.finish();
}

criterion_group!(jsonl_benches, benches);
criterion_main!(jsonl_benches);
