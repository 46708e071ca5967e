//! A hostile data directory: links, planted manifests and special files are refused, never
//! followed, and nothing outside the task's own directory is read, truncated, overwritten or
//! deleted.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use oc_jsonl::{
    Decision, Error, JsonlReader, JsonlWriter, Level, LogEntry, Rotation, TaskFiles, WriterOptions,
};
use oc_time::Timestamp;
use serde_json::json;

/// A data directory and, beside it, a place the attacker aims at.
struct Site {
    _tmp: tempfile::TempDir,
    data: PathBuf,
    outside: PathBuf,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(data.join("tasks")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        Site {
            _tmp: tmp,
            data,
            outside,
        }
    }

    fn task(&self, id: &str) -> TaskFiles {
        TaskFiles::new(&self.data, id).unwrap()
    }

    /// A file outside the data directory with `body`.
    fn victim(&self, name: &str, body: &str) -> PathBuf {
        let p = self.outside.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }
}

fn entry(msg: &str) -> LogEntry {
    LogEntry::new(Timestamp::from_millis(1), Level::Info, "t", msg)
}

fn decision() -> Decision {
    Decision {
        timestamp: Timestamp::from_millis(1),
        agent: "a".into(),
        decision: "d".into(),
        reasoning: "r".into(),
        metadata: serde_json::Map::new(),
    }
}

/// `e` is a refusal naming `path` as a symbolic link.
fn assert_link_refused(e: &Error, path: &Path) {
    assert!(
        matches!(e, Error::Unsafe { path: p, .. } if p == path) && e.is_unsafe(),
        "refused as unsafe, naming {}: {e:?}",
        path.display()
    );
    assert!(e.to_string().contains("symbolic link"), "{e}");
}

#[test]
fn prune_deletes_only_checkpoints_of_the_task() {
    let s = Site::new();
    let t = s.task("t");
    t.save_state(&json!({"step": 1})).unwrap();
    let real = t
        .create_checkpoint("real", Timestamp::from_millis(5))
        .unwrap();
    let victim = s.outside.join("victim");
    std::fs::create_dir_all(victim.join("deep")).unwrap();
    std::fs::write(victim.join("deep/precious"), "keep me").unwrap();
    // Planted manifests whose ids point out of `checkpoints/`.
    let rel = "../../../../outside/victim".to_owned();
    let abs = victim.display().to_string();
    for (n, id) in [rel, abs, "cp-0000000000001-0".to_owned()]
        .iter()
        .enumerate()
    {
        let dir = t.dir().join(format!("checkpoints/cp-000000000000{n}-9"));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = json!({"id": id, "taskId": "t", "createdAt": "2020-01-01T00:00:00Z",
            "description": "planted", "files": []});
        std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    }
    // A checkpoint directory that is a link to the victim, with a manifest that matches it.
    std::fs::write(
        victim.join("manifest.json"),
        json!({"id": "cp-0000000000004-0", "taskId": "t", "createdAt": "2020-01-01T00:00:00Z",
            "description": "linked", "files": []})
        .to_string(),
    )
    .unwrap();
    symlink(&victim, t.dir().join("checkpoints/cp-0000000000004-0")).unwrap();

    let listed: Vec<String> = t.checkpoints().unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(
        listed,
        std::slice::from_ref(&real.id),
        "only the real one is listed"
    );
    assert_eq!(t.prune_checkpoints(0).unwrap(), [real.id]);
    assert_eq!(
        std::fs::read_to_string(victim.join("deep/precious")).unwrap(),
        "keep me"
    );
    assert!(victim.join("manifest.json").exists());
    assert_eq!(
        t.prune_checkpoints_to_bytes(0).unwrap(),
        Vec::<String>::new()
    );
    assert!(victim.join("deep/precious").exists());
}

#[test]
fn an_append_through_a_linked_log_is_refused() {
    let s = Site::new();
    let t = s.task("t");
    std::fs::create_dir_all(t.dir()).unwrap();
    let f = s.victim("f", "line one\nno newline at the end");
    for name in ["logs.jsonl", "decisions.jsonl"] {
        symlink(&f, t.dir().join(name)).unwrap();
    }
    let e = t.append_log(&entry("hi")).unwrap_err();
    assert_link_refused(&e, &t.dir().join("logs.jsonl"));
    let e = t.append_decision(&decision()).unwrap_err();
    assert_link_refused(&e, &t.dir().join("decisions.jsonl"));
    let e = JsonlWriter::open(t.dir().join("logs.jsonl"), WriterOptions::default()).unwrap_err();
    assert_link_refused(&e, &t.dir().join("logs.jsonl"));
    assert_eq!(
        std::fs::read_to_string(&f).unwrap(),
        "line one\nno newline at the end",
        "not cut back, not appended to"
    );
}

