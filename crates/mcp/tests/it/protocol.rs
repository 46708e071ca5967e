//! The protocol core: every message kind and error path, the tools' definitions, the workflow
//! through tools, and any sequence of lines answered with well-formed messages.

use oc_mcp::{MAX_MESSAGE_BYTES, serve};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::{call, init, modern_meta, one, server, server_with_files};

#[test]
fn the_handshake_answers_the_clients_version_when_it_speaks_it() {
    for (asked, answered) in [
        ("2025-11-25", "2025-11-25"),
        ("2025-06-18", "2025-06-18"),
        ("2024-11-05", "2024-11-05"),
        ("2026-07-28", "2025-11-25"),
        ("1999-01-01", "2025-11-25"),
    ] {
        let r = init(&server(), asked);
        assert_eq!(r["result"]["protocolVersion"], answered, "{asked}");
        assert_eq!(r["result"]["serverInfo"]["name"], "oc");
        assert!(
            r["result"]["instructions"]
                .as_str()
                .unwrap()
                .contains("task_claim")
        );
        assert!(
            r["result"].get("resultType").is_none(),
            "no modern fields in the legacy era"
        );
    }
}

#[test]
fn the_stateless_revision_discovers_and_validates_meta() {
    let s = server();
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":modern_meta()}}),
    );
    let res = &r["result"];
    assert_eq!(res["resultType"], "complete");
    assert_eq!(res["supportedVersions"], json!(["2026-07-28"]));
    assert!(res["ttlMs"].is_u64() && res["cacheScope"] == "public");
    assert_eq!(
        res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "oc"
    );
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"_meta":modern_meta()}}),
    );
    assert_eq!(r["result"]["resultType"], "complete");
    assert!(r["result"]["ttlMs"].is_u64());
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":3,"method":"tools/list","params":{}}),
    );
    assert_eq!(r["error"]["code"], -32602, "no _meta and no handshake");
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":4,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2099-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}),
    );
    assert_eq!(r["error"]["code"], -32022);
    assert_eq!(r["error"]["data"]["requested"], "2099-01-01");
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":5,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}),
    );
    assert_eq!(r["error"]["code"], -32602, "capabilities are required");
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":6,"method":"ping","params":{"_meta":modern_meta()}}),
    );
    assert_eq!(r["error"]["code"], -32601, "ping is gone in 2026-07-28");
    // A discover does not lock the era: an initialize after it still works.
    assert_eq!(
        init(&s, "2025-11-25")["result"]["protocolVersion"],
        "2025-11-25"
    );
}

#[test]
fn malformed_messages_get_errors_and_notifications_nothing() {
    let s = server();
    let r: Value = serde_json::from_str(&s.handle("{not json")[0]).unwrap();
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32700), Value::Null)
    );
    let r: Value = serde_json::from_str(&s.handle("[1,2]")[0]).unwrap();
    assert_eq!(r["error"]["code"], -32600);
    let r = one(&s, json!({"jsonrpc":"1.0","id":1,"method":"ping"}));
    assert_eq!(r["error"]["code"], -32600);
    let r = one(&s, json!({"jsonrpc":"2.0","id":{"x":1},"method":"ping"}));
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32600), Value::Null)
    );
    let r = one(&s, json!({"jsonrpc":"2.0","id":1,"method":"ping"}));
    assert_eq!(r["result"], json!({}), "ping works before the handshake");
    init(&s, "2025-11-25");
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":"a","method":"resources/list"}),
    );
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32601), json!("a"))
    );
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":2,"method":"tools/call","params":[1]}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert!(
        s.handle(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)
            .is_empty()
    );
    assert!(
        s.handle(
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3}}"#
        )
        .is_empty()
    );
    assert!(
        s.handle(r#"{"jsonrpc":"2.0","id":9,"result":{}}"#)
            .is_empty(),
        "responses need no answer"
    );
    assert!(s.handle("   ").is_empty());
    let r: Value = serde_json::from_str(&s.handle(&"x".repeat(MAX_MESSAGE_BYTES + 1))[0]).unwrap();
    assert_eq!(r["error"]["code"], -32600);
}

