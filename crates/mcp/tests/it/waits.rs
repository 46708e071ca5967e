//! Calls that wait: progress while a `lock_acquire` waits, a cancellation that stops the wait
//! (and answers nothing), other requests answered meanwhile, the end of input cancelling the
//! calls under way, grants that cannot be delivered given back, and the limit on waits.

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

#[test]
fn the_end_of_input_cancels_the_waits_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
    let input = format!("{}\n", wait_call(json!(9), "b", 600_000, None));
    let mut out = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|t| {
        t.spawn(|| tx.send(serve(&s, std::io::Cursor::new(input), &mut out)));
        rx.recv_timeout(Duration::from_secs(30))
            .expect("serve returned without waiting out a 10-minute lock wait")
            .unwrap();
    });
    assert!(
        out.is_empty(),
        "nothing answered to a departed client: {out:?}"
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

#[test]
fn a_grant_that_cannot_be_delivered_is_released() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    // Granted at once (no wait) and at the end of a wait; neither answer reaches the client.
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
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
                        call(&s, "lock_stats", json!({})).1["stats"]["waiting"] == 1
                    });
                    call(&s, "lock_release", json!({"agent":"a","paths":["f"]}));
                });
            }
            let msg = msg.clone();
            let delivered = pending.run_and_deliver(&s, &|_| {}, &never, &|answer| {
                assert!(answer.contains("fencing_token"), "granted: {answer}");
                false
            });
            assert!(!delivered, "{msg}");
        });
    }
    let (_, locks) = call(&s, "lock_list", json!({}));
    assert_eq!(locks["locks"], json!([]), "b holds nothing: {locks}");
}

#[test]
fn past_the_waiting_limit_calls_are_refused_and_reading_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
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
            call(s, "lock_stats", json!({})).1["stats"]["waiting"] == limit - 1
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
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
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
    let (_, locks) = call(&s, "lock_list", json!({}));
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
    call(&s, "lock_acquire", json!({"agent":"a","paths":["f"]}));
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
            call(s, "lock_stats", json!({})).1["stats"]["waiting"] == 1
        });
        call(s, "lock_release", json!({"agent":"a","paths":["f"]}));
        // a's lock, b's on g, b's on f: three granted, none held.
        until("b's grant given back", || {
            let st = call(s, "lock_stats", json!({})).1["stats"].clone();
            st["totalLocks"] == 3 && st["activeLocks"] == 0
        });
        drop(writer);
        assert!(served.join().unwrap().is_err());
    });
    let (_, locks) = call(&s, "lock_list", json!({}));
    assert_eq!(locks["locks"], json!([]), "b holds nothing: {locks}");
}
