//! `oc db prune`: finished tasks leave the store, what depends on them keeps them.

use crate::util::Oc;

#[test]
fn prune_takes_finished_tasks_and_keeps_what_others_need() {
    let oc = Oc::new();
    for id in ["a", "b", "dep", "open"] {
        oc.run(&["task", "create", id, "--id", id]);
    }
    oc.run(&[
        "task",
        "create",
        "waiter",
        "--id",
        "waiter",
        "--depends-on",
        "dep",
    ]);
    for id in ["a", "b", "dep"] {
        oc.run(&["task", "start", id, "--agent", "x"]);
        oc.run(&["task", "complete", id]);
    }
    let bad = oc.run(&["db", "prune", "--finished-older-than", "0s", "--batch", "0"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("batch"), "{}", bad.stderr);
    let young = oc.json(&["db", "prune", "--finished-older-than", "30d"]);
    assert_eq!(young["pruned"], 0, "{young}");
    let r = oc.json(&["db", "prune", "--finished-older-than", "0s", "--batch", "1"]);
    assert_eq!(
        (r["pruned"].as_u64(), r["kept"].as_u64()),
        (Some(2), Some(1)),
        "{r}"
    );
    assert_eq!(r["retire"], "delete");
    assert_eq!(r["batches"], 2);
    assert_eq!(
        oc.run(&["task", "show", "a"]).code,
        3,
        "a pruned task is not found"
    );
    assert_eq!(
        oc.run(&["task", "show", "dep"]).code,
        0,
        "waiter still needs dep"
    );
    let text = oc.run(&["metrics"]).stdout;
    for line in [
        "opencode_tasks{status=\"completed\"} 1",
        "opencode_tasks_total{status=\"completed\"} 3",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
    assert_eq!(oc.json(&["db", "check"])["ok"], true);
    let text = oc.run(&["db", "prune", "--finished-older-than", "0s", "--archive"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    assert!(
        text.stdout.contains("0 finished task(s) archived"),
        "{}",
        text.stdout
    );
}
