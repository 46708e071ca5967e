//! `cargo xtask shuttle [--soak]`: the in-memory lock manager's waiter queue and the JSONL group
//! commit's hand-off under shuttle's random and PCT schedulers.

use crate::workspace::{figures_path, run, target_dir};

/// The interleaving tests built with `--cfg shuttle` (shuttle's synchronisation swapped in), in a
/// target directory of their own so the main build stays cached; their figures join this run's.
/// `soak` runs twenty times as many schedules.
pub(crate) fn shuttle(soak: bool) -> anyhow::Result<()> {
    let target = target_dir().join("shuttle");
    let figures = figures_path();
    run(
        "cargo",
        &[
            "test", "-p", "oc-locks", "-p", "oc-jsonl", "--test", "shuttle", "--locked",
        ],
        &[
            ("RUSTFLAGS", "--cfg shuttle"),
            ("CARGO_TARGET_DIR", &target.to_string_lossy()),
            ("OC_RELIABILITY_OUT", &figures.to_string_lossy()),
            ("OC_SOAK", if soak { "1" } else { "0" }),
        ],
    )
}
