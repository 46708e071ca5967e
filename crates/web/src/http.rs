//! Requests and responses as plain data, and the server that turns `tiny_http`'s into ours:
//! worker threads on one listening socket, each request checked by the [`Guard`] and then
//! answered by the [`Web`] app.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use crate::guard::Guard;
use crate::{Error, Result, Web};

/// The largest request body read; longer ones are refused (413).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An HTTP method we answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (and HEAD, answered as GET).
    Get,
    /// POST: every action.
    Post,
    /// Anything else (answered 405).
    Other,
}

/// A request as the app sees it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The query's pairs, decoded.
    pub query: Vec<(String, String)>,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body (a form's pairs for a POST).
    pub body: Vec<u8>,
}

impl Request {
    /// A request for `target` (a path with an optional query).
    pub fn new(method: Method, target: &str) -> Request {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        Request {
            method,
            path: path.to_owned(),
            query: form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers
            .push((name.to_ascii_lowercase(), value.to_owned()));
        self
    }

    /// Sets a form body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Request {
        self.body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
            .into_bytes();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of query parameter `name`, if not empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, v)| n == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    /// The body's form pairs.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// A response as the app makes it; the server adds the security headers.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The content type.
    pub content_type: &'static str,
    /// More headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with `status`, `content_type` and `body`.
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Plain text.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, "text/plain; charset=utf-8", body.into())
    }

    /// An HTML page.
    pub fn html(status: u16, page: maud::Markup) -> Response {
        Response::new(status, "text/html; charset=utf-8", page.into_string())
    }

    /// A redirect after a form post (303: the browser then GETs `to`).
    pub fn see_other(to: &str) -> Response {
        Response::text(303, format!("see {to}\n")).with("Location", to.to_owned())
    }

    /// Adds a header.
    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    /// The body as text (for tests).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Host names (besides loopback ones) that requests may name in `Host`.
    pub allowed_hosts: Vec<String>,
    /// A token every request must carry (Bearer, or the password of Basic auth).
    pub token: Option<String>,
    /// Worker threads.
    pub workers: usize,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            allowed_hosts: Vec::new(),
            token: None,
            workers: 4,
        }
    }
}

/// A running server; stops when dropped (or with [`ServerHandle::stop`]).
pub struct ServerHandle {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    threads: Vec<JoinHandle<()>>,
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

/// Serves `web` on `addr` from `opts.workers` threads. Refuses to listen beyond loopback
/// without a token; a taken port is a clear error naming the address. A read-only `web`
/// ([`Web::read_only`]) gets every POST refused here, before it is read.
pub fn serve(addr: SocketAddr, web: Arc<Web>, opts: ServeOptions) -> Result<ServerHandle> {
    if !addr.ip().is_loopback() && opts.token.is_none() {
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
    Ok(ServerHandle {
        addr: bound,
        server,
        threads,
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
        .chain(
            crate::guard::SECURITY_HEADERS
                .iter()
                .map(|(n, v)| (*n, (*v).to_owned())),
        );
    for (name, value) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp = resp.with_header(h);
        }
    }
    // A client that went away is its own problem.
    let _ = req.respond(resp);
}