#[test]
fn a_linked_task_directory_receives_nothing() {
    let s = Site::new();
    let elsewhere = s.outside.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, s.data.join("tasks/t")).unwrap();
    let t = s.task("t");
    let link = s.data.join("tasks/t");
    assert_link_refused(&t.append_log(&entry("x")).unwrap_err(), &link);
    assert_link_refused(&t.append_decision(&decision()).unwrap_err(), &link);
    assert_link_refused(&t.save_state(&json!(1)).unwrap_err(), &link);
    assert_link_refused(
        &t.create_checkpoint("x", Timestamp::from_millis(1))
            .unwrap_err(),
        &link,
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    // Reads refuse too.
    assert_link_refused(&t.load_state().unwrap_err(), &link);
    assert_link_refused(&t.decisions().unwrap_err(), &link);
    assert_link_refused(&t.checkpoints().unwrap_err(), &link);
    assert_link_refused(&t.logs().tail(10).unwrap_err(), &link);

    // A linked `tasks/` likewise.
    let s = Site::new();
    std::fs::remove_dir(s.data.join("tasks")).unwrap();
    symlink(&s.outside, s.data.join("tasks")).unwrap();
    let t = s.task("t");
    assert_link_refused(
        &t.append_log(&entry("x")).unwrap_err(),
        &s.data.join("tasks"),
    );
    assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 0);
}

#[test]
fn planted_temporary_files_are_never_written_through() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("before")).unwrap();
    t.save_state(&json!({"step": 1})).unwrap();
    let cp = t.create_checkpoint("c", Timestamp::from_millis(1)).unwrap();
    let f = s.victim("f", "precious");
    for name in ["logs.jsonl.tmp", "state.json.tmp", "decisions.jsonl.tmp"] {
        symlink(&f, t.dir().join(name)).unwrap();
    }
    t.append_log(&entry("after")).unwrap();
    t.save_state(&json!({"step": 2})).unwrap();
    t.restore_checkpoint(&cp.id).unwrap();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "precious");
    for name in ["logs.jsonl", "state.json"] {
        let meta = std::fs::symlink_metadata(t.dir().join(name)).unwrap();
        assert!(meta.is_file(), "{name} is a regular file again");
    }
    assert_eq!(t.load_state().unwrap(), Some(json!({"step": 1})));
    assert_eq!(t.logs().tail(10).unwrap().len(), 1);
}

#[test]
fn a_checkpoint_never_copies_a_linked_file() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("x")).unwrap();
    let secret = s.victim("secret", "{\"password\":\"hunter2\"}");
    symlink(&secret, t.dir().join("state.json")).unwrap();
    let e = t
        .create_checkpoint("x", Timestamp::from_millis(1))
        .unwrap_err();
    assert_link_refused(&e, &t.dir().join("state.json"));
    assert!(t.checkpoints().unwrap().is_empty());
    let copied = walk(&t.dir().join("checkpoints"))
        .into_iter()
        .filter(|p| std::fs::read(p).is_ok_and(|b| b == b"{\"password\":\"hunter2\"}"))
        .count();
    assert_eq!(copied, 0, "the secret was not copied");
}

#[test]
fn readers_do_not_follow_links() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("mine")).unwrap();
    let theirs = serde_json::to_string(&entry("someone else's file")).unwrap();
    let f = s.victim("f", &format!("{theirs}\n"));
    // A linked rotated file.
    symlink(&f, t.dir().join("logs.jsonl.1")).unwrap();
    let e = t.logs().tail(10).unwrap_err();
    assert_link_refused(&e, &t.dir().join("logs.jsonl.1"));
    assert!(t.logs().query(&oc_jsonl::Query::new()).is_err());
    std::fs::remove_file(t.dir().join("logs.jsonl.1")).unwrap();
    // A linked live log and decisions file.
    std::fs::remove_file(t.dir().join("logs.jsonl")).unwrap();
    symlink(&f, t.dir().join("logs.jsonl")).unwrap();
    assert_link_refused(&t.logs().tail(10).unwrap_err(), &t.dir().join("logs.jsonl"));
    assert_link_refused(
        &JsonlReader::open(t.log_path())
            .records::<LogEntry>()
            .unwrap_err(),
        &t.dir().join("logs.jsonl"),
    );
    symlink(&f, t.dir().join("decisions.jsonl")).unwrap();
    assert_link_refused(
        &t.decisions().unwrap_err(),
        &t.dir().join("decisions.jsonl"),
    );
}

