//! What every request passes before the app sees it: the `Host` allow-list (against DNS
//! rebinding), the token, the cross-origin check on every state-changing request, the
//! read-only switch, and who may act: a session of the pages' login or an `admin` bearer
//! ([`Actions`]). The guard answers the login's own routes (`GET /login?token=…`,
//! `POST /logout`, `POST /login/new`) itself. The security headers every response carries
//! are here too.

use std::sync::Arc;

use oc_auth::{AuthError, Identity, Scope, Verifier};

use crate::http::{Actions, Method, Request, Response, ServeOptions};
use crate::pages::login;
use crate::session::{LoginError, Sessions, constant_time_eq};

/// Headers on every response: a strict Content-Security-Policy with no inline script or style
/// (the pages load `/static/app.js` and `/static/app.css` only), no sniffing, no referrer (a
/// login URL is never sent on), no framing, no caching of pages that show live state.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cache-Control", "no-store"),
];

/// The checks, configured once.
#[derive(Debug)]
pub(crate) struct Guard {
    allowed_hosts: Vec<String>,
    token: Option<String>,
    read_only: bool,
    actions: Actions,
    sessions: Option<Arc<Sessions>>,
    verifier: Option<Arc<dyn Verifier>>,
    /// Whether tenants' apps are served ([`ServeOptions::tenants`]): a bearer of a tenant then
    /// reads and acts on its own tenant's app.
    tenants: bool,
    /// Whether loopback clients read `/metrics` without a credential
    /// ([`ServeOptions::metrics_open`]).
    metrics_open: bool,
}

/// What a request's credentials stand for, as far as acting goes.
enum Acting {
    /// May act: a session, the server's token, or an `admin` bearer of the default tenant.
    Yes,
    /// Presented nothing usable (or a cookie of a session that has ended): 401.
    Unknown(&'static str),
    /// A credential that may not act here: 403.
    No(String),
}

impl Guard {
    /// The token every request must carry, if any.
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether the server refuses every change.
    pub(crate) fn read_only(&self) -> bool {
        self.read_only
    }

    pub(crate) fn new(opts: &ServeOptions, read_only: bool) -> Guard {
        Guard {
            allowed_hosts: opts
                .allowed_hosts
                .iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            token: opts.token.clone().filter(|t| !t.is_empty()),
            read_only,
            actions: opts.actions,
            sessions: opts.sessions.clone(),
            verifier: opts.verifier.clone(),
            tenants: opts.tenants.is_some(),
            metrics_open: opts.metrics_open,
        }
    }

    /// The tenant whose app answers `req`: its bearer's, when tenants are served and the
    /// verifier accepts it; else the default (`None`). Only a verified bearer names a tenant.
    pub(crate) fn tenant(&self, req: &Request) -> Option<oc_auth::Tenant> {
        if !self.tenants {
            return None;
        }
        self.verified(req)?.ok()?.tenant
    }

    /// The verifier of bearers, if any.
    pub(crate) fn verifier(&self) -> Option<&Arc<dyn Verifier>> {
        self.verifier.as_ref()
    }

    /// What the verifier makes of `req`'s bearer: the server's check, done once before the
    /// guard ([`Request::verified`]), else checked now; `None` without a bearer or a verifier.
    fn verified(&self, req: &Request) -> Option<Result<Identity, AuthError>> {
        if let Some(done) = &req.verified {
            return Some(done.clone());
        }
        let (b, v) = bearer(req).zip(self.verifier.as_ref())?;
        Some(v.verify(b))
    }

