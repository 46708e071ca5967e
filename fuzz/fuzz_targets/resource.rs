//! Fuzz target: `oc_fuzz_oracles::resource` on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oc_fuzz_oracles::resource(data));
