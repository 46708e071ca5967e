//! Fuzz target: `oc_fuzz_oracles::mcp_messages` on every input.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| oc_fuzz_oracles::mcp_messages(data));
