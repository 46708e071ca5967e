//! The lock commands: every `oc` run is its own process, so these also show that separate
//! processes see each other's locks through the database.

use crate::util::Oc;

#[test]
fn acquire_refuse_release_renew_list_stats() {
    let oc = Oc::new();
    let t = oc.run(&[
        "--quiet", "lock", "acquire", "repo/src", "--owner", "agent-1", "--ttl", "1m",
    ]);
    assert_eq!(t.code, 0, "{t:?}");
    let token: u64 = t.stdout.trim().parse().unwrap();

    let refused = oc.run(&[
        "lock",
        "acquire",
        "repo/src/main.rs",
        "--owner",
        "agent-2",
        "--mode",
        "shared",
    ]);
    assert_eq!(refused.code, 4, "{refused:?}");
    assert!(
        refused.stderr.contains("agent-1 (exclusive on repo/src)"),
        "names the holder: {}",
        refused.stderr
    );
    let waited = oc.run(&[
        "lock",
        "acquire",
        "repo/src/main.rs",
        "--owner",
        "agent-2",
        "--wait",
        "50ms",
    ]);
    assert_eq!(waited.code, 4);
    assert!(waited.stderr.contains("timed out"), "{}", waited.stderr);

    let again = oc.json(&["lock", "acquire", "repo/src", "--owner", "agent-1"]);
    assert_eq!(
        (again["token"].as_u64(), again["holds"].as_u64()),
        (Some(token), Some(2)),
        "re-entrant"
    );
    let shared = oc.json(&[
        "lock",
        "acquire",
        "repo/docs",
        "--owner",
        "agent-2",
        "--mode",
        "collaborative",
    ]);
    assert_eq!(shared["mode"], "shared");
    assert!(shared["token"].as_u64().unwrap() > token);

    let wrong = oc.run(&["lock", "release", "repo/src", "--owner", "agent-2"]);
    assert_eq!(wrong.code, 4, "{wrong:?}");
    assert!(wrong.stderr.contains("held by agent-1"), "{}", wrong.stderr);
    let nothing = oc.run(&["lock", "release", "repo/other", "--owner", "agent-2"]);
    assert_eq!(nothing.code, 3, "{nothing:?}");

    let renewed = oc.json(&[
        "lock", "renew", "repo/src", "--owner", "agent-1", "--ttl", "10m",
    ]);
    assert_eq!(renewed["token"].as_u64(), Some(token));
    let list = oc.json(&["lock", "list"]);
    let held: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["resource"].as_str().unwrap())
        .collect();
    assert_eq!(held, ["repo/docs", "repo/src"]);

    assert_eq!(
        oc.json(&["lock", "release", "repo/src", "--owner", "agent-1"])["holds"],
        1
    );
    assert_eq!(
        oc.json(&["lock", "release", "repo/src", "--owner", "agent-1"])["holds"],
        0
    );
    oc.json(&["lock", "acquire", "repo/src/main.rs", "--owner", "agent-2"]);

    let st = oc.json(&["lock", "stats"]);
    for (k, v) in [
        ("totalLocks", 3),
        ("activeLocks", 2),
        ("expiredLocks", 0),
        ("conflictsDetected", 2),
        ("reentrant", 1),
        ("timeouts", 1),
    ] {
        assert_eq!(st[k], v, "{k} in {st}");
    }
    assert!(st["averageHoldTime"].is_number());
    let human = oc.run(&["lock", "stats"]);
    assert!(
        human
            .stdout
            .starts_with("Lock Statistics\n===============\nTotal Locks: 3\nActive Locks: 2\n"),
        "{}",
        human.stdout
    );

    let cleaned = oc.json(&["lock", "cleanup", "--owner", "agent-2"]);
    assert_eq!(cleaned["released"].as_array().unwrap().len(), 2);
    assert!(oc.json(&["lock", "list"]).as_array().unwrap().is_empty());
}

#[test]
fn bad_lock_input_is_refused_and_changes_nothing() {
    let oc = Oc::new();
    oc.run(&["lock", "acquire", "keep", "--owner", "a"]);
    let before = lock_rows(&oc);
    for (args, code, needle) in [
        (
            vec!["lock", "acquire", "", "--owner", "a"],
            2,
            "invalid resource",
        ),
        (
            vec!["lock", "acquire", "a//b", "--owner", "a"],
            2,
            "empty segments",
        ),
        (vec!["lock", "acquire", "../etc", "--owner", "a"], 2, "'..'"),
        (
            vec!["lock", "acquire", "x", "--owner", ""],
            2,
            "invalid owner",
        ),
        (
            vec!["lock", "acquire", "x", "--owner", "a", "--ttl", "0s"],
            2,
            "invalid ttl",
        ),
        (
            vec!["lock", "acquire", "x", "--owner", "a", "--ttl", "30d"],
            2,
            "invalid ttl",
        ),
        (
            vec![
                "lock",
                "acquire",
                "x",
                "--owner",
                "a",
                "--mode",
                "sometimes",
            ],
            2,
            "possible values",
        ),
        (
            vec!["lock", "renew", "keep", "--owner", "b"],
            4,
            "held by a",
        ),
        (
            vec!["lock", "renew", "nothing", "--owner", "b"],
            3,
            "does not hold",
        ),
    ] {
        let out = oc.run(&args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stderr.contains(needle), "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1);
    }
    assert_eq!(lock_rows(&oc), before);
}

fn lock_rows(oc: &Oc) -> Vec<String> {
    let c = rusqlite::Connection::open(oc.db()).unwrap();
    let mut stmt = c.prepare("SELECT resource, owner, mode, token, holds, expires_at FROM oc_locks ORDER BY resource").unwrap();
    stmt.query_map([], |r| {
        Ok(format!(
            "{:?}",
            (
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, i64>(5)?
            )
        ))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}
