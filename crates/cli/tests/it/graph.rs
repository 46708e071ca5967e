//! The work graph from the command line: dependencies, readiness, labels, unique keys,
//! trees and pictures, and bad input.

use serde_json::Value;

use crate::util::{Oc, dump};

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap().to_owned())
        .collect()
}

/// A small plan: plan <- schema <- handler, plan <- ui (frontend), schema a child of plan.
fn plan(oc: &Oc) {
    for args in [
        &["task", "create", "Plan", "--id", "plan"][..],
        &[
            "task",
            "create",
            "Schema",
            "--id",
            "schema",
            "--depends-on",
            "plan",
            "--parent",
            "plan",
            "--label",
            "backend",
        ],
        &[
            "task",
            "create",
            "Handler",
            "--id",
            "handler",
            "--depends-on",
            "schema",
            "--label",
            "backend",
            "--retry",
            "backoff:1s..1m:20",
        ],
        &[
            "task",
            "create",
            "UI",
            "--id",
            "ui",
            "--depends-on",
            "plan",
            "--label",
            "frontend",
        ],
    ] {
        let r = oc.run(args);
        assert_eq!(r.code, 0, "{args:?}: {r:?}");
    }
}

#[test]
fn claims_follow_dependencies_and_labels() {
    let oc = Oc::new();
    plan(&oc);
    assert_eq!(ids(&oc.json(&["task", "ready"])["tasks"]), ["plan"]);
    let blocked = oc.json(&["task", "blocked"]);
    let waiting: Vec<(&str, &str)> = blocked["blocked"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["task"].as_str().unwrap(),
                b["waiting_on"][0][0].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        waiting,
        [("schema", "plan"), ("handler", "schema"), ("ui", "plan")]
    );
    let human = oc.run(&["task", "blocked"]);
    assert!(
        human
            .stdout
            .contains("handler  Handler: waits for schema (pending)"),
        "{}",
        human.stdout
    );

    let none = oc.run(&[
        "task", "claim", "--next", "--agent", "fe", "--label", "frontend",
    ]);
    assert_eq!(none.code, 0);
    assert!(none.stdout.contains("No ready task"), "{none:?}");
    let c = oc.json(&["task", "claim", "--next", "--agent", "a"]);
    assert_eq!(c["id"], "plan");
    let token = c["lease"]["token"].as_u64().unwrap().to_string();
    oc.json(&["task", "complete", "plan", "--token", &token]);
    let c = oc.json(&[
        "task", "claim", "--next", "--agent", "fe", "--label", "frontend",
    ]);
    assert_eq!(c["id"], "ui", "the frontend agent takes the frontend task");
    let c = oc.json(&[
        "task",
        "claim",
        "--next",
        "--agent",
        "be",
        "--without-label",
        "frontend",
    ]);
    assert_eq!(c["id"], "schema");
    let stats = oc.json(&["task-stats"]);
    assert_eq!(
        (stats["ready"].as_u64(), stats["blocked"].as_u64()),
        (Some(0), Some(1))
    );
    let text = oc.run(&["task-stats"]).stdout;
    assert!(
        text.ends_with("Work Graph:\n  - ready: 0\n  - blocked: 1\n"),
        "{text}"
    );
}