#[test]
fn restore_reads_only_the_files_a_task_has() {
    let s = Site::new();
    let t = s.task("t");
    t.save_state(&json!({"step": 1})).unwrap();
    let cp = t.create_checkpoint("c", Timestamp::from_millis(1)).unwrap();
    let secret = s.victim("secret", "top secret");
    let secret_sha = "a9dc02bd2fa9c2bf39a4b28c3dc39d9f1bb6f6c2e62a7d4c6b1d0b3c2b0c1a8e";
    let manifest = t.dir().join(format!("checkpoints/{}/manifest.json", cp.id));
    for name in [
        secret.display().to_string(),
        "/dev/zero".to_owned(),
        "../../../../outside/secret".to_owned(),
        "manifest.json".to_owned(),
    ] {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
        m["files"] = json!([{"name": name, "bytes": 10, "sha256": secret_sha}]);
        std::fs::write(&manifest, m.to_string()).unwrap();
        let e = t.restore_checkpoint(&cp.id).unwrap_err();
        let msg = e.to_string();
        assert!(e.is_corrupt(), "{name}: {e:?}");
        assert!(msg.contains("not a file a task has"), "{name}: {msg}");
        assert!(
            !msg.contains("does not match"),
            "nothing was read to hash: {msg}"
        );
        assert_eq!(
            t.load_state().unwrap(),
            Some(json!({"step": 1})),
            "nothing touched"
        );
    }
}

#[test]
fn a_manifest_is_bounded_and_every_field_checked() {
    let s = Site::new();
    let t = s.task("t");
    t.save_state(&json!({"step": 1})).unwrap();
    let cp = t.create_checkpoint("c", Timestamp::from_millis(1)).unwrap();
    let path = t.dir().join(format!("checkpoints/{}/manifest.json", cp.id));
    let good: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let check = |m: serde_json::Value, why: &str| {
        std::fs::write(&path, m.to_string()).unwrap();
        assert!(t.checkpoints().unwrap().is_empty(), "{why}: not listed");
        let e = t.restore_checkpoint(&cp.id).unwrap_err();
        assert!(e.is_corrupt(), "{why}: {e:?}");
        assert!(e.to_string().contains(why), "{why}: {e}");
    };
    let mut m = good.clone();
    m["id"] = json!("cp-0000000000009-0");
    check(m, "does not match its directory");
    let mut m = good.clone();
    m["taskId"] = json!("other");
    check(m, "another task");
    let mut m = good.clone();
    m["files"][0]["sha256"] = json!("zz");
    check(m, "not a SHA-256");
    let mut m = good.clone();
    m["files"] = json!([good["files"][0], good["files"][0]]);
    check(m, "twice");
    let mut m = good.clone();
    m["description"] = json!("x".repeat(2 << 20));
    check(m, "larger than");
    // A file whose size differs from the manifest is never read past it.
    let mut m = good.clone();
    m["files"][0]["bytes"] = json!(u64::MAX);
    std::fs::write(&path, m.to_string()).unwrap();
    assert!(t.restore_checkpoint(&cp.id).unwrap_err().is_corrupt());
    assert_eq!(t.checkpoints().unwrap()[0].bytes(), u64::MAX);
    // Ids that are not of the generated form are refused before any path is built.
    for bad in ["../x", "/abs", "cp-1", "cp-a-1", "x"] {
        assert!(
            t.restore_checkpoint(bad).unwrap_err().is_invalid_input(),
            "{bad}"
        );
    }
}

#[test]
fn special_files_are_refused() {
    let s = Site::new();
    let t = s.task("t");
    std::fs::create_dir_all(t.dir()).unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(t.dir().join("logs.jsonl"))
        .status()
        .unwrap();
    assert!(status.success());
    let e = t.append_log(&entry("x")).unwrap_err();
    assert!(
        e.is_unsafe() && e.to_string().contains("not a regular file"),
        "{e}"
    );
    let e = t.logs().tail(1).unwrap_err();
    assert!(
        e.is_unsafe() && e.to_string().contains("not a regular file"),
        "{e}"
    );
    symlink("/dev/zero", t.dir().join("state.json")).unwrap();
    assert!(t.load_state().unwrap_err().is_unsafe());
}

