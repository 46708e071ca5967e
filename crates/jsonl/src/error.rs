//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in `oc-jsonl`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O error on `path`.
    #[error("i/o error on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A record could not be serialised or a file could not be parsed.
    #[error("json error in {}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A task id that is not a safe path segment.
    #[error("invalid task id {id:?}: {reason}")]
    InvalidTaskId {
        /// The rejected id.
        id: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// Another argument was invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// A file's contents do not match their checksum; nothing was replaced.
    #[error("{} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What did not match.
        reason: String,
    },
    /// A writer whose earlier write or `fdatasync` failed (in any durability mode): the file may
    /// end in a torn record, and after a failed `fdatasync` a later one can succeed without the
    /// lost pages, so nothing more is written or reported durable. Reopen the file (which cuts
    /// a torn tail).
    #[error("{}: an earlier write or fdatasync failed ({cause}); records cannot be made durable until the writer is reopened", path.display())]
    WriterBroken {
        /// The file.
        path: PathBuf,
        /// The failure, with its causes.
        cause: String,
    },
    /// A path in the data directory that is not what it must be (a symbolic link, a special
    /// file, a directory where a file belongs): refused, and nothing was followed, read or written
    /// through it.
    #[error("refusing {}: it {reason}", path.display())]
    Unsafe {
        /// The refused path.
        path: PathBuf,
        /// What it is (`"is a symbolic link"`, `"is not a regular file"`, ...).
        reason: &'static str,
    },
    /// The named thing does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked for.
        what: String,
    },
    /// The idempotency key `key` of `task` already names another request (a checkpoint with
    /// another description): nothing was written.
    #[error(
        "idempotency key {key:?} of task {task} already names another request; use a new key for a new request"
    )]
    IdempotencyConflict {
        /// The task.
        task: String,
        /// The key.
        key: String,
    },
    /// The store does not implement `what` (an embedder's store that keeps no checkpoint
    /// keys): nothing was written.
    #[error("this store does not support {what}")]
    Unsupported {
        /// What it does not support.
        what: &'static str,
    },
    /// A store's backend failed: PostgreSQL, or an embedder's own (decision 0033).
    ///
    /// The message is what a person reads (one line, never a password); the backend's own
    /// error is the [`source`](std::error::Error::source): downcast it for more.
    #[error("{backend}: {message}")]
    Backend {
        /// Which backend (`postgres`, or an embedder's name).
        backend: &'static str,
        /// What failed, never including a password.
        message: String,
        /// Whether trying again may succeed (a lost connection, a serialization failure).
        retryable: bool,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// The idempotency key already names another request ([`Error::IdempotencyConflict`]).
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::IdempotencyConflict { .. })
    }

    /// Nothing was found.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// The caller's input was rejected before anything was touched.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidTaskId { .. } | Error::InvalidInput { .. }
        )
    }

    /// A path was refused because it is a link, a special file or otherwise not what the data
    /// directory holds there.
    pub fn is_unsafe(&self) -> bool {
        matches!(self, Error::Unsafe { .. })
    }

    /// Stored data failed verification.
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }

    /// Trying again later may succeed: the backend said so when it made the error.
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
    /// let e = oc_jsonl::Error::backend("mine", true, "the server went away");
    /// assert!(e.is_retryable());
    /// assert_eq!(e.to_string(), "mine: the server went away");
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

impl Error {
    /// The same error again, for a value that carries one to every later use (`Json`'s cause,
    /// which cannot be copied, is given by its message, as `Corrupt`).
    pub(crate) fn replay(&self) -> Error {
        match self {
            Error::Io { path, source } => Error::Io {
                path: path.clone(),
                source: std::io::Error::new(source.kind(), source.to_string()),
            },
            Error::Json { path, source } => Error::Corrupt {
                path: path.clone(),
                reason: source.to_string(),
            },
            Error::InvalidTaskId { id, reason } => Error::InvalidTaskId {
                id: id.clone(),
                reason,
            },
            Error::InvalidInput { field, reason } => Error::InvalidInput {
                field,
                reason: reason.clone(),
            },
            Error::Corrupt { path, reason } => Error::Corrupt {
                path: path.clone(),
                reason: reason.clone(),
            },
            Error::WriterBroken { path, cause } => Error::WriterBroken {
                path: path.clone(),
                cause: cause.clone(),
            },
            Error::Unsafe { path, reason } => Error::Unsafe {
                path: path.clone(),
                reason,
            },
            Error::NotFound { what } => Error::NotFound { what: what.clone() },
            Error::IdempotencyConflict { task, key } => Error::IdempotencyConflict {
                task: task.clone(),
                key: key.clone(),
            },
            Error::Unsupported { what } => Error::Unsupported { what },
            Error::Backend {
                backend,
                message,
                retryable,
                ..
            } => Error::Backend {
                backend,
                message: message.clone(),
                retryable: *retryable,
                source: message.clone().into(),
            },
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}
