//! The issuer's keys: discovered, fetched with a timeout and a size cap, cached, and refetched
//! at most once per `refetch_interval` however many unknown `kid`s arrive.
//!
//! Verifying threads read the cache under a read lock. A thread that needs a fetch takes the
//! fetch mutex: one fetch at a time, and a thread that waited for another's fetch finds the
//! attempt recent, does not fetch again, and reads what that fetch brought.

use std::sync::Arc;
use std::time::Duration;

use oc_time::{Clock, Timestamp};
use parking_lot::{Mutex, MutexGuard, RwLock};
use serde_json::Value;

use super::config::{OAuthConfig, check_url, split_url};
use super::jws::{Alg, Jwk, KeySet, parse_jwks, shown};
use crate::AuthError;

/// The cache verifying threads read.
#[derive(Debug, Default)]
struct Cache {
    keys: Arc<KeySet>,
    /// When the keys were last fetched successfully.
    fetched_at: Option<Timestamp>,
}

/// What the fetching thread keeps.
#[derive(Debug, Default)]
struct FetchState {
    last_attempt: Option<Timestamp>,
    /// The keys' URL, configured or discovered.
    jwks_uri: Option<String>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
}

pub(crate) struct KeySource {
    issuer: String,
    allow_http: bool,
    max_document: u64,
    max_keys: usize,
    refetch_interval: Duration,
    max_key_age: Duration,
    clock: Arc<dyn Clock>,
    agent: ureq::Agent,
    cache: RwLock<Cache>,
    fetch: Mutex<FetchState>,
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cache = self.cache.read();
        f.debug_struct("KeySource")
            .field("issuer", &self.issuer)
            .field("keys", &cache.keys.keys.len())
            .field("fetched_at", &cache.fetched_at)
            .finish_non_exhaustive()
    }
}

/// The well-known metadata URLs to try for `issuer`, in order: OpenID Connect Discovery
/// (appended to the issuer), RFC 8414 (inserted between host and path), and for an issuer with
/// a path, OpenID's form inserted as RFC 8414 does it.
pub(crate) fn metadata_urls(issuer: &str) -> Vec<String> {
    let trimmed = issuer.trim_end_matches('/');
    let mut urls = vec![format!("{trimmed}/.well-known/openid-configuration")];
    if let Some((scheme, authority, path)) = split_url(trimmed) {
        let base = format!("{scheme}://{authority}");
        urls.push(format!(
            "{base}/.well-known/oauth-authorization-server{path}"
        ));
        if !path.is_empty() {
            urls.push(format!("{base}/.well-known/openid-configuration{path}"));
        }
    }
    urls
}