#[test]
fn dependencies_are_edited_and_shown() {
    let oc = Oc::new();
    plan(&oc);
    let t = oc.json(&["task", "dep", "rm", "ui", "plan"]);
    assert_eq!(t["depends_on"], serde_json::json!([]));
    assert_eq!(ids(&oc.json(&["task", "ready"])["tasks"]), ["plan", "ui"]);
    let t = oc.json(&["task", "dep", "add", "ui", "handler"]);
    assert_eq!(t["depends_on"], serde_json::json!(["handler"]));
    let shown = oc.run(&["task", "show", "handler"]).stdout;
    for line in [
        "Depends on:  schema",
        "Blocked:     waits for schema (pending)",
        "Labels:      backend",
        "Retry:       backoff:1s..1m:20",
    ] {
        assert!(shown.contains(line), "{line:?} in {shown}");
    }
    let shown = oc.run(&["task", "show", "plan"]).stdout;
    assert!(
        shown.contains("Children:    0 of 1 completed (1 pending)"),
        "{shown}"
    );
    let tree = oc.run(&["task", "tree", "handler"]).stdout;
    assert_eq!(
        tree,
        "handler (pending) Handler\n  needs schema (pending) Schema\n    needs plan (pending) Plan\n      child schema (pending) Schema (shown above)\n"
    );
    let dot = oc.run(&["task", "graph"]).stdout;
    assert!(dot.starts_with("digraph tasks {"), "{dot}");
    assert!(dot.contains("\"schema\" -> \"handler\";"), "{dot}");
    assert!(
        dot.contains("\"plan\" -> \"schema\" [style=dashed"),
        "{dot}"
    );
    let mermaid = oc
        .run(&["task", "graph", "--format", "mermaid", "--root", "handler"])
        .stdout;
    assert!(mermaid.starts_with("flowchart LR\n"), "{mermaid}");
    assert_eq!(
        mermaid.matches("-->").count(),
        2,
        "handler's chain only: {mermaid}"
    );
    assert!(!mermaid.contains("UI"), "{mermaid}");
}

#[test]
fn unique_keys_and_deletes() {
    let oc = Oc::new();
    plan(&oc);
    let first = oc.json(&["task", "create", "Deploy", "--unique-key", "deploy"]);
    let again = oc.json(&["task", "create", "Deploy", "--unique-key", "deploy"]);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["id"], first["id"]);
    let human = oc.run(&["task", "create", "Deploy", "--unique-key", "deploy"]);
    assert!(
        human
            .stdout
            .contains("holds unique key deploy: nothing created"),
        "{human:?}"
    );

    let refused = oc.run(&["task", "delete", "schema"]);
    assert_eq!(refused.code, 4, "{refused:?}");
    let gone = oc.json(&["task", "delete", "schema", "--cascade"]);
    assert_eq!(ids(&gone), ["schema", "handler"]);
    let kept = oc.json(&["task", "delete", "plan", "--drop-edges"]);
    assert_eq!(kept["id"], "plan");
    assert!(ids(&oc.json(&["task", "ready"])["tasks"]).contains(&"ui".to_owned()));
}

#[test]
fn bad_graph_input_is_one_line_with_its_exit_code_and_changes_nothing() {
    let oc = Oc::new();
    plan(&oc);
    for (args, code, needle) in [
        (
            &["task", "dep", "add", "plan", "handler"][..],
            4,
            "dependency cycle: plan -> handler -> schema -> plan",
        ),
        (
            &["task", "dep", "add", "plan", "plan"],
            4,
            "dependency cycle: plan -> plan",
        ),
        (
            &["task", "dep", "add", "plan", "ghost"],
            3,
            "depends_on names task ghost",
        ),
        (
            &["task", "create", "x", "--depends-on", "ghost"],
            3,
            "depends_on names task ghost",
        ),
        (
            &["task", "create", "x", "--id", "x", "--depends-on", "x"],
            4,
            "dependency cycle: x -> x",
        ),
        (
            &["task", "create", "x", "--parent", "ghost"],
            3,
            "parent names task ghost",
        ),
        (
            &["task", "create", "x", "--label", "a", "--label", "a"],
            2,
            "label \"a\" given twice",
        ),
        (
            &["task", "create", "x", "--label", "no spaces"],
            2,
            "invalid label",
        ),
        (
            &["task", "create", "x", "--run-at", "9999-01-01T00:00:00Z"],
            2,
            "invalid run_at",
        ),
        (
            &["task", "create", "x", "--run-at", "tomorrowish"],
            2,
            "neither an RFC 3339 time nor a delay",
        ),
        (
            &["task", "create", "x", "--retry", "backoff:5m..1s"],
            2,
            "below its base",
        ),
        (
            &["task", "create", "x", "--retry", "backoff:1s..1000days"],
            2,
            "at most",
        ),
        (
            &["task", "claim", "plan", "--agent", "a", "--label", "x"],
            2,
            "go with --next",
        ),
        (&["task", "delete", "plan"], 4, "has dependents or children"),
    ] {
        let before = dump(&oc.db());
        let out = oc.run(args);
        assert_eq!(out.code, code, "{args:?}: {out:?}");
        assert!(out.stdout.is_empty(), "{args:?}: {out:?}");
        assert!(
            out.stderr.contains(needle),
            "{args:?}: {:?} lacks {needle:?}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "{args:?}: {out:?}"
        );
        assert_eq!(dump(&oc.db()), before, "{args:?}: nothing changed");
    }
}

