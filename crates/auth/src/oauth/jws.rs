//! JWS compact serialisation (RFC 7515), the algorithms we accept (RFC 7518) and JSON Web Keys
//! (RFC 7517), parsed by hand over `serde_json` and checked with `ring`.
//!
//! Nothing here trusts its input: a token is at most [`MAX_TOKEN`] bytes of the base64url
//! alphabet and two dots before anything is decoded; a header naming `none`, an HMAC or any
//! algorithm not in [`Alg`] is refused; keys come only from the issuer's JWKS (a header's `jwk`,
//! `jku` or `x5u` is ignored), and a key is used only with the algorithm its type allows.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature;
use serde_json::{Map, Value};

/// The longest token we read: anything longer is refused before it is parsed.
pub(crate) const MAX_TOKEN: usize = 16 * 1024;

/// A JWS algorithm we verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Alg {
    Rs256,
    Rs384,
    Rs512,
    Ps256,
    Ps384,
    Ps512,
    Es256,
    Es384,
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
}

impl Alg {
    fn parse(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::Rs256,
            "RS384" => Alg::Rs384,
            "RS512" => Alg::Rs512,
            "PS256" => Alg::Ps256,
            "PS384" => Alg::Ps384,
            "PS512" => Alg::Ps512,
            "ES256" => Alg::Es256,
            "ES384" => Alg::Es384,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Rs384 => "RS384",
            Alg::Rs512 => "RS512",
            Alg::Ps256 => "PS256",
            Alg::Ps384 => "PS384",
            Alg::Ps512 => "PS512",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
        }
    }

    fn key_kind(self) -> KeyKind {
        match self {
            Alg::Es256 => KeyKind::P256,
            Alg::Es384 => KeyKind::P384,
            _ => KeyKind::Rsa,
        }
    }
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    pub(crate) alg: Alg,
    pub(crate) kid: Option<String>,
    /// `header.payload`, the bytes the signature covers.
    signing_input: &'a [u8],
    signature: Vec<u8>,
    pub(crate) claims: Map<String, Value>,
}

/// The header fields we read. Others (`typ`, `x5t`, …) are allowed and ignored; a duplicated
/// field is refused by the derive.
#[derive(serde::Deserialize)]
struct Header {
    alg: Value,
    #[serde(default)]
    kid: Option<Value>,
    #[serde(default)]
    crit: Option<Value>,
    #[serde(default)]
    typ: Option<Value>,
}

/// The `typ` values of an access token: RFC 9068's `at+jwt` and the plain `JWT` many issuers
/// still send (the audience check is what keeps an ID token out: its `aud` is a client id).
fn typ_allowed(typ: &str) -> bool {
    ["at+jwt", "application/at+jwt", "JWT", "application/jwt"]
        .iter()
        .any(|t| t.eq_ignore_ascii_case(typ))
}

/// Shows at most 40 characters of a value that came from a token, escaped.
pub(crate) fn shown(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    if cut.len() < s.len() {
        format!("{:?}…", cut)
    } else {
        format!("{cut:?}")
    }
}

fn b64(part: &str, what: &str) -> Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|e| format!("the {what} is not base64url: {e}"))
}

/// Splits and decodes a compact JWS, refusing what we never verify.
pub(crate) fn parse(token: &str) -> Result<Jws<'_>, String> {
    if token.len() > MAX_TOKEN {
        return Err(format!(
            "it is {} bytes, over the limit of {MAX_TOKEN}",
            token.len()
        ));
    }
    if let Some(b) = token
        .bytes()
        .find(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return Err(format!(
            "it has a byte (0x{b:02x}) outside the base64url alphabet and '.'"
        ));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("it is not three base64url parts separated by dots (a JWS)".into());
    };
    let header_bytes = b64(h, "header")?;
    let header: Header = serde_json::from_slice(&header_bytes)
        .map_err(|e| format!("the header is not a JSON object with an alg: {e}"))?;
    let alg_name = match &header.alg {
        Value::String(s) => s.as_str(),
        _ => return Err("the header's alg is not a string".into()),
    };
    let alg = match Alg::parse(alg_name) {
        Some(a) => a,
        None if alg_name.eq_ignore_ascii_case("none") => {
            return Err("unsigned tokens (alg none) are refused".into());
        }
        None if alg_name.starts_with("HS") => {
            return Err(format!(
                "HMAC tokens ({}) are refused: only the issuer's public keys are trusted",
                shown(alg_name)
            ));
        }
        None => return Err(format!("the algorithm {} is not accepted", shown(alg_name))),
    };
    if header.crit.is_some() {
        // RFC 7515 4.1.11: extensions marked critical must be understood; we understand none.
        return Err("the header has crit extensions, which are not supported".into());
    }
    match &header.typ {
        None | Some(Value::Null) => {}
        Some(Value::String(t)) if typ_allowed(t) => {}
        Some(t) => {
            return Err(format!(
                "its typ {} is not an access token's",
                shown(&t.to_string())
            ));
        }
    }
    let kid = match header.kid {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => Some(k),
        Some(_) => return Err("the header's kid is not a string".into()),
    };
    let payload = b64(p, "payload")?;
    let claims = match serde_json::from_slice::<Value>(&payload) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err("the payload is not a JSON object".into()),
        Err(e) => return Err(format!("the payload is not JSON: {e}")),
    };
    let signature = b64(s, "signature")?;
    Ok(Jws {
        alg,
        kid,
        signing_input: &token.as_bytes()[..h.len() + 1 + p.len()],
        signature,
        claims,
    })
}

