//! Idempotency keys: a retried change with the same key returns its first result
//! (`docs/decisions/0043-idempotency-keys.md`).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Change, Created, Error, LabelFilter, NewTask, Result, Task, TaskId, TaskPatch};

/// The longest key, in bytes (as for task-file appends: `oc_jsonl::MAX_APPEND_KEY_BYTES`).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 200;

/// How long a store keeps a key: a retry later than this after the first call runs afresh.
pub const IDEMPOTENCY_KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// At most this many lapsed keys are deleted by one keyed write (each keyed write sweeps some,
/// so the table stays bounded without a sweep that holds the writer for long).
pub const IDEMPOTENCY_SWEEP_BATCH: usize = 100;

/// A caller's idempotency key, scoped by the acting agent: two agents using the same key do
/// not collide.
///
/// The key is 1 to [`MAX_IDEMPOTENCY_KEY_LEN`] bytes with no control character (the rule of
/// `oc_jsonl::check_append_key`); the agent follows the rule of owners (1 to 200 bytes, no NUL).
///
/// ```
/// use oc_tasks::IdempotencyKey;
/// let k = IdempotencyKey::new("agent-1", "claim-7f3a")?;
/// assert_eq!((k.agent(), k.key()), ("agent-1", "claim-7f3a"));
/// assert!(IdempotencyKey::new("agent-1", "").unwrap_err().is_invalid_input());
/// # Ok::<(), oc_tasks::Error>(())
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
        crate::model::check_agent("agent", &agent)?;
        check_key(&key)?;
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
}

fn check_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "is empty".to_owned()
    } else if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
        format!("is longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes")
    } else if key.chars().any(char::is_control) {
        "contains a control character".to_owned()
    } else {
        return Ok(());
    };
    Err(Error::InvalidInput {
        field: "idempotency key",
        reason,
    })
}

/// What a keyed call returned: its value, and whether it is the first call's, replayed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Keyed<T> {
    /// The first call's result (a replay returns it as it was then, not the task as it is now).
    pub value: T,
    /// The key was known: nothing was written now.
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

    /// Maps the value by a fallible `f`, keeping `replayed`.
    pub fn try_map<U>(self, f: impl FnOnce(T) -> Result<U>) -> Result<Keyed<U>> {
        Ok(Keyed {
            value: f(self.value)?,
            replayed: self.replayed,
        })
    }
}

/// A keyed request, as a store compares it with the request first made under the key.
///
/// For backend authors ([`crate::backend`]): [`KeyedRequest::fingerprint`] is what a store
/// keeps beside the key, and [`KeyedResult`] what it gives back.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyedRequest<'a> {
    /// [`crate::TaskStore::submit_many_keyed`].
    Submit {
        /// The tasks.
        tasks: &'a [NewTask],
    },
    /// [`crate::TaskStore::apply_keyed`].
    Apply {
        /// The task.
        id: &'a TaskId,
        /// The change.
        change: ChangeRequest<'a>,
        /// The version expected: a precondition, not part of the request (a retry that read
        /// the task again after its first call committed expects a later version, and must
        /// still replay), so not in the fingerprint.
        #[serde(skip)]
        expect: Option<u64>,
    },
    /// [`crate::TaskStore::claim_many_keyed`].
    Claim {
        /// The claiming agent.
        owner: &'a str,
        /// The lease, in milliseconds.
        ttl_ms: u128,
        /// How many at most.
        n: usize,
        /// Which labels.
        filter: &'a LabelFilter,
    },
}

/// A [`Change`] as [`KeyedRequest`] writes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
#[non_exhaustive]
#[allow(missing_docs)]
pub enum ChangeRequest<'a> {
    Start {
        agent: &'a str,
    },
    Claim {
        owner: &'a str,
        ttl_ms: u128,
    },
    Heartbeat {
        token: u64,
        ttl_ms: u128,
    },
    Complete {
        token: Option<u64>,
        result: Option<&'a Value>,
    },
    Fail {
        token: Option<u64>,
        error: &'a str,
    },
    Cancel,
    Retry,
    Release {
        token: u64,
    },
    Update {
        patch: &'a TaskPatch,
    },
}

impl<'a> From<&'a Change> for ChangeRequest<'a> {
    fn from(c: &'a Change) -> Self {
        match c {
            Change::Start { agent } => ChangeRequest::Start { agent },
            Change::Claim { owner, ttl } => ChangeRequest::Claim {
                owner,
                ttl_ms: ttl.as_millis(),
            },
            Change::Heartbeat { token, ttl } => ChangeRequest::Heartbeat {
                token: *token,
                ttl_ms: ttl.as_millis(),
            },
            Change::Complete { token, result } => ChangeRequest::Complete {
                token: *token,
                result: result.as_ref(),
            },
            Change::Fail { token, error } => ChangeRequest::Fail {
                token: *token,
                error,
            },
            Change::Cancel => ChangeRequest::Cancel,
            Change::Retry => ChangeRequest::Retry,
            Change::Release { token } => ChangeRequest::Release { token: *token },
            Change::Update(patch) => ChangeRequest::Update { patch },
        }
    }
}

