//! `oc-bench-instructions`: runs each hot path of `oc_benches::hot` once, for callgrind to
//! count (`cargo xtask instructions`); `--list` prints the functions to count and the
//! operations each runs, as JSON.

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        let list = serde_json::json!({
            "iterations": oc_benches::hot::ITERATIONS,
            "paths": oc_benches::hot::PATHS,
        });
        #[allow(clippy::print_stdout)]
        {
            println!("{list}");
        }
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    oc_benches::hot::run_all(dir.path())
}
