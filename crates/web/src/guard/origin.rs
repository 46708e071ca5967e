//! Where a request comes from: the `Host` allow-list (against DNS rebinding) and the
//! same-origin check of every request that changes something.

use crate::http::Request;

/// The name part of a `Host` header (no port, no trailing dot, lower case, IPv6 brackets
/// kept).
pub(super) fn host_name(host: &str) -> String {
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

pub(super) fn is_loopback_name(name: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::super::tests::{guard, status};
    use crate::http::{Method, Request};

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
}