    /// The guard's answer to `req`: a refusal, or the login's own routes; `None` lets the app
    /// answer.
    pub(crate) fn check(&self, req: &Request) -> Option<Response> {
        if let Some(host) = req.header_value("host")
            && !self.host_allowed(host)
        {
            return Some(Response::text(
                403,
                format!(
                    "the host {:?} is not served here (start oc serve with --allowed-host to add it)\n",
                    host.escape_debug().to_string()
                ),
            ));
        }
        // The login URL is a credential of its own, so it passes without the token; the
        // stylesheet its page loads holds nothing secret.
        match (req.method, req.path.as_str()) {
            (Method::Get, "/login") => return Some(self.login(req)),
            (Method::Post, "/logout") => return Some(self.logout(req)),
            (Method::Get, p) if p.starts_with("/static/") => return None,
            _ => {}
        }
        if let Some(refused) = self.read_refused(req) {
            return Some(refused);
        }
        match req.method {
            Method::Get => None,
            Method::Other => Some(
                Response::text(405, "only GET and POST are answered\n")
                    .with("Allow", "GET, HEAD, POST".into()),
            ),
            Method::Post if !same_origin(req) => Some(Response::text(
                403,
                "cross-origin requests may not change anything\n",
            )),
            Method::Post if self.read_only => Some(Response::text(
                403,
                "this server is read-only: nothing can be changed here\n",
            )),
            Method::Post => match self.acting(req) {
                // A login URL opens a session of the operator's (the default tenant): never
                // for a tenant's token.
                Acting::Yes if req.path == "/login/new" && self.tenant(req).is_some() => {
                    Some(Response::text(
                        403,
                        "a tenant's token cannot make a login URL: sessions are the operator's\n",
                    ))
                }
                Acting::Yes if req.path == "/login/new" => Some(self.renew(req)),
                Acting::Yes => None,
                Acting::Unknown(why) => {
                    let refused = login::needed(why);
                    Some(match self.stale_cookie(req) {
                        Some(clear) => refused.with("Set-Cookie", clear),
                        None => refused,
                    })
                }
                Acting::No(why) => Some(Response::text(403, format!("{why}\n"))),
            },
        }
    }

    /// The refusal of a read without a credential, if `req` is one. Reads need a credential
    /// once a `token` is set or actions need a login ([`Actions::Admin`]): the pages, `/api`
    /// and `/metrics` of every tenant, the default one included, on loopback too. Open are
    /// `/healthz` (unless a token is set: today's rule) and, with
    /// [`ServeOptions::metrics_open`], `GET /metrics` from a loopback client. A POST without
    /// a token set is left to [`Guard::acting`], which asks for more.
    fn read_refused(&self, req: &Request) -> Option<Response> {
        let guarded = match &self.token {
            Some(_) => true,
            None => self.actions == Actions::Admin && req.method != Method::Post,
        };
        if !guarded || self.may_read(req) {
            return None;
        }
        if self.token.is_none() && req.path == "/healthz" {
            return None;
        }
        if self.metrics_open
            && req.path == "/metrics"
            && req.method == Method::Get
            && req.peer.is_some_and(|p| p.ip().is_loopback())
        {
            return None;
        }
        if self.token.is_some() {
            return Some(
                Response::text(
                    401,
                    "a token is required (Bearer, or the password of Basic auth), or a session: open the URL oc serve printed\n",
                )
                .with(
                    "WWW-Authenticate",
                    "Basic realm=\"oc\", charset=\"UTF-8\"".into(),
                ),
            );
        }
        let why = if self.stale_cookie(req).is_some() {
            "The session has ended (it was idle too long, logged out, or the server restarted)."
        } else {
            "Reading this server needs a session of this browser, or a token."
        };
        let refused = login::needed_to_read(why);
        Some(match self.stale_cookie(req) {
            Some(clear) => refused.with("Set-Cookie", clear),
            None => refused,
        })
    }

    /// Whether `req` carries a credential that may read: the server's token (Bearer or Basic
    /// password), a session, or a bearer the verifier knows, of the default tenant (or of any,
    /// when tenants are served: it then reads its own tenant's app).
    fn may_read(&self, req: &Request) -> bool {
        self.token.as_deref().is_some_and(|t| authorized(req, t))
            || self.session(req).is_some()
            || self
                .verified(req)
                .and_then(Result::ok)
                .is_some_and(|id| id.tenant.is_none() || self.tenants)
    }

    /// Whether `req` may act (a POST that passed the origin and read-only checks).
    fn acting(&self, req: &Request) -> Acting {
        if self.actions == Actions::Open || self.session(req).is_some() {
            return Acting::Yes;
        }
        if req.header_value("authorization").is_some() {
            if let Some(token) = &self.token
                && authorized(req, token)
            {
                return Acting::Yes;
            }
            let Some(verified) = self.verified(req) else {
                return Acting::Unknown("The token is not valid.");
            };
            return match verified {
                Ok(id) if id.tenant.is_some() && !self.tenants => Acting::No(
                    "the pages serve the default tenant only: this token is of another".into(),
                ),
                Ok(id) => match id.require(Scope::Admin) {
                    Ok(()) => Acting::Yes,
                    Err(e) => Acting::No(e.to_string()),
                },
                Err(AuthError::Forbidden { needed, had }) => {
                    Acting::No(AuthError::Forbidden { needed, had }.to_string())
                }
                Err(_) => Acting::Unknown("The token is not valid."),
            };
        }
        if self.stale_cookie(req).is_some() {
            Acting::Unknown(
                "The session has ended (it was idle too long, logged out, or the server restarted).",
            )
        } else {
            Acting::Unknown("Acting here needs a session of this browser, or an admin token.")
        }
    }

