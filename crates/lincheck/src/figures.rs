//! Figures a check publishes for `cargo xtask reliability` and `docs/RELIABILITY.md`.

use std::fs::OpenOptions;
use std::io::Write;

/// Appends one line of figures (`{"test": name, ...figures}`) to the file named by
/// `OC_RELIABILITY_OUT`, when it is set; `cargo xtask reliability` sets it, runs the checks and
/// prints the table. Figures are evidence, not results: a failure to write them is ignored.
pub fn publish(test: &str, figures: serde_json::Value) {
    let Some(path) = std::env::var_os("OC_RELIABILITY_OUT") else {
        return;
    };
    let mut line = serde_json::json!({ "test": test });
    if let (Some(line), serde_json::Value::Object(f)) = (line.as_object_mut(), figures) {
        line.extend(f);
    }
    let mut text = line.to_string();
    text.push('\n');
    if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = f.write_all(text.as_bytes());
    }
}

/// How many times to repeat a check: `quick` normally, `soak` when `OC_SOAK=1` (the long tier).
pub fn runs(quick: usize, soak: usize) -> usize {
    if std::env::var("OC_SOAK").is_ok_and(|v| v == "1") {
        soak
    } else {
        quick
    }
}

/// The running test, as `package.module.test` (`oc-postgres.conformance.locks.check_linearizable`):
/// a conformance check names its figures after the backend's test that ran it.
pub fn test_name() -> String {
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_else(|_| "unknown".into());
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed")
        .replace("::", ".");
    format!("{package}.{test}")
}
