//! T10 in `cargo test`: replays the committed fuzz corpus (`tests/fuzz/corpus/`) through the fuzz
//! harnesses, then runs a few thousand deterministic mutations of it. The real fuzzing is
//! `tests/fuzz/run.sh SECONDS` (cargo-fuzz).

// The harness brings its own copy of the fault layer (the fuzz crate has no tests/common).
#![allow(clippy::duplicate_mod)]

#[path = "fuzz/harness.rs"]
mod harness;
#[path = "fuzz/harness_selector.rs"]
mod harness_selector;

mod common;

use common::durable::Rng;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut v = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        if v.is_empty() {
            v.push(rng.next_u64() as u8);
            continue;
        }
        let at = rng.below(v.len() as u64) as usize;
        match rng.below(5) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = rng.next_u64() as u8,
            2 => v.truncate(at),
            3 => {
                let n = rng.below(16) as usize;
                let junk: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                v.splice(at..at, junk);
            }
            _ => {
                // A length or id field set to an extreme.
                let x = [0u8, 0xff][rng.below(2) as usize];
                let end = (at + 4).min(v.len());
                v[at..end].fill(x);
            }
        }
    }
    v
}

#[test]
fn t10_fuzz_corpus_replay_and_mutations() {
    let _serial = common::durable::serial();
    let mut rng = Rng::new(10);
    let n = common::durable::size(1500, 100_000);
    let mut counts = Vec::new();
    for (target, run) in [
        ("decode", harness::decode as fn(&[u8])),
        ("recover", harness::recover as fn(&[u8])),
    ] {
        let seeds = corpus(target);
        assert!(!seeds.is_empty(), "no seed corpus for {target}");
        for s in &seeds {
            run(s);
        }
        for _ in 0..n {
            let s = &seeds[rng.below(seeds.len() as u64) as usize];
            let input = mutate(&mut rng, s);
            run(&input);
        }
        counts.push(format!("{target}: {} seeds + {n} mutations", seeds.len()));
    }
    eprintln!("T10 fuzz corpus replay: {}; 0 panics", counts.join(", "));
}

/// T18 in `cargo test`: the selector fuzz corpus and deterministic mutations of it.
#[test]
fn t18_selector_fuzz_corpus_replay() {
    let mut rng = Rng::new(18);
    let n = common::durable::size(100_000, 2_000_000);
    let seeds = corpus("selector");
    assert!(!seeds.is_empty(), "no seed corpus for selector");
    for s in &seeds {
        harness_selector::selector(s);
    }
    for _ in 0..n {
        let s = &seeds[rng.below(seeds.len() as u64) as usize];
        harness_selector::selector(&mutate(&mut rng, s));
    }
    eprintln!(
        "T18 selector fuzz corpus replay: {} seeds + {n} mutations; 0 panics",
        seeds.len()
    );
}

/// Writes the seed corpus from real stores (run once: `cargo test --test fuzz_replay -- --ignored`).
#[test]
#[ignore]
fn make_seed_corpus() {
    use mqlite::journal::format::*;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    for (seed, steps) in [(1u64, 12u64), (2, 30), (3, 60)] {
        let dir = tempfile::tempdir().unwrap();
        let fs = common::durable::FaultFs::new();
        let clock = mqlite::ManualClock::new(1_700_000_000_000);
        let mut o = common::durable::opts(&fs, &clock);
        o.segment_bytes = 64 << 10;
        let s = mqlite::Store::open(dir.path(), o).unwrap();
        let mut m = common::durable::Model::default();
        let mut w = common::durable::Workload::new(&s, seed, "f").unwrap();
        w.max_body = 300;
        let (_, e) = common::durable::run(&mut w, &mut m, &s, steps);
        assert!(e.is_none());
        // A message with every kind of meta, and a delayed, expiring, grouped, deduplicated one.
        let q = s.queue("meta").unwrap();
        q.send(
            mqlite::Message::new("m")
                .property("i", 1i64)
                .property("s", "x")
                .correlation_id("c")
                .group("g")
                .dedup_key("k")
                .priority(9)
                .ttl(std::time::Duration::from_secs(60))
                .delay(std::time::Duration::from_secs(1)),
        )
        .unwrap();
        drop(w);
        s.close().unwrap();
        let seg = fs.read("0000000000000001.seg").unwrap();
        // recover, raw mode: flags 0 + everything after the segment header, trailing zeros cut.
        let end = seg
            .iter()
            .rposition(|&b| b != 0)
            .map_or(SEGMENT_HEADER, |p| p + 1);
        let mut raw = vec![0u8];
        raw.extend_from_slice(&seg[SEGMENT_HEADER..end]);
        // recover, framed mode: flags 1 + (u16 length, payload) per frame.
        let mut framed = vec![1u8];
        let mut pos = SEGMENT_HEADER;
        let mut first_frame = None;
        while let Some(h) = check_frame(&seg[pos..]) {
            let p = &seg[pos + FRAME_HEADER..pos + FRAME_HEADER + h.len];
            framed.extend_from_slice(&(h.len as u16).to_le_bytes());
            framed.extend_from_slice(p);
            first_frame.get_or_insert_with(|| seg[pos..pos + FRAME_HEADER + h.len].to_vec());
            pos += FRAME_HEADER + h.len;
        }
        for (target, name, bytes) in [
            ("recover", format!("raw-{seed}"), raw),
            ("recover", format!("framed-{seed}"), framed.clone()),
            ("decode", format!("frame-{seed}"), first_frame.unwrap()),
            ("decode", format!("payloads-{seed}"), framed[1..].to_vec()),
        ] {
            std::fs::create_dir_all(root.join(target)).unwrap();
            std::fs::write(root.join(target).join(name), bytes).unwrap();
        }
    }
}
