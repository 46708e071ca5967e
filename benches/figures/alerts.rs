//! `alerts.*`: evaluating 1,000 alert rules over one snapshot.

use crate::emit;

/// One evaluation of 1,000 rules over a snapshot, in its steady state (the median of 20).
pub(crate) fn figures(runs: usize) -> anyhow::Result<()> {
    let snap = oc_benches::alerts::snapshot();
    let mut per_run = Vec::new();
    for _ in 0..runs {
        let mut engine = oc_benches::alerts::engine(1000, &snap);
        let mut times: Vec<f64> = (0..20)
            .map(|_| {
                let started = std::time::Instant::now();
                let sent = engine.evaluate(&snap, oc_time::Timestamp::EPOCH);
                let t = started.elapsed().as_secs_f64() * 1000.0;
                sent.map(|_| t)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        per_run.push(times[times.len() / 2]);
        anyhow::ensure!(
            engine.alerts().count() > 300,
            "a good share of the rules fire"
        );
    }
    emit("alerts.evaluate_1k_rules", per_run, "ms");
    Ok(())
}
