//! What every [`TokenStore`](crate::TokenStore) backend shares: the token's format, minting,
//! parsing a presented token, and judging it against the stored row. A backend stores rows and
//! reads one by id; everything it decides goes through here, so that every store refuses the
//! same tokens for the same reasons.
//!
//! A token is `oct_<id>_<secret>`: [`TOKEN_PREFIX`], a public id of 16 lowercase hex digits
//! (64 random bits, the row's key), `_`, and a secret of 64 lowercase hex digits (256 bits from
//! the operating system's generator). Only the SHA-256 of the secret is stored: the secret is
//! high-entropy, so a fast hash is enough, and a leaked table gives nothing to sign in with.

use std::fmt;
use std::time::Duration;

use oc_time::Timestamp;
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{AuthError, Identity, Scope, Tenant};

/// What every static token starts with.
pub const TOKEN_PREFIX: &str = "oct_";
/// The length of a token's public id, in hex digits.
pub const ID_LEN: usize = 16;
/// The length of a token's secret, in hex digits (256 bits).
pub const SECRET_LEN: usize = 64;
/// The length of a whole token.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + ID_LEN + 1 + SECRET_LEN;
/// The longest agent name a token may be issued to, in bytes: the task store's limit on agent
/// and owner names (`oc_tasks`), so a token never names an agent the store would refuse.
pub const MAX_AGENT_BYTES: usize = 1024;
/// A token's `last_used_at` is written at most this often, so a busy token costs one write a
/// minute, not one per request.
pub const LAST_USED_EVERY: Duration = Duration::from_secs(60);

/// How many times a store draws a new id when the one drawn is taken (64 random bits: in
/// practice never).
pub const MINT_ATTEMPTS: usize = 4;

/// A token as shown once, at creation: the whole `oct_<id>_<secret>` text. Its `Debug` shows
/// only the public id.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The whole token, to print once or to send as `Authorization: Bearer <token>`.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The whole token, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let id = self.0.get(TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + ID_LEN);
        write!(f, "Secret({TOKEN_PREFIX}{}_***)", id.unwrap_or("?"))
    }
}

/// A new token: what the store keeps (`id`, `hash`) and what the caller is shown once
/// (`secret`).
#[derive(Debug)]
pub struct Minted {
    /// The public id (the row's key).
    pub id: String,
    /// The SHA-256 of the secret part.
    pub hash: [u8; 32],
    /// The whole token.
    pub secret: Secret,
}

/// Draws a new token from the operating system's generator.
pub fn mint() -> Result<Minted, AuthError> {
    let mut id = [0u8; ID_LEN / 2];
    let mut secret = [0u8; SECRET_LEN / 2];
    let mut os = rand::rngs::OsRng;
    os.try_fill_bytes(&mut id)
        .and_then(|()| os.try_fill_bytes(&mut secret))
        .map_err(|e| {
            AuthError::Backend(format!(
                "the operating system's random generator failed: {e}"
            ))
        })?;
    let (id, secret) = (hex(&id), hex(&secret));
    let hash = digest(&secret);
    Ok(Minted {
        secret: Secret(format!("{TOKEN_PREFIX}{id}_{secret}")),
        id,
        hash,
    })
}

fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for &x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 15)]));
    }
    s
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