impl KeySource {
    pub(crate) fn new(config: &OAuthConfig, clock: Arc<dyn Clock>) -> KeySource {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.fetch_timeout))
            .http_status_as_error(false)
            // A redirect could lead to plain http or elsewhere; issuers serve keys directly.
            .max_redirects(0)
            .max_response_header_size(16 * 1024)
            .build()
            .into();
        KeySource {
            issuer: config.issuer.clone(),
            allow_http: config.allow_http,
            max_document: config.max_document,
            max_keys: config.max_keys,
            refetch_interval: config.refetch_interval,
            max_key_age: config.max_key_age,
            clock,
            agent,
            cache: RwLock::new(Cache::default()),
            fetch: Mutex::new(FetchState {
                jwks_uri: config.jwks_uri.clone(),
                ..FetchState::default()
            }),
        }
    }

    /// The key for a token signed with `alg` naming `kid`, fetching the keys if it is unknown
    /// or the keys are stale, within the refetch interval.
    pub(crate) fn key_for(&self, kid: Option<&str>, alg: Alg) -> Result<Jwk, AuthError> {
        let now = self.clock.now();
        let (found, stale) = {
            let cache = self.cache.read();
            let stale = cache
                .fetched_at
                .is_none_or(|t| now.since(t) >= self.max_key_age);
            (choose(&cache.keys, kid, alg), stale)
        };
        match found {
            Ok(key) if !stale => return Ok(key),
            // A known key past its age: refresh if nobody is fetching, else use it meanwhile,
            // so that an issuer slow to answer does not hold up tokens we can check.
            Ok(key) => match self.fetch.try_lock() {
                Some(state) => self.refresh(state),
                None => return Ok(key),
            },
            // An unknown kid waits for a fetch under way: it may bring the key.
            Err(_) => self.refresh(self.fetch.lock()),
        }
        // The cache's lock is let go before the fetch mutex is taken: `refresh` takes them in
        // the other order.
        let (found, never_fetched) = {
            let cache = self.cache.read();
            (choose(&cache.keys, kid, alg), cache.fetched_at.is_none())
        };
        match found {
            Ok(key) => Ok(key),
            Err(reason) => {
                if never_fetched {
                    let why = self.fetch.lock().last_error.clone();
                    if let Some(why) = why {
                        return Err(AuthError::Backend(format!(
                            "the issuer's keys could not be fetched: {why}"
                        )));
                    }
                }
                Err(AuthError::BadToken(reason))
            }
        }
    }

    /// Fetches the keys unless an attempt was made less than `refetch_interval` ago.
    fn refresh(&self, mut state: MutexGuard<'_, FetchState>) {
        // Read under the mutex, so that a thread that waited here for another's fetch finds
        // that attempt recent. A clock moved back counts the same distance as one moved on.
        let now = self.clock.now();
        if let Some(last) = state.last_attempt {
            let apart = if now >= last {
                now.since(last)
            } else {
                last.since(now)
            };
            if apart < self.refetch_interval {
                return;
            }
        }
        state.last_attempt = Some(now);
        match self.fetch_keys(&mut state) {
            Ok(set) => {
                state.last_error = None;
                let mut cache = self.cache.write();
                cache.keys = Arc::new(set);
                cache.fetched_at = Some(self.clock.now());
            }
            // The keys we had stay: an issuer briefly down does not lock every token out.
            Err(e) => state.last_error = Some(e),
        }
    }

    fn fetch_keys(&self, state: &mut FetchState) -> Result<KeySet, String> {
        let uri = match &state.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let u = self.discover()?;
                state.jwks_uri = Some(u.clone());
                u
            }
        };
        let body = self.get(&uri)?;
        parse_jwks(&body, self.max_keys).map_err(|e| format!("{uri}: {e}"))
    }

    /// Reads `jwks_uri` from the issuer's metadata, checking the metadata names this issuer
    /// (RFC 8414 3.3: a document for another issuer is not used).
    fn discover(&self) -> Result<String, String> {
        let mut errors = Vec::new();
        for url in metadata_urls(&self.issuer) {
            let doc = match self.get(&url) {
                Ok(body) => body,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let doc: Value = match serde_json::from_slice(&doc) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(format!("{url}: not JSON: {e}"));
                    continue;
                }
            };
            if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
                errors.push(format!("{url}: names another issuer"));
                continue;
            }
            let Some(uri) = doc.get("jwks_uri").and_then(Value::as_str) else {
                errors.push(format!("{url}: has no jwks_uri"));
                continue;
            };
            check_url(uri, self.allow_http).map_err(|e| format!("{url}: jwks_uri {e}"))?;
            return Ok(uri.to_owned());
        }
        Err(format!("no metadata for the issuer: {}", errors.join("; ")))
    }

    /// One bounded GET: the whole exchange within the timeout, the body within the cap.
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let mut res = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| format!("{url}: {e}"))?;
        if !res.status().is_success() {
            return Err(format!("{url}: HTTP {}", res.status()));
        }
        res.body_mut()
            .with_config()
            .limit(self.max_document)
            .read_to_vec()
            .map_err(|e| {
                format!(
                    "{url}: reading the body (at most {} bytes): {e}",
                    self.max_document
                )
            })
    }
}

/// The key a token names: by `kid`, or the only key fitting `alg` when it names none.
fn choose(set: &KeySet, kid: Option<&str>, alg: Alg) -> Result<Jwk, String> {
    let key = match kid {
        Some(kid) => set
            .keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .ok_or_else(|| format!("the issuer has no key {}", shown(kid)))?,
        None => {
            let mut fitting = set.keys.iter().filter(|k| k.fits(alg));
            match (fitting.next(), fitting.next()) {
                (Some(k), None) => k,
                (None, _) => return Err(format!("the issuer has no {} key", alg.as_str())),
                (Some(_), Some(_)) => {
                    return Err("the token names no kid and the issuer has several keys".into());
                }
            }
        }
    };
    if !key.fits(alg) {
        return Err(format!(
            "the key {} is not a key for {}",
            shown(kid.unwrap_or("")),
            alg.as_str()
        ));
    }
    Ok(key.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_urls_follow_oidc_and_rfc_8414() {
        assert_eq!(
            metadata_urls("https://a.example"),
            [
                "https://a.example/.well-known/openid-configuration",
                "https://a.example/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            metadata_urls("https://a.example/t/1"),
            [
                "https://a.example/t/1/.well-known/openid-configuration",
                "https://a.example/.well-known/oauth-authorization-server/t/1",
                "https://a.example/.well-known/openid-configuration/t/1",
            ]
        );
    }
}
