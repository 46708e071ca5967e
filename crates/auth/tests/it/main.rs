//! Integration tests of `oc-auth`.
#![allow(clippy::unwrap_used)]

#[cfg(feature = "oauth")]
mod oauth;
