//! The import cursors' schema, one `.sql` file per version. `{s}` stands for the quoted schema.
//!
//! Shipped text never changes (the checksums below fail): add a migration instead.

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-imports";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: a cursor per data directory, task and stream.
    include_str!("migrations/0001_imports.sql"),
];

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    /// The SHA-256 of each migration, as it shipped.
    const PINNED: &[&str] = &["71046cf9e28895f288331c471ef0a833bb98ba8d0e5bb06b787f45b475481838"];

    #[test]
    fn shipped_import_migrations_never_change() {
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
                "oc-imports migration {} changed after it shipped: add a new migration instead",
                i + 1
            );
        }
    }
}
