//! Calls that wait: progress while a `lock_acquire` waits, a cancellation that stops the wait
//! (and answers nothing; sent on its own or inside a batch), other requests answered meanwhile,
//! the end of input cancelling the calls under way, a waiting call under an id in use refused,
//! grants that cannot be delivered given back (by their fencing token), and the limit on waits.

use std::io::{BufRead, BufReader, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oc_mcp::{Incoming, serve};
use serde_json::{Value, json};

use crate::{call, init, server_with_files};

fn wait_call(id: Value, agent: &str, wait_ms: u64, progress: Option<&str>) -> Value {
    let mut params =
        json!({"name":"lock_acquire","arguments":{"agent":agent,"paths":["f"],"wait_ms":wait_ms}});
    if let Some(p) = progress {
        params["_meta"] = json!({ "progressToken": p });
    }
    json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":params})
}

fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_waiting_call_reports_progress_and_a_cancelled_one_answers_nothing_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let Incoming::Call(pending) =
        s.accept(&wait_call(json!("w"), "b", 60_000, Some("p1")).to_string())
    else {
        panic!("a tool call")
    };
    assert!(pending.may_wait(&s));
    let (notes, cancelled) = (Mutex::new(Vec::<String>::new()), AtomicBool::new(false));
    std::thread::scope(|t| {
        let run = t.spawn(|| pending.run(&s, &|n| notes.lock().unwrap().push(n), &cancelled));
        until("two progress notifications", || {
            notes.lock().unwrap().len() >= 2
        });
        cancelled.store(true, Ordering::SeqCst);
        assert_eq!(
            run.join().unwrap(),
            None,
            "a cancelled call answers nothing"
        );
    });
    let notes: Vec<Value> = notes
        .lock()
        .unwrap()
        .iter()
        .map(|n| serde_json::from_str(n).unwrap())
        .collect();
    for n in &notes {
        assert_eq!(n["method"], "notifications/progress");
        assert_eq!(
            (&n["params"]["progressToken"], &n["params"]["total"]),
            (&json!("p1"), &json!(60_000.0))
        );
        assert!(n.get("id").is_none(), "a notification");
    }
    let done: Vec<f64> = notes
        .iter()
        .map(|n| n["params"]["progress"].as_f64().unwrap())
        .collect();
    assert!(
        done.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {done:?}"
    );
    let (_, st) = call(&s, "lock_stats", json!({}));
    assert_eq!(
        st["stats"]["waiting"], 0,
        "the cancelled wait left the queue"
    );

    // Without a progress token: no notifications; granted once the holder lets go.
    let Incoming::Call(pending) = s.accept(&wait_call(json!(5), "b", 60_000, None).to_string())
    else {
        panic!("a tool call")
    };
    let notes = Mutex::new(Vec::<String>::new());
    let never = AtomicBool::new(false);
    std::thread::scope(|t| {
        let run = t.spawn(|| pending.run(&s, &|n| notes.lock().unwrap().push(n), &never));
        until("b waits", || {
            call(&s, "lock_stats", json!({})).1["stats"]["waiting"] == 1
        });
        call(&s, "lock_release", json!({"agent":"a","paths":["f"]}));
        let answer: Value = serde_json::from_str(&run.join().unwrap().unwrap()).unwrap();
        assert_eq!(answer["id"], 5);
        assert_eq!(
            answer["result"]["structuredContent"]["locks"][0]["path"],
            "f"
        );
    });
    assert!(notes.lock().unwrap().is_empty(), "no token, no progress");
}

