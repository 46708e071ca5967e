//! Static bearer tokens: the [`TokenStore`] trait and [`MemoryTokenStore`], its reference.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use oc_time::{Clock, SystemClock, Timestamp};
use parking_lot::Mutex;

use crate::backend::{
    MINT_ATTEMPTS, Minted, Presented, Secret, StoredToken, TokenInfo, check_agent, check_id, judge,
    mint, touch_due,
};
use crate::{AuthError, Identity, Scope, Tenant, Verifier};

/// A store of static bearer tokens (`oct_…`), for `oc token` and the servers that accept them.
///
/// Every store is a [`Verifier`]: `verify` finds the row by the token's public id, compares the
/// SHA-256 of its secret in constant time, and refuses a revoked or expired token on the very
/// call after the revocation or expiry, from any handle on the same storage (no cache). It
/// writes `last_used_at` at most once per [`LAST_USED_EVERY`](crate::backend::LAST_USED_EVERY).
/// A malformed token is [`AuthError::BadToken`], decided before the storage is read.
///
/// Object-safe and synchronous: servers hold an `Arc<dyn TokenStore>`.
pub trait TokenStore: Verifier {
    /// Creates a token for `agent` (1 to 1,024 bytes, no NUL: the task store's rule) with
    /// `scope`, reaching `tenant` (`None`: the default store), accepted until `expires_at`
    /// (`None`: until revoked). Returns the whole token, which is never shown again (only its
    /// hash is kept), and what [`list`](Self::list) will show of it.
    fn create(
        &self,
        agent: &str,
        scope: Scope,
        tenant: Option<Tenant>,
        expires_at: Option<Timestamp>,
    ) -> Result<(Secret, TokenInfo), AuthError>;

    /// Every token, revoked and expired ones included, oldest first; never a secret or hash.
    fn list(&self) -> Result<Vec<TokenInfo>, AuthError>;

    /// The token with public id `id`, if there is one.
    fn get(&self, id: &str) -> Result<Option<TokenInfo>, AuthError>;

    /// Revokes the token with public id `id`: refused from the next `verify` on, by every
    /// handle. Revoking a revoked token changes nothing. [`AuthError::NotFound`] when no token
    /// has that id; [`AuthError::Invalid`] when `id` is not an id's shape.
    fn revoke(&self, id: &str) -> Result<TokenInfo, AuthError>;
}

/// `NotFound` for `id`.
pub(crate) fn not_found(id: &str) -> AuthError {
    AuthError::NotFound {
        id: id.chars().take(40).collect(),
    }
}

/// The reference [`TokenStore`]: a map behind one mutex, in this process only. Clones share
/// the tokens (as two handles on one file would).
///
/// ```
/// use oc_auth::{MemoryTokenStore, Scope, TokenStore, Verifier};
/// let store = MemoryTokenStore::new();
/// let (token, info) = store.create("agent-7", Scope::Work, None, None)?;
/// let who = store.verify(token.expose())?;
/// assert_eq!((who.agent.as_str(), who.scope), ("agent-7", Scope::Work));
/// store.revoke(&info.id)?;
/// assert!(store.verify(token.expose()).is_err());
/// # Ok::<(), oc_auth::AuthError>(())
/// ```
#[derive(Clone)]
pub struct MemoryTokenStore {
    rows: Arc<Mutex<HashMap<String, StoredToken>>>,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MemoryTokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryTokenStore")
            .field("tokens", &self.rows.lock().len())
            .finish_non_exhaustive()
    }
}

impl Default for MemoryTokenStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTokenStore {
    /// An empty store on the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// An empty store on `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        MemoryTokenStore {
            rows: Arc::default(),
            clock,
        }
    }
}

impl Verifier for MemoryTokenStore {
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError> {
        let presented = Presented::parse(bearer)?;
        let now = self.clock.now();
        let mut rows = self.rows.lock();
        let row = rows.get_mut(&presented.id);
        let who = judge(&presented, row.as_deref(), now)?;
        if let Some(row) = row
            && touch_due(row.info.last_used_at, now)
        {
            row.info.last_used_at = Some(now);
        }
        Ok(who)
    }
}

impl TokenStore for MemoryTokenStore {
    fn create(
        &self,
        agent: &str,
        scope: Scope,
        tenant: Option<Tenant>,
        expires_at: Option<Timestamp>,
    ) -> Result<(Secret, TokenInfo), AuthError> {
        check_agent(agent)?;
        for _ in 0..MINT_ATTEMPTS {
            let Minted { id, hash, secret } = mint()?;
            let mut rows = self.rows.lock();
            if rows.contains_key(&id) {
                continue;
            }
            let info = TokenInfo {
                id: id.clone(),
                agent: agent.to_owned(),
                scope,
                tenant: tenant.clone(),
                created_at: self.clock.now(),
                expires_at,
                revoked_at: None,
                last_used_at: None,
            };
            rows.insert(
                id,
                StoredToken {
                    info: info.clone(),
                    hash,
                },
            );
            return Ok((secret, info));
        }
        Err(AuthError::Backend(
            "every id drawn for a new token was taken".to_owned(),
        ))
    }

    fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let mut all: Vec<TokenInfo> = self.rows.lock().values().map(|r| r.info.clone()).collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(all)
    }

    fn get(&self, id: &str) -> Result<Option<TokenInfo>, AuthError> {
        check_id(id)?;
        Ok(self.rows.lock().get(id).map(|r| r.info.clone()))
    }

    fn revoke(&self, id: &str) -> Result<TokenInfo, AuthError> {
        check_id(id)?;
        let now = self.clock.now();
        let mut rows = self.rows.lock();
        let row = rows.get_mut(id).ok_or_else(|| not_found(id))?;
        row.info.revoked_at.get_or_insert(now);
        Ok(row.info.clone())
    }
}