#[test]
fn agent_text_in_pictures_is_escaped() {
    let oc = Oc::new();
    oc.run(&[
        "task",
        "create",
        "say \"hi\" \\ <b>\u{1b}[31m",
        "--id",
        "evil",
    ]);
    let dot = oc.run(&["task", "graph"]).stdout;
    assert!(
        dot.contains(r#"[label="evil\nsay \"hi\" \\ <b>\\x1b[31m (pending)""#),
        "{dot}"
    );
    let mermaid = oc.run(&["task", "graph", "--format", "mermaid"]).stdout;
    assert!(
        mermaid.contains(r#"t0["evil say #34;hi#34; #92; #60;b#62;#92;x1b#91;31m (pending)"]"#),
        "{mermaid}"
    );
}

/// A parent chain as long as an agent makes through MCP `task_create` in a few seconds
/// (8,000 took 3 s) used to overflow the stack of `oc task tree`: it now stops at a stated
/// depth and says where to go on.
#[test]
fn a_chain_of_ten_thousand_is_shown_to_a_stated_depth() {
    use oc_tasks::{NewTask, TaskId, TaskStore};
    let oc = Oc::new();
    assert_eq!(oc.run(&["task", "create", "Root", "--id", "c0"]).code, 0);
    let id = |i: usize| TaskId::new(format!("c{i}")).unwrap();
    let store = oc_tasks::SqliteTaskStore::open(oc.db()).unwrap();
    store
        .create_many(
            (1..10_000)
                .map(|i| {
                    NewTask::new(format!("Step {i}"))
                        .id(id(i))
                        .parent(id(i - 1))
                })
                .collect(),
        )
        .unwrap();
    drop(store);
    let tree = oc.run(&["task", "tree", "c0"]);
    assert_eq!(tree.code, 0, "{tree:?}");
    let lines: Vec<&str> = tree.stdout.lines().collect();
    assert_eq!(lines.len(), 51, "{}", tree.stdout);
    assert_eq!(lines[0], "c0 (pending) Root");
    assert_eq!(lines[1], "  child c1 (pending) Step 1");
    assert_eq!(
        lines[50],
        format!(
            "{}child c50 (pending) Step 50 (more below: oc task tree c50)",
            "  ".repeat(50)
        )
    );
    // The JSON document nests as deep, and parses (serde_json reads 127 levels).
    let mut node = oc.json(&["task", "tree", "c0"]);
    let mut depth = 0;
    while let Some(below) = node["below"].as_array().and_then(|b| b.first()).cloned() {
        node = below;
        depth += 1;
    }
    assert_eq!((depth, node["id"].as_str()), (50, Some("c50")));
    assert_eq!(node["truncated"], true);
    // From near the end of the chain, all of it.
    let tail = oc.run(&["task", "tree", "c9990"]);
    assert_eq!(tail.stdout.lines().count(), 10, "{tail:?}");
    assert!(!tail.stdout.contains("more below"), "{tail:?}");
    // The picture of the whole chain is bounded and drawn.
    let graph = oc.run(&["task", "graph", "--root", "c0"]);
    assert_eq!(graph.code, 0, "{graph:?}");
}
