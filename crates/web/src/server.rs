//! The server: hyper's HTTP/1.1 on a small tokio runtime of its own, every client bounded
//! ([`Limits`]) before the guard sees its request, the synchronous app run on the runtime's
//! blocking threads behind a semaphore, and every answer sent with the security headers.
//!
//! One request goes through [`answer`]: a declared body over [`MAX_BODY_BYTES`] is refused at
//! once, the guard checks the headers, the body is read (bounded in size and time), a thread
//! of the app is waited for (bounded in number and time), and [`Web::respond`] answers.
//! MCP over Streamable HTTP (`/mcp`, when [`ServeOptions::mcp`] is set) goes through the same
//! bounds, then `mcp` (in `server/mcp.rs`): the `Host` and `Origin` checks, the bearer token (refused with the
//! status and challenge [`McpOptions::challenge`] gives), and
//! [`oc_mcp::HttpSessions`] on a thread of the app; a call that waits runs on a thread of its
//! own (at most [`McpOptions::max_streams`] at once) and streams its answer, and stops, taking
//! nothing, when its client goes away. [`McpOptions::metadata`], when set, is answered by
//! `mcp::well_known` with no token, after the same bounds and `Host` check.
//! With [`ServeOptions::tenants`], the tenant of a request's verified bearer chooses the app
//! (pages, `/api`, `/metrics`) and the MCP endpoint that answer it ([`tenant_app`]).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::Duration;

use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

mod mcp;
mod respond;

use self::respond::{
    Conn, Conns, Out, Shared, Unread, check_bearer, drain, probe_worker, read, tenant_app,
    to_hyper, too_large, worker,
};

use crate::guard::Guard;
use crate::http::{Method, Request, Response, ServeOptions};
use crate::limits::MAX_BODY_BYTES;
use crate::{Error, Result, Tenants, Web};

/// How often the server samples the throughput chart's counters.
const SAMPLE_EVERY: Duration = Duration::from_secs(15);

/// Descriptors left for everything but connections (the database, logs, the listener).
const RESERVED_DESCRIPTORS: u64 = 32;

/// How long the accept loop rests when the process is out of descriptors or memory.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long stopping waits for answers under way.
const STOP_WITHIN: Duration = Duration::from_secs(1);

