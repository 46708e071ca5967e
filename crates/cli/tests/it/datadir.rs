//! A hostile data directory, through the `oc` binary and `oc mcp`: planted links, manifests and
//! probe files are refused with a clear message and a non-zero exit, and nothing outside the
//! task's directory is read, truncated, overwritten or deleted.

use std::os::unix::fs::symlink;
use std::path::PathBuf;

use serde_json::json;

use crate::mcp::{init, tool};
use crate::util::{Oc, session};

/// A data directory with task `t1` and a file beside it the attacker aims at.
fn site() -> (Oc, PathBuf) {
    let oc = Oc::new();
    assert_eq!(oc.run(&["task", "create", "planted", "--id", "t1"]).code, 0);
    let victim = PathBuf::from(oc.dir_file("victim", "line one\nno newline at the end"));
    (oc, victim)
}

fn task_dir(oc: &Oc) -> PathBuf {
    oc.data_dir().join("tasks/t1")
}

#[test]
fn checkpoint_prune_removes_nothing_a_manifest_names() {
    let (oc, _) = site();
    assert_eq!(oc.run(&["checkpoint", "create", "t1"]).code, 0);
    let victim = oc.data_dir().parent().unwrap().join("victim-dir");
    std::fs::create_dir_all(victim.join("deep")).unwrap();
    std::fs::write(victim.join("deep/precious"), "keep me").unwrap();
    for (n, id) in [
        "../../../../victim-dir".to_owned(),
        victim.display().to_string(),
    ]
    .iter()
    .enumerate()
    {
        let dir = task_dir(&oc).join(format!("checkpoints/cp-000000000000{n}-0"));
        std::fs::create_dir_all(&dir).unwrap();
        let m = json!({"id": id, "taskId": "t1", "createdAt": "2020-01-01T00:00:00Z",
            "description": "planted", "files": []});
        std::fs::write(dir.join("manifest.json"), m.to_string()).unwrap();
    }
    let out = oc.run(&["checkpoint", "prune", "t1", "--keep", "0"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Deleted 1 checkpoint(s)"), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(victim.join("deep/precious")).unwrap(),
        "keep me"
    );
}

#[test]
fn an_append_through_a_linked_log_is_refused() {
    let (oc, victim) = site();
    std::fs::create_dir_all(task_dir(&oc)).unwrap();
    symlink(&victim, task_dir(&oc).join("logs.jsonl")).unwrap();
    let out = oc.run(&["logs", "append", "t1", "-m", "hi"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("logs.jsonl") && out.stderr.contains("symbolic link"),
        "the message names the path and the reason: {out:?}"
    );
    // Through MCP too, and reads refuse rather than show the linked file.
    let answers = session(
        &oc,
        &[
            init(),
            tool(
                1,
                "task_log_append",
                json!({"agent": "a", "task_id": "t1", "message": "hi"}),
            ),
            tool(2, "task_log_query", json!({"task_id": "t1"})),
        ],
    );
    for a in &answers[1..] {
        assert_eq!(a["result"]["isError"], true, "{a}");
        let text = a["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("symbolic link"), "{text}");
        assert!(!text.contains("line one"), "{text}");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "line one\nno newline at the end",
        "not cut back, not appended to"
    );
    let out = oc.run(&["logs", "tail", "t1"]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("line one"), "{out:?}");
}

#[test]
fn restore_reads_only_the_files_a_task_has() {
    let (oc, _) = site();
    assert_eq!(oc.run(&["checkpoint", "create", "t1"]).code, 0);
    let secret = oc.dir_file("secret", "top secret");
    let cps = task_dir(&oc).join("checkpoints");
    let cp = std::fs::read_dir(&cps)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .file_name()
        .into_string()
        .unwrap();
    let manifest = cps.join(&cp).join("manifest.json");
    for name in [secret.as_str(), "/dev/zero"] {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m["files"] = json!([{"name": name, "bytes": 10, "sha256": "00".repeat(32)}]);
        std::fs::write(&manifest, m.to_string()).unwrap();
        let out = oc.run(&["checkpoint", "restore", "t1", &cp]);
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("not a file a task has"), "{out:?}");
        assert!(
            !out.stderr.contains("does not match"),
            "nothing hashed: {out:?}"
        );
        let answers = session(
            &oc,
            &[
                init(),
                tool(
                    1,
                    "checkpoint_restore",
                    json!({"agent": "a", "task_id": "t1", "checkpoint_id": cp}),
                ),
            ],
        );
        assert_eq!(answers[1]["result"]["isError"], true, "{answers:?}");
        let text = answers[1]["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("not a file a task has"), "{text}");
    }
    let out = oc.run(&["checkpoint", "restore", "t1", "../../x"]);
    assert_eq!(
        out.code, 2,
        "an id not of the generated form is a usage error: {out:?}"
    );
}

#[test]
fn health_never_writes_through_a_planted_probe() {
    let (oc, victim) = site();
    symlink(&victim, oc.data_dir().join(".oc-health-probe")).unwrap();
    let h = oc.json(&["health"]);
    let data_dir = h["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "data_dir")
        .unwrap()
        .clone();
    assert_eq!(data_dir["status"], "healthy", "{h}");
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "line one\nno newline at the end"
    );
    let left: Vec<String> = std::fs::read_dir(oc.data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".oc-health-probe"))
        .collect();
    assert_eq!(
        left,
        [".oc-health-probe"],
        "the probe removed its own file only"
    );
}

#[test]
fn a_linked_task_directory_is_refused() {
    let (oc, _) = site();
    let elsewhere = oc.data_dir().parent().unwrap().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::create_dir_all(oc.data_dir().join("tasks")).unwrap();
    symlink(&elsewhere, task_dir(&oc)).unwrap();
    for args in [
        vec!["logs", "append", "t1", "-m", "x"],
        vec!["decisions", "add", "t1", "-a", "a", "-d", "x", "-r", "y"],
        vec!["checkpoint", "create", "t1"],
    ] {
        let out = oc.run(&args);
        assert_ne!(out.code, 0, "{args:?}: {out:?}");
        assert!(out.stderr.contains("symbolic link"), "{args:?}: {out:?}");
    }
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}
