//! The oracles of the fuzz targets (`fuzz/`, run by `cargo fuzz`): for any input, what must
//! hold, checked by panicking. Each is a plain function of the input bytes, so the fuzz targets
//! and the replay of the committed corpora (`cargo test -p oc-fuzz-oracles`) run the same code.
//!
//! - [`jsonl_repair`]: a log with arbitrary bytes after valid records reads back those records
//!   first, never panics; opening a writer cuts exactly the bytes after the last newline, a
//!   second opening changes nothing, and an append after is read back last.
//! - [`json_serializer`]: what the JSONL writer writes for a JSON value is byte for byte what
//!   `serde_json` writes.
//! - [`resource`]: lock resource paths are accepted exactly when a naive reading of the rules
//!   accepts them, and overlap exactly when one's segments begin the other's.
//! - [`alert_config`]: the alert configuration parser returns a configuration or a typed error
//!   naming where, never panics.
//! - [`corrupt_database`]: a task database with bytes changed or cut opens with a typed error
//!   or answers queries (with typed errors where it must), never panics.
//! - [`mcp_messages`]: any lines fed to the MCP server get well-formed answers, one line each,
//!   never a panic.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

use oc_jsonl::{JsonlWriter, WriterOptions, read_records};
use oc_locks::Resource;
use serde_json::Value;

/// An oracle: panics when its input breaks what must hold.
pub type Oracle = fn(&[u8]);

/// The targets, by the names of their corpora (`fuzz/corpus/<name>/`).
pub const TARGETS: [(&str, Oracle); 6] = [
    ("jsonl_repair", jsonl_repair),
    ("json_serializer", json_serializer),
    ("resource", resource),
    ("alert_config", alert_config),
    ("corrupt_database", corrupt_database),
    ("mcp_messages", mcp_messages),
];

fn scratch() -> tempfile::TempDir {
    match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("no scratch directory: {e}"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Arbitrary bytes after three valid records.
pub fn jsonl_repair(data: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("log.jsonl");
    let valid: Vec<Value> = (0..3)
        .map(|n| serde_json::json!({ "n": n, "s": "ok" }))
        .collect();
    {
        let w = ok(JsonlWriter::open(&path, WriterOptions::default()), "open");
        for v in &valid {
            ok(w.append(v), "append");
        }
    }
    let mut file = ok(
        std::fs::OpenOptions::new().append(true).open(&path),
        "reopen",
    );
    ok(file.write_all(data), "write the input");
    drop(file);
    let original = ok(std::fs::read(&path), "read");

    // Reading never fails on content, and the valid records come first, intact.
    let (records, report) = ok(read_records::<Value>(&path), "read records");
    assert!(
        records.len() >= valid.len(),
        "valid records lost: {report:?}"
    );
    assert_eq!(records[..valid.len()], valid[..], "valid records changed");
    let cut = original
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    assert_eq!(
        report.torn_tail_bytes,
        (original.len() - cut) as u64,
        "torn tail measured wrong"
    );

    // Opening a writer cuts exactly the torn tail; doing it again changes nothing.
    drop(ok(
        JsonlWriter::open(&path, WriterOptions::default()),
        "repair",
    ));
    let repaired = ok(std::fs::read(&path), "read repaired");
    assert_eq!(
        repaired[..],
        original[..cut],
        "repair is not the whole-line prefix"
    );
    drop(ok(
        JsonlWriter::open(&path, WriterOptions::default()),
        "repair again",
    ));
    assert_eq!(
        ok(std::fs::read(&path), "read"),
        repaired,
        "repair is not idempotent"
    );

    // A record appended after the repair reads back last.
    let last = serde_json::json!({ "after": "repair" });
    {
        let w = ok(JsonlWriter::open(&path, WriterOptions::default()), "open");
        ok(w.append(&last), "append");
    }
    let (records, _) = ok(read_records::<Value>(&path), "read records");
    assert_eq!(records.last(), Some(&last), "the record after the repair");
}

/// A JSON value from bytes: the input itself when it is JSON, otherwise one built from them.
fn value_from(data: &[u8]) -> Value {
    if let Ok(v) = serde_json::from_slice::<Value>(data) {
        return v;
    }
    let mut bytes = data.iter().copied();
    build(&mut bytes, 0)
}

fn build(b: &mut impl Iterator<Item = u8>, depth: u32) -> Value {
    let Some(tag) = b.next() else {
        return Value::Null;
    };
    fn word(b: &mut impl Iterator<Item = u8>, n: usize) -> u64 {
        let mut x = [0u8; 8];
        for slot in x.iter_mut().take(n) {
            *slot = b.next().unwrap_or(0);
        }
        u64::from_le_bytes(x)
    }
    match tag % 9 {
        0 => Value::Null,
        1 => Value::Bool(tag & 0x10 != 0),
        2 => Value::from(word(b, 8)),
        3 => Value::from(word(b, 8) as i64),
        4 => serde_json::Number::from_f64(f64::from_bits(word(b, 8)))
            .map_or(Value::Null, Value::Number),
        5 | 6 => {
            let n = (word(b, 1) % 24) as usize;
            let s: String = (0..n)
                .map(|_| char::from_u32((word(b, 3) % 0x11_0000) as u32).unwrap_or('\u{fffd}'))
                .collect();
            Value::String(s)
        }
        7 if depth < 6 => {
            let n = word(b, 1) % 6;
            Value::Array((0..n).map(|_| build(b, depth + 1)).collect())
        }
        8 if depth < 6 => {
            let n = word(b, 1) % 6;
            Value::Object(
                (0..n)
                    .map(|i| {
                        let k = format!("{}{}", char::from(b'a' + (word(b, 1) % 26) as u8), i);
                        (k, build(b, depth + 1))
                    })
                    .collect(),
            )
        }
        _ => Value::Null,
    }
}

/// The writer's JSON is `serde_json`'s, byte for byte.
pub fn json_serializer(data: &[u8]) {
    let value = value_from(data);
    let dir = scratch();
    let path = dir.path().join("log.jsonl");
    {
        let w = ok(JsonlWriter::open(&path, WriterOptions::default()), "open");
        ok(w.append(&value), "append");
    }
    let mut want = ok(serde_json::to_vec(&value), "serde_json");
    want.push(b'\n');
    let got = ok(std::fs::read(&path), "read");
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&want),
        "the writer's bytes differ from serde_json's"
    );
}