/// A running server; stops when dropped (or with [`ServerHandle::stop`]).
pub struct ServerHandle {
    addr: SocketAddr,
    /// Set to stop the accept loop (and, with it, the runtime and every connection).
    stopping: Option<watch::Sender<bool>>,
    /// The thread that runs the runtime, then the sampler.
    threads: Vec<JoinHandle<()>>,
    /// Dropped to stop the sampler.
    sampling: Option<std::sync::mpsc::Sender<()>>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The address it listens on (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, closes every connection (answers under way get a second to finish)
    /// and waits for the server's threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.sampling = None;
        if let Some(stopping) = self.stopping.take() {
            let _ = stopping.send(true);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// Blocks until the server stops (for a foreground `oc serve`).
    pub fn wait(mut self) {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Samples the throughput chart's counters of `web` every `every`, whether or not anyone
/// watches, until the returned sender is dropped.
fn start_sampler(
    web: Arc<Web>,
    tenants: Option<Arc<Tenants>>,
    every: Duration,
) -> Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>)> {
    let (sampling, stop) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::Builder::new()
        .name("oc-web-sampler".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                // A failed reading shows on the page; the next tick tries again.
                let _ = web.sample();
                for app in tenants.iter().flat_map(|t| t.apps()) {
                    let _ = app.sample();
                }
            }
        })
        .map_err(|e| Error::Serve(format!("cannot start the sampler thread: {e}")))?;
    Ok((sampling, sampler))
}

/// Serves `web` on `addr`: HTTP/1.1, `opts.workers` requests answered at once, every client
/// bounded by `opts.limits`. Refuses to listen beyond loopback without a token; a taken port
/// is a clear error naming the address. A read-only `web` ([`Web::read_only`]) gets every POST
/// refused here, before its body is read.
pub fn serve(addr: SocketAddr, web: Arc<Web>, opts: ServeOptions) -> Result<ServerHandle> {
    // An empty token is no token: the guard would let everyone in.
    if !addr.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::Serve(format!(
            "{addr} is reachable from other machines: set a token (--token-file or OC_SERVE_TOKEN) to serve there"
        )));
    }
    let workers = opts.workers.max(1);
    raise_descriptor_limit();
    let mut limits = opts.limits.clone();
    limits.max_connections = connection_cap(limits.max_connections);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8 * 1024))
        .max_header_size(limits.max_header_bytes)
        .max_headers(limits.max_headers)
        // Header names as they were always sent (`Content-Type`), for whoever greps them.
        .title_case_headers(true)
        .half_close(false)
        .keep_alive(true);
    let shared = Arc::new(Shared {
        guard: Guard::new(&opts, web.is_read_only()),
        web: Arc::clone(&web),
        http,
        workers: Arc::new(Semaphore::new(workers)),
        queued: AtomicUsize::new(0),
        probe: Arc::new(Semaphore::new(1)),
        open: parking_lot::Mutex::new(Conns::default()),
        limits,
        streams: Arc::new(Semaphore::new(
            opts.mcp.as_ref().map_or(1, |m| m.max_streams.max(1)),
        )),
        streams_by: Arc::default(),
        mcp: opts.mcp.clone(),
        tenants: opts.tenants.clone(),
        checks: Arc::new(Semaphore::new(workers)),
    });
    let (stopping, stop) = watch::channel(false);
    // The runtime is built, used and dropped on the server's own thread only, so that `serve`
    // may be called from anywhere, a thread driving the caller's tokio runtime included.
    let (listening, listened) = std::sync::mpsc::channel::<Result<SocketAddr>>();
    let server = std::thread::Builder::new()
        .name("oc-web-accept".into())
        .spawn(move || {
            let Some((runtime, listener)) = listen(addr, workers, &listening) else {
                return;
            };
            runtime.block_on(accept(listener, shared, stop));
            runtime.shutdown_timeout(STOP_WITHIN);
        })
        .map_err(|e| Error::Serve(format!("cannot start the server thread: {e}")))?;
    let bound = listened.recv().unwrap_or_else(|_| {
        Err(Error::Serve(
            "the server thread ended before listening".into(),
        ))
    });
    let bound = match bound {
        Ok(bound) => bound,
        Err(e) => {
            let _ = server.join();
            return Err(e);
        }
    };
    let mut handle = ServerHandle {
        addr: bound,
        stopping: Some(stopping),
        threads: vec![server],
        sampling: None,
    };
    // On an error the handle, dropped, stops the server.
    let (sampling, sampler) = start_sampler(web, opts.tenants.clone(), SAMPLE_EVERY)?;
    handle.threads.push(sampler);
    handle.sampling = Some(sampling);
    Ok(handle)
}

/// Builds the server's runtime and listens on `addr`, telling `listening` the address bound
/// (or why not).
fn listen(
    addr: SocketAddr,
    workers: usize,
    listening: &std::sync::mpsc::Sender<Result<SocketAddr>>,
) -> Option<(tokio::runtime::Runtime, TcpListener)> {
    let started = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // The app's workers, as many bearer checks, and the thread reserved for `/healthz`.
        .max_blocking_threads(2 * workers + 1)
        .thread_name("oc-web")
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| Error::Serve(format!("cannot start the server's runtime: {e}")))
        .and_then(|runtime| {
            // Listening through tokio: a backlog of 1,024, where clients beyond the
            // connection cap wait.
            let listener = runtime
                .block_on(TcpListener::bind(addr))
                .map_err(|e| Error::Serve(format!("cannot listen on {addr}: {e}")))?;
            let bound = listener
                .local_addr()
                .map_err(|e| Error::Serve(format!("cannot read the address of {addr}: {e}")))?;
            Ok((runtime, listener, bound))
        });
    match started {
        Ok((runtime, listener, bound)) => {
            let _ = listening.send(Ok(bound));
            Some((runtime, listener))
        }
        Err(e) => {
            let _ = listening.send(Err(e));
            None
        }
    }
}

/// Raises the soft limit on open descriptors to the hard one, so that the connection cap is
/// what the system allows rather than a shell's default soft 1,024 (best effort: left as it
/// is if refused).
fn raise_descriptor_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if let (Some(soft), Some(hard)) = (limit.current, limit.maximum)
            && soft < hard
        {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(hard),
                    maximum: Some(hard),
                },
            );
        }
    }
}

