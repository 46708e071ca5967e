//! `hooks.*`: one lifecycle transition with 0, 1 and 10 hooks, inline and background.

use oc_benches::hooks;

use crate::emit;

/// hooks.*: one lifecycle transition (a creation) with 0, 1 and 10 hooks, inline and background.
pub(crate) fn figures(runs: usize) -> anyhow::Result<()> {
    const N: usize = 100_000;
    for (name, n, background) in [
        ("hooks.transition_0", 0, false),
        ("hooks.transition_1_inline", 1, false),
        ("hooks.transition_10_inline", 10, false),
        ("hooks.transition_1_background", 1, true),
        ("hooks.transition_10_background", 10, true),
    ] {
        let mut ns = Vec::new();
        for _ in 0..runs {
            let life = hooks::lifecycle(n, background);
            hooks::creates(&life, 10_000)?;
            let d = hooks::creates(&life, N)?;
            ns.push(d.as_nanos() as f64 / N as f64);
        }
        emit(name, ns, "ns");
    }
    Ok(())
}
