//! Opening and configuring a store's connections, the same way for every store.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::{Durability, Error};

/// Prepared statements each connection keeps cached.
pub const STATEMENT_CACHE: usize = 64;

/// How a store's connections are opened: the busy timeout and the [`Durability`] every
/// connection runs with.
///
/// ```
/// use std::time::Duration;
/// let dir = tempfile::tempdir()?;
/// let connect = oc_sqlite::Connect::new(Duration::from_secs(5), oc_sqlite::Durability::default());
/// let writer = connect.writer(&dir.path().join("a.db"))?;
/// let mode: String = writer.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
/// assert_eq!(mode, "wal");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connect {
    /// How long a statement waits for another connection's transaction before failing busy.
    pub busy_timeout: Duration,
    /// What survives an OS crash or a power loss (`PRAGMA synchronous`).
    pub durability: Durability,
}

impl Connect {
    /// Connections with this busy timeout and durability.
    pub fn new(busy_timeout: Duration, durability: Durability) -> Self {
        Connect {
            busy_timeout,
            durability,
        }
    }

    /// Opens (creating if needed) the database at `path` as a store's writer: configured, in
    /// WAL mode. A database where WAL cannot be enabled is refused ([`Error::NotWal`]).
    pub fn writer(&self, path: &Path) -> Result<Connection, Error> {
        let c = Connection::open(path)?;
        self.configure(&c, true)?;
        Ok(c)
    }

    /// Opens another connection to the existing database at `path` (a reader beside the
    /// writer, which already put the file in WAL mode), configured.
    pub fn reader(&self, path: &Path) -> Result<Connection, Error> {
        let c = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        self.configure(&c, false)?;
        Ok(c)
    }

    /// Sets the busy timeout, the statement cache and `PRAGMA synchronous` on `c`; with `wal`,
    /// first switches the file to WAL and refuses it if that fails (an in-memory database
    /// keeps its `memory` journal). WAL lets readers run beside the writer and survives
    /// process crashes; with WAL, `synchronous=NORMAL` loses at most the last transactions on
    /// power loss, never integrity.
    pub fn configure(&self, c: &Connection, wal: bool) -> Result<(), Error> {
        c.busy_timeout(self.busy_timeout)?;
        c.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if wal {
            let mode: String = c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
                return Err(Error::NotWal { mode });
            }
        }
        c.execute_batch(self.durability.synchronous_pragma())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn connect() -> Connect {
        Connect::new(Duration::from_secs(1), Durability::default())
    }

    #[test]
    fn a_writer_puts_the_file_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        let w = connect().writer(&path).unwrap();
        let r = connect().reader(&path).unwrap();
        for c in [&w, &r] {
            let mode: String = c
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
            let sync: i64 = c.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap();
            assert_eq!(sync, 1, "NORMAL");
        }
    }

    #[test]
    fn a_database_where_wal_cannot_be_enabled_is_refused() {
        // `unix-dotfile` locks with dot-files and has no shared memory, so SQLite keeps the
        // rollback journal when asked for WAL.
        let dir = tempfile::tempdir().unwrap();
        let uri = format!(
            "file:{}?vfs=unix-dotfile",
            dir.path().join("a.db").display()
        );
        let e = connect().writer(Path::new(&uri)).unwrap_err();
        assert!(
            matches!(&e, Error::NotWal { mode } if mode == "delete"),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "journal_mode is delete, WAL could not be enabled"
        );
    }

    #[test]
    fn an_in_memory_database_keeps_its_memory_journal() {
        let c = Connection::open_in_memory().unwrap();
        connect().configure(&c, true).unwrap();
    }
}