/// `serve` over real pipes, as a client drives it: the server keeps reading while a call waits.
#[test]
fn serve_answers_others_while_a_call_waits_and_a_cancel_stops_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    let (in_r, mut in_w) = std::io::pipe().unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let mut send = move |v: Value| {
        in_w.write_all(format!("{v}\n").as_bytes()).unwrap();
    };
    std::thread::scope(|t| {
        let server = t.spawn(|| serve(&s, BufReader::new(in_r), out_w));
        let mut lines = BufReader::new(out_r).lines();
        let mut next =
            || -> Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
        send(
            json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
        );
        assert_eq!(next()["id"], 0);
        send(
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lock_acquire","arguments":{"agent":"a","paths":["f"]}}}),
        );
        assert_eq!(next()["result"]["isError"], false);
        send(wait_call(json!(2), "b", 60_000, Some("p2")));
        send(json!({"jsonrpc":"2.0","id":3,"method":"ping"}));
        let (mut pinged, mut progressed) = (false, false);
        while !(pinged && progressed) {
            let m = next();
            assert_ne!(m["id"], 2, "the waiting call has not answered: {m}");
            pinged |= m["id"] == 3;
            progressed |= m["method"] == "notifications/progress";
            assert!(
                m["id"] == 3 || m["method"] == "notifications/progress",
                "{m}"
            );
        }
        // Cancel, then free the path at once: the cancelled call takes nothing.
        send(
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2,"reason":"user"}}),
        );
        send(
            json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"lock_release","arguments":{"agent":"a","paths":["f"]}}}),
        );
        drop(send); // the end of input
        let rest: Vec<Value> = std::iter::from_fn(|| {
            lines
                .next()
                .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        })
        .collect();
        server.join().unwrap().unwrap();
        assert!(rest.iter().any(|m| m["id"] == 4), "{rest:?}");
        assert!(
            rest.iter().all(|m| m["id"] != 2),
            "nothing answered for a cancelled call: {rest:?}"
        );
    });
    let (_, check) = call(&s, "lock_check", json!({"agent":"c","paths":["f"]}));
    assert_eq!(check["free"], true, "{check}");
}

/// `serve` over pipes, the test holding the input's writing end: `lines` reads the answers.
struct Piped<'s> {
    input: Option<std::io::PipeWriter>,
    lines: std::io::Lines<BufReader<std::io::PipeReader>>,
    served: std::sync::mpsc::Receiver<std::io::Result<()>>,
    server: &'s oc_mcp::Server,
}

impl Piped<'_> {
    fn send(&mut self, v: &Value) {
        let w = self.input.as_mut().expect("input open");
        writeln!(w, "{v}").unwrap();
    }

    fn next(&mut self) -> Value {
        serde_json::from_str(&self.lines.next().unwrap().unwrap()).unwrap()
    }

    /// Closes the input and waits (30 s at most) for `serve` to return; on the way out, frees
    /// `f` from `a` so that a wait still under way ends and the scope can be left.
    fn close(&mut self) -> Result<std::io::Result<()>, String> {
        self.input = None;
        let r = self.served.recv_timeout(Duration::from_secs(30));
        if r.is_err() {
            plain(
                self.server,
                "lock_release",
                json!({"agent":"a","paths":["f"]}),
            );
        }
        r.map_err(|_| "serve did not return at the end of input: a wait went on".to_owned())
    }

    /// The rest of the answers, after the input closed.
    fn rest(&mut self) -> Vec<Value> {
        self.lines
            .by_ref()
            .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
            .collect()
    }
}

fn piped<'s, 'scope>(t: &'scope std::thread::Scope<'scope, '_>, s: &'s oc_mcp::Server) -> Piped<'s>
where
    's: 'scope,
{
    let (in_r, in_w) = std::io::pipe().unwrap();
    let (out_r, out_w) = std::io::pipe().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    t.spawn(move || {
        let _ = tx.send(serve(s, BufReader::new(in_r), out_w));
    });
    Piped {
        input: Some(in_w),
        lines: BufReader::new(out_r).lines(),
        served: rx,
        server: s,
    }
}

#[test]
fn the_end_of_input_cancels_the_waits_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let (closed, rest) = std::thread::scope(|t| {
        let mut p = piped(t, &s);
        p.send(&wait_call(json!(9), "b", 600_000, Some("p9")));
        // The wait is queued (its first progress notification came) before the input ends.
        let first = p.next();
        assert_eq!(first["method"], "notifications/progress", "{first}");
        assert_eq!(
            call(&s, "lock_stats", json!({})).1["stats"]["waiting"],
            1,
            "b waits"
        );
        let closed = p.close();
        (closed, p.rest())
    });
    closed.unwrap().unwrap();
    assert!(
        rest.iter().all(|m| m["id"] != 9),
        "nothing answered to a departed client: {rest:?}"
    );
    let (_, st) = call(&s, "lock_stats", json!({}));
    assert_eq!(st["stats"]["waiting"], 0, "the wait left the queue");
    call(&s, "lock_release", json!({"agent":"a","paths":["f"]}));
    let (_, check) = call(&s, "lock_check", json!({"paths":["f"]}));
    assert_eq!(
        check["free"], true,
        "the departed agent took nothing: {check}"
    );
}

