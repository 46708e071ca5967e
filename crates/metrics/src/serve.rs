//! A small HTTP server for `/metrics` and friends, on `tiny_http` (no async runtime).

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::{Error, Result};

/// What a route answers: status, content type, body.
pub type Reply = (u16, &'static str, String);

/// Answers a request path (`/metrics`, `/healthz`...).
pub type App = dyn Fn(&str) -> Reply + Send + Sync;

/// The Prometheus text exposition content type.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A running server; stops when dropped (or with [`ServerHandle::stop`]).
pub struct ServerHandle {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
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

    /// Stops accepting requests and waits for the server thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Blocks until the server stops (for a foreground `oc serve`).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serves `app` on `addr` (loopback by default in the CLI) from one named thread.
///
/// A taken port is a clear error naming the address.
///
/// ```
/// use std::io::{Read, Write};
/// let server = oc_metrics::serve("127.0.0.1:0".parse()?, std::sync::Arc::new(|path: &str| {
///     (200, "text/plain", format!("you asked for {path}"))
/// }))?;
/// let mut s = std::net::TcpStream::connect(server.addr())?;
/// s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n")?;
/// let mut reply = String::new();
/// s.read_to_string(&mut reply)?;
/// assert!(reply.starts_with("HTTP/1.0 200") && reply.ends_with("you asked for /healthz"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve(addr: SocketAddr, app: Arc<App>) -> Result<ServerHandle> {
    let server = tiny_http::Server::http(addr)
        .map_err(|e| Error::Serve(format!("cannot listen on {addr}: {e}")))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| Error::Serve(format!("{addr} is not an IP address")))?;
    let server = Arc::new(server);
    let s = server.clone();
    let thread = std::thread::Builder::new()
        .name("oc-metrics-http".into())
        .spawn(move || {
            for req in s.incoming_requests() {
                let path = req.url().split('?').next().unwrap_or("/").to_owned();
                let (status, content_type, body) = if *req.method() == tiny_http::Method::Get {
                    app(&path)
                } else {
                    (405, "text/plain", "only GET\n".to_owned())
                };
                let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
                if let Ok(h) =
                    tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes())
                {
                    resp = resp.with_header(h);
                }
                // A client that went away is its own problem.
                let _ = req.respond(resp);
            }
        })
        .map_err(|e| Error::Serve(format!("cannot start the server thread: {e}")))?;
    Ok(ServerHandle {
        addr: bound,
        server,
        thread: Some(thread),
    })
}
