//! [`Verifiers`]: what a server holds to turn an `Authorization` header into an [`Identity`].

use std::sync::Arc;

use crate::backend::TOKEN_PREFIX;
use crate::{AuthError, Identity, TokenStore, Verifier};

/// The longest bearer credential read, in bytes (a JWT with many claims fits; a static token
/// is 85).
pub const MAX_BEARER_BYTES: usize = 16 * 1024;

/// The credential of an `Authorization` header's value: the text after `Bearer ` (the scheme
/// in any case, RFC 9110). No header, or an empty credential, is [`AuthError::Missing`];
/// another scheme or an over-long value is [`AuthError::BadToken`].
///
/// ```
/// use oc_auth::{AuthError, bearer};
/// assert_eq!(bearer(Some("Bearer oct_x")), Ok("oct_x"));
/// assert_eq!(bearer(Some("bearer  oct_x ")), Ok("oct_x"));
/// assert_eq!(bearer(None), Err(AuthError::Missing));
/// assert!(matches!(bearer(Some("Basic dXNlcg==")), Err(AuthError::BadToken(_))));
/// ```
pub fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let Some(value) = authorization.map(str::trim) else {
        return Err(AuthError::Missing);
    };
    if value.is_empty() || value.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Missing);
    }
    if value.len() > MAX_BEARER_BYTES {
        return Err(AuthError::BadToken(format!(
            "the Authorization header is over {MAX_BEARER_BYTES} bytes"
        )));
    }
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => {
            let token = rest.trim();
            if token.is_empty() {
                Err(AuthError::Missing)
            } else {
                Ok(token)
            }
        }
        _ => Err(AuthError::BadToken(
            "the Authorization header is not a Bearer credential".to_owned(),
        )),
    }
}

/// The verifiers a server holds: static tokens (`oct_…`) go to the [`TokenStore`], any other
/// bearer credential to the other verifier (the OAuth access-token one); with neither
/// configured for a credential's kind, it is [`AuthError::BadToken`]. An empty credential is
/// [`AuthError::Missing`].
///
/// ```
/// use std::sync::Arc;
/// use oc_auth::{AuthError, MemoryTokenStore, Scope, TokenStore, Verifier, Verifiers};
/// let store = Arc::new(MemoryTokenStore::new());
/// let (token, _) = store.create("agent-7", Scope::Read, None, None)?;
/// let chain = Verifiers::new().tokens(store);
/// let header = format!("Bearer {}", token.expose());
/// assert_eq!(chain.verify_header(Some(&header))?.agent, "agent-7");
/// assert_eq!(chain.verify_header(None), Err(AuthError::Missing));
/// assert!(matches!(chain.verify("eyJhbGciOi.x.y"), Err(AuthError::BadToken(_))));
/// # Ok::<(), AuthError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Verifiers {
    tokens: Option<Arc<dyn TokenStore>>,
    other: Option<Arc<dyn Verifier>>,
}

impl Verifiers {
    /// A chain that accepts nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts static tokens (`oct_…`) of `store`.
    pub fn tokens(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.tokens = Some(store);
        self
    }

    /// Hands every other bearer credential to `verifier` (the OAuth access-token verifier).
    pub fn other(mut self, verifier: Arc<dyn Verifier>) -> Self {
        self.other = Some(verifier);
        self
    }

    /// The identity an `Authorization` header's value stands for ([`bearer`], then
    /// [`Verifier::verify`]).
    pub fn verify_header(&self, authorization: Option<&str>) -> Result<Identity, AuthError> {
        self.verify(bearer(authorization)?)
    }
}

impl Verifier for Verifiers {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        if bearer.is_empty() {
            return Err(AuthError::Missing);
        }
        if bearer.len() > MAX_BEARER_BYTES {
            return Err(AuthError::BadToken(format!(
                "the credential is over {MAX_BEARER_BYTES} bytes"
            )));
        }
        let (verifier, kind): (Option<&dyn Verifier>, &str) = if bearer.starts_with(TOKEN_PREFIX) {
            (
                self.tokens.as_deref().map(|t| t as &dyn Verifier),
                "static tokens",
            )
        } else {
            (self.other.as_deref(), "tokens of this kind")
        };
        match verifier {
            Some(v) => v.verify(bearer),
            None => Err(AuthError::BadToken(format!(
                "this server accepts no {kind}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{MemoryTokenStore, Scope};

    /// A verifier accepting one credential, as the OAuth one would a valid JWT.
    #[derive(Debug)]
    struct One;

    impl Verifier for One {
        fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
            if bearer == "jwt" {
                Ok(Identity {
                    agent: "sub".into(),
                    scope: Scope::Admin,
                    tenant: None,
                })
            } else {
                Err(AuthError::BadToken("bad signature".into()))
            }
        }
    }

    #[test]
    fn static_tokens_go_to_the_store_and_others_to_the_other_verifier() {
        let store = Arc::new(MemoryTokenStore::new());
        let (token, info) = store.create("alice", Scope::Work, None, None).unwrap();
        let chain = Verifiers::new().tokens(store.clone()).other(Arc::new(One));
        assert_eq!(chain.verify(token.expose()).unwrap().agent, "alice");
        assert_eq!(chain.verify("jwt").unwrap().agent, "sub");
        assert!(matches!(chain.verify("nope"), Err(AuthError::BadToken(_))));
        store.revoke(&info.id).unwrap();
        assert!(matches!(
            chain.verify(token.expose()),
            Err(AuthError::BadToken(_))
        ));
        assert_eq!(chain.verify(""), Err(AuthError::Missing));
        assert_eq!(
            chain.verify_header(Some("Bearer ")),
            Err(AuthError::Missing)
        );
        let huge = format!("Bearer {}", "a".repeat(MAX_BEARER_BYTES));
        assert!(matches!(
            chain.verify_header(Some(&huge)),
            Err(AuthError::BadToken(_))
        ));
    }

    #[test]
    fn a_chain_without_a_store_refuses_static_tokens() {
        let store = MemoryTokenStore::new();
        let (token, _) = store.create("alice", Scope::Work, None, None).unwrap();
        let chain = Verifiers::new().other(Arc::new(One));
        assert!(matches!(
            chain.verify(token.expose()),
            Err(AuthError::BadToken(_))
        ));
        assert!(matches!(
            Verifiers::new().verify("jwt"),
            Err(AuthError::BadToken(_))
        ));
    }
}
