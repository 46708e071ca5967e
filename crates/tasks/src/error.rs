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
    /// A dependency edge would close a cycle (or is a task depending on itself); nothing
    /// changed.
    #[error("dependency cycle: {}", cycle.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(" -> "))]
    Cycle {
        /// The cycle, starting and ending with the same task.
        cycle: Vec<TaskId>,
    },
    /// A dependency or parent names a task that does not exist.
    #[error("{field} names task {id}, which does not exist")]
    MissingReference {
        /// `depends_on` or `parent`.
        field: &'static str,
        /// The missing task.
        id: TaskId,
    },
    /// A task others depend on, or with children, was asked to be deleted without saying
    /// what happens to them (cascade, or drop the edges).
    #[error(
        "task {id} has dependents or children ({}); delete them too (cascade) or drop their edges",
        list(dependents)
    )]
    HasDependents {
        /// The task.
        id: TaskId,
        /// Some of the tasks that depend on it or are its children.
        dependents: Vec<TaskId>,
    },
    /// Another unfinished task holds this unique key, so this task cannot take it back (a
    /// retry of a finished task whose key was taken meanwhile).
    #[error("unique key {key:?} is held by task {holder}")]
    UniqueKeyHeld {
        /// The key.
        key: String,
        /// The task holding it.
        holder: TaskId,
    },
    /// An idempotency key was used before for another request ([`crate::IdempotencyKey`]):
    /// nothing was written.
    #[error("idempotency key {key:?} of agent {agent:?} was used for another request")]
    IdempotencyConflict {
        /// The agent the key belongs to.
        agent: String,
        /// The key.
        key: String,
    },
    /// This store keeps no idempotency keys (an embedder's store that does not implement the
    /// keyed methods): nothing was written.
    #[error("this task store does not support idempotency keys")]
    IdempotencyUnsupported,
    /// This task store does not implement `operation` (an embedder's store without it):
    /// nothing was written.
    #[error("this task store does not support {operation}")]
    Unsupported {
        /// What was asked, e.g. `pruning finished tasks`.
        operation: &'static str,
    },
    /// The storage backend failed: SQLite, PostgreSQL, or an embedder's own.
    ///
    /// The message is what a person reads (one line, never a password); the backend's own
    /// error is the [`source`](std::error::Error::source), for a caller that needs more (a
    /// `rusqlite::Error`'s code, a `tokio_postgres::Error`'s SQLSTATE): downcast it.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`sqlite`, `postgres`, `tokio` for a blocking call its runtime
        /// dropped).
        backend: &'static str,
        /// What failed, never including a password.
        message: String,
        /// Whether trying again may succeed (the database busy, a lost connection, a
        /// serialization failure).
        retryable: bool,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// The task or an argument was not found (`NotFound`).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Error::NotFound { .. } | Error::MissingReference { .. }
        )
    }

    /// The request lost against the store's current state: an invalid transition, a lost
    /// lease, a version mismatch, a duplicate id, a dependency cycle, dependents in the way of
    /// a delete, a unique key held by another task, or an idempotency key used for another
    /// request.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            Error::InvalidTransition { .. }
                | Error::LeaseLost { .. }
                | Error::VersionMismatch { .. }
                | Error::AlreadyExists { .. }
                | Error::Cycle { .. }
                | Error::HasDependents { .. }
                | Error::UniqueKeyHeld { .. }
                | Error::IdempotencyConflict { .. }
        )
    }

    /// The caller's input was rejected before anything was read or written.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Error::InvalidId { .. } | Error::InvalidInput { .. })
    }

    /// Trying again later may succeed (the database was busy or locked, or a networked backend
    /// lost its connection): the backend said so when it made the error.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                retryable: true,
                ..
            }
        )
    }

    /// A [`Error::Backend`] failure of `backend`, with `source` (the backend's own error, or a
    /// message) as its source and its text as the message.
    ///
    /// ```
    /// use std::error::Error as _;
    ///
    /// let e = oc_tasks::Error::backend("mine", true, "the server went away");
    /// assert!(e.is_retryable());
    /// assert_eq!(e.to_string(), "mine: the server went away");
    ///
    /// // A caller gets the backend's own error back.
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    /// let e = oc_tasks::Error::backend("mine", true, io);
    /// let io = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
    /// assert_eq!(io.map(|e| e.kind()), Some(std::io::ErrorKind::ConnectionReset));
    /// ```
    pub fn backend(
        backend: &'static str,
        retryable: bool,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Error {
        let source = source.into();
        Error::Backend {
            backend,
            message: source.to_string(),
            retryable,
            source,
        }
    }
}

/// SQLite's errors, retryable when SQLite found the database busy or locked.
#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        Error::backend("sqlite", oc_sqlite::is_busy(&e), e)
    }
}

fn list(ids: &[TaskId]) -> String {
    let shown: Vec<&str> = ids.iter().take(5).map(|t| t.as_str()).collect();
    let more = ids.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
