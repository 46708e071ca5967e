//! [`serve`]: the server over stdin and stdout, one message per line; waiting calls on
//! their own threads, each cancellable, and the lines read with a bound on their length.

use std::collections::HashMap;
use std::io::{BufRead, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::Value;

use super::{
    Incoming, MAX_MESSAGE_BYTES, MAX_WAITING_CALLS, RpcError, Server, error_line, too_long,
};

/// Serves `server` over `input` and `output` (stdin and stdout): one message per line in,
/// one per line out, each written whole and flushed. A line that is not UTF-8 or too long is
/// answered with an error and skipped.
///
/// Calls that may wait (a `lock_acquire` with `wait_ms`) run on their own threads, at most
/// [`MAX_WAITING_CALLS`] at once (more are refused at once, `TOO_MANY_WAITS`), so the server
/// always goes on reading: other calls are answered meanwhile, and a
/// `notifications/cancelled` for a waiting call (on its own or inside a batch) stops its wait
/// (and nothing is answered for it). Request ids are unique within a session: a waiting call
/// whose id a waiting call under way already has is refused (JSON-RPC `-32600`, "id already in
/// use"), so every cancellation reaches the one call it names.
///
/// The end of input means the client went away: every wait under way is cancelled (it leaves
/// the queue, taking nothing) and `serve` returns as soon as they have stopped, within
/// [`WATCH_EVERY`](oc_locks::WATCH_EVERY) or so. An answer is written only while its call is
/// still wanted: a grant made just as the input ended, or whose answer cannot be written, is
/// released rather than left to a client that will never read it.
pub fn serve(
    server: &Server,
    input: impl BufRead,
    output: impl Write + Send,
) -> std::io::Result<()> {
    let out = Mutex::new(Output {
        writer: output,
        failed: None,
    });
    let write = |line: &str| {
        let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
        o.write_line(line);
        o.failed.is_none()
    };
    let notify = &|n: String| {
        write(&n);
    };
    // Waiting calls by request id (its JSON text), with the flag that cancels each. Delivering
    // a waiting call's answer and cancelling it both happen under this lock, so a call is
    // either answered or cancelled (and gives back what it took), never both nor neither.
    let waiting: Mutex<HashMap<String, Arc<AtomicBool>>> = Mutex::new(HashMap::new());
    let running = AtomicUsize::new(0);
    // A `notifications/cancelled`, on its own or in a batch: stops the waiting call it names.
    let cancel = |id: &Value| {
        if let Some(flag) = waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&id.to_string())
        {
            flag.store(true, Ordering::SeqCst);
        }
    };
    let read = std::thread::scope(|scope| -> std::io::Result<()> {
        let mut lines = Lines::new(input);
        let read = loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            if out
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .failed
                .is_some()
            {
                break Ok(());
            }
            let call = match line {
                Line::Text(text) => server.accept(&text),
                Line::NotUtf8 => Incoming::Answer(vec![not_utf8()]),
                Line::TooLong(len) => Incoming::Answer(vec![too_long(len)]),
            };
            match call {
                Incoming::Answer(lines) => lines.iter().for_each(|l| {
                    write(l);
                }),
                Incoming::Cancel(id) => cancel(&id),
                Incoming::Call(call) if call.may_wait(server) => {
                    if running.load(Ordering::SeqCst) >= MAX_WAITING_CALLS {
                        write(&call.refuse(
                            server,
                            "TOO_MANY_WAITS",
                            format!(
                                "{MAX_WAITING_CALLS} calls are already waiting, the most this server runs at once: retry once one has answered, or call with wait_ms 0"
                            ),
                        ));
                        continue;
                    }
                    let key = call.id().to_string();
                    let flag = Arc::new(AtomicBool::new(false));
                    {
                        let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                        if w.contains_key(&key) {
                            // Ids are unique within a session: a second call under this id
                            // could be neither cancelled nor told apart in the answers.
                            drop(w);
                            write(&error_line(
                                call.id(),
                                RpcError::new(
                                    -32600,
                                    "id already in use: a call with this id is still waiting; request ids must be unique within a session",
                                ),
                            ));
                            continue;
                        }
                        w.insert(key.clone(), Arc::clone(&flag));
                    }
                    running.fetch_add(1, Ordering::SeqCst);
                    let (waiting, running, out) = (&waiting, &running, &out);
                    scope.spawn(move || {
                        let mut deliver = |answer: &str| {
                            let w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                            if flag.load(Ordering::SeqCst) {
                                return false;
                            }
                            let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                            o.write_line(answer);
                            drop(w);
                            o.failed.is_none()
                        };
                        call.run_and_deliver(server, notify, &flag, &mut deliver);
                        let mut w = waiting.lock().unwrap_or_else(PoisonError::into_inner);
                        if w.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flag)) {
                            w.remove(&key);
                        }
                        running.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Incoming::Call(call) => {
                    let never = AtomicBool::new(false);
                    call.run_and_deliver(server, notify, &never, &mut |a| write(a));
                }
                Incoming::Batch(batch) => {
                    batch.cancels().for_each(&cancel);
                    let never = AtomicBool::new(false);
                    batch.run(server, false, notify, &never, &mut |a| write(a));
                }
            }
        };
        // The client went away (or nobody reads the answers any more): stop the waits rather
        // than finish them; an answer not yet written will not be.
        for flag in waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
        {
            flag.store(true, Ordering::SeqCst);
        }
        read
    });
    let mut o = out.into_inner().unwrap_or_else(PoisonError::into_inner);
    read?;
    match o.failed.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The writer, and the first error writing to it (after which nothing more is written).
struct Output<W> {
    writer: W,
    failed: Option<std::io::Error>,
}

impl<W: Write> Output<W> {
    fn write_line(&mut self, line: &str) {
        if self.failed.is_some() {
            return;
        }
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
        if let Err(e) = self
            .writer
            .write_all(&buf)
            .and_then(|()| self.writer.flush())
        {
            self.failed = Some(e);
        }
    }
}

/// The answer to a line that is not UTF-8: a parse error with no id, worded as serde_json
/// words a line that does not start with a JSON value (the words it has always had).
fn not_utf8() -> String {
    error_line(
        &Value::Null,
        RpcError::new(-32700, "parse error: expected value at line 1 column 1"),
    )
}

/// One input line, as read.
enum Line {
    Text(String),
    NotUtf8,
    TooLong(usize),
}

/// Reads lines of at most [`MAX_MESSAGE_BYTES`], so a huge line cannot exhaust memory.
struct Lines<R> {
    input: R,
    buf: Vec<u8>,
}

impl<R: BufRead> Lines<R> {
    fn new(input: R) -> Lines<R> {
        Lines {
            input,
            buf: Vec::new(),
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        self.buf.clear();
        // Read at most one byte past the limit.
        let n = Read::take(&mut self.input, MAX_MESSAGE_BYTES as u64 + 1)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        if self.buf.last() != Some(&b'\n') && n > MAX_MESSAGE_BYTES {
            // Skip the rest of the over-long line.
            let mut skipped = n;
            let mut sink = Vec::new();
            loop {
                sink.clear();
                let m = Read::take(&mut self.input, 1 << 20).read_until(b'\n', &mut sink)?;
                skipped += m;
                if m == 0 || sink.last() == Some(&b'\n') {
                    break;
                }
            }
            return Ok(Some(Line::TooLong(skipped)));
        }
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(line) => Line::Text(line.trim_end_matches(['\n', '\r']).to_owned()),
            Err(_) => Line::NotUtf8,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_not_utf8_is_a_parse_error_worded_as_before() {
        // What the line's answer was when it went through the parser as a made-up text.
        let e = serde_json::from_str::<Value>("\u{0}").unwrap_err();
        let was = error_line(
            &Value::Null,
            RpcError::new(-32700, format!("parse error: {e}")),
        );
        assert_eq!(not_utf8(), was);
    }
}
