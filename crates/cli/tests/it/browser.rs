//! `oc serve`'s pages in a real browser: runs `crates/web/tests/browser` (node's test runner,
//! playwright-core driving Debian's Chromium, axe-core) against this build of `oc`. Skipped
//! when Chromium or the npm packages are missing, unless `OC_REQUIRE_BROWSER` is set (as CI
//! sets it); screenshots of every page land in `target/web/`.

use std::path::Path;
use std::process::Command;

#[test]
fn the_pages_work_in_a_real_browser() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/tests/browser");
    let chromium = std::env::var_os("CHROMIUM").unwrap_or_else(|| "/usr/bin/chromium".into());
    let ready = Path::new(&chromium).exists()
        && dir.join("node_modules/playwright-core").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        assert!(
            std::env::var_os("OC_REQUIRE_BROWSER").is_none(),
            "the browser tests need /usr/bin/chromium, node and `npm ci --prefix {}`",
            dir.display()
        );
        eprintln!("no Chromium or npm packages: skipping the browser tests");
        return;
    }
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/web");
    let out = Command::new("node")
        .arg("--test")
        .current_dir(&dir)
        .env("OC_BIN", env!("CARGO_BIN_EXE_oc"))
        .env("CHROMIUM", &chromium)
        .env("OC_WEB_SHOTS", &shots)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.contains("# fail 0"),
        "browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# pass 8"), "{report}");
    assert!(shots.join("overview.png").exists() && shots.join("task.png").exists());
}
