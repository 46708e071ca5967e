//! What an OAuth resource server is configured with: its issuer, its own resource URL, the
//! scopes it knows, the claims naming the agent and the tenant, and the bounds on fetching keys.

use std::time::Duration;

use crate::{AuthError, Scope};

/// The OAuth scopes a server knows and the [`Scope`] each grants; a token's highest wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeMap(Vec<(String, Scope)>);

impl Default for ScopeMap {
    /// `oc:read`, `oc:work` and `oc:admin`.
    fn default() -> Self {
        ScopeMap(vec![
            ("oc:read".into(), Scope::Read),
            ("oc:work".into(), Scope::Work),
            ("oc:admin".into(), Scope::Admin),
        ])
    }
}

impl ScopeMap {
    /// A map from `(OAuth scope, our scope)` pairs. Names must be non-empty scope tokens
    /// (RFC 6749 3.3: printable ASCII without space, `"` or `\`).
    pub fn new<S: Into<String>>(
        pairs: impl IntoIterator<Item = (S, Scope)>,
    ) -> Result<ScopeMap, AuthError> {
        let pairs: Vec<(String, Scope)> = pairs.into_iter().map(|(n, s)| (n.into(), s)).collect();
        if pairs.is_empty() {
            return Err(AuthError::Invalid {
                what: "scope map",
                reason: "maps no scope".into(),
            });
        }
        for (name, _) in &pairs {
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| matches!(b, 0x21 | 0x23..=0x5b | 0x5d..=0x7e));
            if !ok {
                return Err(AuthError::Invalid {
                    what: "scope map",
                    reason: format!("{name:?} is not an OAuth scope token"),
                });
            }
        }
        Ok(ScopeMap(pairs))
    }

    /// What the OAuth scope `name` grants, if this server knows it.
    pub fn get(&self, name: &str) -> Option<Scope> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, s)| s)
    }

    /// The OAuth scope to ask for when `needed` is missing: the first name granting exactly
    /// `needed`, else the first granting more.
    pub fn name_for(&self, needed: Scope) -> &str {
        let exact = self.0.iter().find(|(_, s)| *s == needed);
        let above = || {
            self.0
                .iter()
                .filter(|(_, s)| s.allows(needed))
                .min_by_key(|(_, s)| *s)
        };
        exact
            .or_else(above)
            .or(self.0.first())
            .map_or("", |(n, _)| n.as_str())
    }

    /// Every OAuth scope name, in order (for `scopes_supported`).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(n, _)| n.as_str())
    }

    /// The highest scope any of `granted` maps to.
    pub fn highest<'a>(&self, granted: impl IntoIterator<Item = &'a str>) -> Option<Scope> {
        granted.into_iter().filter_map(|g| self.get(g)).max()
    }
}

/// How a [`JwtVerifier`](super::JwtVerifier) checks access tokens.
///
/// ```
/// use oc_auth::oauth::OAuthConfig;
/// let config = OAuthConfig::new("https://login.example.com", "https://oc.example.com/mcp")
///     .with_tenant_claim("org");
/// assert_eq!(config.agent_claim, "sub");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuthConfig {
    /// The authorization server's issuer identifier: a token's `iss` must equal it.
    pub issuer: String,
    /// This server's resource URL (RFC 8707): a token's `aud` must contain it.
    pub audience: String,
    /// Where the issuer's keys are; `None` reads `jwks_uri` from the issuer's metadata
    /// (`/.well-known/openid-configuration`, then `/.well-known/oauth-authorization-server`).
    pub jwks_uri: Option<String>,
    /// The OAuth scopes this server knows.
    pub scopes: ScopeMap,
    /// The claim naming the agent (default `sub`).
    pub agent_claim: String,
    /// The claim naming the tenant. When set, a token without it is refused rather than let
    /// into the default store.
    pub tenant_claim: Option<String>,
    /// Clock skew allowed on `exp`, `nbf` and `iat` (default 60 s).
    pub leeway: Duration,
    /// How long one fetch of metadata or keys may take (default 5 s).
    pub fetch_timeout: Duration,
    /// The largest metadata or JWKS document read (default 256 KiB).
    pub max_document: u64,
    /// The most keys kept from the JWKS (default 32).
    pub max_keys: usize,
    /// The least time between two fetches of the keys (default 60 s): an unknown `kid` refetches
    /// at most this often, so a flood of them cannot make us hammer the issuer.
    pub refetch_interval: Duration,
    /// Keys older than this are refetched (at most once per `refetch_interval`), so that a key
    /// the issuer withdrew stops being accepted (default 1 hour).
    pub max_key_age: Duration,
    /// Whether plain `http` is allowed for the issuer and its keys on hosts other than loopback
    /// (default no: OAuth 2.1 asks for TLS everywhere but loopback).
    pub allow_http: bool,
}

