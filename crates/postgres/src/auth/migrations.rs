//! The token store's schema, one `.sql` file per version (pinned in `pinned.rs`). `{s}` stands
//! for the quoted schema.

/// The name the versions are recorded under in `oc_schema`.
pub(crate) const COMPONENT: &str = "oc-auth";

/// Each entry moves the schema one version up (entry `i` makes version `i + 1`).
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: static tokens by public id, the secret's hash only.
    include_str!("migrations/0001_tokens.sql"),
];
