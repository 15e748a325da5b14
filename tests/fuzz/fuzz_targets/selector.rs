//! T18: the JMS selector parser and evaluator, and topic wildcards, on arbitrary text (see
//! `harness_selector.rs`).
#![no_main]

#[path = "../harness_selector.rs"]
mod harness_selector;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness_selector::selector(data));