    /// The open session `req`'s cookie names, if any.
    fn session(&self, req: &Request) -> Option<String> {
        let sessions = self.sessions.as_ref()?;
        let name = cookie_name(req);
        cookies(req, &name)
            .find(|id| sessions.check(id))
            .map(str::to_owned)
    }

    /// A `Set-Cookie` that clears `req`'s session cookie, if it sent one that names no open
    /// session.
    fn stale_cookie(&self, req: &Request) -> Option<String> {
        let name = cookie_name(req);
        if cookies(req, &name).next().is_some() && self.session(req).is_none() {
            Some(clear_cookie(&name))
        } else {
            None
        }
    }

    /// `GET /login?token=…`: the one-time token exchanged for a session cookie, then the
    /// overview, so the token is not left in the address bar or history.
    fn login(&self, req: &Request) -> Response {
        if !same_origin(req) {
            return login::refused(
                403,
                "A login link opened from another site is refused: paste the URL into the address bar.",
            );
        }
        let Some(sessions) = &self.sessions else {
            return if self.actions == Actions::Open {
                login::not_asked()
            } else {
                login::refused(404, "This server offers no login: act with an admin token.")
            };
        };
        if self.session(req).is_some() {
            return Response::see_other("/");
        }
        let Some(token) = req.param("token") else {
            return login::refused(200, "You are not logged in.");
        };
        match sessions.log_in(token) {
            Ok(id) => Response::see_other("/").with(
                "Set-Cookie",
                format!(
                    "{}={id}; Path=/; HttpOnly; SameSite=Strict",
                    cookie_name(req)
                ),
            ),
            Err(LoginError::Expired) => login::refused(
                403,
                "This login link has expired: each works for an hour after it was made.",
            ),
            Err(_) => login::refused(
                403,
                "This login link is not valid, or was used already: each works once.",
            ),
        }
    }

    /// `POST /logout`: ends the session and clears its cookie.
    fn logout(&self, req: &Request) -> Response {
        if !same_origin(req) {
            return Response::text(403, "cross-origin requests may not change anything\n");
        }
        let name = cookie_name(req);
        if let Some(sessions) = &self.sessions {
            for id in cookies(req, &name) {
                sessions.log_out(id);
            }
        }
        login::logged_out().with("Set-Cookie", clear_cookie(&name))
    }

    /// `POST /login/new` (after the checks of an action): a new login URL for another
    /// browser.
    fn renew(&self, req: &Request) -> Response {
        let Some(sessions) = &self.sessions else {
            return login::refused(404, "This server offers no login.");
        };
        match sessions.renew_login() {
            Ok(token) => {
                let host = req.header_value("host").unwrap_or("127.0.0.1");
                login::renewed(&format!("http://{host}/login?token={token}"))
            }
            Err(e) => Response::text(500, format!("{e}\n")),
        }
    }

    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        is_loopback_name(&name) || self.allowed_hosts.contains(&name)
    }
}

/// The name part of a `Host` header (no port, no trailing dot, lower case, IPv6 brackets
/// kept).
fn host_name(host: &str) -> String {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']')
            .map_or(host.to_owned(), |(h, _)| format!("[{h}]"))
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
            .to_owned()
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The session cookie's name: per port, since browsers send a host's cookies to all its
/// ports, and two servers on one host would otherwise log each other out.
fn cookie_name(req: &Request) -> String {
    let port = req
        .header_value("host")
        .and_then(|h| h.trim().rsplit_once(':'))
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    match port {
        Some(p) => format!("oc_session_{p}"),
        None => "oc_session".to_owned(),
    }
}

/// The values of the cookies named `name` in every `Cookie` header of `req`.
fn cookies<'a>(req: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .iter()
        .filter(|(n, _)| n == "cookie")
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(move |pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n == name).then_some(v.trim())
        })
        // A browser sends a handful; more is a client making work for us.
        .take(8)
}

