//! A JSON-RPC batch ([`Batch`]): accepted only in sessions negotiated at
//! [`BATCH_VERSION`](super::BATCH_VERSION); its messages run in order, none waits.

use std::sync::atomic::AtomicBool;

use serde_json::Value;

use super::{Incoming, Server};
use crate::tools::Taken;

/// A JSON-RPC batch accepted: what each of its messages asks, in order.
#[derive(Debug)]
pub struct Batch {
    pub(super) items: Vec<Incoming>,
}

impl Batch {
    /// The messages it holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether it holds none (never, once accepted).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The request ids its `notifications/cancelled` name: none of its own calls (they run
    /// one after another, none waits in [`serve`](super::serve)), so a transport routes them to the calls it
    /// runs beside the batch, as it does a cancellation sent on its own.
    pub fn cancels(&self) -> impl Iterator<Item = &Value> {
        self.items.iter().filter_map(|item| match item {
            Incoming::Cancel(id) => Some(id),
            _ => None,
        })
    }

    /// Runs every message in order and hands `deliver` one array of the answers (nothing when
    /// all were notifications); its cancellations are not acted on here ([`Batch::cancels`]).
    /// With `waits` false, a call that would wait is refused (`TOO_MANY_WAITS`: [`serve`](super::serve)
    /// never blocks its reading on a batch).
    ///
    /// When the array is not delivered, what each call took and still holds is given back, as
    /// for a call on its own ([`PendingCall::run_and_deliver`](super::PendingCall::run_and_deliver)): a hold a later call of the
    /// same batch released (`[lock_acquire R, lock_release R]`) was given back already and is
    /// not released a second time.
    pub fn run(
        self,
        server: &Server,
        waits: bool,
        notify: &(dyn Fn(String) + Sync),
        cancelled: &AtomicBool,
        deliver: &mut dyn FnMut(&str) -> bool,
    ) -> bool {
        let mut lines = Vec::new();
        let mut taken: Vec<Taken> = Vec::new();
        let mut claims = Vec::new();
        for item in self.items {
            match item {
                Incoming::Answer(a) => lines.extend(a),
                Incoming::Cancel(_) | Incoming::Batch(_) => {}
                Incoming::Call(call) if !waits && call.may_wait(server) => {
                    lines.push(call.refuse(
                        server,
                        "TOO_MANY_WAITS",
                        "a call in a batch does not wait: send lock_acquire with wait_ms on its own, or with wait_ms 0".into(),
                    ));
                }
                Incoming::Call(call) => {
                    let (answer, took) = call.execute(server, notify, cancelled);
                    lines.extend(answer);
                    // A release undoes the batch's latest take of that lock by that owner.
                    for (resource, owner) in took.released {
                        if let Some(i) = taken
                            .iter()
                            .rposition(|t| t.resource == resource && t.owner == owner)
                        {
                            taken.remove(i);
                        }
                    }
                    taken.extend(took.taken);
                    claims.extend(took.claims);
                }
            }
        }
        if lines.is_empty() {
            server.toolbox.give_back(&taken);
            server.toolbox.give_back_claims(&claims);
            return false;
        }
        let delivered = deliver(&format!("[{}]", lines.join(",")));
        if !delivered {
            server.toolbox.give_back(&taken);
            server.toolbox.give_back_claims(&claims);
        }
        delivered
    }
}
