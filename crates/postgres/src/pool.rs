//! The synchronous face of `tokio-postgres`: a private runtime on its own thread and a small
//! pool of connections with their prepared statements.
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

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Transaction};

use crate::errors::Failure;
use crate::options::{PgOptions, Tls};

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
