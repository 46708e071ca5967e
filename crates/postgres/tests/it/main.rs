//! Integration tests of `oc-postgres` against real, throwaway PostgreSQL servers.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[cfg(feature = "alerts")]
mod alerts;
mod batch;
mod bloat;
mod conformance;
mod errors;
mod faults;
mod file_hosts;
mod files;
mod graph;
mod histories;
mod hosts;
mod imports;
mod keys;
mod lock_stress;
mod model;
mod processes;
mod readiness;
mod runtime;
mod schemas;
mod server;
mod tls;
mod tokens;
mod wait;
