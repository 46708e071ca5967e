//! Integration tests of `oc-auth`: the conformance suite of token stores on the memory store
//! and on SQLite files, and (feature `oauth`) the JWT access-token verifier.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[cfg(feature = "oauth")]
mod oauth;

mod memory {
    use std::sync::Arc;

    use oc_auth::testkit::ManualClock;
    use oc_auth::{MemoryTokenStore, TokenStore};

    oc_auth::token_store_conformance_tests!(|clock: ManualClock| {
        let a = MemoryTokenStore::with_clock(Arc::new(clock));
        (
            Arc::new(a.clone()) as Arc<dyn TokenStore>,
            Arc::new(a) as Arc<dyn TokenStore>,
        )
    });
}

/// Two stores opened on one file, as two processes would.
mod sqlite {
    use std::sync::Arc;

    use oc_auth::testkit::ManualClock;
    use oc_auth::{SqliteTokenStore, TokenStore};

    fn make(clock: ManualClock) -> (Arc<dyn TokenStore>, Arc<dyn TokenStore>) {
        let dir = tempfile::tempdir().unwrap();
        // The directory lives as long as the test process; each test has its own.
        let path = dir.keep().join("opencode.db");
        let a = SqliteTokenStore::open_with_clock(&path, Arc::new(clock.clone())).unwrap();
        let b = SqliteTokenStore::open_with_clock(&path, Arc::new(clock)).unwrap();
        (Arc::new(a), Arc::new(b))
    }

    oc_auth::token_store_conformance_tests!(make);

    #[test]
    fn only_the_hash_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode.db");
        let store = SqliteTokenStore::open(&path).unwrap();
        let (secret, info) = store
            .create("alice", oc_auth::Scope::Work, None, None)
            .unwrap();
        drop(store);
        let raw = std::fs::read(&path).unwrap();
        let wal = std::fs::read(path.with_extension("db-wal")).unwrap_or_default();
        let secret_part = &secret.expose()[4 + info.id.len() + 1..];
        for bytes in [&raw, &wal] {
            assert!(
                !bytes
                    .windows(secret_part.len())
                    .any(|w| w == secret_part.as_bytes()),
                "the secret is in the file"
            );
        }
        let c = rusqlite::Connection::open(&path).unwrap();
        let v: i64 = c
            .query_row(
                "SELECT version FROM oc_schema WHERE component = 'oc-auth'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(v, 1);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("opencode.db");
        drop(SqliteTokenStore::open(&path).unwrap());
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute(
            "UPDATE oc_schema SET version = 99 WHERE component = 'oc-auth'",
            [],
        )
        .unwrap();
        let e = SqliteTokenStore::open(&path).unwrap_err();
        assert!(e.to_string().contains("version 99"), "{e}");
    }
}
