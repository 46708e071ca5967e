//! OAuth 2.1 resource server (feature `oauth`): JWT access tokens from one configured issuer,
//! as the MCP authorization spec asks, and the metadata and challenges that lead clients to it.
//!
//! - [`JwtVerifier`] is a [`Verifier`](crate::Verifier): it checks a JWS compact token's
//!   signature (RS256/384/512, PS256/384/512, ES256, ES384; never `none` nor HMAC) with a key
//!   from the issuer's JWKS chosen by `kid` and fitting the header's `alg`, then `iss`, `aud`
//!   (this server's resource URL, RFC 8707), `exp`, `nbf` and `iat` with a leeway, and maps the
//!   `scope` claim through [`ScopeMap`] (`oc:read`, `oc:work`, `oc:admin`; the highest wins).
//! - [`OAuthConfig`] holds the issuer, the audience, the claims naming the agent (`sub`; the
//!   identity's agent is `oauth:` and its value, [`crate::OAUTH_AGENT_PREFIX`]) and the
//!   tenant, and the bounds: tokens over 16 KiB are refused unread, keys are fetched with a
//!   timeout and a size cap, at most `max_keys` are kept, and an unknown `kid` refetches them at
//!   most once per `refetch_interval`.
//! - [`ProtectedResourceMetadata`] is the RFC 9728 document for
//!   `/.well-known/oauth-protected-resource` and builds the `WWW-Authenticate` values:
//!   [`challenge`](ProtectedResourceMetadata::challenge) maps an [`AuthError`](crate::AuthError)
//!   to 401 or 403 `insufficient_scope`. A 401 names `scope="oc:work"` by default, so that a
//!   client asks for work rather than every scope listed.
//!
//! ```no_run
//! use oc_auth::Verifier;
//! use oc_auth::oauth::{JwtVerifier, OAuthConfig};
//! let verifier = JwtVerifier::new(OAuthConfig::new(
//!     "https://login.example.com",
//!     "https://oc.example.com/mcp",
//! ))?;
//! let who = verifier.verify("eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
//! assert!(who.is_err());
//! # Ok::<(), oc_auth::AuthError>(())
//! ```

mod config;
mod jws;
mod keys;
mod metadata;
mod verifier;

pub use config::{OAuthConfig, ScopeMap};
pub use metadata::{Challenge, ProtectedResourceMetadata, bearer};
pub use verifier::JwtVerifier;

/// The longest bearer token [`JwtVerifier`] reads (16 KiB); longer ones are refused unread.
pub const MAX_TOKEN_BYTES: usize = jws::MAX_TOKEN;
