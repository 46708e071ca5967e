//! `docs/METRICS.md` is generated from the catalogue and must not go stale.

#[test]
fn metrics_md_is_current() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/METRICS.md");
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        on_disk,
        oc_metrics::catalogue::markdown(),
        "docs/METRICS.md is stale: run `cargo xtask codegen`"
    );
}

#[test]
fn names_follow_prometheus_conventions() {
    for m in oc_metrics::CATALOGUE {
        assert!(
            m.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
            "{}",
            m.name
        );
        if m.kind == oc_metrics::Kind::Counter {
            assert!(
                m.name.ends_with("_total"),
                "counters end in _total: {}",
                m.name
            );
        }
        if m.unit == "seconds" {
            assert!(m.name.contains("_seconds"), "{}", m.name);
        }
    }
}
