//! What a PostgreSQL failure means, decided by its SQLSTATE and constraint name (never by
//! parsing the server's message), and the store errors it becomes.

use tokio_postgres::error::SqlState;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// PostgreSQL, or the way to it, failed.
    Pg(tokio_postgres::Error),
    /// The runtime thread stopped before answering.
    Stopped,
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Pg(e)
    }
}

/// What a failure was, as far as the stores care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Class {
    /// `23505`: a row would have broken the unique constraint (or index) named, if the server
    /// named one.
    UniqueViolation(Option<String>),
    /// `40001`: the transaction lost a serialization race.
    SerializationFailure,
    /// `40P01`: the server broke a deadlock by failing this statement.
    Deadlock,
    /// `55P03`: `lock_timeout` ran out.
    LockNotAvailable,
    /// `25P03`: `idle_in_transaction_session_timeout` ended the session.
    IdleInTransactionTimeout,
    /// The server cannot take the call now: shutting down, crashed, starting, full
    /// (`57P01`, `57P02`, `57P03`, `53300`), or read-only (`25006`, a standby).
    Unavailable,
    /// The connection broke, or the server reported a connection failure (class `08`).
    ConnectionLost,
    /// The TLS handshake was refused (an untrusted or wrong certificate): it fails the same
    /// way again.
    TlsRefused,
    /// The way to the server failed otherwise before any answer (a refused connection, a
    /// timeout).
    NoAnswer,
    /// Anything else the server refused (with this SQLSTATE).
    Other(SqlState),
}

/// What `e` was.
pub(crate) fn classify(e: &tokio_postgres::Error) -> Class {
    if e.is_closed() {
        return Class::ConnectionLost;
    }
    let Some(code) = e.code() else {
        // No SQLSTATE: a failure on the way. A refused TLS handshake (tokio-rustls reports it
        // as invalid data) fails the same way again; a lost or refused connection, a timeout
        // may not.
        return if invalid_data(e) {
            Class::TlsRefused
        } else {
            Class::NoAnswer
        };
    };
    match *code {
        SqlState::UNIQUE_VIOLATION => Class::UniqueViolation(
            e.as_db_error()
                .and_then(|d| d.constraint())
                .map(str::to_owned),
        ),
        SqlState::T_R_SERIALIZATION_FAILURE => Class::SerializationFailure,
        SqlState::T_R_DEADLOCK_DETECTED => Class::Deadlock,
        SqlState::LOCK_NOT_AVAILABLE => Class::LockNotAvailable,
        SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT => Class::IdleInTransactionTimeout,
        SqlState::ADMIN_SHUTDOWN
        | SqlState::CRASH_SHUTDOWN
        | SqlState::CANNOT_CONNECT_NOW
        | SqlState::TOO_MANY_CONNECTIONS
        | SqlState::READ_ONLY_SQL_TRANSACTION => Class::Unavailable,
        _ if code.code().starts_with("08") => Class::ConnectionLost,
        _ => Class::Other(code.clone()),
    }
}

impl Class {
    /// Whether trying again may succeed.
    pub(crate) fn retryable(&self) -> bool {
        match self {
            Class::SerializationFailure
            | Class::Deadlock
            | Class::LockNotAvailable
            | Class::IdleInTransactionTimeout
            | Class::Unavailable
            | Class::ConnectionLost
            | Class::NoAnswer => true,
            Class::UniqueViolation(_) | Class::TlsRefused | Class::Other(_) => false,
        }
    }

    /// Whether this is a unique violation of `constraint`.
    pub(crate) fn violates(&self, constraint: &str) -> bool {
        matches!(self, Class::UniqueViolation(Some(c)) if c == constraint)
    }
}

/// Whether trying again may succeed.
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    classify(e).retryable()
}

/// Whether an I/O error of kind `InvalidData` (what a TLS handshake refusal is) caused `e`.
fn invalid_data(e: &tokio_postgres::Error) -> bool {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::InvalidData)
        {
            return true;
        }
        cause = c.source();
    }
    false
}

/// The source of a failed call's error when the client's runtime thread stopped before
/// answering (the store is being dropped, or the thread panicked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the client's runtime thread stopped")]
#[non_exhaustive]
pub struct ClientStopped;

