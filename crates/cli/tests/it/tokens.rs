//! `oc token`: create, list, revoke; the printed token verifies through the library until
//! revoked; bad input exits 2, an unknown id 3.

use oc_auth::{AuthError, Scope, SqliteTokenStore, Verifier};

use crate::util::Oc;

#[test]
fn create_list_revoke_and_the_printed_token_verifies_until_revoked() {
    let oc = Oc::new();
    let created = oc.run(&[
        "token",
        "create",
        "--agent",
        "alice",
        "--scope",
        "work",
        "--tenant",
        "acme",
        "--expires",
        "30d",
    ]);
    assert_eq!(created.code, 0, "{created:?}");
    let token = created
        .stdout
        .lines()
        .find(|l| l.starts_with("oct_"))
        .unwrap_or_else(|| panic!("no token printed: {created:?}"))
        .to_owned();
    assert!(created.stdout.contains("not shown again"), "{created:?}");

    let store = SqliteTokenStore::open(oc.db()).unwrap();
    let who = store.verify(&token).unwrap();
    assert_eq!(
        (
            who.agent.as_str(),
            who.scope,
            who.tenant.as_ref().map(|t| t.as_str())
        ),
        ("alice", Scope::Work, Some("acme"))
    );

    // --json and --quiet print the token too, once each.
    let json = oc.json(&["token", "create", "--agent", "bob", "--scope", "admin"]);
    let bob = json["token"].as_str().unwrap().to_owned();
    assert_eq!(json["scope"], "admin");
    assert!(json["tenant"].is_null() && json["expires_at"].is_null());
    assert_eq!(store.verify(&bob).unwrap().agent, "bob");
    let quiet = oc.run(&[
        "--quiet", "token", "create", "--agent", "carol", "--scope", "read",
    ]);
    assert_eq!(quiet.code, 0, "{quiet:?}");
    assert_eq!(
        store.verify(quiet.stdout.trim()).unwrap().scope,
        Scope::Read
    );

    // The list never shows a secret, in text or JSON.
    let id = token[4..20].to_owned();
    let listed = oc.json(&["token", "list"]);
    let rows = listed.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["id"], id.as_str());
    assert_eq!(rows[0]["agent"], "alice");
    assert!(
        rows[0]["last_used_at"].is_string(),
        "verified once: {listed}"
    );
    let text = oc.run(&["token", "list"]);
    assert_eq!(text.code, 0, "{text:?}");
    assert!(
        text.stdout.contains(&id) && text.stdout.contains("active"),
        "{text:?}"
    );
    for secret in [&token, &bob] {
        let secret_part = &secret[21..];
        assert!(!text.stdout.contains(secret_part), "{text:?}");
        assert!(!listed.to_string().contains(secret_part), "{listed}");
    }

    let revoked = oc.run(&["token", "revoke", &id]);
    assert_eq!(revoked.code, 0, "{revoked:?}");
    assert!(matches!(store.verify(&token), Err(AuthError::BadToken(_))));
    assert_eq!(store.verify(&bob).unwrap().agent, "bob", "only that one");
    let text = oc.run(&["token", "list"]);
    assert!(text.stdout.contains("revoked"), "{text:?}");
}

#[test]
fn bad_input_exits_2_and_an_unknown_id_3() {
    let oc = Oc::new();
    for args in [
        &["token", "create", "--agent", "a", "--scope", "root"][..],
        &[
            "token", "create", "--agent", "a", "--scope", "work", "--tenant", "Bad-Name",
        ],
        &[
            "token",
            "create",
            "--agent",
            "a",
            "--scope",
            "work",
            "--expires",
            "0s",
        ],
        &[
            "token",
            "create",
            "--agent",
            "a",
            "--scope",
            "work",
            "--expires",
            "soon",
        ],
        &["token", "create", "--agent", "", "--scope", "work"],
        &["token", "create", "--scope", "work"],
        &["token", "revoke", "not-an-id"],
    ] {
        let r = oc.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:?}");
        assert!(r.stderr.starts_with("oc: error:"), "{r:?}");
    }
    let long = "a".repeat(1025);
    let r = oc.run(&["token", "create", "--agent", &long, "--scope", "work"]);
    assert_eq!(r.code, 2, "{r:?}");
    let r = oc.run(&["token", "revoke", "0123456789abcdef"]);
    assert_eq!(r.code, 3, "{r:?}");
    let r = oc.run(&["--json", "token", "revoke", "0123456789abcdef"]);
    assert_eq!(r.code, 3, "{r:?}");
    assert!(r.stderr.contains("not_found"), "{r:?}");
    let empty = oc.run(&["token", "list"]);
    assert_eq!((empty.code, empty.stdout.trim()), (0, "No tokens"));
}

/// With `--database`, tokens live on PostgreSQL: one data directory creates, another (as on
/// another host) sees and revokes, and the library refuses the token at once.
#[test]
fn tokens_on_postgres_are_shared_by_every_host() {
    let Some((a, url)) = crate::postgres::oc("tokens_hosts") else {
        eprintln!("skipped: no PostgreSQL");
        return;
    };
    let b = Oc::on_database(&url);
    let made = a.json(&["token", "create", "--agent", "alice", "--scope", "admin"]);
    let token = made["token"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    let store =
        oc_postgres::PgTokenStore::connect(oc_postgres::PgOptions::new(&url).unwrap()).unwrap();
    assert_eq!(store.verify(&token).unwrap().agent, "alice");
    let listed = b.json(&["token", "list"]);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(!a.db().exists(), "nothing in the data directory");
    let r = b.run(&["token", "revoke", &id]);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(matches!(store.verify(&token), Err(AuthError::BadToken(_))));
}

#[test]
fn db_migrate_migrates_the_token_store() {
    let oc = Oc::new();
    let r = oc.run(&["db", "migrate"]);
    assert_eq!(r.code, 0, "{r:?}");
    let c = rusqlite::Connection::open(oc.db()).unwrap();
    let v: i64 = c
        .query_row(
            "SELECT version FROM oc_schema WHERE component = 'oc-auth'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, 1);
}
