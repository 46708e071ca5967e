//! What a request presents: the session cookie (named per port), a bearer, the server's token
//! as a bearer or as the password of Basic auth.

use crate::http::Request;
use crate::session::constant_time_eq;

/// The session cookie's name: per port, since browsers send a host's cookies to all its
/// ports, and two servers on one host would otherwise log each other out.
pub(super) fn cookie_name(req: &Request) -> String {
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
pub(super) fn cookies<'a>(req: &'a Request, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
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
pub(super) fn clear_cookie(name: &str) -> String {
    format!("{name}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The text after `Bearer ` in `req`'s `Authorization`, if that is its scheme
/// ([`oc_auth::bearer`], with its bound on the header's length).
pub(super) fn bearer(req: &Request) -> Option<&str> {
    oc_auth::bearer(req.header_value("authorization")).ok()
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
    use super::super::tests::{guard, status};
    use super::base64_decode;
    use crate::http::{Method, Request};

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
