//! The crate's error type.

use std::time::Duration;

use crate::Holder;
use crate::model::list_holders;

/// Everything that can go wrong in `oc-locks`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A resource path broke the path rules.
    #[error("invalid resource {resource:?}: {reason}")]
    InvalidResource {
        /// The rejected path.
        resource: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An owner name broke the rules.
    #[error("invalid owner {owner:?}: {reason}")]
    InvalidOwner {
        /// The rejected name.
        owner: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A TTL outside the manager's bounds.
    #[error("invalid ttl {}: must be between {} and {}", humantime::format_duration(*ttl), humantime::format_duration(*min), humantime::format_duration(*max))]
    InvalidTtl {
        /// The TTL asked for.
        ttl: Duration,
        /// Shortest accepted.
        min: Duration,
        /// Longest accepted.
        max: Duration,
    },
    /// Another argument was invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The lock is held (or queued for) by others in a conflicting mode.
    #[error("resource {resource} is locked by {}", list_holders(holders))]
    Conflict {
        /// The resource asked for.
        resource: String,
        /// Who holds or waits for it.
        holders: Vec<Holder>,
    },
    /// Waiting for the lock took longer than allowed.
    #[error("timed out after {} waiting for {resource}, locked by {}", humantime::format_duration(*waited), list_holders(holders))]
    Timeout {
        /// The resource asked for.
        resource: String,
        /// How long the caller waited.
        waited: Duration,
        /// Who held it at the end.
        holders: Vec<Holder>,
    },
    /// The owner does not hold this lock (release or renew by someone else).
    #[error(
        "{owner} does not hold a lock on {resource} (held by {})",
        list_holders(holders)
    )]
    NotHeld {
        /// The resource.
        resource: String,
        /// The owner who asked.
        owner: String,
        /// Who does hold it.
        holders: Vec<Holder>,
    },
    /// The owner's lock lapsed before it was renewed or released; it has been removed.
    #[error("the lock of {owner} on {resource} expired")]
    Expired {
        /// The resource.
        resource: String,
        /// The owner.
        owner: String,
    },
    /// The database file is newer than this build understands.
    #[error("lock schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        supported: i64,
    },
    /// A stored lock row could not be decoded.
    #[error("stored lock on {resource} is corrupt: {reason}")]
    Corrupt {
        /// The row's resource.
        resource: String,
        /// What failed.
        reason: String,
    },
    /// An idempotency key was used before for another request ([`crate::IdempotencyKey`]):
    /// nothing was granted or released.
    #[error("idempotency key {key:?} of {agent:?} was used for another request")]
    IdempotencyConflict {
        /// The agent the key belongs to.
        agent: String,
        /// The key.
        key: String,
    },
    /// This manager keeps no idempotency keys (one written outside this crate that does not
    /// implement the keyed methods): nothing was granted or released.
    #[error("this lock manager does not support idempotency keys")]
    IdempotencyUnsupported,
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
        /// Whether trying again may succeed (the database busy, a lost connection, a server
        /// restarting).
        retryable: bool,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl Error {
    /// Someone else holds, or waits for, what was asked (also after waiting), or the lock was
    /// lost: the request lost against the current state; or an idempotency key was used for
    /// another request.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Conflict { .. }
            | Error::Timeout { .. }
            | Error::Expired { .. }
            | Error::IdempotencyConflict { .. } => true,
            Error::NotHeld { holders, .. } => !holders.is_empty(),
            _ => false,
        }
    }

    /// Nothing is held where the caller expected its own lock.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotHeld { holders, .. } if holders.is_empty())
    }

    /// The caller's input was rejected before anything was looked at.
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidResource { .. }
                | Error::InvalidOwner { .. }
                | Error::InvalidTtl { .. }
                | Error::InvalidInput { .. }
        )
    }

    /// Trying again later may succeed: the database was busy, or a networked backend lost its
    /// connection (the backend said so when it made the error).
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
    /// let e = oc_locks::Error::backend("mine", true, "the server went away");
    /// assert!(e.is_retryable());
    /// assert_eq!(e.to_string(), "mine: the server went away");
    ///
    /// // A caller gets the backend's own error back.
    /// let io = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
    /// let e = oc_locks::Error::backend("mine", true, io);
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

    /// The holders named by a conflict, timeout or wrong-owner error.
    pub fn holders(&self) -> &[Holder] {
        match self {
            Error::Conflict { holders, .. }
            | Error::Timeout { holders, .. }
            | Error::NotHeld { holders, .. } => holders,
            _ => &[],
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

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
