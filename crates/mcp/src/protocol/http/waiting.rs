//! A tool call that may wait, accepted over HTTP ([`HttpCall`]): its response head, and the
//! run that writes its body (JSON, or an SSE stream of progress then the result).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::message::{HttpResponse, sse_event};
use super::session::{Session, SessionState};
use crate::protocol::{PendingCall, RpcError, Server, error_line};

/// A tool call that may wait, accepted: its response head, and the call to run.
#[derive(Debug)]
pub struct HttpCall {
    pub(super) head: HttpResponse,
    pub(super) server: Server,
    pub(super) shared: Option<Arc<Session>>,
    pub(super) call: PendingCall,
    pub(super) cancelled: Arc<AtomicBool>,
    pub(super) key: String,
    pub(super) sse: bool,
    pub(super) stream: Option<u64>,
    pub(super) prime: bool,
}

impl HttpCall {
    /// The status to send (200).
    pub fn status(&self) -> u16 {
        self.head.status
    }

    /// The headers to send: `Content-Type: text/event-stream` when the answer is a stream
    /// (the client accepts one), else `application/json`.
    pub fn headers(&self) -> &[(String, String)] {
        &self.head.headers
    }

    /// Whether the body is an SSE stream.
    pub fn is_stream(&self) -> bool {
        self.sse
    }

    /// The flag that stops the call: set it when the client goes away (the connection closed,
    /// the stream dropped); the call then stops within [`oc_locks::WATCH_EVERY`] and takes
    /// nothing.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancelled)
    }

    /// Runs the call, handing `send` each piece of the body: for a stream, an optional priming
    /// event (an id and no data, so a client can resume), each progress notification, then the
    /// result; else the result alone. `send` says whether the piece reached the connection;
    /// when the result does not (or the call was cancelled), what the call took is given back.
    /// Returns whether the result was delivered.
    pub fn run(self, send: &mut (dyn FnMut(Vec<u8>) -> bool + Send)) -> bool {
        let send = Mutex::new(send);
        let call_id = self.call.id().clone();
        let shared = self.shared.as_deref();
        let frame = |data: &str, st: Option<&mut SessionState>| -> Vec<u8> {
            if !self.sse {
                return data.as_bytes().to_vec();
            }
            let id = match (shared, self.stream, st) {
                (Some(s), Some(stream), Some(st)) => s.record(st, stream, data),
                _ => None,
            };
            sse_event(id.as_deref(), data).into_bytes()
        };
        let lock = || shared.map(|s| s.state.lock().unwrap_or_else(PoisonError::into_inner));
        if self.prime {
            let mut st = lock();
            let bytes = frame("", st.as_deref_mut());
            (send.lock().unwrap_or_else(PoisonError::into_inner))(bytes);
        }
        // The session's lock is held while an event is framed (recorded for resumption), never
        // while it is sent: a client that does not read blocks only its own call.
        let notify = |line: String| {
            if self.sse {
                let bytes = frame(&line, lock().as_deref_mut());
                if !(send.lock().unwrap_or_else(PoisonError::into_inner))(bytes) {
                    self.cancelled.store(true, Ordering::SeqCst);
                }
            }
        };
        let delivered =
            self.call
                .run_and_deliver(&self.server, &notify, &self.cancelled, &mut |line| {
                    // Under the session's lock, the call leaves the table of waiting calls
                    // unless a cancellation (DELETE, `notifications/cancelled`) came first: then
                    // nothing is sent and the grant is given back. One that comes after finds
                    // nothing to cancel: the result is on its way.
                    let bytes = {
                        let mut st = lock();
                        if self.cancelled.load(Ordering::SeqCst) {
                            return false;
                        }
                        if let Some(st) = st.as_deref_mut() {
                            st.waiting.remove(&self.key);
                        }
                        frame(line, st.as_deref_mut())
                    };
                    (send.lock().unwrap_or_else(PoisonError::into_inner))(bytes)
                });
        if let Some(s) = shared {
            let mut st = s.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.waiting.remove(&self.key);
            if !delivered && let Some(stream) = self.stream {
                // A client resuming this stream learns the call ended without a result: the
                // result recorded as it was sent (and not delivered: what it granted was given
                // back) is not replayed.
                s.forget_answer(&mut st, stream, &call_id);
                let e = RpcError::new(
                    -32800,
                    "request cancelled: its stream closed or its session ended; nothing was taken",
                );
                let line = error_line(&call_id, e);
                s.record(&mut st, stream, &line);
            }
        }
        delivered
    }
}
