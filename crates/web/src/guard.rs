//! What every request passes before the app sees it: the `Host` allow-list (against DNS
//! rebinding), the token, the cross-origin check on every state-changing request, the
//! read-only switch, and who may act: a session of the pages' login or an `admin` bearer
//! ([`Actions`]). The guard answers the login's own routes (`GET /login?token=…`,
//! `POST /logout`, `POST /login/new`) itself. The security headers every response carries
//! are here too.

use std::sync::Arc;

use oc_auth::{AuthError, Identity, Scope, Verifier};

mod credentials;
mod login;
mod origin;

pub(crate) use self::credentials::authorized;
use self::credentials::{bearer, clear_cookie, cookie_name, cookies};
pub(crate) use self::origin::same_origin;
use self::origin::{host_name, is_loopback_name};
use crate::http::{Actions, Method, Request, Response, ServeOptions};
use crate::pages::login as login_pages;
use crate::session::Sessions;

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
                    let refused = login_pages::needed(why);
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
        // Probes, and the well-known paths OAuth clients look for (answered 404 here when no
        // metadata is served: they hold nothing).
        if self.token.is_none() && (req.path == "/healthz" || req.path.starts_with("/.well-known/"))
        {
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
        let refused = login_pages::needed_to_read(why);
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

    pub(crate) fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        is_loopback_name(&name) || self.allowed_hosts.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use oc_auth::{Identity, Tenant};
    use oc_time::{ManualClock, Timestamp};

    /// Today's guard, with actions open (`--no-auth`), for the checks before who acts.
    pub(super) fn guard(token: Option<&str>, read_only: bool) -> Guard {
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
    pub(super) struct Fixed;

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
    pub(super) fn login_guard(token: Option<&str>) -> (Guard, Arc<Sessions>, ManualClock, String) {
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

    pub(super) const HOST: &str = "127.0.0.1:9464";

    pub(super) fn retry() -> Request {
        Request::new(Method::Post, "/ui/tasks/f1/retry").header("Host", HOST)
    }

    /// Opens the login URL as a browser does; the session cookie it sets (`name=value`).
    pub(super) fn log_in(g: &Guard, token: &str) -> Result<String, Response> {
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

    pub(super) fn status(g: &Guard, req: &Request) -> u16 {
        g.check(req).map_or(200, |r| r.status)
    }
}