/// A `Set-Cookie` that removes cookie `name`.
fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The text after `Bearer ` in `req`'s `Authorization`, if that is its scheme
/// ([`oc_auth::bearer`], with its bound on the header's length).
fn bearer(req: &Request) -> Option<&str> {
    oc_auth::bearer(req.header_value("authorization")).ok()
}

/// The algorithm of Go's `CrossOriginProtection`: trust `Sec-Fetch-Site` when the browser
/// sends it (only `same-origin` or `none`, a typed URL or bookmark, pass); otherwise compare
/// `Origin` with `Host`; a request with neither is not from a browser and carries no ambient
/// credentials of one.
pub(crate) fn same_origin(req: &Request) -> bool {
    if let Some(site) = req.header_value("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match (req.header_value("origin"), req.header_value("host")) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(|o| o.eq_ignore_ascii_case(host)),
        (Some(_), None) => false,
    }
}

/// Whether `req` carries `token`, as a Bearer token or as the password of Basic auth.
pub(crate) fn authorized(req: &Request, token: &str) -> bool {
    let Some(auth) = req.header_value("authorization") else {
        return false;
    };
    let (scheme, value) = auth.trim().split_once(' ').unwrap_or((auth, ""));
    let presented = if scheme.eq_ignore_ascii_case("bearer") {
        value.trim().as_bytes().to_vec()
    } else if scheme.eq_ignore_ascii_case("basic") {
        match base64_decode(value.trim()) {
            Some(pair) => match pair.iter().position(|&b| b == b':') {
                Some(i) => pair[i + 1..].to_vec(),
                None => return false,
            },
            None => return false,
        }
    } else {
        return false;
    };
    constant_time_eq(&presented, token.as_bytes())
}

