//! Agents' text never reaches the operator's terminal raw: every command that prints what an
//! agent (or anyone who can reach the page or the data directory) wrote shows its control
//! characters and its bidirectional overrides, isolates and marks as escapes, and `--json`
//! keeps the exact text.

use crate::util::{Oc, Run};

/// Recolours, retitles (OSC 0), clears the screen (C1 CSI), deletes, forges a line, and reads
/// backwards (a right-to-left override, then an isolate).
const EVIL: &str =
    "evil\x1b[31mRED\x1b[0m\x1b]0;pwned\x07 \u{9b}2J\x7f\nforged line\u{202e}desrever\u{2066}x";
/// How it must be shown.
const SHOWN: &str = "evil\\x1b[31mRED\\x1b[0m\\x1b]0;pwned\\x07 \\u{9b}2J\\x7f\\nforged line\\u{202e}desrever\\u{2066}x";

/// Characters no text output may print raw: controls (but the newlines that end lines) and
/// the invisible ones that change how a line reads.
fn raw_danger(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{61c}' | '\u{2028}' | '\u{2029}')
}

/// `oc <args>` printed no raw control character but newlines (on stdout or stderr), and shows
/// the evil text escaped `times` times at least (JSON fields in text show it JSON-escaped, and
/// DEL and C1, which JSON leaves alone, escaped as well).
fn check(oc: &Oc, args: &[&str], times: usize) -> Run {
    let run = oc.run(args);
    assert_eq!(run.code, 0, "{args:?}: {run:?}");
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        let raw: Vec<char> = text.chars().filter(|c| raw_danger(*c)).collect();
        assert!(
            raw.is_empty(),
            "{args:?} printed {raw:?} on {stream}: {text:?}"
        );
    }
    assert!(
        run.stdout.matches(SHOWN).count() >= times,
        "{args:?} shows the text escaped {times} time(s): {}",
        run.stdout
    );
    run
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

#[test]
fn task_commands_escape_names_owners_descriptions_errors_and_json_fields() {
    let oc = Oc::new();
    let meta = format!("{{\"note\": {}}}", json_string(EVIL));
    let created = oc.json(&[
        "task",
        "create",
        EVIL,
        "--id",
        "t1",
        "--description",
        EVIL,
        "--owner",
        EVIL,
        "--metadata",
        &meta,
    ]);
    assert_eq!(created["name"], EVIL, "--json keeps the exact text");
    assert_eq!(created["metadata"]["note"], EVIL);
    check(&oc, &["task", "list"], 2);
    check(&oc, &["task", "find", "evil"], 2);
    check(&oc, &["task", "show", "t1"], 3);
    check(&oc, &["task-stats"], 1);
    let claimed = check(&oc, &["task", "claim", "t1", "--agent", EVIL], 1);
    assert!(claimed.stdout.starts_with("Claimed t1 for "));
    let token = oc.json(&["task", "show", "t1"])["lease"]["token"].to_string();
    check(
        &oc,
        &["task", "fail", "t1", "--token", &token, "--error", EVIL],
        0,
    );
    let shown = check(&oc, &["task", "show", "t1"], 4);
    assert!(shown.stdout.contains(&format!("Error:       {SHOWN}")));

    oc.run(&["task", "create", "r", "--id", "t2"]);
    let claim = oc.json(&["task", "claim", "t2", "--agent", EVIL]);
    let token = claim["lease"]["token"].to_string();
    let result = format!("{{\"out\": {}}}", json_string(EVIL));
    check(
        &oc,
        &[
            "task", "complete", "t2", "--token", &token, "--result", &result,
        ],
        0,
    );
    check(&oc, &["task", "show", "t2"], 1);

    // A lease that lapsed names its agent.
    oc.run(&["task", "create", "r", "--id", "t3"]);
    oc.json(&["task", "claim", "t3", "--agent", EVIL, "--lease", "1ms"]);
    check(&oc, &["task", "reap"], 1);
}