/// The rules read naively: non-empty, at most 1024 bytes, no control characters, and every
/// `/`-separated segment non-empty and neither `.` nor `..`.
fn naive_valid(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 1024
        && !p.chars().any(char::is_control)
        && p.split('/').all(|s| !s.is_empty() && s != "." && s != "..")
}

fn naive_overlap(a: &str, b: &str) -> bool {
    let (x, y): (Vec<&str>, Vec<&str>) = (a.split('/').collect(), b.split('/').collect());
    let n = x.len().min(y.len());
    x[..n] == y[..n]
}

/// Resource validation and overlap against the naive reading of the rules.
pub fn resource(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\u{0}').unwrap_or((&text, "a/b"));
    let (ra, rb) = (Resource::new(a), Resource::new(b));
    assert_eq!(ra.is_ok(), naive_valid(a), "validity of {a:?}");
    assert_eq!(rb.is_ok(), naive_valid(b), "validity of {b:?}");
    if let Err(e) = &ra {
        assert!(e.to_string().contains("invalid resource"), "{e}");
    }
    if let (Ok(ra), Ok(rb)) = (ra, rb) {
        assert_eq!(
            ra.overlaps(&rb),
            naive_overlap(a, b),
            "overlap of {a:?} and {b:?}"
        );
        assert_eq!(ra.overlaps(&rb), rb.overlaps(&ra), "overlap is symmetric");
        assert!(ra.overlaps(&ra));
        for anc in ra.ancestors() {
            let anc = ok(Resource::new(anc), "an ancestor is valid");
            assert!(anc.overlaps(&ra), "{anc} overlaps {ra}");
        }
        let json = ok(serde_json::to_string(&ra), "serialize");
        let back: Resource = ok(serde_json::from_str(&json), "deserialize");
        assert_eq!(back, ra);
    }
}

/// The alert configuration parser: a configuration or an error naming the input, never a panic.
pub fn alert_config(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Err(e) = oc_alerts::Config::parse(&text, "fuzz.toml") {
        assert!(
            e.to_string().contains("fuzz.toml"),
            "the error names its origin: {e}"
        );
    }
}

