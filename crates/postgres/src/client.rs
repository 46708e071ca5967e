//! The synchronous face of `tokio-postgres`: a private runtime on its own thread, a small pool
//! of connections with their prepared statements, and errors classified.
//!
//! Callers block on a channel, never on a runtime, so the stores work from any thread,
//! including a thread that drives the caller's own tokio runtime (where the `postgres` crate's
//! `block_on` would panic). Most operations are one statement or one server-side function, so
//! connections are shared (`tokio-postgres` pipelines concurrent queries) and no lock is held
//! across a network round trip; the few that need several statements in one transaction (the
//! work graph's) take a connection of their own from a second set ([`Pool::transaction`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Transaction};

/// How connections are secured: not at all, or with TLS through rustls (feature `tls`).
#[derive(Clone, Default)]
pub(crate) enum Tls {
    #[default]
    Off,
    #[cfg(feature = "tls")]
    Rustls(tokio_postgres_rustls::MakeRustlsConnect),
}

/// Drives a connection, handing its messages (notifications) to `on_message`, until it ends.
async fn drive<S, T>(mut conn: Connection<S, T>, mut on_message: impl FnMut(AsyncMessage))
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = std::future::poll_fn(|cx| conn.poll_message(cx)).await {
        match msg {
            Ok(m) => on_message(m),
            // The connection broke: its client reports itself closed, and the next call
            // connects again.
            Err(_) => break,
        }
    }
}

/// Connects (with TLS when configured) and drives the connection on the runtime; messages
/// go to `on_message`. The handle ends when the connection does.
pub(crate) async fn connect(
    config: &tokio_postgres::Config,
    tls: &Tls,
    on_message: impl FnMut(AsyncMessage) + Send + 'static,
) -> Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error> {
    Ok(match tls {
        Tls::Off => {
            let (client, conn) = config.connect(NoTls).await?;
            (client, tokio::spawn(drive(conn, on_message)))
        }
        #[cfg(feature = "tls")]
        Tls::Rustls(make) => {
            let (client, conn) = config.connect(make.clone()).await?;
            (client, tokio::spawn(drive(conn, on_message)))
        }
    })
}

/// Connection settings shared by the PostgreSQL stores.
#[derive(Clone)]
pub struct PgOptions {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) schema: String,
    pub(crate) pool_size: usize,
    pub(crate) clock: Option<Arc<dyn oc_time::Clock>>,
    pub(crate) slow_threshold: Duration,
    pub(crate) tls: Tls,
}

impl std::fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: only where and what.
        f.debug_struct("PgOptions")
            .field("hosts", &self.config.get_hosts().len())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .field("schema", &self.schema)
            .field("pool_size", &self.pool_size)
            .field("clock", &self.clock.is_some())
            .field("tls", &!matches!(self.tls, Tls::Off))
            .finish()
    }
}