/// `wanted` connections at most, and no more than the process's descriptors allow.
fn connection_cap(wanted: usize) -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        if let Some(n) = limit.current {
            let room = n.saturating_sub(RESERVED_DESCRIPTORS).max(1);
            return wanted
                .min(usize::try_from(room).unwrap_or(usize::MAX))
                .max(1);
        }
    }
    wanted.max(1)
}

/// Whether an accept error means the process is out of something (descriptors, memory), so
/// that trying again at once would only spin.
fn exhausted(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        use rustix::io::Errno;
        let errno = Errno::from_io_error(e);
        errno
            .is_some_and(|n| [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&n))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        true
    }
}

/// Accepts connections until told to stop, never more than `max_connections` open at once:
/// beyond that, clients wait in the listening socket's queue. No error ends it.
async fn accept(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let open = Arc::new(Semaphore::new(shared.limits.max_connections));
    loop {
        let accepted = tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                // At the cap, the oldest connection with nothing being answered makes room
                // (idle ones, and those still sending headers): a fresh client is served
                // however many idle connections someone holds. Else it waits for one to close.
                let permit = match Arc::clone(&open).try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => {
                        shared.evict();
                        tokio::select! {
                            _ = stop.changed() => return,
                            permit = Arc::clone(&open).acquire_owned() => match permit {
                                Ok(p) => p,
                                Err(_) => return,
                            },
                        }
                    }
                };
                // Small answers go out at once rather than after the peer's delayed ack.
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, peer, Arc::clone(&shared), permit));
            }
            Err(e) => {
                // A connection reset before it was accepted costs nothing; running out of
                // descriptors or memory passes as connections close: rest a moment.
                let rest = if exhausted(&e) {
                    ACCEPT_BACKOFF
                } else {
                    Duration::from_millis(1)
                };
                tokio::select! {
                    _ = stop.changed() => return,
                    () = tokio::time::sleep(rest) => {}
                }
            }
        }
    }
}

/// Serves one connection; its permit is released when it closes (or when it is evicted, see
/// [`Shared::evict`]).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let busy = Arc::new(AtomicUsize::new(0));
    let close = Arc::new(tokio::sync::Notify::new());
    let id = {
        let mut open = shared.open.lock();
        let id = open.next;
        open.next += 1;
        open.all.insert(
            id,
            Conn {
                busy: Arc::clone(&busy),
                close: Arc::clone(&close),
            },
        );
        id
    };
    struct Registered<'a>(&'a Shared, u64);
    impl Drop for Registered<'_> {
        fn drop(&mut self) {
            self.0.open.lock().all.remove(&self.1);
        }
    }
    let _registered = Registered(&shared, id);
    let io = TokioIo::new(TimedWrites::new(stream, shared.limits.write_timeout));
    let service = {
        let shared = Arc::clone(&shared);
        hyper::service::service_fn(move |req| {
            let shared = Arc::clone(&shared);
            let busy = Arc::clone(&busy);
            async move {
                struct Busy(Arc<AtomicUsize>);
                impl Drop for Busy {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::Relaxed);
                    }
                }
                busy.fetch_add(1, Ordering::Relaxed);
                let _busy = Busy(Arc::clone(&busy));
                Ok::<_, Infallible>(answer(req, peer, &shared, &busy).await)
            }
        })
    };
    // Whatever ends a connection (a client gone, a timeout, a malformed request hyper has
    // already answered, an eviction) is the client's own business.
    tokio::select! {
        _ = shared.http.serve_connection(io, service) => {}
        () = close.notified() => {}
    }
}