/// Request ids are unique within a session: a waiting call whose id a call under way already
/// has is refused (so a cancellation, and the end of input, reach every wait).
#[test]
fn a_waiting_call_with_an_id_in_use_is_refused_and_the_end_of_input_ends_every_wait() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let (seen, closed, rest) = std::thread::scope(|t| {
        let mut p = piped(t, &s);
        p.send(&wait_call(json!(7), "b", 120_000, None));
        until("b waits", || {
            call(&s, "lock_stats", json!({})).1["stats"]["waiting"] == 1
        });
        p.send(&wait_call(json!(7), "c", 120_000, None));
        p.send(&json!({"jsonrpc":"2.0","id":"ping","method":"ping"}));
        let mut seen = Vec::new();
        loop {
            let m = p.next();
            if m["id"] == "ping" {
                break;
            }
            seen.push(m);
        }
        let closed = p.close();
        (seen, closed, p.rest())
    });
    let refusal = seen
        .iter()
        .find(|m| m["id"] == 7)
        .unwrap_or_else(|| panic!("the second call with id 7 is refused: {seen:?}"));
    assert_eq!(refusal["error"]["code"], -32600, "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .unwrap()
            .contains("id already in use"),
        "{refusal}"
    );
    closed.unwrap().unwrap();
    assert!(rest.iter().all(|m| m["id"] != 7), "{rest:?}");
    let (_, st) = call(&s, "lock_stats", json!({}));
    assert_eq!(st["stats"]["waiting"], 0, "every wait left the queue");
    let (_, locks) = call(&s, "lock_list", json!({}));
    assert_eq!(
        locks["locks"].as_array().unwrap().len(),
        1,
        "a's lock only: {locks}"
    );
}

/// A `notifications/cancelled` inside a batch stops a wait running outside it.
#[test]
fn a_cancellation_in_a_batch_stops_a_wait_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    call_init_batch(&s);
    let (answer, closed, rest) = std::thread::scope(|t| {
        let mut p = piped(t, &s);
        p.send(&wait_call(json!(2), "b", 60_000, None));
        until("b waits", || {
            plain(&s, "lock_stats", json!({}))["stats"]["waiting"] == 1
        });
        p.send(&json!([
            {"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}},
            {"jsonrpc":"2.0","id":3,"method":"ping"},
        ]));
        let answer = p.next();
        let stopped = (0..3000).any(|_| {
            std::thread::sleep(Duration::from_millis(10));
            plain(&s, "lock_stats", json!({}))["stats"]["waiting"] == 0
        });
        // Free f: a wait still under way would now be granted.
        plain(&s, "lock_release", json!({"agent":"a","paths":["f"]}));
        let closed = p.close();
        let mut rest = p.rest();
        rest.push(json!({ "stopped": stopped }));
        (answer, closed, rest)
    });
    assert_eq!(answer[0]["id"], 3, "{answer}");
    closed.unwrap().unwrap();
    assert_eq!(
        rest.last().unwrap()["stopped"],
        true,
        "the cancelled wait left the queue"
    );
    assert!(rest.iter().all(|m| m["id"] != 2), "{rest:?}");
    let locks = plain(&s, "lock_list", json!({}));
    assert_eq!(locks["locks"], json!([]), "b took nothing: {locks}");
}

