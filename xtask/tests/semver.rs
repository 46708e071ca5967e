//! cargo-semver-checks, as `cargo xtask supply` runs it, fails on a breaking change: a scratch
//! copy of `oc-time` without one public method (`ManualClock::set`) is checked against an
//! unchanged copy, and the check fails naming the method; two unchanged copies pass (so the
//! failure is the removal's, not the set-up's). Decision 0055.
//!
//! `oc-time` is the smallest published crate (serde and humantime only), so the four rustdoc
//! builds cost seconds once its dependencies are built. Without cargo-semver-checks the test
//! says so and passes, unless `OC_REQUIRE_SEMVER_CHECKS` (or `CI=true`) is set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_path_buf()
}

fn semver_checks_installed() -> bool {
    Command::new("cargo")
        .args(["semver-checks", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn required() -> bool {
    std::env::var_os("OC_REQUIRE_SEMVER_CHECKS").is_some()
        || std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A standalone copy of `crates/time` in `dir` (its own workspace, the repository's lock
/// file), with `edit` applied to `src/lib.rs`.
fn copy_oc_time(dir: &Path, edit: impl Fn(&str) -> String) {
    let src = root().join("crates/time");
    std::fs::create_dir_all(dir.join("src")).expect("scratch dir");
    let lib = std::fs::read_to_string(src.join("src/lib.rs")).expect("oc-time's lib.rs");
    std::fs::write(dir.join("src/lib.rs"), edit(&lib)).expect("write lib.rs");
    // The workspace's versions of its two dependencies, without the workspace.
    let ws: toml::Table =
        toml::from_str(&std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml"))
            .expect("Cargo.toml is TOML");
    let deps = &ws["workspace"]["dependencies"];
    let version = ws["workspace"]["package"]["version"]
        .as_str()
        .expect("version");
    let manifest = format!(
        "[package]\nname = \"oc-time\"\nversion = \"{version}\"\nedition = \"2024\"\n\n\
         [dependencies]\nserde = {{ version = \"{}\", default-features = false, features = [\"std\", \"derive\"] }}\n\
         humantime = {{ version = \"{}\", default-features = false }}\n\n[workspace]\n",
        deps["serde"]["version"].as_str().expect("serde"),
        deps["humantime"]["version"].as_str().expect("humantime"),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).expect("write Cargo.toml");
    std::fs::copy(root().join("Cargo.lock"), dir.join("Cargo.lock")).expect("copy Cargo.lock");
}

/// `cargo semver-checks` of `current` against `baseline`: (passed, output).
fn semver_checks(scratch: &Path, current: &Path, baseline: &Path) -> (bool, String) {
    let out = Command::new("cargo")
        .args(["semver-checks", "--manifest-path"])
        .arg(current.join("Cargo.toml"))
        .arg("--baseline-root")
        .arg(baseline)
        .env("CARGO_TARGET_DIR", scratch.join("target"))
        .env("CARGO_NET_OFFLINE", "true")
        .output()
        .expect("cargo semver-checks runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

const REMOVED: &str = "    /// Sets the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t.as_millis(), Ordering::SeqCst);
    }
";

#[test]
fn removing_a_public_method_fails_the_semver_check() {
    if !semver_checks_installed() {
        assert!(
            !required(),
            "cargo-semver-checks is required (OC_REQUIRE_SEMVER_CHECKS or CI is set)"
        );
        eprintln!("skipped: cargo-semver-checks is not installed");
        return;
    }
    let scratch = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("semver-removal");
    let _ = std::fs::remove_dir_all(scratch.join("baseline"));
    let _ = std::fs::remove_dir_all(scratch.join("same"));
    let _ = std::fs::remove_dir_all(scratch.join("removed"));
    let (baseline, same, removed) = (
        scratch.join("baseline"),
        scratch.join("same"),
        scratch.join("removed"),
    );
    copy_oc_time(&baseline, str::to_owned);
    copy_oc_time(&same, str::to_owned);
    copy_oc_time(&removed, |lib| {
        assert!(
            lib.contains(REMOVED),
            "oc-time's ManualClock::set moved: update the test"
        );
        lib.replacen(REMOVED, "", 1)
    });

    let (passed, out) = semver_checks(&scratch, &same, &baseline);
    assert!(passed, "an unchanged copy passes:\n{out}");

    let (passed, out) = semver_checks(&scratch, &removed, &baseline);
    assert!(!passed, "the removal must fail the check:\n{out}");
    assert!(
        out.contains("inherent_method_missing") && out.contains("ManualClock::set"),
        "the failure names the lint and the method:\n{out}"
    );
}
