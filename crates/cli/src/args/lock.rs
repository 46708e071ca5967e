//! `oc lock`'s arguments.

use std::time::Duration;

use clap::Subcommand;

use super::parse_duration;

#[derive(Debug, Subcommand)]
pub(crate) enum LockCmd {
    /// Take a lock (or one more hold of it); prints the fencing token. Refused: exit 4.
    Acquire {
        /// Resource path, such as repo/src/main.rs (a lock on repo/src covers it).
        resource: String,
        /// Who takes it.
        #[arg(long, short)]
        owner: String,
        /// Exclusive, or shared (the seed's "collaborative").
        #[arg(long, short, value_enum, default_value_t = ModeArg::Exclusive)]
        mode: ModeArg,
        /// Time to live unless renewed (1s to 1h).
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: Duration,
        /// How long to wait for conflicting holders (0: answer at once).
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        wait: Duration,
    },
    /// Drop one hold of a lock (the lock is freed with its last hold).
    Release {
        /// Resource path.
        resource: String,
        /// The holder.
        #[arg(long, short)]
        owner: String,
    },
    /// Extend a lock to now + TTL.
    Renew {
        /// Resource path.
        resource: String,
        /// The holder.
        #[arg(long, short)]
        owner: String,
        /// New time to live.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        ttl: Duration,
    },
    /// List live locks.
    List,
    /// Lock statistics (the seed's totalLocks, activeLocks, expiredLocks, conflictsDetected, averageHoldTime, and more).
    Stats,
    /// Remove lapsed locks (--expired, the default) and/or every lock of an owner (--owner).
    Cleanup {
        /// Free every lock of this owner, whatever its holds.
        #[arg(long, short)]
        owner: Option<String>,
        /// Remove lapsed locks.
        #[arg(long)]
        expired: bool,
    },
}

/// A lock mode on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum ModeArg {
    Exclusive,
    #[value(alias = "collaborative")]
    Shared,
}

impl From<ModeArg> for oc_locks::LockMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Exclusive => oc_locks::LockMode::Exclusive,
            ModeArg::Shared => oc_locks::LockMode::Shared,
        }
    }
}
