//! Protected-resource metadata (RFC 9728) and the `WWW-Authenticate: Bearer` challenges
//! (RFC 6750 section 3) that point clients at it.

use serde_json::{Value, json};

use super::config::{OAuthConfig, ScopeMap, split_url};
use crate::AuthError;

/// What `/.well-known/oauth-protected-resource` says about this server (RFC 9728 section 2),
/// and the challenges a refusal answers with.
///
/// ```
/// use oc_auth::oauth::{OAuthConfig, ProtectedResourceMetadata};
/// let meta = ProtectedResourceMetadata::from_config(&OAuthConfig::new(
///     "https://login.example.com",
///     "https://oc.example.com/mcp",
/// ));
/// assert_eq!(
///     meta.metadata_url(),
///     "https://oc.example.com/.well-known/oauth-protected-resource/mcp"
/// );
/// assert_eq!(
///     meta.unauthorized(false),
///     r#"Bearer resource_metadata="https://oc.example.com/.well-known/oauth-protected-resource/mcp", scope="oc:work""#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProtectedResourceMetadata {
    /// This server's resource identifier, the audience its tokens are for.
    pub resource: String,
    /// The issuers whose tokens it accepts.
    pub authorization_servers: Vec<String>,
    /// The OAuth scopes it knows.
    pub scopes: ScopeMap,
    /// A name for people (`resource_name`), if any.
    pub resource_name: Option<String>,
    /// The scope a 401 challenge asks for (`scope="…"`), `oc:work` by default. Clients follow
    /// it before `scopes_supported` (the MCP spec's scope selection): without it the official
    /// SDK asks for every scope listed, `oc:admin` included. `None` leaves it out.
    pub challenge_scope: Option<String>,
}

/// What to answer a refused request with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// 401 or 403.
    pub status: u16,
    /// The `WWW-Authenticate` header's value.
    pub www_authenticate: String,
}

const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

impl ProtectedResourceMetadata {
    /// The metadata of a server configured with `config`.
    pub fn from_config(config: &OAuthConfig) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata {
            resource: config.audience.clone(),
            authorization_servers: vec![config.issuer.clone()],
            scopes: config.scopes.clone(),
            resource_name: None,
            challenge_scope: Some(config.scopes.name_for(crate::Scope::Work).to_owned()),
        }
    }

    /// The JSON document (`bearer_methods_supported` is `["header"]`: we read tokens from the
    /// `Authorization` header only).
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "resource": self.resource,
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes.names().collect::<Vec<_>>(),
            "bearer_methods_supported": ["header"],
        });
        if let (Some(name), Some(map)) = (&self.resource_name, doc.as_object_mut()) {
            map.insert("resource_name".into(), name.clone().into());
        }
        doc
    }

    /// Where the metadata is served (RFC 9728 section 3.1): the well-known path inserted
    /// between the resource's host and its path, `https://h/.well-known/oauth-protected-resource/mcp`
    /// for `https://h/mcp`.
    pub fn metadata_url(&self) -> String {
        match split_url(&self.resource) {
            Some((scheme, authority, rest)) => {
                let rest = if rest == "/" { "" } else { rest };
                format!("{scheme}://{authority}{WELL_KNOWN}{rest}")
            }
            None => format!("{}{WELL_KNOWN}", self.resource.trim_end_matches('/')),
        }
    }

    /// The path part of [`metadata_url`](Self::metadata_url), the route to serve it on.
    pub fn metadata_path(&self) -> String {
        match split_url(&self.resource) {
            Some((_, _, rest)) => {
                let path = rest.split('?').next().unwrap_or("");
                let path = if path == "/" { "" } else { path };
                format!("{WELL_KNOWN}{path}")
            }
            None => WELL_KNOWN.to_owned(),
        }
    }

    /// The challenge for a missing token (`token_given: false`) or a refused one:
    /// `Bearer resource_metadata="…"`, with `error="invalid_token"` first when a token was
    /// given, and `scope="…"` ([`challenge_scope`](Self::challenge_scope)) after it.
    pub fn unauthorized(&self, token_given: bool) -> String {
        let url = self.metadata_url();
        let mut params = Vec::with_capacity(3);
        if token_given {
            params.push(("error", "invalid_token"));
        }
        params.push(("resource_metadata", url.as_str()));
        if let Some(scope) = &self.challenge_scope {
            params.push(("scope", scope.as_str()));
        }
        bearer(&params)
    }

    /// The challenge for a token whose scope is not enough (RFC 6750 3.1, the MCP spec's
    /// step-up): `Bearer error="insufficient_scope", scope="…", resource_metadata="…"`.
    pub fn insufficient_scope(&self, scope: &str) -> String {
        let url = self.metadata_url();
        bearer(&[
            ("error", "insufficient_scope"),
            ("scope", scope),
            ("resource_metadata", &url),
        ])
    }

    /// The answer to a refusal: 401 for [`AuthError::Missing`] and [`AuthError::BadToken`],
    /// 403 `insufficient_scope` for [`AuthError::Forbidden`] and
    /// [`AuthError::InsufficientScope`] (naming the OAuth scope needed); `None` for the rest,
    /// which are not the credential's fault.
    pub fn challenge(&self, err: &AuthError) -> Option<Challenge> {
        let (status, www_authenticate) = match err {
            AuthError::Missing => (401, self.unauthorized(false)),
            AuthError::BadToken(_) => (401, self.unauthorized(true)),
            AuthError::Forbidden { needed, .. } => {
                (403, self.insufficient_scope(self.scopes.name_for(*needed)))
            }
            AuthError::InsufficientScope { needed } => (403, self.insufficient_scope(needed)),
            _ => return None,
        };
        Some(Challenge {
            status,
            www_authenticate,
        })
    }
}

