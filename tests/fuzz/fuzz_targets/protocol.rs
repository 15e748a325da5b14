//! T17: the owner/client socket protocol's decoders (hello, welcome, framing, requests and
//! replies) on arbitrary bytes: they never panic and never allocate more than a frame's limit
//! (see `mqlite::remote::protocol::fuzz_decode`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mqlite::remote::protocol::fuzz_decode(data);
});