#[test]
fn tool_definitions_suit_every_client() {
    let dir = tempfile::tempdir().unwrap();
    let s = server_with_files(dir.path());
    init(&s, "2025-11-25");
    let r = one(&s, json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    let tools = r["result"]["tools"].as_array().unwrap();
    assert!(tools.len() >= 10);
    let mut names = std::collections::HashSet::new();
    for t in tools {
        let name = t["name"].as_str().unwrap();
        assert!(names.insert(name), "{name} twice");
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{name}"
        );
        for schema in [&t["inputSchema"], &t["outputSchema"]] {
            assert_eq!(schema["type"], "object", "{name}");
            let text = schema.to_string();
            for banned in ["$ref", "$schema", "$defs", "\"format\""] {
                assert!(!text.contains(banned), "{name}: {banned}");
            }
            for p in schema["properties"].as_object().unwrap().values() {
                assert!(p["type"].is_string(), "{name}: a flat type, no unions: {p}");
            }
        }
        assert_eq!(t["inputSchema"]["additionalProperties"], false, "{name}");
        assert!(t["annotations"]["readOnlyHint"].is_boolean());
        assert!(t["description"].as_str().unwrap().len() > 20);
    }
    // Older clients get neither output schemas nor titles.
    let old = server();
    init(&old, "2025-03-26");
    let r = one(&old, json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}));
    assert!(r["result"]["tools"][0].get("outputSchema").is_none());
    // The default set is compact.
    let default = server();
    init(&default, "2025-11-25");
    let r = one(
        &default,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/list"}),
    );
    let default_names: Vec<&str> = r["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        default_names,
        [
            "task_create",
            "task_list",
            "task_get",
            "task_claim",
            "task_heartbeat",
            "task_finish",
            "task_release",
            "lock_acquire",
            "lock_renew",
            "lock_release",
            "lock_check"
        ],
        "the workflow's tools; a server without task files offers no tools on them"
    );
    assert_eq!(
        tools.len(),
        21,
        "every tool with --tools all and task files"
    );
    assert!(names.contains("task_log_append") && names.contains("checkpoint_restore"));
}

