//! The fuzz harnesses, shared by the cargo-fuzz targets (`fuzz_targets/`) and by the main
//! crate's `tests/fuzz_replay.rs`, which replays the committed corpus on every `cargo test`.
#![allow(dead_code)]

#[path = "../common/fault.rs"]
mod fault;

use std::sync::OnceLock;
use std::time::Duration;

use fault::FaultFs;
use mqlite::journal::format::*;
use mqlite::record::*;
use mqlite::{ManualClock, Store, StoreOptions};

/// The frame and record decoder: never panics on any input; whatever it accepts lies within the
/// input; any payload framed validly is accepted, and a single flipped bit of it is not.
pub fn decode(data: &[u8]) {
    if let Some(h) = check_frame(data) {
        assert!(FRAME_HEADER + h.len <= data.len());
        walk(&data[FRAME_HEADER..FRAME_HEADER + h.len], 0);
    }
    let _ = check_segment_header(data, "fuzz");
    walk(data, 0);
    let _ = get_bincode::<mqlite::DeadLetterInfo>(data);
    let _ = get_bincode::<Vec<(String, u64)>>(data);
    let mut f = vec![0u8; FRAME_HEADER];
    put_frame_header(&mut f, 7, 6, 1, data);
    f.extend_from_slice(data);
    let h = check_frame(&f).expect("a validly framed payload is accepted");
    assert_eq!((h.len, h.seq, h.synced, h.count), (data.len(), 7, 6, 1));
    let bit = data.iter().fold(data.len(), |a, &b| {
        a.wrapping_mul(31).wrapping_add(b as usize)
    }) % (f.len() * 8);
    f[bit / 8] ^= 1 << (bit % 8);
    assert!(check_frame(&f).is_none(), "flip of bit {bit} not detected");
}

fn walk(payload: &[u8], depth: u32) {
    for r in records(payload) {
        let Ok((at, k, body)) = r else { break };
        assert!(at + RECORD_HEADER + body.len() <= payload.len());
        let mut c = Cursor::new(body);
        match k {
            kind::SEND => {
                if let Some(h) = SendHeader::get(&mut c) {
                    let _ = c.take(h.meta_len as usize);
                }
            }
            kind::TXN if depth < 4 => walk(body, depth + 1),
            _ => {
                let _ = (c.u32(), c.u64(), c.u8(), c.rest());
            }
        }
    }
}

fn dir() -> &'static std::path::Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir"))
        .path()
}

/// The segment a fuzz input stands for. Byte 0 holds flags: bit 0 = the rest is a list of frame
/// payloads (`u16` length + payload), each wrapped in a valid frame header so that the records
/// inside reach the store's record decoder; otherwise the rest is raw bytes after a valid
/// segment header. Bit 1 = sequence numbers and `synced` fields taken from the input too.
pub fn segment(data: &[u8]) -> Vec<u8> {
    let mut seg = segment_header(1, 1_700_000_000_000, 1).to_vec();
    let (flags, rest) = match data.split_first() {
        Some((f, r)) => (*f, r),
        None => return seg,
    };
    if flags & 1 == 0 {
        seg.extend_from_slice(rest);
    } else {
        let mut r = rest;
        let mut seq = 1u64;
        while r.len() >= 2 {
            let n = (u16::from_le_bytes([r[0], r[1]]) as usize).min(r.len() - 2);
            let payload = &r[2..2 + n];
            r = &r[2 + n..];
            let (s, synced) = if flags & 2 != 0 && n >= 2 {
                (payload[0] as u64, payload[1] as u64)
            } else {
                (seq, seq - 1)
            };
            let count = records(payload).count() as u32;
            let mut f = vec![0u8; FRAME_HEADER];
            put_frame_header(&mut f, s, synced, count, payload);
            seg.extend_from_slice(&f);
            seg.extend_from_slice(payload);
            seq += 1;
        }
    }
    if seg.len() < 64 << 10 {
        seg.resize(64 << 10, 0); // preallocated space
    }
    seg
}

/// Whole-segment recovery: the input as the store's only segment. Opening may fail (Corrupt);
/// it must not panic or hang, what it delivers must decode, the store must take a send, and a
/// store that opened once must open again.
pub fn recover(data: &[u8]) {
    let fs = FaultFs::new();
    fs.put("0000000000000001.seg", segment(data));
    let opts = StoreOptions {
        vfs: fs.vfs(),
        clock: ManualClock::new(1_700_000_000_000),
        segment_bytes: 64 << 10,
        repair: data.first().is_some_and(|f| f & 4 != 0),
        ..Default::default()
    };
    let Ok(s) = Store::open(dir(), opts.clone()) else {
        return;
    };
    for name in s.queue_names() {
        let Ok(q) = s.queue(&name) else { continue };
        let _ = q.browse(1000);
        let _ = q.stats();
        if let Ok(ds) = q.receive_batch(1000, Some(Duration::ZERO)) {
            for (i, d) in ds.into_iter().enumerate() {
                let _ = if i % 2 == 0 { d.ack() } else { d.nack("fuzz") };
            }
        }
    }
    if let Ok(q) = s.queue("fuzz") {
        q.send("after recovery")
            .expect("a recovered store takes a send");
    }
    s.close().expect("close");
    let s = Store::open(dir(), opts)
        .unwrap_or_else(|e| panic!("opened once, then failed to reopen: {e}"));
    s.close().expect("close");
}
