//! The pieces of the tools' JSON Schemas: flat objects, typed properties, and the arguments
//! and answers several tools share.

use serde_json::{Map, Value, json};

/// A flat object schema from `(name, schema)` pairs and the required names.
pub(super) fn object(props: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: Map<String, Value> = props
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({ "type": "object", "properties": properties, "required": required,
            "additionalProperties": false })
}

pub(super) fn string(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

pub(super) fn strings(description: &str) -> Value {
    json!({ "type": "array", "items": { "type": "string" }, "description": description })
}

pub(super) fn integer(description: &str, min: u64, max: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": max, "description": description })
}

/// An answer's schema: the properties given, and the server's `now`.
pub(super) fn answer(props: &[(&str, Value)], required: &[&str]) -> Value {
    let mut schema = object(props, required);
    if let Some(p) = schema["properties"].as_object_mut() {
        p.insert("now".into(), string("The server's time (RFC 3339)."));
    }
    if let Some(r) = schema["required"].as_array_mut() {
        r.push(json!("now"));
    }
    schema
}

pub(super) fn boolean(description: &str) -> Value {
    json!({ "type": "boolean", "description": description })
}

pub(super) fn list(description: &str) -> Value {
    json!({ "type": "array", "description": description })
}

pub(super) fn any_object(description: &str) -> Value {
    json!({ "type": "object", "description": description })
}

pub(super) fn agent() -> (&'static str, Value) {
    (
        "agent",
        string(
            "Your agent name (defaults to the server's OC_AGENT). Several agents may share one server.",
        ),
    )
}

/// The argument naming a change for retries.
pub(super) const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// The optional `idempotency_key` argument of a tool that changes something.
pub(super) fn idempotency_key(what: &str) -> (&'static str, Value) {
    (
        IDEMPOTENCY_KEY,
        string(&format!(
            "Optional: a key naming this call (1 to 200 bytes, yours per agent for 24 hours). A retry with the same key and arguments, after a timeout say, {what} and answers replayed=true; the same key with other arguments is refused with IDEMPOTENCY_CONFLICT."
        )),
    )
}

/// The `replayed` answer of a keyed tool.
pub(super) fn replayed() -> (&'static str, Value) {
    (
        "replayed",
        boolean(
            "The idempotency key was known: this is the first call's answer, nothing changed now.",
        ),
    )
}
