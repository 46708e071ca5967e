//! The alert store's schema, one `.sql` file per version. `{s}` stands for the quoted schema.
//!
//! Shipped text never changes (the checksums below fail): add a migration instead.

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-alerts";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: states, silences, the outbox and the evaluator's lease.
    include_str!("migrations/0001_alerts.sql"),
];

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The SHA-256 of each migration, as it shipped.
    const PINNED: &[&str] = &["fe3f94d1c1036dfd1ca35ef613348c35e88328dce0afbe3492c53904465f0d58"];

    #[test]
    fn shipped_alert_migrations_never_change() {
        assert_eq!(
            super::MIGRATIONS.len(),
            PINNED.len(),
            "pin every shipped migration"
        );
        for (i, (text, want)) in super::MIGRATIONS.iter().zip(PINNED).enumerate() {
            let got: String = Sha256::digest(text.as_bytes())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                got,
                *want,
                "oc-alerts migration {} changed after it shipped: add a new migration instead",
                i + 1
            );
        }
    }
}