/// Default connections per store.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Default wait for a connection.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl PgOptions {
    /// Options for the server at `url`: a `postgresql://` URL or `key=value` pairs, as libpq
    /// takes them. Sessions get `statement_timeout=30s`, `lock_timeout=10s` and
    /// `idle_in_transaction_session_timeout=30s`.
    pub fn new(url: &str) -> Result<Self, oc_tasks::Error> {
        let mut config: tokio_postgres::Config =
            url.parse()
                .map_err(|e: tokio_postgres::Error| oc_tasks::Error::InvalidInput {
                    field: "database url",
                    reason: redact(&e.to_string()),
                })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(DEFAULT_CONNECT_TIMEOUT);
        }
        config.options(
            "-c statement_timeout=30s -c lock_timeout=10s -c idle_in_transaction_session_timeout=30s",
        );
        if config.get_application_name().is_none() {
            config.application_name("oc");
        }
        Ok(PgOptions {
            config,
            schema: "oc".to_owned(),
            pool_size: DEFAULT_POOL_SIZE,
            clock: None,
            slow_threshold: oc_tasks::DEFAULT_SLOW_THRESHOLD,
            tls: default_tls(),
        })
    }

    /// The PostgreSQL schema holding the tables (default `oc`): letters, digits and `_`,
    /// starting with a letter or `_`, at most 63 bytes.
    pub fn schema(mut self, schema: &str) -> Result<Self, oc_tasks::Error> {
        let ok = !schema.is_empty()
            && schema.len() <= 63
            && schema.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok {
            return Err(oc_tasks::Error::InvalidInput {
                field: "schema",
                reason: format!(
                    "{schema:?} must be 1-63 of [A-Za-z0-9_], not starting with a digit"
                ),
            });
        }
        self.schema = schema.to_ascii_lowercase();
        Ok(self)
    }

    /// Where the server is, for messages: hosts (or socket directories) and ports, the
    /// database and the schema; never a password.
    pub fn target(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let ports = self.config.get_ports();
        let port = ports.first().copied().unwrap_or(5432);
        format!(
            "{}:{port}/{} (schema {})",
            hosts.join(","),
            self.config
                .get_dbname()
                .or(self.config.get_user())
                .unwrap_or("postgres"),
            self.schema
        )
    }

    /// The schema the tables live in.
    pub fn schema_name(&self) -> &str {
        &self.schema
    }

    /// Connections per store (default 4, at least 1).
    pub fn pool_size(mut self, n: usize) -> Self {
        self.pool_size = n.max(1);
        self
    }

    /// Trusts the certificate authorities in the PEM file at `path` (instead of the web PKI's)
    /// for TLS to the server; ask for TLS in the URL (`sslmode=require`).
    #[cfg(feature = "tls")]
    pub fn tls_ca_file(mut self, path: &std::path::Path) -> Result<Self, oc_tasks::Error> {
        use rustls_pki_types::pem::PemObject;
        let bad = |reason: String| oc_tasks::Error::InvalidInput {
            field: "certificate authority file",
            reason: format!("{}: {reason}", path.display()),
        };
        let mut roots = rustls::RootCertStore::empty();
        for cert in
            rustls_pki_types::CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?
        {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
        }
        if roots.is_empty() {
            return Err(bad("no certificate in it".into()));
        }
        self.tls = rustls_tls(roots);
        Ok(self)
    }

    /// Calls at least this slow are counted as slow statements (default 1 s, the seed's).
    pub fn slow_threshold(mut self, d: Duration) -> Self {
        self.slow_threshold = d;
        self
    }

    /// How long to wait for the server when connecting (default 5 s).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.config.connect_timeout(d);
        self
    }

    /// Reads time from `clock` instead of the database's clock: for tests that move time by
    /// hand. In production leave it unset, so that every host's leases and expiries are
    /// judged by the one database clock.
    pub fn clock(mut self, clock: Arc<dyn oc_time::Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
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

/// Whether trying again may succeed.
pub(crate) fn retryable(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.code() {
        Some(code) => {
            *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::LOCK_NOT_AVAILABLE
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
                || *code == SqlState::READ_ONLY_SQL_TRANSACTION
                || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
                || code.code().starts_with("08")
        }
        // No SQLSTATE: a failure on the way. A refused TLS handshake (an untrusted or wrong
        // certificate: tokio-rustls reports it as invalid data) fails the same way again; a
        // lost or refused connection, a timeout may not.
        None => !invalid_data(e),
    }
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

/// A task-store error for a failed call.
pub(crate) fn task_error(f: Failure) -> oc_tasks::Error {
    let (message, retryable) = match f {
        Failure::Pg(e) => (describe(&e), retryable(&e)),
        Failure::Stopped => ("the client's runtime thread stopped".to_owned(), false),
    };
    oc_tasks::Error::Backend {
        backend: "postgres",
        message,
        retryable,
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

/// The statements a store prepares on each connection.
pub(crate) trait Prepare: Sized + Send + Sync + 'static {
    fn prepare(
        client: &Client,
        schema: &str,
    ) -> impl Future<Output = Result<Self, tokio_postgres::Error>> + Send;
}

/// One connection and its statements.
pub(crate) struct Conn<S> {
    pub(crate) client: Client,
    pub(crate) stmts: S,
}

struct Shared<S> {
    config: tokio_postgres::Config,
    tls: Tls,
    schema: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<Conn<S>>>>>,
    next: AtomicUsize,
    /// Connections lent to one transaction at a time.
    tx_slots: Vec<tokio::sync::Mutex<Option<Conn<S>>>>,
    tx_next: AtomicUsize,
}

/// What a [`Pool::transaction`] body returns: the database failed (`Err`), or it finished
/// with `Ok(Ok(x))` (committed) or `Ok(Err(e))` (rolled back).
pub(crate) type TxFuture<'a, X, E> =
    Pin<Box<dyn Future<Output = Result<Result<X, E>, tokio_postgres::Error>> + Send + 'a>>;

impl<S: Prepare> Shared<S> {
    /// A live connection, connecting (and preparing) when the slot is empty or its connection
    /// was lost.
    async fn conn(&self) -> Result<Arc<Conn<S>>, tokio_postgres::Error> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock().await;
        if let Some(c) = slot.as_ref()
            && !c.client.is_closed()
        {
            return Ok(c.clone());
        }
        let (client, _) = connect(&self.config, &self.tls, |_| {}).await?;
        let stmts = S::prepare(&client, &self.schema).await?;
        let c = Arc::new(Conn { client, stmts });
        *slot = Some(c.clone());
        Ok(c)
    }

    /// A connection no one else uses until the guard drops.
    async fn exclusive(
        &self,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Conn<S>>>, tokio_postgres::Error> {
        let i = self.tx_next.fetch_add(1, Ordering::Relaxed) % self.tx_slots.len();
        let mut slot = self.tx_slots[i].lock().await;
        if slot.as_ref().is_none_or(|c| c.client.is_closed()) {
            let (client, _) = connect(&self.config, &self.tls, |_| {}).await?;
            let stmts = S::prepare(&client, &self.schema).await?;
            *slot = Some(Conn { client, stmts });
        }
        Ok(slot)
    }
}

/// A runtime thread and a pool of connections whose statements are `S`.
pub(crate) struct Pool<S> {
    shared: Arc<Shared<S>>,
    handle: tokio::runtime::Handle,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl<S> std::fmt::Debug for Pool<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("connections", &self.shared.slots.len())
            .finish_non_exhaustive()
    }
}

impl<S: Prepare> Pool<S> {
    /// Starts the runtime thread; connections are made on first use.
    pub(crate) fn new(opts: &PgOptions, name: &str) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("oc-postgres-{name}"))
            .spawn(move || {
                rt.block_on(async {
                    let _ = stopped.await;
                });
            })?;
        Ok(Pool {
            shared: Arc::new(Shared {
                config: opts.config.clone(),
                tls: opts.tls.clone(),
                schema: opts.schema.clone(),
                slots: (0..opts.pool_size)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                next: AtomicUsize::new(0),
                tx_slots: (0..opts.pool_size)
                    .map(|_| tokio::sync::Mutex::new(None))
                    .collect(),
                tx_next: AtomicUsize::new(0),
            }),
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Runs `f` with a connection on the runtime thread and waits for its answer.
    pub(crate) fn call<T, F, Fut>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Conn<S>>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.shared.clone();
        self.handle.spawn(async move {
            let out = match shared.conn().await {
                Ok(c) => f(c).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(out);
        });
        match rx.recv() {
            Ok(out) => out.map_err(Failure::Pg),
            // The task was dropped before answering: the runtime is gone.
            Err(_) => Err(Failure::Stopped),
        }
    }
}

impl<S: Prepare + Send + Sync + 'static> Pool<S> {
    /// Runs `f` in a transaction (READ COMMITTED) on a connection lent to it alone, on the
    /// runtime thread: committed when `f` answers `Ok(Ok(_))`, rolled back otherwise.
    pub(crate) fn transaction<X, E, F>(&self, f: F) -> Result<Result<X, E>, Failure>
    where
        X: Send + 'static,
        E: Send + 'static,
        F: for<'a> FnOnce(&'a Transaction<'a>, &'a S) -> TxFuture<'a, X, E> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let shared = self.shared.clone();
        self.handle.spawn(async move {
            let out = async {
                let mut guard = shared.exclusive().await?;
                let Some(Conn { client, stmts }) = guard.as_mut() else {
                    unreachable!("exclusive() fills its slot");
                };
                let t = client.transaction().await?;
                let out = f(&t, stmts).await?;
                if out.is_ok() {
                    t.commit().await?;
                } else {
                    t.rollback().await?;
                }
                Ok(out)
            }
            .await;
            let _ = tx.send(out);
        });
        match rx.recv() {
            Ok(out) => out.map_err(Failure::Pg),
            Err(_) => Err(Failure::Stopped),
        }
    }
}