#[test]
fn rotation_never_writes_through_a_planted_link() {
    let s = Site::new();
    let t = s.task("t");
    let opts = WriterOptions {
        rotation: Rotation {
            max_lines: Some(2),
            keep: 3,
            compress: true,
            ..Rotation::default()
        },
        ..WriterOptions::default()
    };
    let w = t.log_writer(opts).unwrap();
    let f = s.victim("f", "precious");
    for name in ["logs.jsonl.1.gz.tmp", "logs.jsonl.1.tmp", "logs.jsonl.tmp"] {
        symlink(&f, t.dir().join(name)).unwrap();
    }
    for i in 0..6 {
        w.append(&entry(&format!("e{i}"))).unwrap();
    }
    drop(w);
    assert_eq!(std::fs::read_to_string(&f).unwrap(), "precious");
    assert_eq!(t.logs().tail(100).unwrap().len(), 6);
}

/// Every file under `dir`, not following links.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let ty = e.file_type().unwrap();
        if ty.is_dir() {
            out.extend(walk(&e.path()));
        } else if ty.is_file() {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn a_directory_swapped_for_a_link_after_the_check_is_not_followed() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("mine")).unwrap();
    t.append_decision(&decision()).unwrap();
    let log = t.logs();
    let decisions = t.decision_log().unwrap();
    // Between the check and the read, the task directory is swapped for a link to the
    // attacker's own, holding files of the same names.
    let theirs = s.outside.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let line = serde_json::to_string(&entry("theirs")).unwrap();
    for name in ["logs.jsonl", "decisions.jsonl"] {
        std::fs::write(theirs.join(name), format!("{line}\n")).unwrap();
    }
    std::fs::rename(t.dir(), s.outside.join("moved")).unwrap();
    symlink(&theirs, t.dir()).unwrap();
    for (what, r) in [("log", &log), ("decisions", &decisions)] {
        let lines = r.tail(10).unwrap();
        assert_eq!(lines.len(), 1, "{what}");
        let text = String::from_utf8(lines[0].clone()).unwrap();
        assert!(
            !text.contains("theirs"),
            "{what}: the link was followed: {text}"
        );
        let (all, _) = r.records::<serde_json::Value>().unwrap();
        assert!(!all[0].to_string().contains("theirs"), "{what}");
    }
}

#[test]
fn the_ship_cursor_is_never_read_or_written_through_a_link() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("x")).unwrap();
    let secret = s.victim("secret", "{}");
    symlink(&secret, t.dir().join("ship-cursor.json")).unwrap();
    // Nothing listens on the port: the cursor is read before anything is sent.
    let shipper =
        oc_jsonl::Shipper::new("http://127.0.0.1:9/", oc_jsonl::ShipOptions::default()).unwrap();
    let e = shipper
        .ship_task(&oc_jsonl::DirFileStore::new(&s.data), "t")
        .unwrap_err();
    assert_link_refused(&e, &t.dir().join("ship-cursor.json"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "{}");
}

#[test]
fn a_follower_never_follows_a_directory_swapped_for_a_link() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("mine")).unwrap();
    let mut follower = t.log_follower();
    t.append_log(&entry("more")).unwrap();
    assert_eq!(follower.poll().unwrap().len(), 1, "it follows the log");
    let theirs = s.outside.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    let line = serde_json::to_string(&entry("theirs")).unwrap();
    std::fs::write(
        theirs.join("logs.jsonl"),
        format!("{line}\n{line}\n{line}\n"),
    )
    .unwrap();
    std::fs::rename(t.dir(), s.outside.join("moved")).unwrap();
    symlink(&theirs, t.dir()).unwrap();
    match follower.poll() {
        Ok(lines) => {
            for line in lines {
                let text = String::from_utf8(line).unwrap();
                assert!(!text.contains("theirs"), "the link was followed: {text}");
            }
        }
        Err(e) => assert_link_refused(&e, t.dir()),
    }
}

#[test]
fn read_file_refuses_links_special_files_and_excess() {
    let s = Site::new();
    let secret = s.victim("secret", "{\"password\":\"hunter2\"}");
    let state = s.data.join("state.json");
    assert_eq!(oc_jsonl::read_file(&state, 100).unwrap(), None);
    symlink(&secret, &state).unwrap();
    assert_link_refused(&oc_jsonl::read_file(&state, 100).unwrap_err(), &state);
    std::fs::remove_file(&state).unwrap();
    symlink("/dev/zero", &state).unwrap();
    assert!(oc_jsonl::read_file(&state, 100).unwrap_err().is_unsafe());
    std::fs::remove_file(&state).unwrap();
    std::fs::write(&state, "x".repeat(101)).unwrap();
    let e = oc_jsonl::read_file(&state, 100).unwrap_err();
    assert!(
        e.is_corrupt() && e.to_string().contains("larger than"),
        "{e}"
    );
    assert_eq!(
        oc_jsonl::read_file(&state, 101).unwrap().unwrap().len(),
        101
    );
}

