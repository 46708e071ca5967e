//! Who is calling: the [`Identity`] a request acts as, with its [`Scope`] and [`Tenant`].
//!
//! A server (`oc serve`'s MCP endpoint and pages) turns a credential into an `Identity` before
//! it runs anything, and every write is checked against it:
//!
//! - [`Scope::Read`] changes nothing;
//! - [`Scope::Work`] acts as its own agent only: an `agent` argument, if given, must be its
//!   own, so it cannot finish, heartbeat or release what another agent holds;
//! - [`Scope::Admin`] may act for any agent, and is what the pages' actions need.
//!
//! The tenant chooses the store a request reaches; it comes from the credential, never from a
//! request's arguments.
//!
//! [`TokenStore`] ([`MemoryTokenStore`], `SqliteTokenStore` (feature `sqlite`),
//! `oc_postgres::PgTokenStore`) keeps static `oct_` tokens as SHA-256 hashes of their secrets;
//! [`Verifiers`] routes a bearer credential to it or to another verifier (OAuth access tokens).
//! The two never name the same agent: an OAuth identity's agent is [`OAUTH_AGENT_PREFIX`]
//! (`oauth:`) then its token's agent claim, and no static token may be issued to a name with
//! that prefix.
//!
//! # Features
//!
//! - `oauth`: `oauth::JwtVerifier`, a [`Verifier`] of OAuth 2.1 JWT access tokens from one
//!   issuer (signature with the issuer's JWKS, issuer, audience, expiry, scope), and
//!   `oauth::ProtectedResourceMetadata`, the RFC 9728 document and the `WWW-Authenticate`
//!   challenges ([`AuthError::InsufficientScope`] when a token grants none of our scopes).
#![cfg_attr(docsrs, feature(doc_cfg))]
#![cfg_attr(doctest, doc = include_str!("../README.md"))]

pub mod backend;
mod chain;
mod identity;
#[cfg(feature = "oauth")]
pub mod oauth;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(feature = "testkit")]
pub mod testkit;
mod tokens;

pub use backend::{OAUTH_AGENT_PREFIX, Secret, TokenInfo};
pub use chain::{MAX_BEARER_BYTES, Verifiers, bearer};
pub use identity::{AuthError, Identity, Scope, Tenant};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteTokenStore;
pub use tokens::{MemoryTokenStore, TokenStore};

/// Turns a bearer credential into the [`Identity`] it stands for. Implemented by the store of
/// static tokens and by the OAuth access-token verifier; a server holds one (or a chain).
pub trait Verifier: Send + Sync + std::fmt::Debug {
    /// The identity `bearer` (the text after `Bearer `) stands for, or why it stands for none:
    /// [`AuthError::BadToken`] for anything unknown, revoked, expired or badly signed.
    fn verify(&self, bearer: &str) -> Result<Identity, AuthError>;
}
