//! Integration tests of `oc-alerts`.
#![allow(clippy::unwrap_used)]

mod config;
mod engine;
mod rules;