impl OAuthConfig {
    /// A configuration with the defaults above.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> OAuthConfig {
        OAuthConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks_uri: None,
            scopes: ScopeMap::default(),
            agent_claim: "sub".into(),
            tenant_claim: None,
            leeway: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(5),
            max_document: 256 * 1024,
            max_keys: 32,
            refetch_interval: Duration::from_secs(60),
            max_key_age: Duration::from_secs(3600),
            allow_http: false,
        }
    }

    /// Sets where the keys are, skipping discovery.
    pub fn with_jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(uri.into());
        self
    }

    /// Sets the claim naming the tenant.
    pub fn with_tenant_claim(mut self, claim: impl Into<String>) -> Self {
        self.tenant_claim = Some(claim.into());
        self
    }

    /// Sets the claim naming the agent.
    pub fn with_agent_claim(mut self, claim: impl Into<String>) -> Self {
        self.agent_claim = claim.into();
        self
    }

    /// Sets the OAuth scopes this server knows.
    pub fn with_scopes(mut self, scopes: ScopeMap) -> Self {
        self.scopes = scopes;
        self
    }

    /// Checks the configuration: URLs, claim names and bounds.
    pub(crate) fn validate(&self) -> Result<(), AuthError> {
        let invalid = |what: &'static str, reason: String| AuthError::Invalid { what, reason };
        check_url(&self.issuer, self.allow_http).map_err(|r| invalid("issuer", r))?;
        if let Some(u) = &self.jwks_uri {
            check_url(u, self.allow_http).map_err(|r| invalid("jwks_uri", r))?;
        }
        if split_url(&self.audience).is_none() {
            return Err(invalid(
                "audience",
                format!("{:?} is not an absolute http(s) URL", self.audience),
            ));
        }
        if self.agent_claim.is_empty() || self.tenant_claim.as_deref() == Some("") {
            return Err(invalid("claim", "a claim name is empty".into()));
        }
        if self.max_keys == 0 || self.max_document == 0 || self.fetch_timeout.is_zero() {
            return Err(invalid(
                "bounds",
                "max_keys, max_document and fetch_timeout must be above zero".into(),
            ));
        }
        Ok(())
    }
}

/// Splits `scheme://authority/path?query` into `(scheme, authority, rest)` (rest starts with
/// `/`, `?` or is empty), for `http` and `https` only.
pub(crate) fn split_url(url: &str) -> Option<(&str, &str, &str)> {
    let (scheme, after) = url.split_once("://")?;
    if !(scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http")) {
        return None;
    }
    let end = after.find(['/', '?', '#']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    if authority.is_empty() || rest.contains('#') || url.chars().any(|c| c.is_ascii_control()) {
        return None;
    }
    Some((scheme, authority, rest))
}

/// Whether `authority` is a loopback host, where plain HTTP is allowed.
fn is_loopback(authority: &str) -> bool {
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a URL we fetch from: absolute, `https` (or `http` on loopback or when allowed).
pub(crate) fn check_url(url: &str, allow_http: bool) -> Result<(), String> {
    let Some((scheme, authority, _)) = split_url(url) else {
        return Err(format!(
            "{:?} is not an absolute http(s) URL without a fragment",
            url.chars().take(200).collect::<String>()
        ));
    };
    if scheme.eq_ignore_ascii_case("http") && !allow_http && !is_loopback(authority) {
        return Err(format!(
            "{url:?} is plain http on a host other than loopback (set allow_http to allow it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_known_scope_wins() {
        let m = ScopeMap::default();
        assert_eq!(
            m.highest(["openid", "oc:work", "oc:read"]),
            Some(Scope::Work)
        );
        assert_eq!(m.highest(["oc:admin", "oc:read"]), Some(Scope::Admin));
        assert_eq!(m.highest(["openid", "OC:ADMIN"]), None);
        assert_eq!(m.name_for(Scope::Work), "oc:work");
        let only_admin = ScopeMap::new([("all", Scope::Admin)]).unwrap_or_default();
        assert_eq!(only_admin.name_for(Scope::Read), "all");
        assert!(ScopeMap::new([("a b", Scope::Read)]).is_err());
        assert!(ScopeMap::new([("a\"", Scope::Read)]).is_err());
        assert!(ScopeMap::new(Vec::<(String, Scope)>::new()).is_err());
    }

    #[test]
    fn urls_are_https_but_on_loopback() {
        for ok in [
            "https://login.example.com",
            "https://login.example.com/tenant/v2.0",
            "http://127.0.0.1:8080",
            "http://localhost/x",
            "http://[::1]:99/",
        ] {
            assert_eq!(check_url(ok, false), Ok(()), "{ok}");
        }
        for bad in [
            "http://login.example.com",
            "ftp://x",
            "https://",
            "login.example.com",
            "https://a/#frag",
            "https://a/\r\nX: y",
            "http://127.0.0.1.evil.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert_eq!(check_url("http://login.example.com", true), Ok(()));
    }
}