#[test]
fn a_linked_task_directory_is_never_read_by_its_path() {
    let s = Site::new();
    let elsewhere = s.outside.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    symlink(&elsewhere, s.data.join("tasks/t")).unwrap();
    // A stray beside the link, named as a rotated file of `tasks/t` would be.
    let theirs = serde_json::to_string(&entry("a stray")).unwrap();
    std::fs::write(s.data.join("tasks/t.1"), format!("{theirs}\n")).unwrap();
    let t = s.task("t");
    for r in [t.logs(), t.decision_log().unwrap_or_else(|_| t.logs())] {
        assert!(r.files().is_empty(), "{:?}", r.files());
        let mut seen = Vec::new();
        let e = r
            .for_each_line(|_, l| {
                seen.push(l.to_vec());
                true
            })
            .unwrap_err();
        assert_link_refused(&e, &s.data.join("tasks/t"));
        assert!(seen.is_empty());
    }
    // A task with no directory has an empty reader.
    let t = s.task("none");
    assert!(t.logs().files().is_empty());
    assert!(t.decision_log().unwrap().files().is_empty());
}

#[test]
fn a_failed_restore_leaves_no_temporary_file() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("x")).unwrap();
    t.append_decision(&decision()).unwrap();
    t.save_state(&json!(1)).unwrap();
    let cp = t.create_checkpoint("x", Timestamp::from_millis(1)).unwrap();
    // A valid manifest in another order than the task's files.
    let mut reordered = cp.clone();
    reordered.files.reverse();
    let manifest = t
        .dir()
        .join("checkpoints")
        .join(&cp.id)
        .join("manifest.json");
    std::fs::write(&manifest, serde_json::to_vec(&reordered).unwrap()).unwrap();
    // A live name that cannot be renamed over: the second rename fails.
    std::fs::remove_file(t.dir().join("logs.jsonl")).unwrap();
    std::fs::create_dir(t.dir().join("logs.jsonl")).unwrap();
    t.restore_checkpoint(&cp.id).unwrap_err();
    let left: Vec<String> = std::fs::read_dir(t.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// What an import reads of a checkpoint is its own files, verified: a changed byte is
/// `Corrupt`, and a file or the checkpoint's directory swapped for a link is refused.
#[test]
fn a_checkpoint_is_read_verified_and_never_through_a_link() {
    let s = Site::new();
    let t = s.task("t");
    t.append_log(&entry("x")).unwrap();
    t.append_decision(&decision()).unwrap();
    let cp = t.create_checkpoint("x", Timestamp::from_millis(1)).unwrap();
    let (read, files) = t.read_checkpoint(&cp.id).unwrap();
    assert_eq!(read, cp);
    let log = files.iter().find(|(n, _)| n == "logs.jsonl").unwrap();
    assert_eq!(log.1, std::fs::read(t.dir().join("logs.jsonl")).unwrap());

    let cdir = t.dir().join("checkpoints").join(&cp.id);
    let mut bytes = std::fs::read(cdir.join("logs.jsonl")).unwrap();
    bytes[0] ^= 1;
    std::fs::write(cdir.join("logs.jsonl"), &bytes).unwrap();
    assert!(t.read_checkpoint(&cp.id).unwrap_err().is_corrupt());

    // The checkpoint's file, then its directory, replaced by links to a copy outside.
    let copy = s.outside.join("copy");
    std::fs::create_dir_all(&copy).unwrap();
    bytes[0] ^= 1;
    std::fs::write(copy.join("logs.jsonl"), &bytes).unwrap();
    std::fs::remove_file(cdir.join("logs.jsonl")).unwrap();
    symlink(copy.join("logs.jsonl"), cdir.join("logs.jsonl")).unwrap();
    assert_link_refused(
        &t.read_checkpoint(&cp.id).unwrap_err(),
        &cdir.join("logs.jsonl"),
    );
    for name in ["manifest.json", "decisions.jsonl"] {
        std::fs::copy(cdir.join(name), copy.join(name)).unwrap();
    }
    std::fs::remove_file(cdir.join("logs.jsonl")).unwrap();
    std::fs::remove_dir_all(&cdir).unwrap();
    symlink(&copy, &cdir).unwrap();
    assert!(t.read_checkpoint(&cp.id).unwrap_err().is_unsafe());
}
