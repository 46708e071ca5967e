//! Restores and retentions replace a live log while other processes append to it: no
//! acknowledged append is lost (decision 0036).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oc_jsonl::{Append, DirFileStore, JsonlReader, Level, LogEntry, Retention, TaskFileStore};
use oc_time::Timestamp;

/// Appends each of this process.
const APPENDS: u64 = 400;
const PROCESSES: u64 = 4;

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn entry(p: u64, seq: u64) -> LogEntry {
    LogEntry::new(Timestamp::now(), Level::Info, "t1", "appended")
        .with("p", p)
        .with("seq", seq)
}

/// `(process, seq)` of every entry of the log, checking every line is whole and none is there
/// twice.
fn read_log(data: &Path) -> HashSet<(u64, u64)> {
    let (all, report) = JsonlReader::open(data.join("tasks/t1/logs.jsonl"))
        .records::<LogEntry>()
        .unwrap();
    assert_eq!(report.malformed, 0, "{report:?}");
    let mut set = HashSet::new();
    for e in all {
        let (Some(p), Some(seq)) = (e.data.get("p"), e.data.get("seq")) else {
            continue;
        };
        let id = (p.as_u64().unwrap(), seq.as_u64().unwrap());
        assert!(set.insert(id), "{id:?} is in the log twice");
    }
    set
}

/// Run by [`restores_and_retentions_lose_no_append_of_four_processes`] as one of its appending
/// processes: keyed appends (every fifth retried at once), each acknowledgement recorded with
/// its time in `acks-<p>.txt`. Does nothing otherwise.
#[test]
fn appender_child() {
    let (Ok(data), Ok(p)) = (
        std::env::var("OC_APPENDER_DATA"),
        std::env::var("OC_APPENDER_P"),
    ) else {
        return;
    };
    let p: u64 = p.parse().unwrap();
    let data = Path::new(&data);
    let s = DirFileStore::new(data);
    let mut acks =
        std::io::BufWriter::new(std::fs::File::create(data.join(format!("acks-{p}.txt"))).unwrap());
    for seq in 0..APPENDS {
        let key = format!("p{p}-{seq}");
        let how = if seq % 2 == 0 {
            Append::durable()
        } else {
            Append::written()
        };
        let tries = if seq % 5 == 0 { 2 } else { 1 };
        let started = now_nanos();
        for _ in 0..tries {
            s.append_logs("t1", &[entry(p, seq)], &how.key(&key))
                .unwrap();
        }
        writeln!(acks, "{seq} {started} {}", now_nanos()).unwrap();
    }
    acks.flush().unwrap();
}

/// A snapshot of the log taken before a replacement, and when that replacement ran.
struct Round {
    /// When the snapshot was started.
    read_at: u128,
    seen: HashSet<(u64, u64)>,
    /// When the replacement after it ended.
    replaced_by: u128,
}

/// Four processes append with keys while this one restores checkpoints and retains the log
/// over and over, reading the whole log before each replacement (a snapshot).
///
/// The invariant, for every append a process called at time `s` and saw acknowledged at `t`:
/// let `S` be the first snapshot started after `t`, and `R` the last replacement that ended
/// before `S` started. If `R` ended before `s` (the append ran wholly between `R` and `S`, so
/// only a replacement after it could remove it, and none ran before `S`), the append is in
/// `S`. With no snapshot after `t` and the last replacement ended before `s`, it is in the
/// final log. An append that overlapped a replacement may be removed by it. No entry is ever
/// in a log twice (keys), and no line is torn.
#[test]
fn restores_and_retentions_lose_no_append_of_four_processes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = DirFileStore::new(&data);
    s.append_log("t1", &entry(99, 0)).unwrap();
    let mut cp = s
        .create_checkpoint("t1", "start", Timestamp::now())
        .unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|p| {
            std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "replace::appender_child", "--nocapture"])
                .env("OC_APPENDER_DATA", &data)
                .env("OC_APPENDER_P", p.to_string())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut rounds: Vec<Round> = Vec::new();
    let (mut restores, mut retentions) = (0, 0);
    while children.iter_mut().any(|c| c.try_wait().unwrap().is_none()) {
        let read_at = now_nanos();
        let seen = read_log(&data);
        match rounds.len() % 3 {
            0 => {
                s.restore_checkpoint("t1", &cp.id).unwrap();
                restores += 1;
            }
            1 => {
                s.retain("t1", &Retention::new().max_entries(300), Timestamp::now())
                    .unwrap();
                retentions += 1;
            }
            _ => {
                cp = s
                    .create_checkpoint("t1", "again", Timestamp::now())
                    .unwrap()
            }
        }
        rounds.push(Round {
            read_at,
            seen,
            replaced_by: now_nanos(),
        });
        std::thread::sleep(Duration::from_millis(5));
    }
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let last_replaced = rounds.last().map_or(0, |r| r.replaced_by);
    let fin = read_log(&data);
    let (mut checked, mut acked) = (0, 0);
    for p in 0..PROCESSES {
        let acks = std::fs::read_to_string(data.join(format!("acks-{p}.txt"))).unwrap();
        for line in acks.lines() {
            let mut parts = line.split(' ');
            let mut next = || parts.next().unwrap().parse::<u128>().unwrap();
            let (seq, started, t) = (u64::try_from(next()).unwrap(), next(), next());
            acked += 1;
            let first = rounds.iter().position(|r| r.read_at > t);
            let (in_log, name) = match first {
                Some(j) => {
                    let before = j.checked_sub(1).map_or(0, |i| rounds[i].replaced_by);
                    if before >= started {
                        continue;
                    }
                    (rounds[j].seen.contains(&(p, seq)), format!("snapshot {j}"))
                }
                None if last_replaced < started => {
                    (fin.contains(&(p, seq)), "the final log".into())
                }
                None => continue,
            };
            checked += 1;
            assert!(
                in_log,
                "process {p}'s append {seq}, from {started} acknowledged at {t}, is not in \
                 {name} (in the final log: {}; rounds: {:?})",
                fin.contains(&(p, seq)),
                rounds
                    .iter()
                    .take(4)
                    .map(|r| (r.read_at, r.replaced_by, r.seen.len()))
                    .collect::<Vec<_>>()
            );
        }
    }
    assert_eq!(acked, PROCESSES * APPENDS);
    eprintln!(
        "{} rounds ({restores} restores, {retentions} retentions), {checked} of {acked} \
         acknowledged appends checked",
        rounds.len()
    );
    assert!(
        restores >= 3 && retentions >= 3,
        "the appends ended too soon"
    );
    assert!(checked >= 50, "too few appends were checked");
}
