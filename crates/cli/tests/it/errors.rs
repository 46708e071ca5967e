//! Bad input gets one line on stderr, the documented exit code, and leaves the database alone.

use crate::util::{Oc, dump};

fn check(oc: &Oc, args: &[&str], code: i32, needle: &str) {
    let before = dump(&oc.db());
    let out = oc.run(args);
    assert_eq!(out.code, code, "{args:?}: {out:?}");
    assert!(
        out.stdout.is_empty(),
        "{args:?}: errors go to stderr only: {out:?}"
    );
    assert!(
        out.stderr.contains(needle),
        "{args:?}: {:?} lacks {needle:?}",
        out.stderr
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "{args:?}: one line: {:?}",
        out.stderr
    );
    assert_eq!(
        dump(&oc.db()),
        before,
        "{args:?}: the database is unchanged"
    );
}

#[test]
fn bad_input_exit_codes() {
    let oc = Oc::new();
    oc.run(&[
        "task",
        "create",
        "keep",
        "--id",
        "keep",
        "--metadata",
        r#"{"k":1}"#,
    ]);
    assert_eq!(dump(&oc.db()).len(), 1);
    check(
        &oc,
        &["task", "create", "x", "--id", "../etc"],
        2,
        "invalid task id",
    );
    check(
        &oc,
        &["task", "create", "x", "--id", "a/b"],
        2,
        "invalid task id",
    );
    check(
        &oc,
        &["task", "create", "x", "--id", ".hidden"],
        2,
        "must not start with '.'",
    );
    check(
        &oc,
        &["task", "create", "x", "--id", &"x".repeat(129)],
        2,
        "at most 128",
    );
    check(
        &oc,
        &["task", "create", "x", "--id", "keep"],
        4,
        "already exists",
    );
    check(
        &oc,
        &["task", "create", "x", "--metadata", "{nope"],
        2,
        "not valid JSON",
    );
    check(
        &oc,
        &["task", "create", "x", "--metadata", "[1]"],
        2,
        "must be a JSON object",
    );
    check(&oc, &["task", "create", ""], 2, "invalid name");
    check(
        &oc,
        &["task", "list", "--status", "done"],
        2,
        "invalid value 'done'",
    );
    check(
        &oc,
        &["task", "list", "--status", "done"],
        2,
        "possible values: pending, running, completed, failed, cancelled",
    );
    check(
        &oc,
        &["logs", "append", "t1"],
        2,
        "required arguments were not provided: --message <MESSAGE>",
    );
    check(
        &oc,
        &["tsk"],
        2,
        "similar subcommands exist: 'task-history', 'task-stats', 'task'",
    );
    check(
        &oc,
        &["task", "list", "--after", "garbage"],
        2,
        "invalid cursor",
    );
    check(
        &oc,
        &["task", "show", "missing"],
        3,
        "task missing not found",
    );
    check(&oc, &["task", "complete", "missing"], 3, "not found");
    check(
        &oc,
        &["task", "complete", "keep"],
        4,
        "cannot go from pending to completed",
    );
    check(
        &oc,
        &["task", "complete", "keep", "--result", "{bad"],
        2,
        "--result is not valid JSON",
    );
    check(
        &oc,
        &["task", "claim", "keep", "--agent", "a", "--lease", "soon"],
        2,
        "invalid value 'soon'",
    );
    check(
        &oc,
        &["task", "claim", "keep", "--agent", "a", "--lease", "30d"],
        2,
        "invalid lease",
    );
    check(&oc, &["task", "claim", "--agent", "a"], 2, "required");
    check(
        &oc,
        &["task", "heartbeat", "keep", "--token", "5"],
        4,
        "lease lost",
    );
    check(
        &oc,
        &["task", "retry", "keep"],
        4,
        "cannot go from pending to pending",
    );
    check(&oc, &["nonsense"], 2, "unrecognized subcommand");
    check(
        &oc,
        &["demo", "--agents", "0"],
        2,
        "--agents must be between",
    );
}

#[test]
fn json_errors_are_documents_on_stderr() {
    let oc = Oc::new();
    let out = oc.run(&["--json", "task", "show", "nope"]);
    assert_eq!(out.code, 3);
    assert!(out.stdout.is_empty());
    let doc: serde_json::Value = serde_json::from_str(out.stderr.trim()).unwrap();
    assert_eq!(doc["schema_version"], 1);
    assert_eq!(doc["error"]["code"], "not_found");
    assert_eq!(doc["error"]["exit_code"], 3);
}

#[test]
fn read_commands_on_a_fresh_directory_create_an_empty_store() {
    let oc = Oc::new();
    let st = oc.json(&["task-stats"]);
    assert_eq!(st["total"], 0);
    let human = oc.run(&["task-stats"]);
    assert!(
        human
            .stdout
            .ends_with("Recent Tasks (Last 5):\n\nWork Graph:\n  - ready: 0\n  - blocked: 0\n"),
        "{}",
        human.stdout
    );
    assert!(oc.db().exists(), "the database is created on first use");
}
