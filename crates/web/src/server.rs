//! The server: worker threads on one listening socket, each request read (its body up to a
//! limit), checked by the guard, answered by the [`Web`] app, and sent with the security
//! headers.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::guard::{Guard, SECURITY_HEADERS};
use crate::http::{Method, Request, Response, ServeOptions};
use crate::{Error, Result, Web};

/// How often the server samples the throughput chart's counters.
const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(15);

/// The largest request body read; longer ones are refused (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A running server; stops when dropped (or with [`ServerHandle::stop`]).
pub struct ServerHandle {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
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

    /// Stops accepting requests and waits for the workers.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.sampling = None;
        for _ in &self.threads {
            self.server.unblock();
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
    every: std::time::Duration,
) -> Result<(std::sync::mpsc::Sender<()>, JoinHandle<()>)> {
    let (sampling, stop) = std::sync::mpsc::channel::<()>();
    let sampler = std::thread::Builder::new()
        .name("oc-web-sampler".into())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
                // A failed reading shows on the page; the next tick tries again.
                let _ = web.sample();
            }
        })
        .map_err(|e| Error::Serve(format!("cannot start the sampler thread: {e}")))?;
    Ok((sampling, sampler))
}

/// Serves `web` on `addr` from `opts.workers` threads. Refuses to listen beyond loopback
/// without a token; a taken port is a clear error naming the address. A read-only `web`
/// ([`Web::read_only`]) gets every POST refused here, before it is read.
pub fn serve(addr: SocketAddr, web: Arc<Web>, opts: ServeOptions) -> Result<ServerHandle> {
    // An empty token is no token: the guard would let everyone in.
    if !addr.ip().is_loopback() && opts.token.as_deref().is_none_or(str::is_empty) {
        return Err(Error::Serve(format!(
            "{addr} is reachable from other machines: set a token (--token-file or OC_SERVE_TOKEN) to serve there"
        )));
    }
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Error::Serve(format!("cannot listen on {addr}: {e}")))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Serve(format!("{addr} is not an IP address")))?;
    let server = Arc::new(server);
    let guard = Arc::new(Guard::new(&opts, web.is_read_only()));
    let mut threads = Vec::new();
    for n in 0..opts.workers.max(1) {
        let (server, web, guard) = (Arc::clone(&server), Arc::clone(&web), Arc::clone(&guard));
        let t = std::thread::Builder::new()
            .name(format!("oc-web-{n}"))
            .spawn(move || {
                while let Ok(req) = server.recv() {
                    answer(req, &web, &guard);
                }
            })
            .map_err(|e| Error::Serve(format!("cannot start a server thread: {e}")))?;
        threads.push(t);
    }
    let (sampling, sampler) = start_sampler(web, SAMPLE_EVERY)?;
    threads.push(sampler);
    Ok(ServerHandle {
        addr: bound,
        server,
        threads,
        sampling: Some(sampling),
    })
}

/// Reads one request (its body up to the limit), answers it, and writes the answer.
fn answer(mut req: tiny_http::Request, web: &Web, guard: &Guard) {
    let method = match req.method() {
        tiny_http::Method::Get | tiny_http::Method::Head => Method::Get,
        tiny_http::Method::Post => Method::Post,
        _ => Method::Other,
    };
    let mut ours = Request::new(method, req.url());
    ours.headers = req
        .headers()
        .iter()
        .map(|h| {
            (
                h.field.as_str().as_str().to_ascii_lowercase(),
                h.value.as_str().to_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let read = req
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body);
    let response = if read.is_err() {
        Response::text(400, "the request body could not be read\n")
    } else if body.len() > MAX_BODY_BYTES {
        Response::text(
            413,
            format!("request bodies are limited to {MAX_BODY_BYTES} bytes\n"),
        )
    } else {
        ours.body = body;
        guard.check(&ours).unwrap_or_else(|| web.respond(&ours))
    };
    let mut resp = tiny_http::Response::from_data(response.body).with_status_code(response.status);
    let headers = std::iter::once(("Content-Type", response.content_type.to_owned()))
        .chain(response.headers)
        .chain(SECURITY_HEADERS.iter().map(|(n, v)| (*n, (*v).to_owned())));
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp = resp.with_header(h);
        }
    }
    // A client that went away is its own problem.
    let _ = req.respond(resp);
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

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
        let (stop, sampler) = start_sampler(Arc::clone(&web), Duration::from_millis(10)).unwrap();
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
}
