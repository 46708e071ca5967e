//! `JwtVerifier` against keys made by the `openssl` CLI, tokens signed with `ring`, and the
//! issuer's metadata and JWKS served over real HTTP on 127.0.0.1.

mod fetching;
mod oidc_provider;
mod props;
mod support;
mod verify;
