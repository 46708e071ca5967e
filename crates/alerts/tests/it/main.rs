//! Integration tests of `oc-alerts`.
#![allow(clippy::unwrap_used)]

mod alertmanager;
mod channels;
mod config;
mod email;
mod engine;
mod evaluator;
mod rules;
mod store;
