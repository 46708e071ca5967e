//! Integration tests of `oc-jsonl`: one binary, one module per concern.
#![allow(clippy::unwrap_used)]

mod bounds;
mod conformance;
mod crash;
mod datadir;
mod depth;
mod faults;
mod files;
mod power_loss;
mod props;
mod replace;
mod ship;
mod store;
mod tail;
mod writer;
