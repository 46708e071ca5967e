//! What every request passes before the app sees it: the `Host` allow-list (against DNS
//! rebinding), the token, the cross-origin check on every state-changing request, and the
//! read-only switch. The security headers every response carries are here too.

use crate::http::{Method, Request, Response, ServeOptions};

/// Headers on every response: a strict Content-Security-Policy with no inline script or style
/// (the pages load `/static/app.js` and `/static/app.css` only), no sniffing, no referrer, no
/// framing, no caching of pages that show live state.
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
        }
    }

    /// The refusal of `req`, if it is refused.
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
        if let Some(token) = &self.token
            && !authorized(req, token)
        {
            return Some(
                Response::text(
                    401,
                    "a token is required (Bearer, or the password of Basic auth)\n",
                )
                .with(
                    "WWW-Authenticate",
                    "Basic realm=\"oc\", charset=\"UTF-8\"".into(),
                ),
            );
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
            Method::Post => None,
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

/// Compares without stopping at the first difference, so timing tells nothing of the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (i, &x) in b.iter().enumerate() {
        diff |= usize::from(x ^ a.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// Standard base64 (with or without padding); `None` for anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(token: Option<&str>, read_only: bool) -> Guard {
        Guard::new(
            &ServeOptions {
                allowed_hosts: vec!["ops.example.".into()],
                token: token.map(str::to_owned),
                ..ServeOptions::default()
            },
            read_only,
        )
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
    }

    #[test]
    fn base64_decodes_what_browsers_send() {
        assert_eq!(base64_decode("YW55OnMzY3JldA==").unwrap(), b"any:s3cret");
        assert_eq!(base64_decode("YQ").unwrap(), b"a");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("a b").is_none());
    }
}