/// `Bearer k="v", k2="v2"` with each value a quoted-string (RFC 9110 5.6.4): `"` and `\`
/// escaped, and any byte that is not a tab, space or visible ASCII percent-encoded, so that
/// no value can end the header or start another.
pub fn bearer(params: &[(&str, &str)]) -> String {
    let mut out = String::from("Bearer");
    for (i, (k, v)) in params.iter().enumerate() {
        out.push_str(if i == 0 { " " } else { ", " });
        out.push_str(k);
        out.push_str("=\"");
        for b in v.bytes() {
            match b {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(b));
                }
                b'\t' | 0x20..=0x7e => out.push(char::from(b)),
                _ => out.push_str(&format!("%{b:02X}")),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Scope;

    fn meta(resource: &str) -> ProtectedResourceMetadata {
        ProtectedResourceMetadata::from_config(&OAuthConfig::new("https://as.example", resource))
    }

    #[test]
    fn the_metadata_url_inserts_the_well_known_path() {
        let check = |resource: &str, url: &str, path: &str| {
            let m = meta(resource);
            assert_eq!(m.metadata_url(), url, "{resource}");
            assert_eq!(m.metadata_path(), path, "{resource}");
        };
        check(
            "https://oc.example",
            "https://oc.example/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource",
        );
        check(
            "https://oc.example/",
            "https://oc.example/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource",
        );
        check(
            "http://127.0.0.1:8080/mcp",
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp",
            "/.well-known/oauth-protected-resource/mcp",
        );
    }

    #[test]
    fn the_document_names_resource_servers_scopes_and_header_only() {
        let doc = meta("https://oc.example/mcp").to_json();
        assert_eq!(
            doc,
            json!({
                "resource": "https://oc.example/mcp",
                "authorization_servers": ["https://as.example"],
                "scopes_supported": ["oc:read", "oc:work", "oc:admin"],
                "bearer_methods_supported": ["header"],
            })
        );
    }

    #[test]
    fn challenges_quote_and_escape() {
        assert_eq!(
            bearer(&[("a", "x\"y\\z"), ("b", "line\r\nSet-Cookie: 1"), ("c", "é")]),
            r#"Bearer a="x\"y\\z", b="line%0D%0ASet-Cookie: 1", c="%C3%A9""#
        );
        let m = meta("https://oc.example/mcp");
        let url = "https://oc.example/.well-known/oauth-protected-resource/mcp";
        let c = m.challenge(&AuthError::Missing);
        assert_eq!(
            c.map(|c| (c.status, c.www_authenticate)),
            Some((
                401,
                format!(r#"Bearer resource_metadata="{url}", scope="oc:work""#)
            ))
        );
        let c = m.challenge(&AuthError::BadToken("expired".into()));
        assert_eq!(
            c.map(|c| (c.status, c.www_authenticate)),
            Some((
                401,
                format!(
                    r#"Bearer error="invalid_token", resource_metadata="{url}", scope="oc:work""#
                )
            ))
        );
        let c = m.challenge(&AuthError::Forbidden {
            needed: Scope::Admin,
            had: Scope::Work,
        });
        assert_eq!(
            c.map(|c| (c.status, c.www_authenticate)),
            Some((
                403,
                format!(
                    r#"Bearer error="insufficient_scope", scope="oc:admin", resource_metadata="{url}""#
                )
            ))
        );
        let c = m.challenge(&AuthError::InsufficientScope {
            needed: "oc:read".into(),
        });
        assert_eq!(c.map(|c| c.status), Some(403));
        assert_eq!(m.challenge(&AuthError::Backend("down".into())), None);
        let mut bare = m.clone();
        bare.challenge_scope = None;
        assert_eq!(
            bare.unauthorized(false),
            format!(r#"Bearer resource_metadata="{url}""#)
        );
    }
}
