//! Integration tests of `oc-metrics`.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod catalogue;
mod publish;
mod rules;
mod timed;
mod tracing;
mod values;
