//! What a process wrote and synced, as `strace` saw it: the raw material of a simulated power
//! loss (a crash keeps what was synced and may drop the rest), in the manner of ALICE (Pillai
//! et al., OSDI 2014) but over the real binary's system calls.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::process::Command;

/// Whether `strace` can be run here.
pub fn strace_available() -> bool {
    Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// For tests: `true` when `strace` runs here. When it does not, says so on stderr and returns
/// `false` (skip), unless `OC_REQUIRE_STRACE` is set (as CI sets it): then it panics, so a
/// missing tool fails the run instead of skipping quietly.
#[allow(clippy::print_stderr)]
pub fn strace_for_tests() -> bool {
    if strace_available() {
        return true;
    }
    assert!(
        std::env::var_os("OC_REQUIRE_STRACE").is_none(),
        "strace is required (OC_REQUIRE_STRACE is set) but cannot be run"
    );
    eprintln!("strace is not installed: skipping the simulated power loss");
    false
}

/// `cmd` under `strace -f -y`, tracing the system calls `calls` (such as
/// `write,pwrite64,fsync,fdatasync`) into the file `out`; strings shown up to 64 bytes.
pub fn traced(cmd: &Command, calls: &str, out: &Path) -> Command {
    let mut t = Command::new("strace");
    t.args(["-f", "-qq", "-y", "-s", "64"])
        .arg("-e")
        .arg(format!("trace={calls}"))
        .arg("-o")
        .arg(out)
        .arg("--")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => t.env(k, v),
            None => t.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        t.current_dir(d);
    }
    t
}

/// One finished, successful call on a file descriptor whose path `strace -y` showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syscall {
    /// `write`, `pwrite64`, `fdatasync`...
    pub name: String,
    /// The file's path.
    pub path: String,
    /// The first string argument as strace printed it (escapes kept, at most 64 bytes).
    pub text: Option<String>,
    /// The byte count argument of a write (`write`, `pwrite64`).
    pub len: Option<u64>,
    /// The offset argument of a `pwrite64`.
    pub offset: Option<u64>,
    /// What it returned.
    pub ret: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses `strace -f -y` output in order: joins calls another thread split
/// (`<unfinished ...>` / `<... resumed>`), keeps the successful calls on paths.
pub fn parse(text: &str) -> io::Result<Vec<Syscall>> {
    let mut pending: HashMap<&str, String> = HashMap::new();
    let mut calls = Vec::new();
    for line in text.lines() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        let full = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, head.to_owned());
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let Some((_, after)) = tail.split_once(" resumed>") else {
                continue;
            };
            match pending.remove(pid) {
                Some(head) => format!("{head}{after}"),
                None => continue,
            }
        } else {
            rest.to_owned()
        };
        if let Some(c) = call(&full)? {
            calls.push(c);
        }
    }
    Ok(calls)
}

/// `name(fd<path>, …) = ret`, if it is a call on a path that succeeded.
fn call(line: &str) -> io::Result<Option<Syscall>> {
    let Some((name, args)) = line.split_once('(') else {
        return Ok(None);
    };
    // strace pads the return value: `fdatasync(4</x>)      = 0`.
    let Some((args, ret)) = args.rsplit_once(" = ") else {
        return Ok(None);
    };
    let Some(args) = args.trim_end().strip_suffix(')') else {
        return Ok(None);
    };
    let Ok(ret) = ret.split_whitespace().next().unwrap_or("").parse::<u64>() else {
        // A failed call (`= -1 EIO ...`) or one that never returned (`= ?`).
        return Ok(None);
    };
    let (Some(start), Some(_)) = (args.find('<'), args.find('>')) else {
        return Ok(None);
    };
    let end = args[start..]
        .find(">,")
        .or_else(|| args[start..].rfind('>'))
        .ok_or_else(|| invalid(format!("no path in {line}")))?;
    let path = args[start + 1..start + end].to_owned();
    let text = args.find('"').and_then(|open| {
        let close = args.rfind('"')?;
        (close > open).then(|| args[open + 1..close].to_owned())
    });
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| invalid(format!("bad number {s:?} in {line}")))
    };
    let (mut len, mut offset) = (None, None);
    match name {
        "pwrite64" => {
            let (head, off) = args
                .rsplit_once(", ")
                .ok_or_else(|| invalid(line.to_owned()))?;
            let (_, n) = head
                .rsplit_once(", ")
                .ok_or_else(|| invalid(line.to_owned()))?;
            len = Some(number(n)?);
            offset = Some(number(off)?);
        }
        "write" => {
            let (_, n) = args
                .rsplit_once(", ")
                .ok_or_else(|| invalid(line.to_owned()))?;
            len = Some(number(n)?);
        }
        _ => {}
    }
    Ok(Some(Syscall {
        name: name.to_owned(),
        path,
        text,
        len,
        offset,
        ret,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_writes_syncs_and_split_calls() {
        let text = r#"11 pwrite64(4</d/x.db-wal>, "7\177\6"..., 32, 0) = 32
11 fdatasync(4</d/x.db-wal>)      = 0
12 pwrite64(4</d/x.db-wal>, "a, b", 24, 32 <unfinished ...>
11 write(6</d/marks>, "token 5\n", 8) = 8
12 <... pwrite64 resumed>) = 24
11 write(1<pipe:[1]>, "x", 1) = 1
11 fsync(4</d/x.db-wal>) = -1 EIO (Input/output error)
"#;
        let calls = parse(text).unwrap();
        let names: Vec<(&str, &str, Option<u64>, Option<u64>)> = calls
            .iter()
            .map(|c| (c.name.as_str(), c.path.as_str(), c.len, c.offset))
            .collect();
        assert_eq!(
            names,
            [
                ("pwrite64", "/d/x.db-wal", Some(32), Some(0)),
                ("fdatasync", "/d/x.db-wal", None, None),
                ("write", "/d/marks", Some(8), None),
                ("pwrite64", "/d/x.db-wal", Some(24), Some(32)),
                ("write", "pipe:[1]", Some(1), None),
            ]
        );
        assert_eq!(calls[2].text.as_deref(), Some("token 5\\n"));
    }
}