#[test]
fn the_workflow_claim_lock_heartbeat_finish() {
    let s = server();
    init(&s, "2025-11-25");
    let (err, created) = call(
        &s,
        "task_create",
        json!({"agent":"planner","name":"write docs","labels":["docs"]}),
    );
    assert!(!err, "{created}");
    let id = created["task"]["id"].as_str().unwrap().to_owned();
    assert!(created["now"].is_string(), "every answer carries now");
    let (_, claimed) = call(&s, "task_claim", json!({"agent":"alice","labels":["docs"]}));
    assert_eq!(
        (claimed["claimed"].clone(), claimed["task_id"].clone()),
        (json!(true), json!(id))
    );
    let token = claimed["fencing_token"].as_u64().unwrap();
    assert!(claimed["lease_expires_at"].is_string());
    let (_, none) = call(&s, "task_claim", json!({"agent":"bob"}));
    assert_eq!(none["claimed"], false, "nothing else is ready");

    let (err, locked) = call(
        &s,
        "lock_acquire",
        json!({"agent":"alice","paths":["repo/docs","repo/README.md"]}),
    );
    assert!(!err, "{locked}");
    assert_eq!(locked["locks"].as_array().unwrap().len(), 2);
    let (err, refused) = call(
        &s,
        "lock_acquire",
        json!({"agent":"bob","paths":["repo/docs/intro.md"],"mode":"shared"}),
    );
    assert!(err);
    assert_eq!(refused["error"]["code"], "LOCK_CONFLICT");
    assert_eq!(
        refused["error"]["conflicts"][0]["holder"], "alice",
        "the refusal names the holder"
    );
    assert!(
        refused["error"]["conflicts"][0]["expires_at"].is_string(),
        "and until when"
    );
    let (_, check) = call(
        &s,
        "lock_check",
        json!({"paths":["repo/docs"],"agent":"alice"}),
    );
    assert_eq!(check["free"], true, "one's own locks are no conflict");

    let (err, hb) = call(
        &s,
        "task_heartbeat",
        json!({"agent":"alice","task_id":id,"fencing_token":token,"lease_secs":600}),
    );
    assert!(!err, "{hb}");
    let (err, stale) = call(
        &s,
        "task_heartbeat",
        json!({"agent":"bob","task_id":id,"fencing_token":token + 100}),
    );
    assert!(err);
    assert_eq!(stale["error"]["code"], "LEASE_LOST");
    let (_, released) = call(
        &s,
        "lock_release",
        json!({"agent":"alice","paths":["repo/docs","repo/README.md","repo/other"]}),
    );
    let oks: Vec<bool> = released["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["ok"].as_bool().unwrap())
        .collect();
    assert_eq!(oks, [true, true, false], "each path's outcome: {released}");
    let (err, done) = call(
        &s,
        "task_finish",
        json!({"agent":"alice","task_id":id,"fencing_token":token,"outcome":"completed","result":{"pages":3}}),
    );
    assert!(!err, "{done}");
    let (_, got) = call(&s, "task_get", json!({"task_id":id}));
    assert_eq!(got["task"]["status"], "completed");
    let (_, list) = call(&s, "task_list", json!({"status":"completed"}));
    assert_eq!(list["tasks"][0]["id"], json!(id));
}

#[test]
fn bad_arguments_are_tool_errors_and_unknown_tools_protocol_errors() {
    let s = server();
    init(&s, "2025-11-25");
    let r = one(
        &s,
        json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope","arguments":{}}}),
    );
    assert_eq!(r["error"]["code"], -32602);
    assert!(r["error"]["message"].as_str().unwrap().contains("nope"));
    for (tool, args, word) in [
        ("task_create", json!({"agent":"a"}), "name"),
        ("task_create", json!({"agent":"a","name":7}), "name"),
        (
            "task_create",
            json!({"agent":"a","name":"x","colour":"red"}),
            "colour",
        ),
        ("task_get", json!({"task_id":"../etc"}), "task_id"),
        ("task_get", json!({"task_id":"missing"}), "missing"),
        ("task_claim", json!({}), "agent"),
        (
            "task_finish",
            json!({"agent":"a","task_id":"x","fencing_token":1,"outcome":"maybe"}),
            "outcome",
        ),
        ("lock_acquire", json!({"agent":"a","paths":[]}), "paths"),
        (
            "lock_acquire",
            json!({"agent":"a","paths":["a//b"]}),
            "paths",
        ),
        (
            "lock_acquire",
            json!({"agent":"a","paths":["x"],"mode":"sideways"}),
            "mode",
        ),
        (
            "lock_acquire",
            json!({"agent":"a","paths":["x"],"wait_ms":-1}),
            "wait_ms",
        ),
        ("task_list", json!({"limit":1000}), "limit"),
        (
            "task_create",
            json!({"agent":"a","name":"x".repeat(100_000)}),
            "name",
        ),
    ] {
        let (err, body) = call(&s, tool, args);
        assert!(err, "{tool}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(word), "{tool}: {msg} should name {word}");
    }
    let (_, list) = call(&s, "task_list", json!({}));
    assert_eq!(
        list["tasks"],
        json!([]),
        "nothing was created by the refused calls"
    );
}

#[test]
fn serve_answers_line_by_line_and_ends_with_its_input() {
    let input = format!(
        "{}\n\n{{oops\n{}\n{}\n",
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}),
        json!({"jsonrpc":"2.0","method":"notifications/initialized"}),
        json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}),
    );
    let mut out = Vec::new();
    serve(&server(), std::io::Cursor::new(input), &mut out).unwrap();
    let lines: Vec<Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<Value> = lines.iter().map(|l| l["id"].clone()).collect();
    assert_eq!(ids, [json!(1), Value::Null, json!(2)]);
    // An over-long line is refused and skipped, and the next one served.
    let input = format!(
        "{}\n{}\n",
        "y".repeat(MAX_MESSAGE_BYTES + 10),
        json!({"jsonrpc":"2.0","id":3,"method":"ping"})
    );
    let mut out = Vec::new();
    serve(&server(), std::io::Cursor::new(input), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("-32600") && lines[1].contains(r#""id":3"#));
}

fn line() -> impl Strategy<Value = String> {
    let valid = prop_oneof![
        Just(json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}).to_string()),
        Just(json!({"jsonrpc":"2.0","id":2,"method":"tools/list"}).to_string()),
        Just(json!({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"task_claim","arguments":{"agent":"a"}}}).to_string()),
        Just(json!({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"task_create","arguments":{"agent":"a","name":"t"}}}).to_string()),
        Just(json!({"jsonrpc":"2.0","id":5,"method":"server/discover","params":{"_meta":modern_meta()}}).to_string()),
        Just(json!({"jsonrpc":"2.0","method":"notifications/initialized"}).to_string()),
    ];
    prop_oneof![
        valid.clone(),
        // Truncated or corrupted valid messages.
        (valid, any::<usize>()).prop_map(|(v, n)| v[..n % (v.len() + 1)].to_owned()),
        any::<String>(),
        "\\{\"jsonrpc\":\"2.0\",\"id\":[0-9a-z\"]{0,5},\"method\":\"[a-z/]{0,12}\",\"params\":[^\n]{0,40}\\}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_sequence_of_lines_gets_well_formed_answers(lines in proptest::collection::vec(line(), 1..30)) {
        let s = server();
        for l in &lines {
            for out in s.handle(l) {
                prop_assert!(!out.contains('\n'));
                let v: Value = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(&v["jsonrpc"], "2.0");
                prop_assert!(v.get("result").is_some() != v.get("error").is_some());
                prop_assert!(v["id"].is_string() || v["id"].is_number() || v["id"].is_null());
            }
        }
    }
}

