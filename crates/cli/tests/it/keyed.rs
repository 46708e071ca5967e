//! `oc --idempotency-key`: a retry prints the first answer, changes nothing and says so.

use crate::util::Oc;

#[test]
fn a_keyed_claim_retried_prints_the_same_token_and_says_replayed() {
    let oc = Oc::new();
    oc.json(&["task", "create", "a", "--id", "a", "--priority", "2"]);
    oc.json(&["task", "create", "b", "--id", "b"]);
    let claim = [
        "--idempotency-key",
        "k",
        "--quiet",
        "task",
        "claim",
        "--next",
        "--agent",
        "w",
    ];
    let first = oc.run(&claim);
    assert_eq!(first.code, 0, "{first:?}");
    assert!(!first.stderr.contains("replayed"), "{first:?}");
    let again = oc.run(&claim);
    assert_eq!(again.code, 0, "{again:?}");
    assert_eq!(again.stdout, first.stdout, "the same task and token");
    assert!(again.stderr.contains("replayed"), "{again:?}");
    let b = oc.json(&["task", "show", "b"]);
    assert_eq!(b["status"], "pending", "nothing more claimed");
    let a = oc.json(&["task", "show", "a"]);
    assert_eq!(a["version"], 2, "created, claimed once: {a}");

    // Same key, another request: a conflict (exit 4), naming the key.
    let other = oc.run(&[
        "--idempotency-key",
        "k",
        "task",
        "claim",
        "--next",
        "--agent",
        "w",
        "--lease",
        "9m",
    ]);
    assert_eq!(other.code, 4, "{other:?}");
    assert!(other.stderr.contains("idempotency key \"k\""), "{other:?}");

    // Finishing, retried: the first answer, once.
    let token = first.stdout.split_whitespace().nth(1).unwrap().to_owned();
    let done = [
        "--idempotency-key",
        "done",
        "--json",
        "task",
        "complete",
        "a",
        "--token",
        &token,
    ];
    let d1 = oc.run(&done);
    let d2 = oc.run(&done);
    assert_eq!((d1.code, d2.code), (0, 0), "{d2:?}");
    assert_eq!(d1.data(), d2.data());
    assert!(d2.stderr.contains("replayed"), "{d2:?}");

    // Locks: a retried acquire after the release returns the first grant and holds nothing.
    let acquire = [
        "--idempotency-key",
        "l1",
        "--quiet",
        "lock",
        "acquire",
        "repo/src",
        "--owner",
        "w",
    ];
    let l1 = oc.run(&acquire);
    assert_eq!(l1.code, 0, "{l1:?}");
    oc.run(&["lock", "release", "repo/src", "--owner", "w"]);
    let l2 = oc.run(&acquire);
    assert_eq!(l2.stdout, l1.stdout, "the first token");
    assert!(l2.stderr.contains("replayed"), "{l2:?}");
    assert_eq!(oc.json(&["lock", "list"]).as_array().map(Vec::len), Some(0));

    // Bounded, and refused where it changes nothing.
    let long = "k".repeat(201);
    let bad = oc.run(&[
        "--idempotency-key",
        &long,
        "task",
        "claim",
        "--next",
        "--agent",
        "w",
    ]);
    assert_eq!(bad.code, 2, "{bad:?}");
    let misplaced = oc.run(&["--idempotency-key", "x", "task", "list"]);
    assert_eq!(misplaced.code, 2, "{misplaced:?}");
}

#[test]
fn a_keyed_checkpoint_retried_prints_the_first_and_creates_nothing() {
    let oc = Oc::new();
    oc.run(&["task", "create", "t", "--id", "t1"]);
    let create = [
        "--idempotency-key",
        "cp",
        "--json",
        "checkpoint",
        "create",
        "t1",
        "-d",
        "safe point",
    ];
    let c1 = oc.run(&create);
    assert_eq!(c1.code, 0, "{c1:?}");
    assert!(!c1.stderr.contains("replayed"), "{c1:?}");
    oc.run(&["logs", "append", "t1", "-m", "after"]);
    let c2 = oc.run(&create);
    assert_eq!(c2.code, 0, "{c2:?}");
    assert_eq!(c1.data(), c2.data(), "the first checkpoint");
    assert!(c2.stderr.contains("replayed"), "{c2:?}");
    assert_eq!(
        oc.json(&["checkpoint", "list", "t1"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let other = oc.run(&[
        "--idempotency-key",
        "cp",
        "checkpoint",
        "create",
        "t1",
        "-d",
        "another",
    ]);
    assert_eq!(other.code, 4, "{other:?}");
    assert!(other.stderr.contains("idempotency key \"cp\""), "{other:?}");
    let misplaced = oc.run(&["--idempotency-key", "x", "checkpoint", "list", "t1"]);
    assert_eq!(misplaced.code, 2, "{misplaced:?}");
}