/// Answers one request, bounding everything before the guard and the app see it.
async fn answer(
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    busy: &Arc<AtomicUsize>,
) -> Out {
    let req_method = req.method().as_str().to_owned();
    let method = match *req.method() {
        hyper::Method::GET | hyper::Method::HEAD => Method::Get,
        hyper::Method::POST => Method::Post,
        _ => Method::Other,
    };
    let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut ours = Request::new(method, target);
    ours.peer = Some(peer);
    ours.headers = req
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = req.into_body();
    // A declared length over the limit is refused before anything is read or allocated.
    if body.size_hint().lower() > MAX_BODY_BYTES as u64 {
        drain(body);
        return to_hyper(too_large());
    }
    if let Some(endpoint) = &shared.mcp
        && let Some(doc) = &endpoint.metadata
        && doc.paths.contains(&ours.path)
    {
        drain(body);
        return to_hyper(mcp::well_known(&ours, shared, doc));
    }
    if ours.path == "/mcp"
        && let Some(endpoint) = &shared.mcp
    {
        return mcp::answer(req_method, ours, body, shared, endpoint, busy).await;
    }
    ours.verified = check_bearer(&ours, shared.guard.verifier(), shared).await;
    if let Some(refused) = shared.guard.check(&ours) {
        drain(body);
        return to_hyper(refused);
    }
    // The tenant of the request's verified bearer chooses the app; nothing else does.
    let tenant = shared.guard.tenant(&ours);
    ours.body = match tokio::time::timeout(shared.limits.body_timeout, read(&mut body)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(Unread::TooLarge)) => {
            drain(body);
            return to_hyper(too_large());
        }
        Ok(Err(Unread::Broken)) => {
            return to_hyper(Response::text(400, "the request body could not be read\n"));
        }
        // Dropping the body unread closes the connection after this answer.
        Err(_) => {
            return to_hyper(Response::text(
                408,
                "the request body did not arrive in time\n",
            ));
        }
    };
    let permit = if ours.path == "/healthz" {
        probe_worker(shared).await
    } else {
        worker(shared).await
    };
    let Some(permit) = permit else {
        return to_hyper(
            Response::text(503, "the server is busy: try again in a moment\n")
                .with("Retry-After", "1".into()),
        );
    };
    let web = Arc::clone(&shared.web);
    let tenants = shared.tenants.clone();
    let answered = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match tenant {
            None => web.respond(&ours),
            Some(t) => match tenant_app(tenants.as_deref(), &t) {
                Ok(app) => app.web.respond(&ours),
                Err(refused) => refused,
            },
        }
    })
    .await;
    to_hyper(
        answered.unwrap_or_else(|_| Response::text(500, "the request could not be answered\n")),
    )
}

/// A connection whose writes fail once one has been blocked for `limit` (a client that does
/// not read its answers); reads are bounded by hyper's header timeout and the body timeout.
struct TimedWrites {
    stream: TcpStream,
    limit: Duration,
    /// When the blocked write gives up; set while a write is blocked.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl TimedWrites {
    fn new(stream: TcpStream, limit: Duration) -> TimedWrites {
        TimedWrites {
            stream,
            limit,
            deadline: None,
        }
    }

    /// Passes on a ready write and forgets the deadline; arms it on a blocked one, and fails
    /// once it has passed.
    fn timed<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.deadline = None;
            return polled;
        }
        let limit = self.limit;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not read its answer in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for TimedWrites {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TimedWrites {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.timed(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.timed(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_flush(cx);
        self.timed(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.timed(cx, polled)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use oc_hooks::{Hooks, TaskLifecycle};
    use oc_locks::MemoryLockManager;
    use oc_tasks::{MemoryTaskStore, NewTask, TaskStore};

    use super::*;

    /// The sampler fills the chart while no page is open, and stops when told.
    #[test]
    fn the_sampler_samples_while_nobody_watches() {
        let store = Arc::new(MemoryTaskStore::new());
        let web = Arc::new(Web::new(
            TaskLifecycle::new(store.clone(), Arc::new(Hooks::new())),
            Arc::new(MemoryLockManager::new()),
        ));
        let (stop, sampler) =
            start_sampler(Arc::clone(&web), None, Duration::from_millis(10)).unwrap();
        let samples = || web.samples.lock().len();
        let until = |what: &dyn Fn() -> bool| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !what() {
                assert!(Instant::now() < deadline, "the sampler took no sample");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        until(&|| samples() >= 1);
        store.create(NewTask::new("x")).unwrap();
        store.claim_next("a", Duration::from_secs(60)).unwrap();
        // A new sample once the shared reading is a second old: it saw the claim.
        until(&|| samples() >= 2);
        drop(stop);
        sampler.join().unwrap();
        let taken = samples();
        let page = web
            .respond(&crate::Request::new(crate::Method::Get, "/"))
            .body_text();
        assert!(
            page.contains("<td>1</td>"),
            "the claim counted in its minute: {page}"
        );
        assert!(samples() <= taken + 1, "stopped");
    }

    /// Accept errors that mean "out of something" are told from the rest.
    #[test]
    fn running_out_of_descriptors_is_exhaustion() {
        assert!(exhausted(&io::Error::from_raw_os_error(24)), "EMFILE");
        assert!(exhausted(&io::Error::from_raw_os_error(23)), "ENFILE");
        assert!(!exhausted(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }
}