#[test]
fn batches_are_accepted_exactly_in_sessions_at_2025_03_26() {
    let ping = |id: u64| json!({"jsonrpc":"2.0","id":id,"method":"ping"});
    let note = json!({"jsonrpc":"2.0","method":"notifications/initialized"});
    let check = json!({"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"lock_check","arguments":{"paths":["f"]}}});
    let s = server();
    init(&s, "2025-03-26");
    // One array of the answers, none for the notification, in order.
    let out = s.handle(&json!([ping(1), note, check, ping(2)]).to_string());
    assert_eq!(out.len(), 1, "one line: {out:?}");
    let answers: Value = serde_json::from_str(&out[0]).unwrap();
    let ids: Vec<&Value> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["id"])
        .collect();
    assert_eq!(ids, [&json!(1), &json!("c"), &json!(2)], "{answers}");
    assert_eq!(answers[0]["result"], json!({}));
    let text = answers[1]["result"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap()["free"], true);
    // Only notifications: nothing at all.
    assert!(s.handle(&json!([note]).to_string()).is_empty());
    // An empty array, and a bad member, are invalid requests.
    let empty = one(&s, json!([]));
    assert_eq!(empty["error"]["code"], -32600, "{empty}");
    let bad: Value = serde_json::from_str(&s.handle(&json!([1, ping(3)]).to_string())[0]).unwrap();
    assert_eq!(bad[0]["error"]["code"], -32600, "{bad}");
    assert_eq!(bad[1]["id"], 3);
    // initialize never belongs to a batch.
    let init_in = json!([{"jsonrpc":"2.0","id":9,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}]);
    let refused: Value = serde_json::from_str(&s.handle(&init_in.to_string())[0]).unwrap();
    assert_eq!(refused[0]["error"]["code"], -32600, "{refused}");

    // Other revisions have no batches.
    for version in ["2025-11-25", "2025-06-18", "2024-11-05"] {
        let s = server();
        init(&s, version);
        let r = one(&s, json!([ping(1)]));
        assert_eq!(r["error"]["code"], -32600, "{version}: {r}");
        assert!(
            r["error"]["message"]
                .as_str()
                .unwrap()
                .contains("2025-03-26"),
            "{r}"
        );
    }
    let r = one(&server(), json!([ping(1)]));
    assert_eq!(r["error"]["code"], -32600, "before a handshake: {r}");
}

#[test]
fn serve_answers_a_batch_in_one_line_and_never_waits_in_one() {
    let s = server();
    init(&s, "2025-03-26");
    let wait = json!({"jsonrpc":"2.0","id":"w","method":"tools/call","params":{"name":"lock_acquire","arguments":{"agent":"b","paths":["f"],"wait_ms":60000}}});
    let ping = json!({"jsonrpc":"2.0","id":1,"method":"ping"});
    let input = format!("{}\n", json!([wait, ping]));
    let mut out = Vec::new();
    serve(&s, std::io::Cursor::new(input), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    let answers: Value = serde_json::from_str(&text).unwrap();
    let body: Value =
        serde_json::from_str(answers[0]["result"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "TOO_MANY_WAITS", "{body}");
    assert_eq!(answers[1]["id"], 1);
}