/// Standard base64 (with or without padding); `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const STANDARD: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    STANDARD.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{LOGIN_FOR, SESSION_IDLE};

    use oc_auth::{Identity, Tenant};
    use oc_time::{ManualClock, Timestamp};

    /// Today's guard, with actions open (`--no-auth`), for the checks before who acts.
    fn guard(token: Option<&str>, read_only: bool) -> Guard {
        Guard::new(
            &ServeOptions {
                allowed_hosts: vec!["ops.example.".into()],
                token: token.map(str::to_owned),
                actions: Actions::Open,
                ..ServeOptions::default()
            },
            read_only,
        )
    }

    /// Bearer tokens over a fixed map, as the token store will answer.
    #[derive(Debug)]
    struct Fixed;

    impl Verifier for Fixed {
        fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
            let (scope, tenant) = match bearer {
                "admin-t" => (Scope::Admin, None),
                "work-t" => (Scope::Work, None),
                "read-t" => (Scope::Read, None),
                "acme-admin-t" => (Scope::Admin, Some(Tenant::new("acme")?)),
                _ => return Err(AuthError::BadToken("unknown".into())),
            };
            Ok(Identity {
                agent: "a".into(),
                scope,
                tenant,
            })
        }
    }

    /// The default guard (actions need a session or an admin bearer), its sessions, their
    /// clock and the login token.
    fn login_guard(token: Option<&str>) -> (Guard, Arc<Sessions>, ManualClock, String) {
        let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
        let sessions = Arc::new(Sessions::with_clock(Arc::new(clock.clone())).unwrap());
        let url = sessions
            .login_url("127.0.0.1:9464".parse().unwrap())
            .unwrap();
        let login = url.split_once("token=").unwrap().1.to_owned();
        let g = Guard::new(
            &ServeOptions {
                token: token.map(str::to_owned),
                sessions: Some(Arc::clone(&sessions)),
                verifier: Some(Arc::new(Fixed)),
                ..ServeOptions::default()
            },
            false,
        );
        (g, sessions, clock, login)
    }

    const HOST: &str = "127.0.0.1:9464";

    fn retry() -> Request {
        Request::new(Method::Post, "/ui/tasks/f1/retry").header("Host", HOST)
    }

    /// Opens the login URL as a browser does; the session cookie it sets (`name=value`).
    fn log_in(g: &Guard, token: &str) -> Result<String, Response> {
        let req = Request::new(Method::Get, &format!("/login?token={token}"))
            .header("Host", HOST)
            .header("Sec-Fetch-Site", "none");
        let r = g.check(&req).expect("the guard answers /login");
        if r.status != 303 {
            return Err(r);
        }
        assert_eq!(
            r.headers.iter().find(|(n, _)| *n == "Location").unwrap().1,
            "/",
            "the token leaves the address bar"
        );
        let cookie = &r
            .headers
            .iter()
            .find(|(n, _)| *n == "Set-Cookie")
            .unwrap()
            .1;
        for attr in ["; Path=/", "; HttpOnly", "; SameSite=Strict"] {
            assert!(cookie.contains(attr), "{attr} in {cookie}");
        }
        assert!(cookie.starts_with("oc_session_9464="), "{cookie}");
        Ok(cookie.split(';').next().unwrap().to_owned())
    }

    #[test]
    fn an_action_without_a_session_or_token_is_refused_on_loopback() {
        let (g, _, _, _) = login_guard(None);
        // curl from this machine: no Origin, no Sec-Fetch-Site, no cookie.
        let r = g.check(&retry()).expect("refused");
        assert_eq!(r.status, 401);
        assert!(r.body_text().contains("oc serve"), "says how to log in");
        assert!(r.body_text().contains("--no-auth"));
        assert!(
            !r.body_text().contains("<script"),
            "the page needs no script"
        );
        for path in [
            "/ui/locks/release",
            "/ui/bulk",
            "/ui/alerts/silence",
            "/login/new",
        ] {
            let req = Request::new(Method::Post, path).header("Host", HOST);
            assert_eq!(status(&g, &req), 401, "{path}");
        }
        // Reads need a credential too (the next test).
        assert_eq!(
            status(
                &g,
                &Request::new(Method::Get, "/ui/locks").header("Host", HOST)
            ),
            401
        );
    }

    /// The security review's finding: with auth on and tenants served, a local process with
    /// no credential read the default tenant's pages, `/api/stats` and `/metrics`.
    #[test]
    fn reads_need_a_credential_once_auth_is_on_even_on_loopback() {
        let (g, _, _, login) = login_guard(None);
        let with_tenants = Guard::new(
            &ServeOptions {
                verifier: Some(Arc::new(Fixed)),
                sessions: Some(Arc::new(Sessions::new().unwrap())),
                tenants: Some(Arc::new(crate::Tenants::new(|_: &Tenant| {
                    Err("not opened here".into())
                }))),
                ..ServeOptions::default()
            },
            false,
        );
        let local: std::net::SocketAddr = "127.0.0.1:50000".parse().unwrap();
        let get = |path: &str| {
            let mut r = Request::new(Method::Get, path).header("Host", HOST);
            r.peer = Some(local);
            r
        };
        for guard in [&g, &with_tenants] {
            for path in ["/", "/ui/tasks", "/ui/tasks/t1", "/api/stats", "/metrics"] {
                let r = guard.check(&get(path)).expect("refused");
                assert_eq!(r.status, 401, "{path}");
                assert!(r.body_text().contains("oc serve"), "says how to log in");
                assert_eq!(guard.tenant(&get(path)), None);
            }
            assert_eq!(status(guard, &get("/healthz")), 200, "probes stay open");
            assert_eq!(
                status(
                    guard,
                    &get("/metrics").header("Authorization", "Bearer nope")
                ),
                401
            );
            assert_eq!(
                status(
                    guard,
                    &get("/api/stats").header("Authorization", "Bearer read-t")
                ),
                200,
                "any scope reads"
            );
        }
        let cookie = log_in(&g, &login).unwrap();
        assert_eq!(status(&g, &get("/").header("Cookie", &cookie)), 200);
        let stale = get("/").header("Cookie", &format!("oc_session_9464={}", "ab".repeat(32)));
        let r = g.check(&stale).unwrap();
        assert_eq!(r.status, 401);
        assert!(r.body_text().contains("session has ended"));
        // `--no-auth` reads as before.
        assert_eq!(status(&guard(None, false), &get("/api/stats")), 200);
    }

    /// `--metrics-open`: `/metrics` alone, to loopback clients alone, without a credential.
    #[test]
    fn metrics_open_opens_metrics_to_loopback_clients_only() {
        let g = Guard::new(
            &ServeOptions {
                verifier: Some(Arc::new(Fixed)),
                sessions: Some(Arc::new(Sessions::new().unwrap())),
                metrics_open: true,
                ..ServeOptions::default()
            },
            false,
        );
        let from = |peer: &str, path: &str| {
            let mut r = Request::new(Method::Get, path).header("Host", HOST);
            r.peer = Some(peer.parse().unwrap());
            r
        };
        assert_eq!(status(&g, &from("127.0.0.1:5", "/metrics")), 200);
        assert_eq!(status(&g, &from("[::1]:5", "/metrics")), 200);
        assert_eq!(
            status(&g, &from("10.1.2.3:5", "/metrics")),
            401,
            "not loopback"
        );
        assert_eq!(
            status(&g, &Request::new(Method::Get, "/metrics")),
            401,
            "no peer known"
        );
        for path in ["/", "/api/stats", "/metrics/../api/stats"] {
            assert_eq!(status(&g, &from("127.0.0.1:5", path)), 401, "{path}");
        }
    }

    #[test]
    fn forged_cookies_and_tokens_are_refused() {
        let (g, _, _, login) = login_guard(None);
        let forged = retry().header("Cookie", &format!("oc_session_9464={}", "ab".repeat(32)));
        let r = g.check(&forged).unwrap();
        assert_eq!(r.status, 401);
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Set-Cookie" && v.contains("Max-Age=0")),
            "the stale cookie is cleared"
        );
        // The login token is not a session id.
        let as_cookie = retry().header("Cookie", &format!("oc_session_9464={login}"));
        assert_eq!(status(&g, &as_cookie), 401);
        assert_eq!(
            status(&g, &retry().header("Authorization", "Bearer nope")),
            401
        );
        assert_eq!(
            status(
                &g,
                &retry().header("Authorization", &format!("Bearer {login}"))
            ),
            401
        );
        assert_eq!(log_in(&g, "00").unwrap_err().status, 403);
        assert!(log_in(&g, &login).is_ok(), "a wrong token spent nothing");
    }

    #[test]
    fn the_login_token_works_once_and_opens_a_session() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        assert_eq!(status(&g, &retry().header("Cookie", &cookie)), 200);
        assert_eq!(
            status(
                &g,
                &retry().header("Cookie", &format!("theme=dark; {cookie}"))
            ),
            200
        );
        let replay = log_in(&g, &login).unwrap_err();
        assert_eq!(replay.status, 403);
        assert!(replay.body_text().contains("used already"));
        assert_eq!(sessions.len(), 1);
        // The cookie of another port's server is not this one's.
        let other = cookie.replace("9464", "9465");
        assert_eq!(status(&g, &retry().header("Cookie", &other)), 401);
        // Logged in, the login URL goes to the overview.
        let again = Request::new(Method::Get, &format!("/login?token={login}"))
            .header("Host", HOST)
            .header("Cookie", &cookie);
        assert_eq!(status(&g, &again), 303);
    }

    #[test]
    fn a_login_link_from_another_site_is_refused() {
        let (g, sessions, _, login) = login_guard(None);
        for foreign in [
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
        ] {
            let req = Request::new(Method::Get, &format!("/login?token={login}"))
                .header("Host", HOST)
                .header(foreign.0, foreign.1);
            assert_eq!(status(&g, &req), 403, "{foreign:?}");
        }
        assert!(sessions.is_empty());
        let evil = Request::new(Method::Get, &format!("/login?token={login}"))
            .header("Host", "evil.example");
        assert_eq!(status(&g, &evil), 403, "DNS rebinding");
        assert!(log_in(&g, &login).is_ok(), "still unspent");
    }

    #[test]
    fn expired_sessions_and_login_tokens_are_refused() {
        let (g, _, clock, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        clock.advance(SESSION_IDLE + std::time::Duration::from_secs(1));
        let r = g.check(&retry().header("Cookie", &cookie)).unwrap();
        assert_eq!(r.status, 401);
        assert!(
            r.body_text().contains("session has ended"),
            "{}",
            r.body_text()
        );

        let (g, _, clock, login) = login_guard(None);
        clock.advance(LOGIN_FOR + std::time::Duration::from_secs(1));
        let r = log_in(&g, &login).unwrap_err();
        assert_eq!(r.status, 403);
        assert!(r.body_text().contains("expired"));
    }

    #[test]
    fn bearers_act_only_as_admin_of_the_default_tenant() {
        let (g, _, _, _) = login_guard(None);
        let with = |t: &str| retry().header("Authorization", &format!("Bearer {t}"));
        assert_eq!(status(&g, &with("admin-t")), 200);
        let r = g.check(&with("work-t")).unwrap();
        assert_eq!(r.status, 403);
        assert!(r.body_text().contains("admin"), "{}", r.body_text());
        assert_eq!(status(&g, &with("read-t")), 403);
        assert_eq!(status(&g, &with("acme-admin-t")), 403, "another tenant");
        assert_eq!(status(&g, &with("unknown")), 401);
        // Still only from the same origin, and never on a read-only server.
        assert_eq!(
            status(&g, &with("admin-t").header("Sec-Fetch-Site", "cross-site")),
            403
        );
    }

    #[test]
    fn with_tenants_a_tenants_bearer_reads_and_acts_on_its_own_but_makes_no_login() {
        let g = Guard::new(
            &ServeOptions {
                token: Some("server-token".into()),
                verifier: Some(Arc::new(Fixed)),
                sessions: Some(Arc::new(Sessions::new().unwrap())),
                tenants: Some(Arc::new(crate::Tenants::new(|_: &Tenant| {
                    Err("not opened here".into())
                }))),
                ..ServeOptions::default()
            },
            false,
        );
        let bearer = |r: Request, t: &str| r.header("Authorization", &format!("Bearer {t}"));
        let read = Request::new(Method::Get, "/ui/tasks").header("Host", HOST);
        assert_eq!(status(&g, &bearer(read.clone(), "acme-admin-t")), 200);
        assert_eq!(
            g.tenant(&bearer(read.clone(), "acme-admin-t")),
            Some(Tenant::new("acme").unwrap())
        );
        assert_eq!(g.tenant(&bearer(read.clone(), "admin-t")), None);
        assert_eq!(g.tenant(&bearer(read.clone(), "unknown")), None);
        assert_eq!(g.tenant(&read), None, "no credential: the default tenant");
        assert_eq!(status(&g, &bearer(retry(), "acme-admin-t")), 200);
        let renew = Request::new(Method::Post, "/login/new")
            .header("Host", HOST)
            .header("Sec-Fetch-Site", "same-origin");
        assert_eq!(status(&g, &bearer(renew.clone(), "acme-admin-t")), 403);
        assert_eq!(status(&g, &bearer(renew, "admin-t")), 200);
    }

    #[test]
    fn logout_ends_the_session() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        let out = Request::new(Method::Post, "/logout")
            .header("Host", HOST)
            .header("Cookie", &cookie);
        assert_eq!(
            status(&g, &out.clone().header("Sec-Fetch-Site", "cross-site")),
            403,
            "no logout from another site"
        );
        assert_eq!(sessions.len(), 1);
        let r = g.check(&out).unwrap();
        assert_eq!(r.status, 200);
        assert!(
            r.headers
                .iter()
                .any(|(n, v)| *n == "Set-Cookie" && v.contains("Max-Age=0"))
        );
        assert!(sessions.is_empty());
        assert_eq!(status(&g, &retry().header("Cookie", &cookie)), 401);
    }

    #[test]
    fn a_session_gives_another_browser_a_new_login_url() {
        let (g, sessions, _, login) = login_guard(None);
        let cookie = log_in(&g, &login).unwrap();
        let new = Request::new(Method::Post, "/login/new").header("Host", HOST);
        assert_eq!(status(&g, &new), 401);
        let r = g.check(&new.header("Cookie", &cookie)).unwrap();
        assert_eq!(r.status, 200);
        let page = r.body_text();
        let url = page
            .split("http://127.0.0.1:9464/login?token=")
            .nth(1)
            .unwrap();
        let token: String = url.chars().take_while(char::is_ascii_hexdigit).collect();
        let second = log_in(&g, &token).unwrap();
        assert_eq!(sessions.len(), 2);
        assert_eq!(status(&g, &retry().header("Cookie", &second)), 200);
    }

    #[test]
    fn no_auth_keeps_actions_open_and_says_so_at_login() {
        let g = guard(None, false);
        assert_eq!(status(&g, &retry()), 200);
        let r = g
            .check(&Request::new(Method::Get, "/login?token=x"))
            .unwrap();
        assert_eq!(r.status, 404);
        assert!(r.body_text().contains("--no-auth"));
    }

    #[test]
    fn the_server_token_acts_and_a_session_reads_without_it() {
        let (g, _, _, login) = login_guard(Some("s3cret"));
        let get = || Request::new(Method::Get, "/").header("Host", HOST);
        assert_eq!(status(&g, &get()), 401, "reads need a credential");
        assert_eq!(
            status(&g, &retry().header("Authorization", "Bearer s3cret")),
            200
        );
        // "any:s3cret"
        assert_eq!(
            status(
                &g,
                &retry().header("Authorization", "Basic YW55OnMzY3JldA==")
            ),
            200
        );
        assert_eq!(
            status(&g, &get().header("Authorization", "Bearer work-t")),
            200
        );
        assert_eq!(
            status(&g, &retry().header("Authorization", "Bearer work-t")),
            403
        );
        let cookie = log_in(&g, &login).expect("the login URL needs no token");
        assert_eq!(status(&g, &get().header("Cookie", &cookie)), 200);
        assert_eq!(status(&g, &retry().header("Cookie", &cookie)), 200);
        assert_eq!(
            status(
                &g,
                &Request::new(Method::Get, "/static/app.css").header("Host", HOST)
            ),
            200,
            "the login page's stylesheet"
        );
    }

    fn status(g: &Guard, req: &Request) -> u16 {
        g.check(req).map_or(200, |r| r.status)
    }

    #[test]
    fn hosts_are_loopback_or_allowed() {
        let g = guard(None, false);
        for host in [
            "127.0.0.1:9464",
            "localhost",
            "LOCALHOST.:80",
            "[::1]:9464",
            "127.3.4.5",
            "ops.example",
            "ops.example.:443",
        ] {
            let req = Request::new(Method::Get, "/").header("Host", host);
            assert_eq!(status(&g, &req), 200, "{host}");
        }
        for host in [
            "evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:9464",
            "[::2]",
        ] {
            let req = Request::new(Method::Get, "/").header("Host", host);
            assert_eq!(status(&g, &req), 403, "{host}");
        }
        assert_eq!(
            status(&g, &Request::new(Method::Get, "/")),
            200,
            "HTTP/1.0 without Host"
        );
    }

    #[test]
    fn posts_only_from_the_same_origin() {
        let g = guard(None, false);
        let post = || Request::new(Method::Post, "/ui/tasks/a/retry").header("Host", "127.0.0.1:1");
        assert_eq!(
            status(&g, &post().header("Sec-Fetch-Site", "same-origin")),
            200
        );
        assert_eq!(status(&g, &post().header("Sec-Fetch-Site", "none")), 200);
        assert_eq!(
            status(&g, &post().header("Sec-Fetch-Site", "same-site")),
            403
        );
        assert_eq!(
            status(&g, &post().header("Sec-Fetch-Site", "cross-site")),
            403
        );
        assert_eq!(
            status(&g, &post().header("Origin", "http://127.0.0.1:1")),
            200
        );
        assert_eq!(
            status(&g, &post().header("Origin", "http://127.0.0.1:2")),
            403
        );
        assert_eq!(status(&g, &post().header("Origin", "null")), 403);
        assert_eq!(status(&g, &post()), 200, "not a browser");
        assert_eq!(status(&g, &Request::new(Method::Other, "/")), 405);
        let ro = guard(None, true);
        assert_eq!(status(&ro, &post()), 403, "read-only");
        assert_eq!(status(&ro, &Request::new(Method::Get, "/")), 200);
    }

    #[test]
    fn a_token_as_bearer_or_basic_password() {
        // Today's token, on a server whose actions are open (`--no-auth`).
        let g = guard(Some("s3cret"), false);
        let get = || Request::new(Method::Get, "/");
        assert_eq!(status(&g, &get()), 401);
        assert_eq!(
            status(&g, &get().header("Authorization", "Bearer s3cret")),
            200
        );
        assert_eq!(
            status(&g, &get().header("Authorization", "bearer s3cret")),
            200
        );
        assert_eq!(
            status(&g, &get().header("Authorization", "Bearer s3cre")),
            401
        );
        assert_eq!(
            status(&g, &get().header("Authorization", "Bearer s3cret2")),
            401
        );
        // "any:s3cret" and "any:wrong"
        assert_eq!(
            status(&g, &get().header("Authorization", "Basic YW55OnMzY3JldA==")),
            200
        );
        assert_eq!(
            status(&g, &get().header("Authorization", "Basic YW55Ondyb25n")),
            401
        );
        assert_eq!(status(&g, &get().header("Authorization", "Basic !!!")), 401);
        assert_eq!(status(&g, &get().header("Authorization", "Digest x")), 401);
        assert_eq!(
            status(&g, &get().header("Cookie", "oc_session=s3cret")),
            401
        );
    }

    #[test]
    fn base64_decodes_what_browsers_send() {
        assert_eq!(base64_decode("YW55OnMzY3JldA==").unwrap(), b"any:s3cret");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a b").is_none());
    }
}