impl KeyedRequest<'_> {
    /// The fingerprint of a keyed [`Change`] of task `id`, once the change is checked: what
    /// every backend's `apply_keyed` compares a retry with.
    pub fn apply(id: &TaskId, change: &Change, expect: Option<u64>) -> Result<String> {
        change.validate()?;
        KeyedRequest::Apply {
            id,
            change: ChangeRequest::from(change),
            expect,
        }
        .fingerprint()
    }

    /// The claim change and the fingerprint of a keyed claim of up to `n` tasks matching
    /// `filter`, once both are checked: what every backend's `claim_many_keyed` runs and
    /// compares a retry with.
    pub fn claim(
        owner: &str,
        ttl: Duration,
        n: usize,
        filter: &LabelFilter,
    ) -> Result<(Change, String)> {
        let change = Change::Claim {
            owner: owner.into(),
            ttl,
        };
        change.validate()?;
        filter.validate()?;
        let request = KeyedRequest::Claim {
            owner,
            ttl_ms: ttl.as_millis(),
            n,
            filter,
        }
        .fingerprint()?;
        Ok((change, request))
    }

    /// The request as one JSON text: two requests are the same request when their
    /// fingerprints are equal. Stores keep it beside the key, bounded as the request is.
    pub fn fingerprint(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidInput {
            field: "request",
            reason: e.to_string(),
        })
    }
}

/// What a store keeps as a keyed call's first result, and gives back on a retry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeyedResult {
    /// Of [`KeyedRequest::Submit`].
    Submit(Vec<Created>),
    /// Of [`KeyedRequest::Apply`].
    Apply(Box<Task>),
    /// Of [`KeyedRequest::Claim`].
    Claim(Vec<Task>),
}

impl KeyedResult {
    /// As JSON, to store.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::InvalidInput {
            field: "result",
            reason: e.to_string(),
        })
    }

    /// From what [`KeyedResult::to_json`] stored; `Corrupt` naming the key otherwise.
    pub fn from_json(key: &IdempotencyKey, s: &str) -> Result<Self> {
        serde_json::from_str(s).map_err(|e| Error::Corrupt {
            id: format!("idempotency key {:?} of {:?}", key.key, key.agent),
            reason: e.to_string(),
        })
    }

    /// The tasks of a submit; `IdempotencyConflict` for another kind.
    pub fn submit(self, key: &IdempotencyKey) -> Result<Vec<Created>> {
        match self {
            KeyedResult::Submit(v) => Ok(v),
            _ => Err(conflict(key)),
        }
    }

    /// The task of an apply; `IdempotencyConflict` for another kind.
    pub fn apply(self, key: &IdempotencyKey) -> Result<Task> {
        match self {
            KeyedResult::Apply(v) => Ok(*v),
            _ => Err(conflict(key)),
        }
    }

    /// The tasks of a claim; `IdempotencyConflict` for another kind.
    pub fn claim(self, key: &IdempotencyKey) -> Result<Vec<Task>> {
        match self {
            KeyedResult::Claim(v) => Ok(v),
            _ => Err(conflict(key)),
        }
    }
}

impl KeyedResult {
    /// A claim that claimed nothing: what
    /// [`claim_many_keyed_granted`](crate::TaskStore::claim_many_keyed_granted) does not record.
    pub fn is_empty_claim(&self) -> bool {
        matches!(self, KeyedResult::Claim(v) if v.is_empty())
    }
}

/// The outcome of the release in [`release_forgetting`](crate::TaskStore::release_forgetting):
/// the task released, `None` when the lease was no longer the caller's (a lost lease, a task
/// not running any more or deleted), any other error as it was. Every backend maps its release
/// through this, so they agree on when the key is forgotten with the task left alone.
pub fn given_back(released: Result<Task>) -> Result<Option<Task>> {
    match released {
        Ok(t) => Ok(Some(t)),
        Err(Error::LeaseLost { .. } | Error::InvalidTransition { .. } | Error::NotFound { .. }) => {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// The [`Error::IdempotencyConflict`] of `key`.
pub fn conflict(key: &IdempotencyKey) -> Error {
    Error::IdempotencyConflict {
        agent: key.agent.clone(),
        key: key.key.clone(),
    }
}

/// The [`Error::IdempotencyUnsupported`] a store without keys answers.
pub(crate) fn unsupported() -> Error {
    Error::IdempotencyUnsupported
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(agent: &str, key: &str, want: std::result::Result<(), &str>) {
        let got = IdempotencyKey::new(agent, key)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(
            got.as_ref().map(|_| ()).map_err(String::as_str),
            want,
            "{agent:?} {key:?}"
        );
    }

    #[test]
    fn keys_are_bounded() {
        check("a", "k", Ok(()));
        check("a", &"k".repeat(200), Ok(()));
        check("a", "", Err("invalid idempotency key: is empty"));
        check(
            "a",
            &"k".repeat(201),
            Err("invalid idempotency key: is longer than 200 bytes"),
        );
        check(
            "a",
            "k\n",
            Err("invalid idempotency key: contains a control character"),
        );
        check("", "k", Err("invalid agent: must not be empty"));
    }

    #[test]
    fn fingerprints_tell_requests_apart() {
        let id = TaskId::new("t").unwrap();
        let a = Change::Complete {
            token: Some(1),
            result: None,
        };
        let b = Change::Complete {
            token: Some(2),
            result: None,
        };
        let f = |c: &Change| {
            KeyedRequest::Apply {
                id: &id,
                change: c.into(),
                expect: None,
            }
            .fingerprint()
            .unwrap()
        };
        assert_eq!(f(&a), f(&a.clone()));
        assert_ne!(f(&a), f(&b));
        let expecting = KeyedRequest::Apply {
            id: &id,
            change: (&a).into(),
            expect: Some(3),
        };
        assert_eq!(
            expecting.fingerprint().unwrap(),
            f(&a),
            "expect is a precondition"
        );
    }
}