/// A small task database (tasks, a dependency, a claim, a lock), made once.
fn template() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = scratch();
        let path = dir.path().join("t.db");
        {
            let store = ok(oc_tasks::SqliteTaskStore::open(&path), "open store");
            use oc_tasks::TaskStore;
            let a = ok(store.create(oc_tasks::NewTask::new("first")), "create");
            ok(
                store.create(oc_tasks::NewTask::new("second").depends_on(a.id.clone())),
                "create",
            );
            ok(
                store.claim_next("fuzz", std::time::Duration::from_secs(60)),
                "claim",
            );
            let locks = ok(oc_locks::SqliteLockManager::open(&path), "open locks");
            use oc_locks::LockManager;
            ok(
                locks.try_acquire(&ok(oc_locks::LockRequest::exclusive("a/b", "fuzz"), "req")),
                "lock",
            );
        }
        ok(std::fs::read(&path), "read template")
    })
}

/// The template with the input's changes: pairs of (4-byte offset, byte) flip bytes, and a
/// first byte above 0xf0 cuts the file.
fn corrupt(data: &[u8]) -> Vec<u8> {
    let mut db = template().to_vec();
    let (cut, edits) = data
        .split_first()
        .map_or((false, data), |(f, r)| (*f > 0xf0, r));
    for e in edits.chunks_exact(5) {
        let off = u32::from_le_bytes([e[0], e[1], e[2], e[3]]) as usize % db.len();
        db[off] ^= e[4].max(1);
    }
    if cut && let Some(&b) = edits.first() {
        db.truncate(db.len() * usize::from(b) / 256);
    }
    db
}

fn probe(path: &Path) {
    use oc_locks::LockManager;
    use oc_tasks::TaskStore;
    if let Ok(store) = oc_tasks::SqliteTaskStore::open(path) {
        let _ = store.list(&oc_tasks::TaskQuery::default());
        let _ = store.stats(5);
        let _ = store.integrity_check();
        let _ = store.claim_next("probe", std::time::Duration::from_secs(1));
        let _ = store.reap_expired(store.now());
    }
    if let Ok(locks) = oc_locks::SqliteLockManager::open(path) {
        let _ = locks.list();
        let _ = locks.stats();
        if let Ok(req) = oc_locks::LockRequest::exclusive("a", "probe") {
            let _ = locks.try_acquire(&req);
        }
    }
}

/// A corrupted database: typed errors or answers, never a panic.
pub fn corrupt_database(data: &[u8]) {
    let dir = scratch();
    let path = dir.path().join("t.db");
    ok(std::fs::write(&path, corrupt(data)), "write");
    probe(&path);
}

/// Each line of the input, fed to an MCP server with every tool over in-memory stores and task
/// files in a temporary directory: every answer is one line of JSON-RPC 2.0 with a result or an
/// error, never both, and an id that is a string, a number or null; nothing is written outside
/// the directory.
pub fn mcp_messages(data: &[u8]) {
    let life = oc_hooks::TaskLifecycle::new(
        std::sync::Arc::new(oc_tasks::MemoryTaskStore::new()),
        std::sync::Arc::new(oc_hooks::Hooks::new()),
    );
    let root = ok(tempfile::tempdir(), "a temporary directory");
    let files = root.path().join("data");
    let toolbox = oc_mcp::Toolbox::new(
        life,
        std::sync::Arc::new(oc_locks::MemoryLockManager::new()),
    )
    .files(std::sync::Arc::new(oc_jsonl::DirFileStore::new(&files)));
    let server = oc_mcp::Server::new(toolbox).all_tools();
    for line in String::from_utf8_lossy(data).split('\n') {
        for out in server.handle(line) {
            assert!(!out.contains('\n'), "an answer spans lines: {out}");
            let v: Value = ok(serde_json::from_str(&out), "an answer is JSON");
            // A batch (sessions at 2025-03-26) is answered with one non-empty array.
            let answers = match v {
                Value::Array(items) => {
                    assert!(!items.is_empty(), "an empty batch answer: {out}");
                    items
                }
                one => vec![one],
            };
            for v in answers {
                assert_eq!(v["jsonrpc"], "2.0", "{out}");
                assert!(
                    v.get("result").is_some() != v.get("error").is_some(),
                    "result or error: {out}"
                );
                assert!(
                    v["id"].is_string() || v["id"].is_number() || v["id"].is_null(),
                    "{out}"
                );
            }
        }
    }
    let outside: Vec<_> = ok(std::fs::read_dir(root.path()), "the directory")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name() != "data")
        .map(|e| e.file_name())
        .collect();
    assert!(
        outside.is_empty(),
        "written outside the data directory: {outside:?}"
    );
}
