//! Requests and responses as plain data, so the app and the guard are tested without a
//! socket; `server` turns hyper's into these.

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
    /// What the server's verifier made of the request's bearer, checked once and off the
    /// server's async threads before the guard sees the request; `None`: not checked yet (the
    /// guard checks it itself).
    pub(crate) verified: Option<std::result::Result<oc_auth::Identity, oc_auth::AuthError>>,
    /// The address the request came from, when the server knows it (for
    /// [`ServeOptions::metrics_open`], which opens `/metrics` to loopback clients only).
    pub(crate) peer: Option<std::net::SocketAddr>,
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
            verified: None,
            peer: None,
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
        param(&self.query, name)
    }

    /// The body's form pairs.
    pub fn form_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }
}

/// The first non-empty value of `name` among `pairs` (a query's or a form's).
pub(crate) fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(n, v)| n == name && !v.is_empty())
        .map(|(_, v)| v.as_str())
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

/// Who may act on the pages (every POST: retry, cancel, release locks, bulk actions, alert
/// silences), once the request has passed the `Host`, same-origin and read-only checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Actions {
    /// Anyone who can reach the server (`oc serve --no-auth`): on loopback, any local process.
    Open,
    /// A session of the pages' login ([`ServeOptions::sessions`]), or an `admin` bearer: the
    /// server's `token`, or one the `verifier` accepts, of the default tenant (or of any
    /// tenant, acting on that tenant's app, with [`ServeOptions::tenants`]). Nothing else, on
    /// loopback too.
    #[default]
    Admin,
}

/// How the server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Host names (besides loopback ones) that requests may name in `Host`.
    pub allowed_hosts: Vec<String>,
    /// A token every request must carry (Bearer, or the password of Basic auth), or a session
    /// instead; it may act, as an `admin` bearer. Required beyond loopback.
    pub token: Option<String>,
    /// Who may act. The default, [`Actions::Admin`], asks for a session or an admin bearer.
    pub actions: Actions,
    /// The pages' login: the one-time login token and the sessions it opens (`None`: no
    /// login, only bearers act).
    pub sessions: Option<std::sync::Arc<crate::Sessions>>,
    /// Bearer tokens besides `token`, and the identities they stand for (`oc token create`'s
    /// store, OAuth access tokens).
    pub verifier: Option<std::sync::Arc<dyn oc_auth::Verifier>>,
    /// Requests the app answers at once (its threads); more wait, within `limits`.
    pub workers: usize,
    /// The bounds on what clients may hold, applied before the guard.
    pub limits: crate::Limits,
    /// MCP over Streamable HTTP at `/mcp`, when set.
    pub mcp: Option<McpOptions>,
    /// Whether `/metrics` (the default tenant's) is answered without a credential to clients
    /// on loopback addresses (`oc serve --metrics-open`, for a local Prometheus). Otherwise,
    /// once actions need a login or a `token` is set, every read (pages, `/api`, `/metrics`)
    /// needs a credential: a session, the `token`, or a bearer the `verifier` accepts, of any
    /// scope. `/healthz` stays open unless a `token` is set.
    pub metrics_open: bool,
    /// Tenants' apps, when set: a request whose bearer the `verifier` (or `/mcp`'s) turns into
    /// an identity of tenant T is served by T's app and MCP endpoint only; the app given to
    /// `serve` and `mcp` serve the default tenant (requests without a credential, sessions of
    /// the login, the `token`). Unset, a bearer of another tenant may not act on the pages and
    /// is refused by `/mcp` (`403`).
    pub tenants: Option<std::sync::Arc<crate::Tenants>>,
}

/// Open SSE streams (waiting MCP calls) at once, by default.
pub const MAX_STREAMS: usize = 64;

/// Open SSE streams of one identity (its tenant and agent) at once, by default: one token
/// cannot take every stream.
pub const MAX_STREAMS_PER_IDENTITY: usize = 8;

/// What `/mcp` answers a refused credential with: the status (`401`, or `403` for a scope
/// that is not enough) and the `WWW-Authenticate` value. A store that failed
/// ([`oc_auth::AuthError::Backend`]) is a `503` whatever this says.
pub type Challenge = std::sync::Arc<dyn Fn(&oc_auth::AuthError) -> (u16, String) + Send + Sync>;

