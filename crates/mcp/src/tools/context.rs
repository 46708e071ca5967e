//! What a running call may do besides answering ([`CallContext`]), and what it took
//! ([`Took`]): the holds and claims given back when its answer never reaches its client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};

use oc_auth::Identity;
use oc_locks::{Lock, Owner, Resource};
use oc_tasks::TaskId;

/// A hold a call took: given back when its answer cannot be delivered, if still held with
/// this fencing token.
#[derive(Debug, Clone)]
pub(crate) struct Taken {
    pub(crate) resource: Resource,
    pub(crate) owner: Owner,
    pub(crate) token: u64,
}

impl Taken {
    pub(crate) fn of(lock: &Lock) -> Taken {
        Taken {
            resource: lock.resource.clone(),
            owner: lock.owner.clone(),
            token: lock.token,
        }
    }
}

/// What a call took (holds granted) and gave back (holds released), in order.
#[derive(Debug, Default)]
pub(crate) struct Took {
    pub(crate) taken: Vec<Taken>,
    pub(crate) released: Vec<(Resource, Owner)>,
    /// Tasks claimed.
    pub(crate) claims: Vec<Claimed>,
}

/// A task a call claimed (not replayed): given back when its answer cannot be delivered.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub(crate) id: TaskId,
    /// The fencing token of the claim: a lease with another is not this call's.
    pub(crate) token: u64,
    /// The idempotency key it was claimed under, forgotten when it is given back.
    pub(crate) key: Option<oc_tasks::IdempotencyKey>,
}

/// What a running call may do besides answering: report progress (sent to the client only when
/// its request asked for it), learn that the client cancelled it, and record what it took (to
/// be given back if its answer never reaches the client).
pub struct CallContext<'a> {
    progress: &'a (dyn Fn(f64, Option<f64>, &str) + Sync),
    cancelled: &'a AtomicBool,
    identity: &'a Identity,
    took: Mutex<Took>,
}

/// The identity of a call that names none: the local process ([`Identity::local`]).
static LOCAL: LazyLock<Identity> = LazyLock::new(Identity::local);

impl std::fmt::Debug for CallContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallContext")
            .field("cancelled", &self.is_cancelled())
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl<'a> CallContext<'a> {
    /// A context reporting progress to `progress` (done so far, the total if known, a message;
    /// done strictly increases) and cancelled once `cancelled` is set. The call runs as the
    /// local process ([`Identity::local`]) unless [`CallContext::as_identity`] says otherwise.
    pub fn new(
        progress: &'a (dyn Fn(f64, Option<f64>, &str) + Sync),
        cancelled: &'a AtomicBool,
    ) -> CallContext<'a> {
        CallContext {
            progress,
            cancelled,
            identity: &LOCAL,
            took: Mutex::new(Took::default()),
        }
    }

    /// Runs the call as `identity`: what it may do and which agent it acts as.
    pub fn as_identity(mut self, identity: &'a Identity) -> CallContext<'a> {
        self.identity = identity;
        self
    }

    /// Who the call runs as.
    pub fn identity(&self) -> &Identity {
        self.identity
    }

    /// Records locks the call was granted, to release should its answer not be delivered.
    pub(crate) fn took(&self, locks: &[Lock]) {
        self.took
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .taken
            .extend(locks.iter().map(Taken::of));
    }

    /// Records a task the call claimed, to release should its answer not be delivered.
    pub(crate) fn claimed(&self, claim: Claimed) {
        self.took
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .claims
            .push(claim);
    }

    /// Records a hold the call released (so a batch does not give back, a second time, a hold
    /// an earlier call of it took).
    pub(crate) fn released(&self, resource: &Resource, owner: &Owner) {
        self.took
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .released
            .push((resource.clone(), owner.clone()));
    }

    /// What the call took and released.
    pub(crate) fn into_took(self) -> Took {
        self.took
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports progress.
    pub fn report(&self, done: f64, total: Option<f64>, message: &str) {
        (self.progress)(done, total, message);
    }

    /// Whether the client cancelled the call.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}
