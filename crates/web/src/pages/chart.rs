//! Throughput over the last hour: claims, completions and failures per minute, from samples
//! of the store's per-status transition counters (`TaskCounts::entered`), drawn as SVG bars on
//! the server with the same numbers in a table.

use std::collections::VecDeque;

use maud::{Markup, html};
use oc_tasks::TaskStatus;
use oc_time::Timestamp;

/// The counters a sample keeps: entered running (claims and starts), completed, failed.
const SERIES: [(TaskStatus, &str); 3] = [
    (TaskStatus::Running, "Claims"),
    (TaskStatus::Completed, "Completions"),
    (TaskStatus::Failed, "Failures"),
];
const MINUTE: i64 = 60_000;
/// Minutes shown.
const MINUTES: usize = 60;

/// Samples of the counters over the last hour and a bit.
#[derive(Debug, Default)]
pub(crate) struct Samples(VecDeque<(Timestamp, [u64; 3])>);

impl Samples {
    /// Records the counters of tasks `entered` into each status at `now`, and forgets what is
    /// older than the chart.
    pub(crate) fn record(&mut self, entered: &[(TaskStatus, u64)], now: Timestamp) {
        let count = |s: TaskStatus| entered.iter().find(|(t, _)| *t == s).map_or(0, |(_, n)| *n);
        let sample = SERIES.map(|(s, _)| count(s));
        if self.0.back().is_some_and(|(at, _)| *at >= now) {
            return;
        }
        self.0.push_back((now, sample));
        let horizon = now.as_millis() - (MINUTES as i64 + 2) * MINUTE;
        while self.0.len() > 2 && self.0[1].0.as_millis() < horizon {
            self.0.pop_front();
        }
    }

    /// How many samples are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Per series, per minute of the last hour (oldest first): how many entered, or `None`
    /// for a minute that ended before the first sample (the minute of the first sample counts
    /// from it).
    fn per_minute(&self, now: Timestamp) -> [Vec<Option<u64>>; 3] {
        let end = (now.as_millis() / MINUTE + 1) * MINUTE;
        // The counters as last sampled at or before `t`.
        let at = |t: i64| {
            self.0
                .iter()
                .rev()
                .find(|(s, _)| s.as_millis() <= t)
                .map(|(_, c)| *c)
        };
        let first = self.0.front().map(|(_, c)| *c);
        let mut out: [Vec<Option<u64>>; 3] = Default::default();
        for m in 0..MINUTES {
            let to = end - (MINUTES - m) as i64 * MINUTE + MINUTE;
            let (before, after) = (at(to - MINUTE).or(first), at(to));
            for (i, series) in out.iter_mut().enumerate() {
                series.push(match (before, after) {
                    (Some(b), Some(a)) => Some(a[i].saturating_sub(b[i])),
                    _ => None,
                });
            }
        }
        out
    }