impl<S> Pool<S> {
    /// Runs `task` on the runtime thread, in the background.
    pub(crate) fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        self.handle.spawn(task);
    }

    /// Runs `f` on a connection of its own, made for it and closed after (for a transaction,
    /// such as the migrations), on the runtime thread.
    pub(crate) fn dedicated<T, F, Fut>(&self, f: F) -> Result<T, Failure>
    where
        T: Send + 'static,
        F: FnOnce(Client) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, tokio_postgres::Error>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let (config, tls) = (self.shared.config.clone(), self.shared.tls.clone());
        self.handle.spawn(async move {
            let out = match connect(&config, &tls, |_| {}).await {
                Ok((client, _)) => f(client).await,
                Err(e) => Err(e),
            };
            let _ = tx.send(out);
        });
        match rx.recv() {
            Ok(out) => out.map_err(Failure::Pg),
            Err(_) => Err(Failure::Stopped),
        }
    }
}

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

impl<S> Drop for Pool<S> {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// TLS with the web PKI's roots when built with `tls`; used only where the URL asks for it
/// (`sslmode=prefer`, the default, falls back to plain text when the server has no TLS).
fn default_tls() -> Tls {
    #[cfg(feature = "tls")]
    {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        rustls_tls(roots)
    }
    #[cfg(not(feature = "tls"))]
    Tls::Off
}

#[cfg(feature = "tls")]
fn rustls_tls(roots: rustls::RootCertStore) -> Tls {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    match config {
        Ok(c) => Tls::Rustls(tokio_postgres_rustls::MakeRustlsConnect::new(c)),
        // ring supports the default protocol versions; nothing else can fail here.
        Err(_) => Tls::Off,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
        let opts = PgOptions::new("postgresql://agent:hunter2@db.internal/work").unwrap();
        assert!(!format!("{opts:?}").contains("hunter2"));
        assert!(!opts.target().contains("hunter2"));
        assert_eq!(opts.target(), "db.internal:5432/work (schema oc)");
    }

    #[test]
    fn bad_urls_and_schemas_are_invalid_input() {
        for url in [
            "postgresql://[::1",
            "host=x port=notaport",
            "sslmode=sometimes",
        ] {
            let e = PgOptions::new(url).unwrap_err();
            assert!(e.is_invalid_input(), "{url}: {e}");
        }
        let opts = PgOptions::new("host=/tmp").unwrap();
        for schema in ["", "1abc", "a-b", "a;drop", &"x".repeat(64)] {
            let e = opts.clone().schema(schema).unwrap_err();
            assert!(e.is_invalid_input(), "{schema:?}: {e}");
        }
        assert_eq!(opts.schema("Team_A").unwrap().schema_name(), "team_a");
    }
}
