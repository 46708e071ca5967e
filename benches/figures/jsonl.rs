//! `jsonl.*`: appends, reads, a filtered read, a tail, durable appends.

use std::time::Duration;

use oc_benches::{jsonl, peak_rss, reset_peak_rss};

use crate::{Figures, MIB, per_sec};

/// jsonl.*: the documented append and read workloads, durable appends, a filtered read.
pub(crate) fn figures(runs: usize, quick: bool) -> anyhow::Result<()> {
    let mut f = Figures::default();
    for _ in 0..runs {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("simple.jsonl");
        let d = jsonl::simple_append(&p, jsonl::RECORDS)?;
        f.add(
            "jsonl.simple_append",
            "records/s",
            per_sec(jsonl::RECORDS, d),
        );
        let b = dir.path().join("batch.jsonl");
        let d = jsonl::batch_append(&b, jsonl::RECORDS)?;
        f.add(
            "jsonl.batch_append",
            "records/s",
            per_sec(jsonl::RECORDS, d),
        );
        std::fs::remove_file(&b)?;
        f.add(
            "jsonl.file_size",
            "MiB",
            std::fs::metadata(&p)?.len() as f64 / MIB,
        );
        let reset = reset_peak_rss();
        let base = peak_rss().unwrap_or(0);
        let (d, lines) = jsonl::read_parse(&p)?;
        f.add(
            "jsonl.read_parse",
            "lines/s",
            lines as f64 / d.as_secs_f64(),
        );
        if reset {
            let growth = peak_rss().unwrap_or(0).saturating_sub(base);
            f.add("jsonl.read_parse_rss_growth", "MiB", growth as f64 / MIB);
        }
        let reset = reset_peak_rss();
        let (d, lines, _) = jsonl::filtered_read(&p)?;
        f.add(
            "jsonl.filtered_read",
            "lines/s",
            lines as f64 / d.as_secs_f64(),
        );
        if reset {
            let peak = peak_rss().unwrap_or(0);
            f.add("jsonl.filtered_read_peak_rss", "MiB", peak as f64 / MIB);
        }
        let big = dir.path().join("big.jsonl");
        jsonl::large_log(&big, jsonl::TAIL_LOG_ENTRIES)?;
        let (d, parsed) = jsonl::tail_large(&big, jsonl::TAIL_LINES)?;
        anyhow::ensure!(
            parsed == jsonl::TAIL_LINES,
            "the tail parsed {parsed} entries"
        );
        f.add("jsonl.tail_large", "ms", d.as_secs_f64() * 1e3);
        std::fs::remove_file(&big)?;
        let run = Duration::from_millis(if quick { 300 } else { 1000 });
        use oc_jsonl::Durability::{Fsync, GroupCommit};
        let (none, spin) = (Duration::ZERO, Duration::from_micros(300));
        for (name, durability, spin, writers) in [
            ("jsonl.durable_fsync_1w", Fsync, none, 1),
            ("jsonl.durable_group_1w", GroupCommit, none, 1),
            ("jsonl.durable_group_4w", GroupCommit, none, 4),
            ("jsonl.durable_group_16w", GroupCommit, none, 16),
            ("jsonl.durable_group_16w_spin", GroupCommit, spin, 16),
        ] {
            let path = dir.path().join(format!("{name}.jsonl"));
            let (rate, per_sync) = jsonl::durable(&path, durability, spin, writers, run)?;
            f.add(name, "appends/s", rate);
            if name == "jsonl.durable_group_16w" {
                f.add("jsonl.durable_group_16w_per_sync", "appends", per_sync);
            }
        }
    }
    let fsync1 = f.runs("jsonl.durable_fsync_1w");
    for (ratio, group) in [
        ("jsonl.group16_over_fsync1", "jsonl.durable_group_16w"),
        (
            "jsonl.group16_spin_over_fsync1",
            "jsonl.durable_group_16w_spin",
        ),
    ] {
        for (g, one) in f.runs(group).iter().zip(&fsync1) {
            f.add(ratio, "x", g / one);
        }
    }
    f.emit();
    Ok(())
}
