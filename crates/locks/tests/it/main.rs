//! Integration tests of `oc-locks`: one binary, one module per concern.
#![allow(clippy::unwrap_used)]

mod conformance;
mod faults;
mod fencing;
mod history;
mod model;
mod power_loss;
mod processes;
mod sqlite;
mod threads;
mod tokio;
