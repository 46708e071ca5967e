//! The crate's error type.

use crate::{TaskId, TaskStatus};

/// Everything that can go wrong in `oc-tasks`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A task id broke the id rules.
    #[error("invalid task id {id:?}: {reason}")]
    InvalidId {
        /// The rejected id.
        id: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An argument other than the id was invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument's name.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// No task has this id.
    #[error("task {id} not found")]
    NotFound {
        /// The missing id.
        id: TaskId,
    },
    /// A task with this id already exists.
    #[error("task {id} already exists")]
    AlreadyExists {
        /// The duplicate id.
        id: TaskId,
    },
    /// The state machine does not allow this transition from the task's current status.
    #[error("task {id} cannot go from {from} to {to}")]
    InvalidTransition {
        /// The task.
        id: TaskId,
        /// Its current status.
        from: TaskStatus,
        /// The status asked for.
        to: TaskStatus,
    },
    /// The presented lease token is not the task's current lease (expired and reaped, or taken over).
    #[error("lease lost on task {id}{}", token.map(|t| format!(" (token {t} is not current)")).unwrap_or_else(|| " (the task is leased; present its token)".into()))]
    LeaseLost {
        /// The task.
        id: TaskId,
        /// The token presented, if any.
        token: Option<u64>,
    },
    /// A check-and-set update expected another version.
    #[error("task {id} is at version {actual}, expected {expected}")]
    VersionMismatch {
        /// The task.
        id: TaskId,
        /// The version the caller expected.
        expected: u64,
        /// The version stored.
        actual: u64,
    },
    /// A stored row could not be decoded; the store is not modified.
    #[error("task {id}: stored data is corrupt: {reason}")]
    Corrupt {
        /// The row's id.
        id: String,
        /// What failed to decode.
        reason: String,
    },
    /// The database file is newer than this build understands.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// An I/O error on `path`.
    #[error("i/o error on {path}")]
    Io {
        /// The file or directory.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// SQLite reported an error.
    #[error("sqlite error")]
    Sqlite(#[from] rusqlite::Error),
    /// Another storage backend (PostgreSQL, or an embedder's own) failed.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`postgres`, say).
        backend: &'static str,
        /// What failed, never including a password.
        message: String,
        /// Whether trying again may succeed (a lost connection, a serialization failure).
        retryable: bool,
    },
}

impl Error {
    /// The task or an argument was not found (`NotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The request lost against the task's current state: an invalid transition, a lost lease,
    /// a version mismatch or a duplicate id.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::InvalidTransition { .. }
                | Error::LeaseLost { .. }
                | Error::VersionMismatch { .. }
                | Error::AlreadyExists { .. }
        )
    }

    /// The caller's input was rejected before anything was read or written.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidId { .. } | Error::InvalidInput { .. })
    }

    /// Trying again later may succeed (the database was busy or locked, or a networked backend
    /// lost its connection).
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Sqlite(e) => is_busy(e),
            Error::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }
}

pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
