//! End-to-end tests of the `oc` binary: real processes on a real database in a temp dir.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod alerts;
mod alerts_fleet;
mod browser;
mod datadir;
mod demo;
mod errors;
mod escapes;
mod graph;
mod import;
mod locks;
mod logs;
mod mcp;
mod mcp_conformance;
mod mcp_fleet;
mod mcp_oauth;
mod mcp_typescript;
mod ops;
mod postgres;
mod prune;
mod serve;
mod serve_hostile;
mod tasks;
mod tenants;
mod tokens;
mod util;
