//! Integration tests of `oc-metrics`.
#![allow(clippy::unwrap_used)]

mod catalogue;
mod values;
