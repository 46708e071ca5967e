//! Integration tests of `oc-tasks`: one binary, one module per concern.
#![allow(clippy::unwrap_used)]

mod conformance;
mod faults;
mod graph_processes;
mod history;
mod keys;
mod model;
mod power_loss;
mod processes;
mod sqlite;
mod tokio;
mod wait;
mod worker;
