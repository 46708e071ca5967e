//! Integration tests of `oc-hooks`.
#![allow(clippy::unwrap_used)]

mod background;
mod keyed;
mod lifecycle;