/// The message, whether it is retryable and the source, for a failed call.
fn backend(f: Failure) -> (String, bool, Box<dyn std::error::Error + Send + Sync>) {
    match f {
        Failure::Pg(e) => (describe(&e), retryable(&e), Box::new(e)),
        Failure::Stopped => (ClientStopped.to_string(), false, Box::new(ClientStopped)),
    }
}

/// A task-store error for a failed call, with the `tokio_postgres::Error` as its source.
pub(crate) fn task_error(f: Failure) -> oc_tasks::Error {
    let (message, retryable, source) = backend(f);
    oc_tasks::Error::Backend {
        backend: "postgres",
        message,
        retryable,
        source,
    }
}

/// A lock-manager error for a failed call, with the `tokio_postgres::Error` as its source.
pub(crate) fn lock_error(f: Failure) -> oc_locks::Error {
    let (message, retryable, source) = backend(f);
    oc_locks::Error::Backend {
        backend: "postgres",
        message,
        retryable,
        source,
    }
}

/// A task-file store error for a failed call, with the `tokio_postgres::Error` as its source.
pub(crate) fn files_error(f: Failure) -> oc_jsonl::Error {
    let (message, retryable, source) = backend(f);
    oc_jsonl::Error::Backend {
        backend: "postgres",
        message,
        retryable,
        source,
    }
}

/// A token-store error for a failed call: the message only (`oc_auth::AuthError` keeps no
/// source), never a password.
pub(crate) fn auth_error(f: Failure) -> oc_auth::AuthError {
    let (message, _, _) = backend(f);
    oc_auth::AuthError::Backend(format!("postgres: {message}"))
}

/// The source of an append's error when the group commit it was part of failed: the
/// server's error, shared by every append of the batch (downcast [`source`] to reach it).
///
/// [`source`]: std::error::Error::source
#[derive(Debug, Clone)]
pub struct BatchFailed(pub(crate) std::sync::Arc<tokio_postgres::Error>);

impl std::fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the group commit this append was part of failed: {}",
            describe(&self.0)
        )
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// A task-file store error for a group commit that failed for several appends at once.
pub(crate) fn shared_files_error(e: std::sync::Arc<tokio_postgres::Error>) -> oc_jsonl::Error {
    oc_jsonl::Error::Backend {
        backend: "postgres",
        message: describe(&e),
        retryable: retryable(&e),
        source: Box::new(BatchFailed(e)),
    }
}

/// The server's message and SQLSTATE, or the client's error; never a password.
pub(crate) fn describe(e: &tokio_postgres::Error) -> String {
    let message = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    };
    redact(&message)
}

/// Removes anything that looks like a password from a message.
pub(crate) fn redact(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    for word in message.split_inclusive(char::is_whitespace) {
        let lower = word.to_ascii_lowercase();
        if let Some(i) = lower.find("password=") {
            out.push_str(&word[..i + "password=".len()]);
            out.push_str("***");
            if word.ends_with(char::is_whitespace) {
                out.push(' ');
            }
        } else if let (Some(at), Some(scheme)) = (word.find('@'), word.find("://")) {
            // postgresql://user:secret@host → postgresql://user:***@host
            let creds = &word[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => {
                    out.push_str(&word[..scheme + 3 + colon + 1]);
                    out.push_str("***");
                    out.push_str(&word[at..]);
                }
                None => out.push_str(word),
            }
        } else {
            out.push_str(word);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        for (msg, shown) in [
            (
                "cannot connect to postgresql://agent:hunter2@db:5432/work now",
                "cannot connect to postgresql://agent:***@db:5432/work now",
            ),
            (
                "host=db user=agent password=hunter2 dbname=x",
                "host=db user=agent password=*** dbname=x",
            ),
            ("nothing secret here", "nothing secret here"),
        ] {
            assert_eq!(redact(msg), shown);
        }
    }

    #[test]
    fn retryable_classes_are_the_transient_ones() {
        assert!(Class::SerializationFailure.retryable());
        assert!(Class::ConnectionLost.retryable());
        assert!(!Class::TlsRefused.retryable());
        assert!(!Class::UniqueViolation(Some("tasks_pkey".into())).retryable());
        assert!(Class::UniqueViolation(Some("tasks_pkey".into())).violates("tasks_pkey"));
        assert!(!Class::UniqueViolation(None).violates("tasks_pkey"));
        assert!(!Class::Other(SqlState::UNDEFINED_TABLE).retryable());
    }
}
