//! The requests and responses of the MCP endpoint as plain data, and the SSE framing of a
//! streamed body.

use oc_auth::Identity;
use serde_json::Value;

use crate::protocol::{RpcError, error_line};

/// An HTTP request to the MCP endpoint, as plain data.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// `POST`, `GET`, `DELETE`, or anything else (answered `405`).
    pub method: String,
    /// The headers, names in any case; the first of a name counts.
    pub headers: Vec<(String, String)>,
    /// The body (already bounded by the transport).
    pub body: Vec<u8>,
    /// Who is calling: a verified bearer token's identity, or the local process's.
    pub identity: Identity,
}

impl HttpRequest {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }

    pub(super) fn accepts(&self, kind: &str) -> bool {
        self.header("accept").is_some_and(|a| {
            a.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t.eq_ignore_ascii_case(kind) || t == "*/*"
            })
        })
    }
}

/// A response as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub(super) fn json(status: u16, body: String) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }

    pub(super) fn empty(status: u16) -> HttpResponse {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(super) fn error(status: u16, code: i64, message: impl Into<String>) -> HttpResponse {
        HttpResponse::json(
            status,
            error_line(&Value::Null, RpcError::new(code, message)),
        )
    }

    pub(super) fn header(mut self, name: &str, value: impl Into<String>) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(super) fn with_body(mut self, body: String) -> HttpResponse {
        self.body = body.into_bytes();
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }
}

/// The first value of header `name` (case-insensitive) among `headers`.
fn first_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

pub(super) fn sse_response() -> HttpResponse {
    HttpResponse {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/event-stream".into()),
            ("Cache-Control".into(), "no-cache".into()),
            ("X-Accel-Buffering".into(), "no".into()),
        ],
        body: Vec::new(),
    }
}

/// One SSE event: `data` is one line of compact JSON (or empty, for a priming event).
pub(super) fn sse_event(id: Option<&str>, data: &str) -> String {
    let mut e = String::new();
    if let Some(id) = id {
        e.push_str("id: ");
        e.push_str(id);
        e.push('\n');
    }
    if !data.is_empty() {
        e.push_str("event: message\n");
    }
    e.push_str("data: ");
    e.push_str(data);
    e.push_str("\n\n");
    e
}
