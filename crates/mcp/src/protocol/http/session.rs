//! A handshake-era session: its own [`Server`], its waiting calls, and the replay log of its
//! streams (for `Last-Event-ID`).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde_json::Value;

use crate::protocol::Server;

/// Streams of a session kept for resumption (`Last-Event-ID`), the newest.
pub(super) const STREAMS_KEPT: usize = 16;
/// Events kept per stream for resumption, the newest (the result is always the last).
const EVENTS_KEPT: usize = 64;

#[derive(Debug)]
pub(super) struct Session {
    pub(super) server: Server,
    pub(super) state: Mutex<SessionState>,
}

#[derive(Debug)]
pub(super) struct SessionState {
    pub(super) last_used: Instant,
    /// Waiting calls by request id (its JSON text) and the flag that cancels each. Delivering
    /// an answer and cancelling happen under this lock, as in [`serve`](crate::protocol::serve).
    pub(super) waiting: HashMap<String, Arc<AtomicBool>>,
    pub(super) streams: VecDeque<StreamLog>,
    pub(super) next_stream: u64,
}

/// The events one SSE stream sent, for resumption.
#[derive(Debug)]
pub(super) struct StreamLog {
    pub(super) id: u64,
    pub(super) events: VecDeque<(u64, String)>,
    pub(super) next: u64,
}

impl Session {
    pub(super) fn cancel(&self, id: &Value) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(flag) = st.waiting.get(&id.to_string()) {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Ends the session: its waiting calls stop (and take nothing).
    pub(super) fn close(&self) {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for flag in st.waiting.values() {
            flag.store(true, Ordering::SeqCst);
        }
    }

    /// Drops from `stream`'s replay log the answer to the request `id` (a result or an error).
    pub(super) fn forget_answer(&self, st: &mut SessionState, stream: u64, id: &Value) {
        if let Some(log) = st.streams.iter_mut().find(|l| l.id == stream) {
            log.events.retain(|(_, data)| {
                !serde_json::from_str::<Value>(data)
                    .is_ok_and(|v| v.get("id") == Some(id) && v.get("method").is_none())
            });
        }
    }

    /// Records an event of `stream`; returns its id.
    pub(super) fn record(&self, st: &mut SessionState, stream: u64, data: &str) -> Option<String> {
        let log = st.streams.iter_mut().find(|l| l.id == stream)?;
        let seq = log.next;
        log.next += 1;
        if log.events.len() >= EVENTS_KEPT {
            log.events.pop_front();
        }
        log.events.push_back((seq, data.to_owned()));
        Some(format!("{stream}-{seq}"))
    }
}

/// 128 random bits, hex: visible ASCII as the revisions ask.
pub(super) fn new_session_id() -> Option<String> {
    use rand::TryRngCore;
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.try_fill_bytes(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_visible_ascii() {
        let (a, b) = (new_session_id().unwrap(), new_session_id().unwrap());
        assert_ne!(a, b);
        assert!(a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