/// A public key from the issuer's JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Jwk {
    pub(crate) kid: Option<String>,
    /// The algorithm the JWK names, if any: then the token's must be the same.
    alg: Option<Alg>,
    material: Material,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Material {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    Ec { kind: KeyKind, point: Vec<u8> },
}

impl Material {
    fn kind(&self) -> KeyKind {
        match self {
            Material::Rsa { .. } => KeyKind::Rsa,
            Material::Ec { kind, .. } => *kind,
        }
    }
}

fn field<'a>(key: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    key.get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("it has no string {name}"))
}

fn strip_zeros(mut b: &[u8]) -> &[u8] {
    while let [0, rest @ ..] = b {
        b = rest;
    }
    b
}

impl Jwk {
    /// Reads one entry of a JWKS: `Ok(None)` for a key that is not for verifying signatures
    /// with an algorithm we accept (an encryption key, an HMAC secret, another curve).
    fn from_json(v: &Value) -> Result<Option<Jwk>, String> {
        let Value::Object(key) = v else {
            return Err("a key is not a JSON object".into());
        };
        if key.get("use").is_some_and(|u| u != "sig") {
            return Ok(None);
        }
        if let Some(ops) = key.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|a| a.iter().any(|o| o == "verify"));
            if !verifies {
                return Ok(None);
            }
        }
        let alg = match key.get("alg") {
            None => None,
            Some(Value::String(a)) => match Alg::parse(a) {
                Some(a) => Some(a),
                None => return Ok(None),
            },
            Some(_) => return Err("a key's alg is not a string".into()),
        };
        let kid = match key.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.clone()),
            Some(_) => return Err("a key's kid is not a string".into()),
        };
        let material = match field(key, "kty")? {
            "RSA" => {
                let n = b64(field(key, "n")?, "modulus n")?;
                let e = b64(field(key, "e")?, "exponent e")?;
                let (n, e) = (strip_zeros(&n), strip_zeros(&e));
                // ring verifies 2048 to 8192-bit moduli and exponents up to 33 bits.
                if !(256..=1024).contains(&n.len()) {
                    return Err(format!(
                        "an RSA key of {} bits is outside 2048 to 8192",
                        n.len() * 8
                    ));
                }
                if e.is_empty() || e.len() > 4 {
                    return Err("an RSA exponent is zero or over 32 bits".into());
                }
                Material::Rsa {
                    n: n.to_vec(),
                    e: e.to_vec(),
                }
            }
            "EC" => {
                let (kind, len) = match field(key, "crv")? {
                    "P-256" => (KeyKind::P256, 32),
                    "P-384" => (KeyKind::P384, 48),
                    _ => return Ok(None),
                };
                let x = b64(field(key, "x")?, "coordinate x")?;
                let y = b64(field(key, "y")?, "coordinate y")?;
                if x.len() != len || y.len() != len {
                    return Err(format!("an EC key's coordinates are not {len} bytes"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Material::Ec { kind, point }
            }
            _ => return Ok(None),
        };
        if let Some(a) = alg
            && a.key_kind() != material.kind()
        {
            return Err(format!(
                "a key names {} but is not a key for it",
                a.as_str()
            ));
        }
        Ok(Some(Jwk { kid, alg, material }))
    }

    /// Whether this key may check a signature made with `alg`.
    pub(crate) fn fits(&self, alg: Alg) -> bool {
        self.material.kind() == alg.key_kind() && self.alg.is_none_or(|a| a == alg)
    }
}

/// The usable keys of a JWKS document, at most `max`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Jwk>,
    /// Entries skipped: unusable, malformed, or past `max`.
    pub(crate) skipped: usize,
}

