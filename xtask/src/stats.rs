//! The statistics of a figure's runs, shared by the report (`bench.rs`) and the saved-run
//! comparison (`baseline.rs`).

/// The median of `v` (`None` when empty).
pub(crate) fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// The median and the noise of a figure's runs: half their range, relative to the median
/// (`None` with fewer than three runs, too few to say).
pub(crate) fn centre_and_noise(runs: &[f64]) -> Option<(f64, Option<f64>)> {
    let median = median(runs.to_vec())?;
    let (lo, hi) = runs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), r| {
            (lo.min(*r), hi.max(*r))
        });
    let noise = (runs.len() >= 3 && median != 0.0).then(|| (hi - lo) / 2.0 / median.abs());
    Some((median, noise))
}
