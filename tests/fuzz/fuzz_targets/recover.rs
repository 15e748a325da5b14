//! Whole-segment recovery: arbitrary bytes as a segment file, opened as a store (see `harness.rs`).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::recover(data));
