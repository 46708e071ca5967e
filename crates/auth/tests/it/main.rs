//! Integration tests of `oc-auth`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[cfg(feature = "oauth")]
mod oauth;