/// A session at the revision with batches, `a` holding `f`.
fn call_init_batch(s: &oc_mcp::Server) {
    init(s, "2025-03-26");
    plain(s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
}

#[test]
fn a_grant_that_cannot_be_delivered_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    // Granted at once (no wait) and at the end of a wait; neither answer reaches the client.
    plain(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    for (msg, free) in [
        (
            json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lock_acquire","arguments":{"agent":"b","paths":["g"]}}}),
            false,
        ),
        (wait_call(json!(2), "b", 60_000, None), true),
    ] {
        let Incoming::Call(pending) = s.accept(&msg.to_string()) else {
            panic!("a tool call")
        };
        let never = AtomicBool::new(false);
        std::thread::scope(|t| {
            if free {
                t.spawn(|| {
                    until("b waits", || {
                        plain(&s, "lock_stats", json!({}))["stats"]["waiting"] == 1
                    });
                    plain(&s, "lock_release", json!({"agent":"a","paths":["f"]}));
                });
            }
            let msg = msg.clone();
            let delivered = pending.run_and_deliver(&s, &|_| {}, &never, &mut |answer| {
                assert!(answer.contains("fencing_token"), "granted: {answer}");
                false
            });
            assert!(!delivered, "{msg}");
        });
    }
    let locks = plain(&s, "lock_list", json!({}));
    assert_eq!(locks["locks"], json!([]), "b holds nothing: {locks}");
}

#[test]
fn past_the_waiting_limit_calls_are_refused_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    plain(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let (reader, mut writer) = std::io::pipe().unwrap();
    let (answers, out) = std::io::pipe().unwrap();
    std::thread::scope(|t| {
        let s = &s;
        // The answers' pipe closes when serve returns.
        let served = t.spawn(move || serve(s, BufReader::new(reader), out));
        let limit = oc_mcp::MAX_WAITING_CALLS as u64;
        for i in 1..=limit + 3 {
            writeln!(
                writer,
                "{}",
                wait_call(json!(i), &format!("b{i}"), 60_000, None)
            )
            .unwrap();
        }
        let cancel =
            json!({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}});
        writeln!(writer, "{cancel}").unwrap();
        writeln!(
            writer,
            "{}",
            json!({"jsonrpc":"2.0","id":"ping","method":"ping"})
        )
        .unwrap();
        // Three refusals, then the ping: the reader never stopped.
        let mut lines = BufReader::new(answers).lines();
        let mut refused = Vec::new();
        loop {
            let line: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
            if line["id"] == "ping" {
                break;
            }
            let text = line["result"]["content"][0]["text"].as_str().unwrap();
            let body: Value = serde_json::from_str(text).unwrap();
            assert_eq!(body["error"]["code"], "TOO_MANY_WAITS", "{line}");
            assert!(
                body["error"]["message"].as_str().unwrap().contains("32"),
                "{body}"
            );
            refused.push(line["id"].as_u64().unwrap());
        }
        assert_eq!(refused, [limit + 1, limit + 2, limit + 3]);
        until("the cancelled wait stopped", || {
            plain(s, "lock_stats", json!({}))["stats"]["waiting"] == limit - 1
        });
        drop(writer);
        served.join().unwrap().unwrap();
        assert!(
            lines.next().is_none(),
            "nothing answered for the cancelled calls"
        );
    });
    let (_, st) = call(&s, "lock_stats", json!({}));
    assert_eq!(st["stats"]["waiting"], 0);
}

/// A writer whose reader went away.
struct Gone;

