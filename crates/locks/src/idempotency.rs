//! Idempotency keys: a retried acquire or release with the same key returns its first result
//! (`docs/decisions/0043-idempotency-keys.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, LockRequest, Owner, Resource, Result};

/// The longest key, in bytes (as for tasks and task-file appends).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// How long a manager keeps a key: a retry later than this after the first call runs afresh.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// At most this many lapsed keys are deleted by one keyed call.
pub const IDEMPOTENCY_SWEEP_BATCH: usize = 100;

/// A caller's idempotency key, scoped by the acting agent: two agents using the same key do
/// not collide. The rules of `oc_tasks::IdempotencyKey`: the key is 1 to
/// [`MAX_IDEMPOTENCY_KEY_LEN`] bytes with no control character; the agent 1 to 200 bytes with
/// no control character.
///
/// ```
/// use oc_locks::IdempotencyKey;
/// let k = IdempotencyKey::new("agent-1", "lock-src")?;
/// assert_eq!((k.agent(), k.key()), ("agent-1", "lock-src"));
/// assert!(IdempotencyKey::new("agent-1", "a\nb").unwrap_err().is_invalid_input());
/// # Ok::<(), oc_locks::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct IdempotencyKey {
    agent: String,
    key: String,
}

impl IdempotencyKey {
    /// The key `key` of `agent`; `InvalidInput` naming `idempotency key` or `agent` and the
    /// rule broken.
    pub fn new(agent: impl Into<String>, key: impl Into<String>) -> Result<Self> {
        let (agent, key) = (agent.into(), key.into());
        check("agent", &agent)?;
        check("idempotency key", &key)?;
        Ok(IdempotencyKey { agent, key })
    }

    /// The acting agent the key belongs to.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The key itself.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The [`Error::IdempotencyConflict`] of this key.
    pub fn conflict(&self) -> Error {
        Error::IdempotencyConflict {
            agent: self.agent.clone(),
            key: self.key.clone(),
        }
    }
}

fn check(field: &'static str, s: &str) -> Result<()> {
    let reason = if s.is_empty() {
        "is empty".to_owned()
    } else if s.len() > MAX_IDEMPOTENCY_KEY_LEN {
        format!("is longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes")
    } else if s.chars().any(char::is_control) {
        "contains a control character".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput { field, reason })
}

/// What a keyed call returned: its value, and whether it is the first call's, replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keyed<T> {
    /// The first call's result: a replayed grant is the lock as granted then (its token, its
    /// holds, its `expires_at`, which may have passed), not as it is now.
    pub value: T,
    /// The key was known: nothing was granted or released now.
    pub replayed: bool,
}

impl<T> Keyed<T> {
    /// Maps the value, keeping `replayed`.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Keyed<U> {
        Keyed {
            value: f(self.value),
            replayed: self.replayed,
        }
    }
}

/// Whether `request`, a [`fingerprint`], is an acquire's (a keyed release's is not): what
/// [`release_forgetting`](crate::LockManager::release_forgetting) may give back.
pub fn is_acquire(request: &str) -> bool {
    request.starts_with("acquire")
}

/// A keyed call's request as one text, for managers to compare a retry with the first call
/// (for authors of a manager: [`crate::backend`]). The wait is not part of it: a retry may
/// wait longer. `release` marks a release, otherwise an acquire.
pub fn fingerprint(reqs: &[LockRequest], release: Option<(&Resource, &Owner)>) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    // Lengths first, so no two requests write the same text.
    if let Some((r, o)) = release {
        let _ = write!(
            s,
            "release {}:{} {}:{}",
            r.as_str().len(),
            r.as_str(),
            o.as_str().len(),
            o.as_str()
        );
        return s;
    }
    s.push_str("acquire");
    for q in reqs {
        let ttl = q
            .ttl
            .map_or(-1, |t| i128::try_from(t.as_millis()).unwrap_or(i128::MAX));
        let _ = write!(
            s,
            " {} {ttl} {}:{} {}:{}",
            q.mode.as_str(),
            q.resource.as_str().len(),
            q.resource.as_str(),
            q.owner.as_str().len(),
            q.owner.as_str()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded() {
        let e = |a: &str, k: &str| {
            IdempotencyKey::new(a, k)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(e("a", "k"), Ok(()));
        assert_eq!(e("a", ""), Err("invalid idempotency key: is empty".into()));
        assert_eq!(
            e("a", &"x".repeat(201)),
            Err("invalid idempotency key: is longer than 200 bytes".into())
        );
        assert_eq!(
            e("a", "\u{7}"),
            Err("invalid idempotency key: contains a control character".into())
        );
        assert_eq!(e("", "k"), Err("invalid agent: is empty".into()));
    }

    #[test]
    fn fingerprints_differ() {
        let a = LockRequest::exclusive("r/a", "o").unwrap();
        let b = LockRequest::shared("r/a", "o").unwrap();
        let f = |r: &LockRequest| fingerprint(std::slice::from_ref(r), None);
        assert_eq!(f(&a), f(&a.clone()));
        assert_ne!(f(&a), f(&b));
        assert_ne!(f(&a), f(&a.clone().ttl(Duration::from_secs(5))));
        assert_ne!(f(&a), fingerprint(&[], Some((&a.resource, &a.owner))));
    }
}
