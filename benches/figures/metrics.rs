//! `metrics.*`: what instrumentation adds to a transition, and rendering 10,000 series.

use oc_benches::metrics;

use crate::Figures;

/// metrics.*: what instrumentation adds to a transition, and rendering 10,000 series.
pub(crate) fn figures(runs: usize) -> anyhow::Result<()> {
    const N: usize = 50_000;
    let mut f = Figures::default();
    for _ in 0..runs {
        let mut per_transition = [0.0; 2];
        for (on, name) in [
            (false, "metrics.transition_plain"),
            (true, "metrics.transition_instrumented"),
        ] {
            let (life, ids, _exporter) = metrics::lifecycle(N, on);
            let d = metrics::run(&life, &ids)?;
            per_transition[usize::from(on)] = d.as_nanos() as f64 / (2 * N) as f64;
            f.add(name, "ns", per_transition[usize::from(on)]);
        }
        let [plain, instrumented] = per_transition;
        f.add("metrics.transition_added", "ns", instrumented - plain);
        let exporter = oc_metrics::Exporter::new()?;
        let snap = metrics::big_snapshot(10_000);
        exporter.render(&snap);
        let started = std::time::Instant::now();
        let text = exporter.render(&snap);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        f.add("metrics.render_10k_series", "ms", ms);
        anyhow::ensure!(
            text.lines()
                .filter(|l| l.starts_with("opencode_hook"))
                .count()
                >= 9_999,
            "10,000 series rendered"
        );
    }
    f.emit();
    Ok(())
}
