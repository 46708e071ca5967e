//! Injected faults for tests: libfiu's POSIX preload (`fiu-run`, Debian `fiu-utils`) that makes
//! chosen system calls fail or come up short in a child process, and a size-limited tmpfs that
//! fills up. A test that needs one and cannot have it says so and skips, unless the matching
//! `OC_REQUIRE_*` variable is set (as CI sets them): then it fails.

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::process::Command;

fn require(available: bool, var: &str, what: &str) -> bool {
    if available {
        return true;
    }
    assert!(
        std::env::var_os(var).is_none(),
        "{what} is required ({var} is set) but not available"
    );
    #[allow(clippy::print_stderr)]
    {
        eprintln!("{what} is not available: skipping");
    }
    false
}

/// Whether `fiu-run` can be used; without it, skips (returns `false`) unless `OC_REQUIRE_FIU`
/// is set, and then panics.
pub fn fiu_for_tests() -> bool {
    let here = Command::new("fiu-run")
        .args(["-x", "true"])
        .output()
        .is_ok_and(|o| o.status.success());
    require(here, "OC_REQUIRE_FIU", "fiu-run (Debian fiu-utils)")
}

/// `cmd` as a child under libfiu's POSIX preload, with each of `faults` enabled (`fiu-run -c`
/// syntax, such as `enable_random name=posix/io/sync/fdatasync,probability=0.05,failinfo=5`).
pub fn under_fiu(cmd: &Command, faults: &[&str]) -> Command {
    let mut c = Command::new("fiu-run");
    c.arg("-x");
    for f in faults {
        c.args(["-c", f]);
    }
    c.arg(cmd.get_program()).args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// A tmpfs of a given size mounted on a fresh directory, unmounted and removed on drop: a disk
/// that fills up. Needs root.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` bytes.
    pub fn mount(bytes: u64) -> io::Result<Tmpfs> {
        let dir = tempfile::tempdir()?;
        let mut opt = OsString::from(format!("size={bytes}"));
        opt.push(",mode=0700");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(&opt)
            .arg("oc-test")
            .arg(dir.path())
            .status()?;
        if !status.success() {
            return Err(io::Error::other(format!("mount -t tmpfs failed: {status}")));
        }
        Ok(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A tmpfs of `bytes` bytes, or `None` (skip) where one cannot be mounted, unless
/// `OC_REQUIRE_TMPFS` is set: then it panics.
pub fn tmpfs_for_tests(bytes: u64) -> Option<Tmpfs> {
    let t = Tmpfs::mount(bytes);
    let ok = t.is_ok();
    require(ok, "OC_REQUIRE_TMPFS", "a tmpfs mount (root)").then_some(())?;
    t.ok()
}

/// Fills the file system holding `dir` with a file `filler` until a write fails, then frees
/// `keep` bytes of it: what follows has that much room. Returns the filler's path.
pub fn fill(dir: &Path, keep: u64) -> io::Result<std::path::PathBuf> {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path)?;
    let block = vec![0xa5u8; 4096];
    while f.write_all(&block).is_ok() {}
    drop(f);
    let len = std::fs::metadata(&path)?.len();
    let f = std::fs::OpenOptions::new().write(true).open(&path)?;
    f.set_len(len.saturating_sub(keep))?;
    Ok(path)
}

/// Writes 100 blocks of 4 KiB to a new file at `path` with plain `write`s and counts those that
/// came up short: run inside a child under [`under_fiu`], evidence that the faults were live.
pub fn short_write_probe(path: &Path) -> io::Result<usize> {
    use std::io::Write;
    let f = std::fs::File::create(path)?;
    Ok((0..100)
        .filter(|_| (&f).write(&[7u8; 4096]).is_ok_and(|n| n < 4096))
        .count())
}