fn is_lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A token as presented: its public id and the hash of its secret part.
pub struct Presented {
    /// The public id, to find the row by.
    pub id: String,
    hash: [u8; 32],
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Presented {
    /// Reads a presented token; anything not of the token's exact shape is
    /// [`AuthError::BadToken`], decided from its length and bytes before anything is stored or
    /// hashed.
    pub fn parse(bearer: &str) -> Result<Presented, AuthError> {
        let bad = |why: &str| Err(AuthError::BadToken(format!("not a static token: {why}")));
        if bearer.len() != TOKEN_LEN {
            return bad(&format!("{} bytes, not {TOKEN_LEN}", bearer.len()));
        }
        let Some(rest) = bearer.strip_prefix(TOKEN_PREFIX) else {
            return bad(&format!("it does not start with {TOKEN_PREFIX}"));
        };
        let (id, sep, secret) = (
            rest.get(..ID_LEN),
            rest.get(ID_LEN..=ID_LEN),
            rest.get(ID_LEN + 1..),
        );
        match (id, sep, secret) {
            (Some(id), Some("_"), Some(secret)) if is_lower_hex(id) && is_lower_hex(secret) => {
                Ok(Presented {
                    id: id.to_owned(),
                    hash: digest(secret),
                })
            }
            _ => bad("its id and secret are not lowercase hex digits"),
        }
    }
}

/// Checks a token's public id as given to `revoke` (16 lowercase hex digits).
pub fn check_id(id: &str) -> Result<(), AuthError> {
    if id.len() == ID_LEN && is_lower_hex(id) {
        Ok(())
    } else {
        Err(AuthError::Invalid {
            what: "token id",
            reason: format!(
                "{:?} is not {ID_LEN} lowercase hex digits",
                id.chars().take(40).collect::<String>()
            ),
        })
    }
}

/// What the agents of OAuth identities start with (`oauth:` then the token's agent claim):
/// a static token may not be issued to such a name, so that no OAuth token, whatever its
/// claims, acts as an agent a static token stands for, nor the other way round.
pub const OAUTH_AGENT_PREFIX: &str = "oauth:";

/// Checks an agent name a token is issued to, by the task store's rules: 1 to
/// [`MAX_AGENT_BYTES`] bytes, no NUL; and not in the OAuth identities' namespace
/// ([`OAUTH_AGENT_PREFIX`]).
pub fn check_agent(agent: &str) -> Result<(), AuthError> {
    let reason = if agent.is_empty() {
        "must not be empty".to_owned()
    } else if agent.starts_with(OAUTH_AGENT_PREFIX) {
        format!("must not start with {OAUTH_AGENT_PREFIX} (the agents of OAuth tokens)")
    } else if agent.len() > MAX_AGENT_BYTES {
        format!("must be at most {MAX_AGENT_BYTES} bytes")
    } else if agent.contains('\0') {
        "must not contain NUL".to_owned()
    } else {
        return Ok(());
    };
    Err(AuthError::Invalid {
        what: "agent",
        reason,
    })
}

/// A stored row: what the store knows of a token, and the hash of its secret. Its `Debug`
/// leaves the hash out.
#[derive(Clone)]
pub struct StoredToken {
    /// Everything but the hash.
    pub info: TokenInfo,
    /// The SHA-256 of the secret part.
    pub hash: [u8; 32],
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// What a store knows of a token, without its secret or hash: what `list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The public id (the part after `oct_`, before the secret).
    pub id: String,
    /// The agent it acts as.
    pub agent: String,
    /// What it may do.
    pub scope: Scope,
    /// The store it reaches; `None` is the default.
    pub tenant: Option<Tenant>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops being accepted, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last accepted (written at most once per [`LAST_USED_EVERY`]).
    pub last_used_at: Option<Timestamp>,
}

impl TokenInfo {
    /// Whether it is accepted at `now`: neither revoked nor expired (an expiry at `now` has
    /// passed).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

/// The identity `presented` stands for, given the row found by its id (`None`: no such row)
/// at `now`: the hash compared in constant time, then revocation, then expiry.
pub fn judge(
    presented: &Presented,
    stored: Option<&StoredToken>,
    now: Timestamp,
) -> Result<Identity, AuthError> {
    let Some(stored) = stored else {
        return Err(AuthError::BadToken(format!(
            "no token has id {}",
            presented.id
        )));
    };
    if !bool::from(stored.hash.ct_eq(&presented.hash)) {
        return Err(AuthError::BadToken(format!(
            "wrong secret for token {}",
            presented.id
        )));
    }
    let info = &stored.info;
    if let Some(at) = info.revoked_at {
        return Err(AuthError::BadToken(format!(
            "token {} was revoked at {at}",
            info.id
        )));
    }
    if let Some(at) = info.expires_at.filter(|e| now >= *e) {
        return Err(AuthError::BadToken(format!(
            "token {} expired at {at}",
            info.id
        )));
    }
    Ok(Identity {
        agent: info.agent.clone(),
        scope: info.scope,
        tenant: info.tenant.clone(),
    })
}

/// Whether a token last used at `last` should have `last_used_at` written at `now`.
pub fn touch_due(last: Option<Timestamp>, now: Timestamp) -> bool {
    last.is_none_or(|l| now.since(l) >= LAST_USED_EVERY)
}

/// A row's scope read back from its text.
pub fn scope_of(s: &str) -> Result<Scope, AuthError> {
    Scope::parse(s).map_err(|_| AuthError::Backend(format!("a stored token has scope {s:?}")))
}

/// A row's tenant read back from its text.
pub fn tenant_of(s: Option<&str>) -> Result<Option<Tenant>, AuthError> {
    s.map(|t| {
        Tenant::new(t).map_err(|_| AuthError::Backend(format!("a stored token has tenant {t:?}")))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_minted_token_parses_and_its_debug_hides_the_secret() {
        let m = mint().unwrap();
        let t = m.secret.expose();
        assert_eq!(t.len(), TOKEN_LEN);
        assert!(t.starts_with(&format!("{TOKEN_PREFIX}{}_", m.id)));
        let p = Presented::parse(t).unwrap();
        assert_eq!((p.id.as_str(), p.hash), (m.id.as_str(), m.hash));
        let secret_part = &t[TOKEN_PREFIX.len() + ID_LEN + 1..];
        for shown in [
            format!("{m:?}"),
            format!("{p:?}"),
            format!("{:?}", m.secret),
        ] {
            assert!(!shown.contains(secret_part), "{shown}");
            assert!(shown.contains(&m.id), "{shown}");
        }
        assert_ne!(mint().unwrap().secret, m.secret);
    }

    #[test]
    fn malformed_tokens_are_bad_tokens() {
        let good = mint().unwrap().secret.into_string();
        let upper = good.to_ascii_uppercase().replacen("OCT_", "oct_", 1);
        let moved = good.replacen('_', "-", 2);
        let short = &good[..TOKEN_LEN - 1];
        let wide = format!("{}é", &good[..TOKEN_LEN - 2]);
        for bad in [
            "",
            "oct_",
            short,
            &upper,
            &moved,
            &wide,
            &"a".repeat(1 << 20),
        ] {
            assert!(
                matches!(Presented::parse(bad), Err(AuthError::BadToken(_))),
                "{bad:.40}"
            );
        }
    }

    #[test]
    fn agents_follow_the_task_stores_limits() {
        assert!(check_agent("a").is_ok());
        assert!(check_agent(&"a".repeat(MAX_AGENT_BYTES)).is_ok());
        for bad in ["", "a\0b", &"a".repeat(MAX_AGENT_BYTES + 1)] {
            assert!(matches!(
                check_agent(bad),
                Err(AuthError::Invalid { what: "agent", .. })
            ));
        }
    }

    #[test]
    fn last_used_is_written_once_a_minute() {
        let t = Timestamp::from_millis(1_000_000);
        assert!(touch_due(None, t));
        assert!(!touch_due(
            Some(t),
            t.saturating_add(Duration::from_secs(59))
        ));
        assert!(touch_due(Some(t), t.saturating_add(LAST_USED_EVERY)));
    }
}
