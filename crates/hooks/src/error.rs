//! The crate's error type.

/// Everything that can go wrong in `oc-hooks`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A before-hook refused the transition; nothing was written.
    #[error("vetoed by hook {hook}: {reason}")]
    Vetoed {
        /// The hook's name.
        hook: String,
        /// Its reason.
        reason: String,
    },
    /// The task store refused or failed.
    #[error(transparent)]
    Task(#[from] oc_tasks::Error),
    /// The task's files could not be written or read.
    #[error(transparent)]
    Files(#[from] oc_jsonl::Error),
    /// An argument was invalid.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The argument.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// An OS resource could not be had.
    #[error("{what} failed")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// A before-hook vetoed the transition.
    pub fn is_vetoed(&self) -> bool {
        matches!(self, Error::Vetoed { .. })
    }
    /// The task store's classification, or `false`.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Task(e) if e.is_conflict())
    }
    /// Not found (task, checkpoint...).
    pub fn is_not_found(&self) -> bool {
        match self {
            Error::Task(e) => e.is_not_found(),
            Error::Files(e) => e.is_not_found(),
            _ => false,
        }
    }
    /// Rejected input.
    pub fn is_invalid_input(&self) -> bool {
        match self {
            Error::Task(e) => e.is_invalid_input(),
            Error::Files(e) => e.is_invalid_input(),
            Error::InvalidInput { .. } => true,
            _ => false,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