/// A document served without a token at fixed paths next to `/mcp`: the OAuth
/// protected-resource metadata (RFC 9728), which a client reads after a `401` to find the
/// authorization server. It passes the server's limits and `Host` check as every route does.
#[derive(Clone, Debug)]
pub struct WellKnown {
    /// The paths it is served at (`/.well-known/oauth-protected-resource` and the
    /// path-suffixed form RFC 9728 section 3.1 derives for a resource with a path).
    pub paths: Vec<String>,
    /// The JSON document.
    pub json: String,
}

/// MCP over Streamable HTTP at `/mcp` ([`ServeOptions::mcp`]).
#[derive(Clone)]
pub struct McpOptions {
    /// The endpoint: the shared toolbox and the sessions.
    pub sessions: std::sync::Arc<oc_mcp::HttpSessions>,
    /// Turns `Authorization: Bearer …` into an identity; `None` serves every request as the
    /// local process ([`oc_auth::Identity::local`]: `--no-auth`), behind the pages' token when
    /// one is set.
    pub verifier: Option<std::sync::Arc<dyn oc_auth::Verifier>>,
    /// Open SSE streams at once ([`MAX_STREAMS`]); past it a waiting call is answered `503`.
    pub max_streams: usize,
    /// Open SSE streams of one identity (tenant and agent) at once
    /// ([`MAX_STREAMS_PER_IDENTITY`]); past it a waiting call of that identity is answered
    /// `429`, while other identities are still served.
    pub max_streams_per_identity: usize,
    /// The status and `WWW-Authenticate` value of a refusal (`401` with [`bearer_challenge`]
    /// by default). The hook where the OAuth resource server's challenges (`resource_metadata=…`,
    /// `403 insufficient_scope`) are swapped in.
    pub challenge: Challenge,
    /// The protected-resource metadata, served with no token (`None`: no such route, a 404).
    pub metadata: Option<WellKnown>,
}

impl McpOptions {
    /// `/mcp` over `sessions`, with `verifier`, the default stream cap and challenge.
    pub fn new(
        sessions: std::sync::Arc<oc_mcp::HttpSessions>,
        verifier: Option<std::sync::Arc<dyn oc_auth::Verifier>>,
    ) -> McpOptions {
        McpOptions {
            sessions,
            verifier,
            max_streams: MAX_STREAMS,
            max_streams_per_identity: MAX_STREAMS_PER_IDENTITY,
            challenge: std::sync::Arc::new(|e| (401, bearer_challenge(e))),
            metadata: None,
        }
    }
}

impl std::fmt::Debug for McpOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpOptions")
            .field("verifier", &self.verifier.is_some())
            .field("max_streams", &self.max_streams)
            .field("max_streams_per_identity", &self.max_streams_per_identity)
            .field("metadata", &self.metadata.as_ref().map(|m| &m.paths))
            .finish_non_exhaustive()
    }
}

/// The default `WWW-Authenticate` of a refusal from `/mcp` (RFC 6750): `Bearer`, with
/// `error="invalid_token"` when a token was sent and refused, `error="insufficient_scope"`
/// and the scope needed when its scope is not enough. The reason a token was refused is never
/// told (it is for logs).
pub fn bearer_challenge(e: &oc_auth::AuthError) -> String {
    match e {
        oc_auth::AuthError::Missing => "Bearer realm=\"oc\"".into(),
        oc_auth::AuthError::Forbidden { needed, .. } => {
            format!("Bearer realm=\"oc\", error=\"insufficient_scope\", scope=\"{needed}\"")
        }
        _ => "Bearer realm=\"oc\", error=\"invalid_token\"".into(),
    }
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            allowed_hosts: Vec::new(),
            token: None,
            actions: Actions::Admin,
            sessions: None,
            verifier: None,
            workers: 4,
            limits: crate::Limits::default(),
            mcp: None,
            tenants: None,
            metrics_open: false,
        }
    }
}
