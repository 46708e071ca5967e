//! Criterion benches of a lifecycle transition with 0, 1 and 10 after-hooks, inline and
//! background, on an in-memory store.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use oc_benches::hooks;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("hooks");
    g.warm_up_time(Duration::from_millis(500));
    g.throughput(Throughput::Elements(1000));
    for (name, n, bg) in [
        ("0", 0, false),
        ("1_inline", 1, false),
        ("10_inline", 10, false),
        ("1_background", 1, true),
        ("10_background", 10, true),
    ] {
        let life = hooks::lifecycle(n, bg);
        g.bench_function(format!("transition_{name}"), |b| {
            b.iter(|| hooks::creates(&life, 1000).expect("create"))
        });
    }
    g.finish();
}

criterion_group!(hook_benches, benches);
criterion_main!(hook_benches);
