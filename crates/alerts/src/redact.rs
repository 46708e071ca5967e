//! Secrets kept out of messages: the one redaction of URLs and secret-bearing values that every
//! error, log line, CLI output and page of the alerts uses.
//!
//! A receiver's URL often is its credential: `user:password@`, Slack's
//! `https://hooks.slack.com/services/T000/B000/XXXX`, `?token=`, `?api_key=`. [`redact_url`]
//! keeps what tells the operator which endpoint failed (scheme, host, port, and the leading path
//! segments that are plain words such as `services` or `api/v2`) and replaces the rest with
//! `***`; [`redact`] does that to every URL in a free text, and to the value of every
//! `password=`, `token: ` and similar secret-named field in it.

/// What replaces a secret.
const HIDDEN: &str = "***";

/// Field names whose values are secrets (compared case-insensitively, `-` read as `_`).
const SECRET_NAMES: [&str; 16] = [
    "password",
    "passwd",
    "pwd",
    "pass",
    "secret",
    "token",
    "access_token",
    "auth_token",
    "api_key",
    "apikey",
    "key",
    "routing_key",
    "integration_key",
    "auth",
    "authorization",
    "signature",
];

/// Whether a field called `name` holds a secret: one of the known names, or a name that ends in
/// one (`slack_token`, `client_secret`, `smtp_password`).
pub(crate) fn secret_name(name: &str) -> bool {
    let name = name.trim().to_ascii_lowercase().replace('-', "_");
    SECRET_NAMES
        .iter()
        .any(|s| name == *s || name.ends_with(&format!("_{s}")))
}

/// `url` with its secrets replaced by `***`: credentials (`user:password@`), every path segment
/// from the first one that is not a plain word (a word is lowercase ASCII letters, `-` and `_`,
/// or a version such as `v2`, at most 32 bytes), every query value and the fragment. Text that
/// is not `scheme://...` is hidden whole.
///
/// ```
/// use oc_alerts::redact_url;
/// assert_eq!(
///     redact_url("https://u:pw@hooks.slack.com/services/T000/B000/XXXX?token=s3cret#x"),
///     "https://***@hooks.slack.com/services/***?token=***#***",
/// );
/// assert_eq!(redact_url("http://127.0.0.1:9093/api/v2/alerts"), "http://127.0.0.1:9093/api/v2/alerts");
/// ```
pub fn redact_url(url: &str) -> String {
    let Some(colon) = url.find("://") else {
        return HIDDEN.to_owned();
    };
    let scheme = &url[..colon];
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    {
        return HIDDEN.to_owned();
    }
    let rest = &url[colon + 3..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str("://");
    match authority.rfind('@') {
        Some(at) => {
            out.push_str(HIDDEN);
            out.push('@');
            out.push_str(&authority[at + 1..]);
        }
        None => out.push_str(authority),
    }
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, _)) => (t, true),
        None => (tail, false),
    };
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    for seg in path.split('/').skip(1) {
        out.push('/');
        if plain_word(seg) {
            out.push_str(seg);
        } else {
            out.push_str(HIDDEN);
            break;
        }
    }
    if let Some(q) = query {
        out.push('?');
        let pairs: Vec<String> = q
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((k, _)) if plain_word(k) => format!("{k}={HIDDEN}"),
                _ => HIDDEN.to_owned(),
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    if fragment {
        out.push('#');
        out.push_str(HIDDEN);
    }
    out
}

/// A path segment or query key that names rather than authenticates: `services`, `api`, `v2`,
/// `routing_key`. Empty segments (`a//b`, a trailing `/`) are plain too.
fn plain_word(seg: &str) -> bool {
    let version =
        seg.len() > 1 && seg.starts_with('v') && seg[1..].bytes().all(|b| b.is_ascii_digit());
    seg.len() <= 32
        && (version
            || seg
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_'))
}

/// `text` with every URL in it redacted ([`redact_url`]), and the value of every secret-named
/// field (`password=hunter2`, `token: abc`, `"api_key": "abc"`, `password = hunter2`) replaced
/// by `***`. Used on every message that may quote a URL or configuration text.
///
/// ```
/// use oc_alerts::redact;
/// let shown = redact("POST http://ops:pw@127.0.0.1:1/hook/T0/XYZ failed; password = hunter2");
/// assert_eq!(shown, "POST http://***@127.0.0.1:1/hook/*** failed; password = ***");
/// ```
pub fn redact(text: &str) -> String {
    let urls = redact_urls(text);
    redact_fields(&urls)
}

/// Where a URL in free text ends.
fn url_end(c: char) -> bool {
    c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '`' | '<' | '>' | '\\')
}

fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        // The scheme runs back over its characters.
        let start = after_last(&rest[..at], |c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        });
        let end = rest[at..].find(url_end).map_or(rest.len(), |e| at + e);
        out.push_str(&rest[..start]);
        if start == at {
            // No scheme: not a URL, but what follows may still be a credential.
            out.push_str("://");
            rest = &rest[at + 3..];
            continue;
        }
        // Trailing punctuation belongs to the sentence, not the URL.
        let url = rest[start..end].trim_end_matches(['.', ',', ';', ':', ')', ']']);
        out.push_str(&redact_url(url));
        rest = &rest[start + url.len()..];
    }
    out.push_str(rest);
    out
}

/// Where the run of characters at the end of `text` that are not `stop` begins: just past the
/// last `stop` character (whatever its width in bytes), or 0.
fn after_last(text: &str, stop: impl Fn(char) -> bool) -> usize {
    text.char_indices()
        .rev()
        .find(|&(_, c)| stop(c))
        .map_or(0, |(i, c)| i + c.len_utf8())
}

/// Hides the value after each secret-named field: `name=value`, `name: value`,
/// `name = "value"`, `"name": "value"`.
fn redact_fields(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'=' && b != b':' {
            i += 1;
            continue;
        }
        // `://` is a URL's, already redacted.
        if b == b':' && text[i..].starts_with("://") {
            i += 3;
            continue;
        }
        // The name before the separator: word characters, maybe quoted, maybe spaced.
        let before = text[..i].trim_end_matches([' ', '\t']);
        let before = before.strip_suffix('"').unwrap_or(before);
        let name_start = after_last(before, |c| {
            !(c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
        let name = &before[name_start..];
        if name.is_empty() || !secret_name(name) {
            i += 1;
            continue;
        }
        // The value after it: spaces, an optional quote, then up to the closing quote or the
        // end of the word.
        let mut v = i + 1;
        while v < bytes.len() && matches!(bytes[v], b' ' | b'\t') {
            v += 1;
        }
        if text[v..].starts_with(HIDDEN) {
            // Hidden already (a URL's query value).
            i = v + HIDDEN.len();
            continue;
        }
        let (value_start, value_end) = match bytes.get(v) {
            Some(&q @ (b'"' | b'\'')) => {
                let close = text[v + 1..]
                    .find(q as char)
                    .map_or(text.len(), |e| v + 1 + e);
                (v + 1, close)
            }
            _ => {
                let end = text[v..]
                    .find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | ';' | '"' | '\''))
                    .map_or(text.len(), |e| v + e);
                (v, end)
            }
        };
        if value_end > value_start {
            out.push_str(&text[copied..value_start]);
            out.push_str(HIDDEN);
            copied = value_end;
        }
        i = value_end.max(i + 1);
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::{redact, redact_url};

    fn check_url(url: &str, shown: &str) {
        assert_eq!(redact_url(url), shown, "{url}");
    }

    #[test]
    fn urls_keep_the_endpoint_and_lose_their_secrets() {
        check_url(
            "https://hooks.slack.com/services/T000/B000/XXXX",
            "https://hooks.slack.com/services/***",
        );
        check_url(
            "http://user:pw@127.0.0.1:9/hook",
            "http://***@127.0.0.1:9/hook",
        );
        check_url("http://token@example.com", "http://***@example.com");
        check_url(
            "https://events.pagerduty.com/v2/enqueue",
            "https://events.pagerduty.com/v2/enqueue",
        );
        check_url(
            "https://x.example/hook?token=abc&key=def&plain",
            "https://x.example/hook?token=***&key=***&***",
        );
        check_url("https://x.example/a#secret", "https://x.example/a#***");
        check_url(
            "https://discord.com/api/webhooks/123/AbC",
            "https://discord.com/api/webhooks/***",
        );
        check_url("not a url hunter2", "***");
        check_url("", "***");
    }

    #[test]
    fn texts_lose_urls_and_secret_fields() {
        for (raw, shown) in [
            ("plain words stay", "plain words stay"),
            (
                "http://a:b@127.0.0.1:1/x/Y1: io: connection refused",
                "http://***@127.0.0.1:1/x/***: io: connection refused",
            ),
            (
                "\"http://a:b@h/T0\" refused it.",
                "\"http://***@h/***\" refused it.",
            ),
            ("password = hunter2", "password = ***"),
            ("password=hunter2 next", "password=*** next"),
            ("smtp_password: 'hunter2'", "smtp_password: '***'"),
            (
                r#"{"api_key": "abc", "n": 1}"#,
                r#"{"api_key": "***", "n": 1}"#,
            ),
            ("routing_key=R0123, then", "routing_key=***, then"),
            ("ratio=1 monkey=2", "ratio=1 monkey=2"),
            ("at line 3: bad", "at line 3: bad"),
            ("://dangling password=x", "://dangling password=***"),
            (
                "http://h/x?token=abc: refused",
                "http://h/x?token=***: refused",
            ),
        ] {
            assert_eq!(redact(raw), shown, "{raw}");
        }
    }
}

#[cfg(test)]
mod never_panics {
    use proptest::prelude::*;

    use super::{redact, redact_url};

    const SECRET: &str = "S3cr3tQz";

    #[test]
    fn non_ascii_text_is_redacted_not_a_panic() {
        assert_eq!(redact("température: 20"), "température: 20");
        // `»` is not where a URL ends: the segment it ends is hidden, as any odd segment is.
        assert_eq!(redact("«http://example.com/a»"), "«http://example.com/***");
        assert_eq!(
            redact("é password=hunter2 «http://u:pw@h/Tök»"),
            "é password=*** «http://***@h/***"
        );
        assert_eq!(redact_url("http://ü:pw@hé/ä?ö=1"), "http://***@hé/***?***");
    }

    proptest! {
        #[test]
        fn redact_never_panics(text in any::<String>()) {
            let _ = redact(&text);
            let _ = redact_url(&text);
        }

        #[test]
        fn redact_never_panics_near_separators(
            parts in proptest::collection::vec(
                prop_oneof![
                    any::<String>(),
                    Just("://".to_owned()),
                    Just("=".to_owned()),
                    Just(": ".to_owned()),
                    Just("@".to_owned()),
                    Just("«é".to_owned()),
                    Just("password".to_owned()),
                    Just("\"".to_owned()),
                ],
                0..12,
            )
        ) {
            let text = parts.concat();
            let _ = redact(&text);
            let _ = redact_url(&text);
        }

        #[test]
        fn a_planted_secret_never_shows(
            before in any::<String>(),
            after in any::<String>(),
            scheme in "[a-z][a-z0-9+.-]{0,8}",
            how in 0..4usize,
        ) {
            prop_assume!(!before.contains(SECRET) && !after.contains(SECRET));
            let planted = match how {
                0 => format!("{scheme}://user:{SECRET}@host/"),
                1 => format!("{scheme}://host/hook?token={SECRET}&n=1"),
                2 => format!("password = {SECRET}"),
                _ => format!("{scheme}://h/services/{SECRET}"),
            };
            let text = format!("{before} {planted} {after}");
            let shown = redact(&text);
            prop_assert!(!shown.contains(SECRET), "{text:?} shown as {shown:?}");
            if how != 2 {
                let shown = redact_url(planted.trim_end());
                prop_assert!(!shown.contains(SECRET), "{planted:?} shown as {shown:?}");
            }
        }
    }
}
