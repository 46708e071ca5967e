//! Replays every committed fuzz input (`fuzz/corpus/<target>/*`, and the crash reproducers in
//! `fuzz/regressions/<target>/*`) through its oracle, as SQLite's `fuzzcheck` does on every
//! build.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

fn inputs(dir: &str, target: &str) -> Vec<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(dir)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&d) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn corpus_inputs_pass_their_oracles() {
    let mut total = 0;
    let mut per_target = serde_json::Map::new();
    for (target, oracle) in oc_fuzz_oracles::TARGETS {
        let corpus = inputs("corpus", target);
        let regressions = inputs("regressions", target);
        assert!(
            !corpus.is_empty(),
            "no corpus for {target}: run `cargo xtask fuzz`"
        );
        for path in corpus.iter().chain(&regressions) {
            let data = std::fs::read(path).unwrap();
            let run = std::panic::catch_unwind(|| oracle(&data));
            assert!(
                run.is_ok(),
                "{target}: {} fails its oracle (replay: cargo fuzz run {target} {})",
                path.display(),
                path.display()
            );
        }
        total += corpus.len() + regressions.len();
        per_target.insert(
            target.to_owned(),
            serde_json::json!({ "corpus": corpus.len(), "regressions": regressions.len() }),
        );
    }
    oc_lincheck::publish(
        "fuzz.corpus_replay",
        serde_json::json!({ "inputs": total, "targets": per_target, "mismatches": 0, "panics": 0 }),
    );
}