#[test]
fn logs_decisions_and_checkpoints_escape_what_agents_wrote() {
    let oc = Oc::new();
    oc.run(&["task", "create", "logged", "--id", "t1"]);
    let data = format!("{{\"path\": {}}}", json_string(EVIL));
    let entry = oc.json(&[
        "logs",
        "append",
        "t1",
        "--level",
        "info",
        "--message",
        EVIL,
        "--data",
        &data,
    ]);
    assert_eq!(entry["message"], EVIL, "--json keeps the exact text");
    check(
        &oc,
        &[
            "logs",
            "append",
            "t1",
            "--level",
            "error",
            "--message",
            EVIL,
        ],
        1,
    );
    check(&oc, &["logs", "tail", "t1"], 2);
    check(&oc, &["logs", "query", "t1"], 2);
    check(&oc, &["task-history", "t1"], 2);

    let reasoning = format!("first line\n{EVIL}");
    check(
        &oc,
        &[
            "decisions",
            "add",
            "t1",
            "--agent",
            EVIL,
            "--decision",
            EVIL,
            "--reasoning",
            &reasoning,
        ],
        1,
    );
    // Agent and decision are one line each; the reasoning keeps its lines, each escaped.
    let listed = check(&oc, &["decisions", "list", "t1"], 2);
    assert!(
        listed
            .stdout
            .contains("    first line\n    evil\\x1b[31mRED\\x1b[0m"),
        "{}",
        listed.stdout
    );
    let exact = oc.json(&["decisions", "list", "t1"]);
    assert_eq!(exact[0]["reasoning"], reasoning.as_str());

    check(
        &oc,
        &["checkpoint", "create", "t1", "--description", EVIL],
        0,
    );
    check(&oc, &["checkpoint", "list", "t1"], 1);
}

#[test]
fn errors_quote_bad_input_escaped() {
    let oc = Oc::new();
    for args in [
        &["task", "show", EVIL][..],
        &["lock", "acquire", EVIL, "--owner", "a"],
        &["lock", "acquire", "repo/a", "--owner", EVIL],
    ] {
        let run = oc.run(args);
        assert_eq!(run.code, 2, "{run:?}");
        assert!(
            !run.stderr.contains(raw_danger),
            "{args:?}: {:?}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1, "{:?}", run.stderr);
    }
}

#[test]
fn lock_commands_escape_owners_and_resources() {
    let oc = Oc::new();
    // Owners and paths refuse control characters, but not the direction overrides.
    let (owner, path) = ("agent\u{202e}1gnp.exe", "repo/\u{2067}src\u{2069}/a.rs");
    for args in [
        &["lock", "acquire", path, "--owner", owner][..],
        &["lock", "list"],
        &["lock", "list", "--quiet"],
        &["lock", "stats"],
        &["lock", "renew", path, "--owner", owner],
        &["lock", "cleanup", "--owner", owner],
    ] {
        check(&oc, args, 0);
    }
    assert_eq!(oc.json(&["lock", "list"]).as_array().unwrap().len(), 0);
    check(&oc, &["lock", "acquire", path, "--owner", owner], 0);
    check(&oc, &["lock", "release", path, "--owner", owner], 0);
}

#[test]
fn alerts_list_escapes_silences_posted_by_anyone() {
    let oc = Oc::new();
    let matcher = format!("alertname={EVIL}");
    check(
        &oc,
        &[
            "alerts",
            "silence",
            &matcher,
            "--comment",
            EVIL,
            "--for",
            "1h",
        ],
        0,
    );
    let listed = check(&oc, &["alerts", "list"], 2);
    assert!(listed.stdout.contains("silence 1: "), "{}", listed.stdout);
    let exact = oc.json(&["alerts", "list"]);
    assert_eq!(
        exact["silences"][0]["comment"], EVIL,
        "--json keeps the exact text"
    );
}

#[test]
fn checkpoint_list_escapes_a_planted_manifest() {
    let oc = Oc::new();
    oc.run(&["task", "create", "planted", "--id", "t1"]);
    check(
        &oc,
        &["checkpoint", "create", "t1", "--description", "real"],
        0,
    );
    // Anyone who can write the data directory can leave a manifest that validates (its id
    // its directory's, its task this one) with any description: it is listed, escaped.
    let dir = oc
        .data_dir()
        .join("tasks/t1/checkpoints/cp-0000000000001-0");
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = serde_json::json!({
        "id": "cp-0000000000001-0", "taskId": "t1", "createdAt": "2026-01-01T00:00:00Z",
        "description": EVIL, "files": [],
    });
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    let run = check(&oc, &["checkpoint", "list", "t1"], 1);
    assert!(run.stdout.contains("cp-0000000000001-0"), "{run:?}");
}
