//! The 2026-07-28 revision's header rules: a stateless request's `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` headers must match its body.

use serde_json::Value;

use super::message::HttpRequest;
use crate::protocol::{META_VERSION, RpcError};

/// JSON-RPC `HeaderMismatch` (2026-07-28).
const HEADER_MISMATCH: i64 = -32020;

/// Checks the headers of a 2026-07-28 request against its body.
pub(super) fn check_modern_headers(req: &HttpRequest, msg: &Value) -> Result<(), RpcError> {
    let mismatch = |m: String| {
        Err(RpcError::new(
            HEADER_MISMATCH,
            format!("Header mismatch: {m}"),
        ))
    };
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        return Ok(()); // A response: answered 202 by the core.
    };
    if msg.get("id").is_none() {
        return Ok(()); // Notifications have no header rules in this revision.
    }
    let body_version = msg["params"]["_meta"][META_VERSION].as_str();
    match req.header("mcp-protocol-version") {
        None => return mismatch("the MCP-Protocol-Version header is required".into()),
        Some(h) if body_version.is_some_and(|b| b != h) => {
            return mismatch(format!(
                "MCP-Protocol-Version header {:.40} does not match the body's {:.40}",
                h.escape_debug().to_string(),
                body_version.unwrap_or_default()
            ));
        }
        Some(_) => {}
    }
    match req.header("mcp-method") {
        None => return mismatch("the Mcp-Method header is required".into()),
        Some(h) if h != method => {
            return mismatch(format!(
                "Mcp-Method header value {:.60} does not match body value {:.60}",
                h.escape_debug().to_string(),
                method.escape_debug().to_string()
            ));
        }
        Some(_) => {}
    }
    let named = match method {
        "tools/call" | "prompts/get" => msg["params"]["name"].as_str(),
        "resources/read" => msg["params"]["uri"].as_str(),
        _ => return Ok(()),
    };
    let Some(body_name) = named else {
        return Ok(()); // The core says what is missing.
    };
    match req.header("mcp-name").map(decode_header) {
        None => mismatch("the Mcp-Name header is required".into()),
        Some(None) => mismatch("the Mcp-Name header is not valid base64".into()),
        Some(Some(h)) if h != body_name => mismatch(format!(
            "Mcp-Name header value {:.60} does not match body value {:.60}",
            h.escape_debug().to_string(),
            body_name.escape_debug().to_string()
        )),
        Some(Some(_)) => Ok(()),
    }
}

/// A header value, decoded when it is in the `=?base64?…?=` form.
fn decode_header(v: &str) -> Option<String> {
    match v
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => String::from_utf8(base64_decode(b64)?).ok(),
        None => Some(v.to_owned()),
    }
}

/// Base64 in either alphabet (standard or URL-safe), with or without padding.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_header_values_decode() {
        assert_eq!(decode_header("plain").as_deref(), Some("plain"));
        assert_eq!(
            decode_header("=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, 世界")
        );
        assert_eq!(decode_header("=?base64?!!?="), None);
    }
}