/// Reads a JWKS document (RFC 7517 section 5). A malformed entry is skipped rather than
/// failing the set, so that one odd key does not lock every token out.
pub(crate) fn parse_jwks(body: &[u8], max: usize) -> Result<KeySet, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("the JWKS is not JSON: {e}"))?;
    let Some(entries) = doc.get("keys").and_then(Value::as_array) else {
        return Err("the JWKS has no keys array".into());
    };
    let mut set = KeySet::default();
    for entry in entries {
        match Jwk::from_json(entry) {
            Ok(Some(k)) if set.keys.len() < max => set.keys.push(k),
            _ => set.skipped += 1,
        }
    }
    Ok(set)
}

impl Jws<'_> {
    /// Checks the signature with `key`, which must fit the token's algorithm.
    pub(crate) fn verify_with(&self, key: &Jwk) -> Result<(), String> {
        if !key.fits(self.alg) {
            return Err(format!(
                "the key chosen is not a key for {}",
                self.alg.as_str()
            ));
        }
        let ok = match &key.material {
            Material::Rsa { n, e } => {
                let params: &signature::RsaParameters = match self.alg {
                    Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                    Alg::Rs384 => &signature::RSA_PKCS1_2048_8192_SHA384,
                    Alg::Rs512 => &signature::RSA_PKCS1_2048_8192_SHA512,
                    Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
                    Alg::Ps384 => &signature::RSA_PSS_2048_8192_SHA384,
                    Alg::Ps512 => &signature::RSA_PSS_2048_8192_SHA512,
                    Alg::Es256 | Alg::Es384 => return Err("not an RSA algorithm".into()),
                };
                signature::RsaPublicKeyComponents { n, e }
                    .verify(params, self.signing_input, &self.signature)
                    .is_ok()
            }
            Material::Ec { point, .. } => {
                let params = match self.alg {
                    Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return Err("not an ECDSA algorithm".into()),
                };
                signature::UnparsedPublicKey::new(params, point)
                    .verify(self.signing_input, &self.signature)
                    .is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err("the signature does not verify".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    fn check_refused(token: &str, says: &str) {
        match parse(token) {
            Ok(j) => panic!("accepted {token:?}: {j:?}"),
            Err(e) => assert!(e.contains(says), "{e:?} does not say {says:?}"),
        }
    }

    #[test]
    fn refuses_what_it_never_verifies() {
        let body = enc(r#"{"sub":"a"}"#);
        let tok = |h: &str| format!("{}.{body}.c2ln", enc(h));
        check_refused(&tok(r#"{"alg":"none"}"#), "alg none");
        check_refused(&tok(r#"{"alg":"NONE"}"#), "alg none");
        check_refused(&tok(r#"{"alg":"HS256"}"#), "HMAC");
        check_refused(&tok(r#"{"alg":"EdDSA"}"#), "not accepted");
        check_refused(&tok(r#"{"alg":1}"#), "not a string");
        check_refused(&tok(r#"{"alg":"RS256","alg":"RS256"}"#), "duplicate");
        check_refused(&tok(r#"{"alg":"RS256","crit":["b64"]}"#), "crit");
        check_refused(&tok(r#"[1]"#), "header");
        check_refused(&tok(r#"{"alg":"ES256","typ":"dpop+jwt"}"#), "typ");
        check_refused(&tok(r#"{"alg":"ES256","typ":7}"#), "typ");
        check_refused("a.b", "three");
        check_refused("a.b.c.d", "three");
        check_refused("a b.c.d", "0x20");
        check_refused(&"a".repeat(MAX_TOKEN + 1), "over the limit");
        let ok = parse(&tok(r#"{"alg":"ES256","kid":"k1","typ":"at+jwt"}"#)).map(|j| j.kid);
        assert_eq!(ok, Ok(Some("k1".to_owned())));
    }

    #[test]
    fn a_jwks_keeps_usable_keys_up_to_the_cap() {
        let ec = |kid: &str| {
            format!(
                r#"{{"kty":"EC","crv":"P-256","kid":"{kid}","x":"{}","y":"{}"}}"#,
                enc(&"x".repeat(32)),
                enc(&"y".repeat(32))
            )
        };
        let doc = format!(
            r#"{{"keys":[{},{},{{"kty":"oct","k":"c2VjcmV0"}},{{"kty":"EC","crv":"P-256","use":"enc","x":"","y":""}},{}]}}"#,
            ec("a"),
            ec("b"),
            ec("c")
        );
        let set = parse_jwks(doc.as_bytes(), 2).unwrap_or_default();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, [Some("a".into()), Some("b".into())]);
        assert_eq!(set.skipped, 3);
        assert!(set.keys[0].fits(Alg::Es256) && !set.keys[0].fits(Alg::Rs256));
        assert!(parse_jwks(b"{}", 2).is_err());
        assert!(parse_jwks(b"[", 2).is_err());
    }
}
