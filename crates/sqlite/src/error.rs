//! What the shared plumbing can fail with; each store maps it into its own error type.

/// An error of the shared plumbing: [`crate::Connect`] and [`crate::migrate()`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// SQLite reported an error.
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
    /// The file's schema for this component is newer than the migrations this build knows.
    #[error("schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// `PRAGMA journal_mode = WAL` left the database in another mode (a file system or VFS
    /// without shared memory, say): the stores refuse it, since their readers would block on
    /// the writer and a crash could lose what WAL keeps.
    #[error("journal_mode is {mode}, WAL could not be enabled")]
    NotWal {
        /// The journal mode SQLite reported instead.
        mode: String,
    },
}

impl Error {
    /// SQLite reported the database busy or locked (see [`crate::is_busy`]).
    pub fn is_busy(&self) -> bool {
        matches!(self, Error::Sqlite(e) if crate::is_busy(e))
    }
}
