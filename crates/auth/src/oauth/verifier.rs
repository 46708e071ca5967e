//! [`JwtVerifier`]: an OAuth 2.1 JWT access token turned into an [`Identity`].

use std::sync::Arc;

use oc_time::{Clock, SystemClock};
use serde_json::{Map, Value};

use super::config::OAuthConfig;
use super::jws::{self, shown};
use super::keys::KeySource;
use crate::{AuthError, Identity, Tenant, Verifier};

/// The longest agent name a token may carry.
const MAX_AGENT: usize = 256;

/// What every OAuth identity's agent starts with ([`crate::OAUTH_AGENT_PREFIX`]): a token
/// whose claim says `alice` acts as `oauth:alice`, never as the `alice` of a static token
/// (whose agents may not start with it).
const PREFIX: &str = crate::OAUTH_AGENT_PREFIX;

/// Checks JWT access tokens from one issuer (RFC 9068 profile, RFC 7519 claims):
/// the signature with the issuer's keys, then `iss`, `aud` (this server's resource URL),
/// `exp`, `nbf` and `iat`, then maps the agent, tenant and scope claims.
///
/// Every refusal of the token is [`AuthError::BadToken`] (HTTP 401), but a token granting none
/// of the server's scopes, which is [`AuthError::InsufficientScope`] (HTTP 403), and keys that
/// could never be fetched, which is [`AuthError::Backend`].
pub struct JwtVerifier {
    config: OAuthConfig,
    clock: Arc<dyn Clock>,
    keys: KeySource,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuer", &self.config.issuer)
            .field("audience", &self.config.audience)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier on the system clock. Fetches nothing until the first token.
    pub fn new(config: OAuthConfig) -> Result<JwtVerifier, AuthError> {
        JwtVerifier::with_clock(config, Arc::new(SystemClock))
    }

    /// A verifier reading time from `clock` (expiry and the refetch interval).
    pub fn with_clock(
        config: OAuthConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<JwtVerifier, AuthError> {
        config.validate()?;
        let keys = KeySource::new(&config, clock.clone());
        Ok(JwtVerifier {
            config,
            clock,
            keys,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OAuthConfig {
        &self.config
    }

    /// Checks what the claims say before the key is looked up, so that a token for another
    /// issuer, audience or time costs no fetch. They are trusted only once the signature is.
    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), String> {
        match claims.get("iss") {
            Some(Value::String(iss)) if *iss == self.config.issuer => {}
            Some(Value::String(iss)) => return Err(format!("it was issued by {}", shown(iss))),
            _ => return Err("it has no iss".into()),
        }
        let aud_ok = match claims.get("aud") {
            Some(Value::String(a)) => *a == self.config.audience,
            Some(Value::Array(all)) => all.iter().any(|a| *a == *self.config.audience),
            _ => return Err("it has no aud".into()),
        };
        if !aud_ok {
            return Err(format!(
                "it is for another audience, not {}",
                self.config.audience
            ));
        }
        let now = self.clock.now().as_millis();
        let leeway = i64::try_from(self.config.leeway.as_millis()).unwrap_or(i64::MAX);
        let exp = date(claims, "exp")?.ok_or("it has no exp")?;
        if now >= exp.saturating_add(leeway) {
            return Err("it has expired".into());
        }
        if let Some(nbf) = date(claims, "nbf")?
            && now.saturating_add(leeway) < nbf
        {
            return Err("it is not valid yet (nbf)".into());
        }
        if let Some(iat) = date(claims, "iat")?
            && now.saturating_add(leeway) < iat
        {
            return Err("it was issued in the future (iat)".into());
        }
        Ok(())
    }

    fn identity(&self, claims: &Map<String, Value>) -> Result<Identity, AuthError> {
        let bad = AuthError::BadToken;
        let agent = match claims.get(&self.config.agent_claim) {
            Some(Value::String(a))
                if !a.is_empty() && a.len() <= MAX_AGENT && !a.chars().any(char::is_control) =>
            {
                format!("{PREFIX}{a}")
            }
            Some(Value::String(_)) => {
                return Err(bad(format!(
                    "its {} is empty, over {MAX_AGENT} bytes or has control characters",
                    self.config.agent_claim
                )));
            }
            _ => {
                return Err(bad(format!(
                    "it has no string {} naming the agent",
                    self.config.agent_claim
                )));
            }
        };
        let tenant = match &self.config.tenant_claim {
            None => None,
            Some(name) => match claims.get(name) {
                Some(Value::String(t)) => Some(
                    Tenant::new(t)
                        .map_err(|e| bad(format!("its {name} does not name a tenant: {e}")))?,
                ),
                _ => return Err(bad(format!("it has no string {name} naming the tenant"))),
            },
        };
        let scopes = &self.config.scopes;
        let granted = claims.get("scope").or_else(|| claims.get("scp"));
        let scope = match granted {
            Some(Value::String(s)) => scopes.highest(s.split(' ')),
            Some(Value::Array(a)) => scopes.highest(a.iter().filter_map(Value::as_str)),
            _ => None,
        };
        let Some(scope) = scope else {
            return Err(AuthError::InsufficientScope {
                needed: scopes.name_for(crate::Scope::Read).to_owned(),
            });
        };
        Ok(Identity {
            agent,
            scope,
            tenant,
        })
    }
}

/// A NumericDate claim (seconds, possibly fractional) in milliseconds, if present.
fn date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            // `as` saturates: a date past the range of i64 milliseconds is the end of time.
            Some(secs) if secs.is_finite() => Ok(Some((secs * 1000.0) as i64)),
            _ => Err(format!("its {name} is not a number of seconds")),
        },
    }
}

impl Verifier for JwtVerifier {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let bad = AuthError::BadToken;
        let token = jws::parse(bearer).map_err(|e| bad(format!("not a JWT: {e}")))?;
        self.check_claims(&token.claims).map_err(bad)?;
        let key = self.keys.key_for(token.kid.as_deref(), token.alg)?;
        token.verify_with(&key).map_err(bad)?;
        self.identity(&token.claims)
    }
}
