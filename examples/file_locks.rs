//! Agents sharing a repository through hierarchical locks with fencing tokens.
//!
//! Two lock-manager handles on one database file stand in for two agent processes. A refactor
//! locks the whole `repo/src` directory, so an edit of `repo/src/lib.rs` waits for it; readers
//! share `repo/docs`; and a file that remembers the highest fencing token it has seen refuses
//! a write from a holder whose lock has been superseded.
//!
//! Run with `cargo run -p oc-examples --example file_locks`.
#![allow(clippy::print_stdout)]

use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, ensure};
use oc_locks::{LockManager, LockManagerExt, LockRequest, SqliteLockManager};

/// Storage that accepts a write only with a token at least as large as any it has seen:
/// the other half of fencing, which makes a stale holder harmless.
#[derive(Default)]
struct FencedFile {
    highest: Mutex<u64>,
    contents: Mutex<Vec<String>>,
}

impl FencedFile {
    fn write(&self, token: u64, line: &str) -> anyhow::Result<()> {
        let mut highest = self
            .highest
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        if token < *highest {
            bail!("stale fencing token {token} (highest seen {})", *highest);
        }
        *highest = token;
        self.contents
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .push(line.to_owned());
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("opencode.db");
    let agent_a = SqliteLockManager::open(&db)?;
    let agent_b = SqliteLockManager::open(&db)?; // as another process would
    let lib_rs = FencedFile::default();

    // A refactors the whole directory.
    let refactor = agent_a.try_acquire(&LockRequest::exclusive("repo/src", "agent-a")?)?;
    lib_rs.write(refactor.token, "refactored by a")?;

    // B wants one file inside it: refused at once, naming A...
    let edit = LockRequest::exclusive("repo/src/lib.rs", "agent-b")?;
    let refused = agent_b
        .try_acquire(&edit)
        .expect_err("the directory lock covers the file");
    println!("b refused: {refused}");
    ensure!(refused.to_string().contains("agent-a"));

    // ...so B waits in the background while A finishes and releases.
    let b_lock = std::thread::scope(|s| -> anyhow::Result<_> {
        let waiter = s.spawn(|| agent_b.acquire(&edit, Duration::from_secs(10)));
        while agent_a.stats()?.waiting == 0 {
            std::thread::yield_now();
        }
        agent_a.release(&refactor.resource, &refactor.owner)?;
        waiter
            .join()
            .map_err(|_| anyhow::anyhow!("waiter panicked"))?
            .map_err(Into::into)
    })?;
    ensure!(
        b_lock.token > refactor.token,
        "the later holder has the larger token"
    );
    lib_rs.write(b_lock.token, "edited by b")?;

    // A, unaware it lost the directory, tries a late write with its old token: fenced off.
    let stale = lib_rs.write(refactor.token, "late write from a");
    println!(
        "a's late write: {}",
        stale
            .as_ref()
            .err()
            .map_or("accepted?!".into(), |e| e.to_string())
    );
    ensure!(stale.is_err(), "stale tokens are refused");

    // Readers share the docs; a guard releases on drop.
    {
        let _r1 = agent_a.guard(
            &LockRequest::shared("repo/docs", "reader-1")?,
            Duration::ZERO,
        )?;
        let _r2 = agent_b.guard(
            &LockRequest::shared("repo/docs/intro.md", "reader-2")?,
            Duration::ZERO,
        )?;
        ensure!(
            agent_a
                .holders(&oc_locks::Resource::new("repo/docs")?)?
                .len()
                == 2
        );
    }
    agent_b.release(&b_lock.resource, &b_lock.owner)?;

    let st = agent_a.stats()?;
    println!(
        "totalLocks {}, activeLocks {}, conflictsDetected {}, waits {}",
        st.total_locks, st.active_locks, st.conflicts_detected, st.waits
    );
    ensure!(st.total_locks == 4 && st.active_locks == 0 && st.conflicts_detected == 2);
    println!(
        "lib.rs: {:?}",
        lib_rs
            .contents
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
    );
    Ok(())
}