    /// The three charts and the table beside them.
    pub(crate) fn render(&self, now: Timestamp) -> Markup {
        let series = self.per_minute(now);
        let known = series[0].iter().filter(|v| v.is_some()).count();
        html! {
            @if known == 0 {
                p { "Not enough samples yet: the chart fills in as this server runs." }
            } @else {
                div class="charts" {
                    @for ((_, label), values) in SERIES.iter().zip(&series) {
                        figure {
                            (bars(label, values))
                            figcaption { (label) " per minute, last hour: " (values.iter().flatten().sum::<u64>()) }
                        }
                    }
                }
                details {
                    summary { "The numbers, per minute" }
                    table {
                        caption class="sr-only" { "Claims, completions and failures per minute" }
                        thead { tr { th scope="col" { "Minute (UTC)" } @for (_, l) in SERIES { th scope="col" { (l) } } } }
                        tbody {
                            @for m in (0..MINUTES).rev().filter(|&m| series[0][m].is_some()) {
                                tr {
                                    td { (minute_label(now, m)) }
                                    @for s in &series { td { (s[m].unwrap_or(0)) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `HH:MM` of minute `m` of the chart ending at `now`.
fn minute_label(now: Timestamp, m: usize) -> String {
    let start = (now.as_millis() / MINUTE - (MINUTES - 1 - m) as i64) * MINUTE;
    let t = Timestamp::from_millis(start).to_rfc3339_seconds();
    t.get(11..16).unwrap_or(&t).to_owned()
}

/// One bar per minute; a gap where nothing was sampled.
fn bars(label: &str, values: &[Option<u64>]) -> Markup {
    let (w, h) = (240.0_f64, 48.0_f64);
    let max = values.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let step = w / values.len().max(1) as f64;
    html! {
        svg role="img" aria-label={ (label) " per minute over the last hour" } viewBox={ "0 0 " (w) " " (h) } width=(w) height=(h) {
            title { (label) " per minute over the last hour" }
            line x1="0" y1=(h - 0.5) x2=(w) y2=(h - 0.5) class="axis" {}
            @for (i, v) in values.iter().enumerate() {
                @if let Some(v) = v {
                    @let bh = (*v as f64 / max * (h - 2.0)).max(if *v > 0 { 1.0 } else { 0.0 });
                    rect x=(format!("{:.1}", i as f64 * step)) y=(format!("{:.1}", h - bh)) width=(format!("{:.1}", (step - 1.0).max(1.0))) height=(format!("{:.1}", bh)) {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(running: u64, completed: u64, failed: u64) -> Vec<(TaskStatus, u64)> {
        vec![
            (TaskStatus::Running, running),
            (TaskStatus::Completed, completed),
            (TaskStatus::Failed, failed),
        ]
    }

    #[test]
    fn minutes_count_what_entered_between_samples() {
        let t0 = Timestamp::from_millis(1_800_000_000_000 / MINUTE * MINUTE);
        let mut s = Samples::default();
        s.record(&stats(10, 5, 1), t0);
        s.record(
            &stats(14, 7, 1),
            t0.saturating_add(std::time::Duration::from_secs(30)),
        );
        s.record(
            &stats(20, 12, 2),
            t0.saturating_add(std::time::Duration::from_secs(90)),
        );
        let now = t0.saturating_add(std::time::Duration::from_secs(100));
        let [claims, done, failed] = s.per_minute(now);
        // The last minute holds the sample at 90 s; the one before, those at 0 s and 30 s.
        assert_eq!(claims[MINUTES - 1], Some(6));
        assert_eq!(done[MINUTES - 1], Some(5));
        assert_eq!(failed[MINUTES - 1], Some(1));
        // The minute before: from the sample at its very start to the one at 30 s.
        assert_eq!(claims[MINUTES - 2], Some(4));
        assert!(
            claims[..MINUTES - 3].iter().all(Option::is_none),
            "nothing known before the first sample"
        );
        // Two samples in the first minute already show it.
        let mut s = Samples::default();
        s.record(
            &stats(1, 0, 0),
            t0.saturating_add(std::time::Duration::from_secs(10)),
        );
        s.record(
            &stats(3, 1, 0),
            t0.saturating_add(std::time::Duration::from_secs(20)),
        );
        let [claims, ..] = s.per_minute(t0.saturating_add(std::time::Duration::from_secs(25)));
        assert_eq!(claims[MINUTES - 1], Some(2));
        let html = s.render(now).into_string();
        assert!(html.contains("<svg") && html.contains("<table"), "{html}");
    }

    #[test]
    fn old_samples_are_forgotten() {
        let mut s = Samples::default();
        let t0 = Timestamp::from_millis(1_800_000_000_000);
        for i in 0..200 {
            s.record(
                &stats(i, 0, 0),
                t0.saturating_add(std::time::Duration::from_secs(60 * i)),
            );
        }
        assert!(s.0.len() <= MINUTES + 4, "{}", s.0.len());
    }
}