impl Write for Gone {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::ErrorKind::BrokenPipe.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn waits_stop_when_nobody_reads_the_answers() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    plain(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let ping = json!({"jsonrpc":"2.0","id":2,"method":"ping"});
    let input = format!(
        "{}\n{ping}\n{ping}\n",
        wait_call(json!(1), "b", 600_000, None)
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|t| {
        t.spawn(|| tx.send(serve(&s, std::io::Cursor::new(input), Gone)));
        let served = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("serve returned without waiting out a 10-minute lock wait");
        assert_eq!(served.unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    });
    let (_, st) = call(&s, "lock_stats", json!({}));
    assert_eq!(st["stats"]["waiting"], 0);
    let locks = plain(&s, "lock_list", json!({}));
    assert_eq!(
        locks["locks"].as_array().unwrap().len(),
        1,
        "a's lock only: {locks}"
    );
}

#[test]
fn a_grant_whose_answer_cannot_be_written_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    plain(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    // Granted at once, and at the end of a wait that a's release ends: neither answer can be
    // written.
    let now = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lock_acquire","arguments":{"agent":"b","paths":["g"]}}});
    let input = format!("{now}\n");
    assert!(serve(&s, std::io::Cursor::new(input), Gone).is_err());
    // The wait is the only line; the input stays open until b's grant has been given back.
    let (reader, mut writer) = std::io::pipe().unwrap();
    writeln!(writer, "{}", wait_call(json!(2), "b", 60_000, None)).unwrap();
    std::thread::scope(|t| {
        let s = &s;
        let served = t.spawn(move || serve(s, BufReader::new(reader), Gone));
        until("b waits", || {
            plain(s, "lock_stats", json!({}))["stats"]["waiting"] == 1
        });
        call(s, "lock_release", json!({"agent":"a","paths":["f"]}));
        // a's lock, b's on g, b's on f: three granted, none held.
        until("b's grant given back", || {
            let st = plain(s, "lock_stats", json!({}))["stats"].clone();
            st["totalLocks"] == 3 && st["activeLocks"] == 0
        });
        drop(writer);
        assert!(served.join().unwrap().is_err());
    });
    let locks = plain(&s, "lock_list", json!({}));
    assert_eq!(locks["locks"], json!([]), "b holds nothing: {locks}");
}

/// A grant given back is the hold that call took, by its fencing token: a hold of the same
/// agent name taken meanwhile (another session, the lock lapsed and re-granted) stays.
#[test]
fn an_undelivered_grant_gives_back_its_own_hold_not_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let msg = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lock_acquire","arguments":{"agent":"x","paths":["f"]}}});
    let Incoming::Call(pending) = s.accept(&msg.to_string()) else {
        panic!("a tool call")
    };
    let never = AtomicBool::new(false);
    let newer = Mutex::new(Value::Null);
    let delivered = pending.run_and_deliver(&s, &|_| {}, &never, &mut |answer| {
        assert!(answer.contains("fencing_token"), "granted: {answer}");
        // Meanwhile the hold goes, and another session of agent x takes f afresh.
        call(&s, "lock_release", json!({"agent":"x","paths":["f"]}));
        let (_, got) = call(&s, "lock_acquire", json!({"agent":"x","paths":["f"]}));
        *newer.lock().unwrap() = got["locks"][0]["fencing_token"].clone();
        false
    });
    assert!(!delivered);
    let (_, locks) = call(&s, "lock_list", json!({}));
    assert_eq!(
        locks["locks"][0]["fencing_token"],
        *newer.lock().unwrap(),
        "the newer hold stays: {locks}"
    );
}

/// In a batch whose answer is not delivered, a hold a call took and a later call of the
/// batch released is not given back a second time.
#[test]
fn an_undelivered_batch_gives_back_only_what_it_still_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-03-26");
    // x holds g before the batch; the batch takes g again and lets it go, and takes h.
    plain(&s, "lock_acquire", json!({"agent":"x","paths":["g"]}));
    let tool = |id: u64, name: &str, path: &str| json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":name,"arguments":{"agent":"x","paths":[path]}}});
    let batch = json!([
        tool(1, "lock_acquire", "g"),
        tool(2, "lock_release", "g"),
        tool(3, "lock_acquire", "h"),
    ]);
    let Incoming::Batch(batch) = s.accept(&batch.to_string()) else {
        panic!("a batch")
    };
    let never = AtomicBool::new(false);
    let delivered = batch.run(&s, true, &|_| {}, &never, &mut |answer: &str| {
        assert!(answer.starts_with('['), "{answer}");
        false
    });
    assert!(!delivered);
    let locks = plain(&s, "lock_list", json!({}));
    let held: Vec<(&Value, &Value)> = locks["locks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (&l["path"], &l["holds"]))
        .collect();
    assert_eq!(
        held,
        [(&json!("g"), &json!(1))],
        "x's own hold of g stays, h is given back: {locks}"
    );
}

/// A tool call's body in any session (one at 2025-03-26 has no structured content).
fn plain(s: &oc_mcp::Server, name: &str, args: Value) -> Value {
    let r = crate::one(
        s,
        json!({"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":name,"arguments":args}}),
    );
    serde_json::from_str(r["result"]["content"][0]["text"].as_str().unwrap()).unwrap()
}
