//! Criterion bench of one evaluation of 1,000 alert rules over a snapshot.
#![allow(missing_docs)]

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use oc_benches::alerts;

fn benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("alerts");
    g.warm_up_time(Duration::from_millis(500));
    let snap = alerts::snapshot();
    let mut engine = alerts::engine(1000, &snap);
    g.bench_function("evaluate_1k_rules", |b| {
        b.iter(|| {
            engine
                .evaluate(&snap, oc_time::Timestamp::EPOCH)
                .expect("evaluate")
        })
    });
    g.finish();
}

criterion_group!(alert_benches, benches);
criterion_main!(alert_benches);
