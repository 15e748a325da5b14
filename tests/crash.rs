//! T2: simulated power loss below the file layer (the test catalogue: `mqlite::docs::tests`).
//!
//! A mixed workload runs over the fault-injecting file layer, which cuts it at the k-th mutating
//! file operation. A crash image is made from what had been synced (plus, depending on the mode,
//! a random subset of unsynced writes, a torn last write with garbage, or a process crash that
//! keeps the page cache), the store is reopened on it, and what it holds is checked against
//! the log of durably acknowledged calls: no acknowledged send lost, no acknowledged ack (or
//! reject) undone, every in-doubt transaction all or nothing, every reopen successful.
//! One in five images is a chain: process crash, recovery, more work, then a power loss.
//!
//! CI: 2,000 images. `MQLITE_SOAK=1`: 50,000.

mod common;

use common::durable::*;
use mqlite::ManualClock;

const STEPS: u64 = 160;

struct Totals {
    images: u64,
    chains: u64,
    reopens: u64,
    checked: Checked,
    torn_tails: u64,
    incomplete_segments: u64,
    cut_during_open: u64,
    by_mode: std::collections::BTreeMap<String, u64>,
}

fn mode_for(i: u64) -> CrashMode {
    match i % 4 {
        0 => CrashMode::SyncedOnly,
        1 => CrashMode::RandomSubset,
        2 => CrashMode::TornLast { sector: 512 },
        _ => CrashMode::TornLast { sector: 4096 },
    }
}

/// One crash image: run seed `seed` cut at mutation `k`, crash with `mode`, reopen and check.
/// With `chain`, the first crash is a process crash, then more work is cut at `k2` and the
/// result crashes again with `mode`.
fn one(
    dir: &std::path::Path,
    seed: u64,
    k: u64,
    mode: CrashMode,
    chain: Option<u64>,
    t: &mut Totals,
) -> Result<(), String> {
    let clock = ManualClock::new(1_700_000_000_000);
    let fs = FaultFs::new();
    fs.crash_at(k);
    let mut m = Model::default();
    match open(dir, &fs, &clock) {
        Ok(store) => {
            // The commit thread may hit the cut on its own (recovery's records) before any call.
            match Workload::new(&store, seed, &format!("s{seed}-")) {
                Ok(mut w) => {
                    let (_, err) = run(&mut w, &mut m, &store, STEPS);
                    if err.is_some() && !fs.crashed() {
                        return Err(format!("workload failed without a crash: {err:?}"));
                    }
                }
                Err(_) if fs.crashed() => {}
                Err(e) => return Err(format!("declaring queues: {e}")),
            }
            drop(store);
        }
        Err(e) => {
            if !fs.crashed() {
                return Err(format!("open failed without a crash: {e}"));
            }
            t.cut_during_open += 1;
        }
    }
    let mut rng = Rng::new(seed ^ k.rotate_left(17));
    let mut img = fs.crash_image(
        if chain.is_some() {
            CrashMode::ProcessCrash
        } else {
            mode
        },
        &mut rng,
    );
    if let Some(k2) = chain {
        // Recover from the process crash, go on working, and lose power at k2.
        img.crash_at(k2);
        match open(dir, &img, &clock) {
            Ok(store) => {
                t.reopens += 1;
                // A check or call cut by the crash (the store is poisoned) checks nothing; the
                // model is left as it was, for the check after the power loss.
                match m.verify(&store, &QUEUES) {
                    Ok(c) => {
                        t.checked += c;
                        match Workload::new(&store, seed + 1000, &format!("t{seed}-")) {
                            Ok(mut w) => {
                                let (_, err) = run(&mut w, &mut m, &store, STEPS / 2);
                                if err.is_some() && !img.crashed() {
                                    return Err(format!(
                                        "second workload failed without a crash: {err:?}"
                                    ));
                                }
                            }
                            Err(_) if img.crashed() => {}
                            Err(e) => return Err(format!("declaring queues: {e}")),
                        }
                    }
                    Err(_) if img.crashed() => {}
                    Err(e) => return Err(format!("after the process crash: {e}")),
                }
                drop(store);
            }
            Err(e) => {
                if !img.crashed() {
                    return Err(format!("reopen after the process crash failed: {e}"));
                }
            }
        }
        img = img.crash_image(mode, &mut rng);
        t.chains += 1;
    }
    let (c, rep) = reopen_and_verify(dir, &img, &clock, &mut m)?;
    t.reopens += 1;
    t.checked += c;
    t.torn_tails += rep.torn_tail.is_some() as u64;
    t.incomplete_segments += rep.removed_incomplete_segments.len() as u64;
    t.images += 1;
    *t.by_mode.entry(format!("{mode:?}")).or_default() += 1;
    Ok(())
}

#[test]
fn t2_power_loss_crash_images() {
    let panics0 = count_panics();
    let total = size(2_000, 50_000);
    let dir = tempfile::tempdir().unwrap();
    let seeds = 8u64;
    let per_seed = total / seeds;
    let mut t = Totals {
        images: 0,
        chains: 0,
        reopens: 0,
        checked: Checked::default(),
        torn_tails: 0,
        incomplete_segments: 0,
        cut_during_open: 0,
        by_mode: Default::default(),
    };
    let started = std::time::Instant::now();
    for seed in 0..seeds {
        // A clean run tells how many mutating operations the workload makes.
        let fs = FaultFs::new();
        let clock = ManualClock::new(1_700_000_000_000);
        let mut m = Model::default();
        {
            let store = open(dir.path(), &fs, &clock).unwrap();
            let mut w = Workload::new(&store, seed, &format!("s{seed}-")).unwrap();
            let (n, err) = run(&mut w, &mut m, &store, STEPS);
            assert!(err.is_none(), "clean run: {err:?}");
            assert_eq!(n, STEPS);
            if seed == 0 {
                eprintln!("T2 workload calls (seed 0): {:?}", w.calls);
            }
        }
        let muts = fs.mutations();
        eprintln!(
            "T2 clean run seed {seed}: {muts} mutating file operations ({} segment creations, {} removals, {} fdatasyncs, {} directory fsyncs)",
            fs.count(Op::Create),
            fs.count(Op::Remove),
            fs.count(Op::Sync),
            fs.count(Op::SyncDir)
        );
        let mut rng = Rng::new(seed * 7919 + 1);
        for i in 0..per_seed {
            // Cut points cover the run evenly, plus jitter.
            let k = 1 + (i * muts / per_seed + rng.below(3)).min(muts);
            let mode = mode_for(i);
            let chain = (i % 5 == 4).then(|| 1 + rng.below(muts / 2 + 1));
            if let Err(e) = one(dir.path(), seed, k, mode, chain, &mut t) {
                panic!("T2 seed {seed} cut at mutation {k} of {muts}, mode {mode:?}, chain {chain:?}: {e}");
            }
        }
    }
    assert_eq!(panics(), panics0, "a thread panicked");
    eprintln!(
        "T2 power loss: {} crash images ({} chained process-crash + power-loss), {} reopens, all succeeded; \
         {} acknowledged sends found, 0 lost; {} acknowledged acks/rejects checked, 0 delivered again; \
         {} in-doubt outcomes resolved; {} in-doubt transactions all-or-nothing; {} delivery counts not reset; {} torn tails cut; \
         {} incomplete segments removed; {} cuts inside open; modes {:?}; {:.1} s",
        t.images,
        t.chains,
        t.reopens,
        t.checked.durable_present,
        t.checked.durable_settled,
        t.checked.in_doubt,
        t.checked.txns,
        t.checked.counts,
        t.torn_tails,
        t.incomplete_segments,
        t.cut_during_open,
        t.by_mode,
        started.elapsed().as_secs_f64()
    );
}

/// Frames of a segment image: (start, end, message id if the frame holds one SEND).
fn frames(seg: &[u8]) -> Vec<(usize, usize, Option<u64>)> {
    use mqlite::journal::format::*;
    use mqlite::record::*;
    let mut out = Vec::new();
    let mut pos = SEGMENT_HEADER;
    while let Some(h) = check_frame(&seg[pos..]) {
        let p = pos + FRAME_HEADER;
        let id = records(&seg[p..p + h.len])
            .flatten()
            .find(|r| r.1 == kind::SEND)
            .map(|r| u64_at(r.2, 0));
        out.push((pos, p + h.len, id));
        pos = p + h.len;
    }
    out
}

const SEG: &str = "0000000000000001.seg";

/// A store holding `n` sends of varied sizes to queue "a", one frame each; returns the segment
/// image and the ids.
fn small_store(dir: &std::path::Path, n: usize) -> (Vec<u8>, Vec<u64>) {
    let fs = FaultFs::new();
    let clock = ManualClock::new(1_700_000_000_000);
    let mut o = opts(&fs, &clock);
    o.segment_bytes = 64 << 10;
    let s = mqlite::Store::open(dir, o).unwrap();
    let q = s.queue("a").unwrap();
    let ids = (0..n)
        .map(|i| {
            q.send(body(&format!("m{i}"), 20 + (i * 397) % 1500))
                .unwrap()
                .0
        })
        .collect();
    s.close().unwrap();
    (fs.read(SEG).unwrap(), ids)
}

/// Opens a store over `seg` as its only segment; returns the ids of queue "a" (every body
/// checked) and the recovery report, or the error.
fn open_image(
    dir: &std::path::Path,
    seg: Vec<u8>,
    repair: bool,
) -> Result<(Vec<u64>, mqlite::RecoveryReport, FaultFs), mqlite::Error> {
    let fs = FaultFs::new();
    fs.put(SEG, seg);
    let clock = ManualClock::new(1_700_000_000_000);
    let mut o = opts(&fs, &clock);
    o.segment_bytes = 64 << 10;
    o.repair = repair;
    let s = mqlite::Store::open(dir, o)?;
    let q = s.queue("a").unwrap();
    let ms = q.browse(usize::MAX).unwrap();
    let ids = ms
        .iter()
        .map(|m| {
            assert!(
                tag_of(m.body()).is_some(),
                "a corrupted body was delivered: {:?}",
                m.body()
            );
            m.id().unwrap().0
        })
        .collect();
    let rep = s.recovery_report().clone();
    s.close().unwrap();
    Ok((ids, rep, fs))
}

/// The next send works and survives a reopen.
fn next_send_works(dir: &std::path::Path, fs: &FaultFs, before: &[u64]) {
    let clock = ManualClock::new(1_700_000_000_000);
    let mut o = opts(fs, &clock);
    o.segment_bytes = 64 << 10;
    let s = mqlite::Store::open(dir, o.clone()).unwrap();
    let id = s.queue("a").unwrap().send(body("next", 50)).unwrap().0;
    s.close().unwrap();
    let s = mqlite::Store::open(dir, o).unwrap();
    let ids: Vec<u64> = s
        .queue("a")
        .unwrap()
        .browse(usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.id().unwrap().0)
        .collect();
    let mut want = before.to_vec();
    want.push(id);
    assert_eq!(ids, want, "after the next send");
    s.close().unwrap();
}

#[test]
fn t3_torn_tail_every_offset() {
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let (seg, ids) = small_store(dir.path(), 12);
    let fr = frames(&seg);
    let last_n = 4;
    let from = fr[fr.len() - last_n].0;
    let end = fr.last().unwrap().1;
    let (mut cases, mut torn_reported) = (0u64, 0u64);
    for o in from..=end {
        for truncate in [false, true] {
            let mut img = seg.clone();
            if truncate {
                img.truncate(o);
            } else {
                img[o..end].fill(0);
            }
            // Whole frames before the cut survive; the rest is gone.
            let want: Vec<u64> = fr.iter().filter(|f| f.1 <= o).filter_map(|f| f.2).collect();
            let (got, rep, fs) = open_image(dir.path(), img, false)
                .unwrap_or_else(|e| panic!("cut at {o} (truncate {truncate}): {e}"));
            assert_eq!(got, want, "cut at {o} (truncate {truncate})");
            torn_reported += rep.torn_tail.is_some() as u64;
            next_send_works(dir.path(), &fs, &want);
            cases += 1;
        }
    }
    // Random garbage after the last frame (sometimes starting with a frame magic).
    let mut rng = Rng::new(3);
    let garbage_cases = 300;
    for i in 0..garbage_cases {
        let mut img = seg.clone();
        let len = 1 + rng.below(3000) as usize;
        rng.fill(&mut img[end..end + len]);
        if i % 3 == 0 {
            img[end..end + 4].copy_from_slice(b"MQF1");
        }
        let (got, rep, fs) =
            open_image(dir.path(), img, false).unwrap_or_else(|e| panic!("garbage {i}: {e}"));
        assert_eq!(got, ids, "garbage {i}");
        assert!(
            rep.torn_tail.is_some(),
            "garbage {i} not reported as a torn tail"
        );
        next_send_works(dir.path(), &fs, &ids);
    }
    assert_eq!(panics(), panics0);
    eprintln!(
        "T3 torn tail: {cases} cuts (every byte offset {from}..={end} of the last {last_n} frames, zeroed and truncated), \
         {torn_reported} reported a torn tail, each recovered exactly the whole frames before the cut and took the next send; \
         {garbage_cases} garbage tails (1..3000 random bytes, a third starting with the frame magic) cut, 0 failures"
    );
}

#[test]
fn t4_bit_flips() {
    use mqlite::journal::format::{FRAME_HEADER, RECORD_HEADER};
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let (seg, ids) = small_store(dir.path(), 10);
    let fr = frames(&seg);
    let n = fr.len();
    let mut rng = Rng::new(4);
    let (mut mid, mut tail, mut seg_hdr) = (0u64, 0u64, 0u64);
    let expect_corrupt =
        |img: Vec<u8>, frame_start: usize, what: &str| match open_image(dir.path(), img, false) {
            Ok((got, ..)) => {
                panic!("{what}: opened, delivered {got:?}; want Corrupt at offset {frame_start}")
            }
            Err(e) => {
                assert_eq!(e.kind(), mqlite::ErrorKind::Corrupt, "{what}: {e}");
                let msg = e.to_string();
                assert!(
                    msg.contains(SEG) && msg.contains(&format!("offset {frame_start}")),
                    "{what}: message {msg:?} must name {SEG} and offset {frame_start}"
                );
            }
        };
    let expect_tail_cut = |img: Vec<u8>, what: &str| {
        let (got, rep, _) =
            open_image(dir.path(), img, false).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(got, ids[..ids.len() - 1].to_vec(), "{what}");
        assert!(rep.torn_tail.is_some(), "{what}: not reported");
    };
    // Every bit of the frame header and the record header: a mid-log frame and the last one.
    for (fi, is_tail) in [(n / 2, false), (n - 1, true)] {
        let (start, _, _) = fr[fi];
        for bit in 0..(FRAME_HEADER + RECORD_HEADER) * 8 {
            let mut img = seg.clone();
            img[start + bit / 8] ^= 1 << (bit % 8);
            let what = format!("frame {fi} @{start} bit {bit}");
            if is_tail {
                expect_tail_cut(img, &what);
                tail += 1;
            } else {
                expect_corrupt(img, start, &what);
                mid += 1;
            }
        }
    }
    // Random single-bit and burst flips in bodies, mid-log and at the tail.
    let trials = size(400, 20_000);
    for t in 0..trials {
        let is_tail = t % 2 == 1;
        let fi = if is_tail {
            n - 1
        } else {
            1 + rng.below(n as u64 - 2) as usize
        };
        let (start, end, _) = fr[fi];
        let body_from = start + FRAME_HEADER + RECORD_HEADER;
        let mut img = seg.clone();
        let at = body_from + rng.below((end - body_from) as u64) as usize;
        let what = if t % 4 < 2 {
            img[at] ^= 1 << rng.below(8);
            format!("single flip at {at} in frame {fi}")
        } else {
            let len = (1 + rng.below(64) as usize).min(end - at);
            for b in &mut img[at..at + len] {
                *b ^= (rng.next_u64() as u8) | 1;
            }
            format!("burst of {len} at {at} in frame {fi}")
        };
        if is_tail {
            expect_tail_cut(img, &what);
            tail += 1;
        } else {
            expect_corrupt(img, start, &what);
            mid += 1;
        }
    }
    // Every bit of the segment header.
    for bit in 0..64 * 8 {
        let mut img = seg.clone();
        img[bit / 8] ^= 1 << (bit % 8);
        match open_image(dir.path(), img, false) {
            Ok(_) => panic!("segment header bit {bit}: opened"),
            Err(e) => assert!(
                e.kind() == mqlite::ErrorKind::Corrupt && e.to_string().contains(SEG),
                "segment header bit {bit}: {e}"
            ),
        }
        seg_hdr += 1;
    }
    // Repair: a mid-log corruption is quarantined and reported, the rest is delivered.
    let fi = n / 2;
    let (start, end, lost) = fr[fi];
    let mut img = seg.clone();
    img[start + 40] ^= 0x10;
    let (got, rep, fs) = open_image(dir.path(), img, true).expect("repair opens a corrupted store");
    let want: Vec<u64> = ids.iter().copied().filter(|&i| Some(i) != lost).collect();
    assert_eq!(got, want);
    assert_eq!(rep.quarantined.len(), 1, "{rep:?}");
    let qr = &rep.quarantined[0];
    assert_eq!(
        (qr.file.as_str(), qr.offset, qr.len),
        (SEG, start as u64, (end - start) as u64),
        "{qr:?}"
    );
    assert!(
        fs.names().contains(&qr.saved_as),
        "quarantine file {} missing",
        qr.saved_as
    );
    // The repaired store reopens without repair, and takes sends.
    next_send_works(dir.path(), &fs, &want);
    assert_eq!(panics(), panics0);
    eprintln!(
        "T4 bit flips: {mid} mid-log flips (every bit of a frame + record header, random single and burst flips in bodies) \
         all failed the open with Corrupt naming {SEG} and the frame's offset; {tail} tail flips all cut as a torn tail; \
         {seg_hdr} segment-header flips all Corrupt; 0 corrupted bodies delivered; repair quarantined {} bytes at {}:{} \
         ({} frame lost, saved as {}) and delivered the other {}",
        qr.len,
        qr.file,
        qr.offset,
        qr.frames_lost,
        qr.saved_as,
        want.len()
    );
}

#[test]
fn t4_flips_across_segments() {
    use mqlite::journal::format::FRAME_HEADER;
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let clock = ManualClock::new(1_700_000_000_000);
    let o = opts(&fs, &clock); // 16 KiB segments
    let s = mqlite::Store::open(dir.path(), o).unwrap();
    let q = s.queue("a").unwrap();
    let ids: Vec<u64> = (0..40)
        .map(|i| q.send(body(&format!("x{i}"), 900)).unwrap().0)
        .collect();
    s.close().unwrap();
    let names: Vec<String> = fs
        .names()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    assert!(names.len() >= 3, "{names:?}");
    let segs: Vec<Vec<u8>> = names.iter().map(|n| fs.read(n).unwrap()).collect();
    let open_set = |files: Vec<(String, Vec<u8>)>| {
        let fs = FaultFs::new();
        for (n, b) in files {
            fs.put(&n, b);
        }
        let clock = ManualClock::new(1_700_000_000_000);
        let s = mqlite::Store::open(dir.path(), opts(&fs, &clock))?;
        let got: Vec<u64> = s
            .queue("a")
            .unwrap()
            .browse(usize::MAX)
            .unwrap()
            .iter()
            .map(|m| m.id().unwrap().0)
            .collect();
        s.close().unwrap();
        Ok::<_, mqlite::Error>(got)
    };
    let with = |i: usize, img: Vec<u8>| -> Vec<(String, Vec<u8>)> {
        names
            .iter()
            .cloned()
            .zip(segs.iter().cloned())
            .enumerate()
            .map(|(j, (n, b))| (n, if j == i { img.clone() } else { b }))
            .collect()
    };
    let mut cases = 0;
    // The last frame of a full segment and the first frame of the next: later segments prove
    // them durable, so a flip in either is Corrupt naming that segment and offset.
    for (si, which) in [(0, "last"), (1, "first"), (1, "last")] {
        let fr = frames(&segs[si]);
        let (start, _, _) = if which == "last" {
            *fr.last().unwrap()
        } else {
            fr[0]
        };
        for bit in (0..FRAME_HEADER * 8).step_by(7) {
            let mut img = segs[si].clone();
            img[start + bit / 8] ^= 1 << (bit % 8);
            let e = open_set(with(si, img)).expect_err("a flip proven durable by a later segment");
            assert_eq!(e.kind(), mqlite::ErrorKind::Corrupt, "{e}");
            assert!(
                e.to_string().contains(&names[si])
                    && e.to_string().contains(&format!("offset {start}")),
                "{e}"
            );
            cases += 1;
        }
    }
    // A missing middle segment is Corrupt (the sequence breaks), never a silent gap.
    let mut files = with(usize::MAX, Vec::new());
    files.remove(1);
    let e = open_set(files).expect_err("a missing middle segment");
    assert_eq!(e.kind(), mqlite::ErrorKind::Corrupt, "{e}");
    // The last frame of the last segment is a torn tail.
    let li = segs.len() - 1;
    let (start, _, _) = *frames(&segs[li]).last().unwrap();
    let mut img = segs[li].clone();
    img[start + 9] ^= 4;
    let got = open_set(with(li, img)).unwrap();
    assert_eq!(got, ids[..ids.len() - 1].to_vec());
    assert_eq!(panics(), panics0);
    eprintln!(
        "T4 across {} segments: {cases} flips in a segment's last / the next segment's first frame all Corrupt with the right \
         file and offset; a missing middle segment Corrupt; a flip in the last frame of the last segment cut as a torn tail",
        names.len()
    );
}

/// `Durability::Batched`: a call returns after write(2), so a process crash (kill -9, page
/// cache intact) must lose nothing that returned.
#[test]
fn t2_batched_survives_process_crash() {
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let images = size(300, 5_000);
    let mut checked = Checked::default();
    let batched = |fs: &FaultFs, clock: &std::sync::Arc<ManualClock>| {
        let mut o = opts(fs, clock);
        o.durability = mqlite::Durability::Batched {
            max_delay: std::time::Duration::from_millis(5),
        };
        o
    };
    let clock = ManualClock::new(1_700_000_000_000);
    let fs = FaultFs::new();
    {
        let s = mqlite::Store::open(dir.path(), batched(&fs, &clock)).unwrap();
        let mut w = Workload::new(&s, 99, "z").unwrap();
        let (_, e) = run(&mut w, &mut Model::default(), &s, STEPS);
        assert!(e.is_none());
    }
    let muts = fs.mutations();
    for i in 0..images {
        let k = 1 + i * muts / images;
        let fs = FaultFs::new();
        fs.crash_at(k);
        let mut m = Model::default();
        if let Ok(s) = mqlite::Store::open(dir.path(), batched(&fs, &clock)) {
            if let Ok(mut w) = Workload::new(&s, 99, "z") {
                let _ = run(&mut w, &mut m, &s, STEPS);
            }
        }
        let img = fs.crash_image(CrashMode::ProcessCrash, &mut Rng::new(i));
        let s = mqlite::Store::open(dir.path(), batched(&img, &clock))
            .unwrap_or_else(|e| panic!("image {i} (cut {k}): {e}"));
        checked += m
            .verify(&s, &QUEUES)
            .unwrap_or_else(|e| panic!("image {i} (cut {k}): {e}"));
        s.close().unwrap();
    }
    assert_eq!(panics(), panics0);
    eprintln!(
        "T2 batched durability, process crash: {images} images, {} returned sends found (0 lost), {} returned acks checked",
        checked.durable_present, checked.durable_settled
    );
}

/// Issue 15 kind 3: the timer makes a scheduled repeat's next copy (one TXN record: the due
/// copy rewritten without its repeat, and the next copy). A power loss at every file operation
/// of "send, the timer makes the next copy, receive and ack the first" leaves exactly one next
/// copy after reopen — never none (the timer makes it again) and never two — and the chain
/// goes on from there, once.
#[test]
fn t2_repeat_copy_neither_lost_nor_doubled() {
    use mqlite::Message;
    use std::time::Duration;
    const T0: u64 = 1_700_000_000_000;
    let scenario = |dir: &std::path::Path, fs: &FaultFs| {
        let clock = ManualClock::new(T0);
        let Ok(s) = open(dir, fs, &clock) else {
            return false;
        };
        let Ok(q) = s.queue("tick") else {
            return false;
        };
        let m = Message::new("tick")
            .delay(Duration::from_secs(1))
            .repeat(Duration::from_secs(1), 5);
        if q.send(m).is_err() {
            return false;
        }
        clock.advance_ms(1000);
        if let Ok(Some(d)) = q.receive(Some(Duration::ZERO)) {
            let _ = d.ack();
        }
        drop(q);
        drop(s);
        true
    };
    let whole = FaultFs::new();
    let dir = tempfile::tempdir().unwrap();
    scenario(dir.path(), &whole);
    let muts = whole.mutations();
    let mut checked = 0;
    for k in 1..=muts {
        for (i, mode) in [CrashMode::SyncedOnly, CrashMode::RandomSubset]
            .into_iter()
            .enumerate()
        {
            let dir = tempfile::tempdir().unwrap();
            let fs = FaultFs::new();
            fs.crash_at(k);
            let sent = scenario(dir.path(), &fs);
            let img = fs.crash_image(mode, &mut Rng::new(k * 2 + i as u64));
            let clock = ManualClock::new(T0 + 1000);
            let s = open(dir.path(), &img, &clock)
                .unwrap_or_else(|e| panic!("cut {k}: reopen failed: {e}"));
            let q = s.queue("tick").unwrap();
            let st = q.stats().unwrap();
            if !sent && st.messages == 0 {
                continue; // the send was cut before it returned, and lost
            }
            // The first copy (due at 1 s) is there or acked; the next (due at 2 s) once.
            assert_eq!(
                st.delayed,
                1,
                "cut {k} {mode:?}: next copies after reopen: {st:?} {:?}\n{}",
                q.browse(10)
                    .unwrap()
                    .iter()
                    .map(|m| (m.id(), m.delivery_count(), m.state()))
                    .collect::<Vec<_>>(),
                dump(&img)
            );
            assert!(st.messages <= 2, "cut {k} {mode:?}: {st:?}");
            let before = st.messages;
            clock.advance_ms(1000);
            let st = q.stats().unwrap();
            assert_eq!(
                (st.messages, st.delayed),
                (before + 1, 1),
                "cut {k} {mode:?}: the chain goes on once"
            );
            checked += 1;
            s.close().unwrap();
        }
    }
    assert!(
        checked > muts / 2,
        "{checked} images of {muts} cuts checked"
    );
    eprintln!("T2 repeats: {checked} crash images, each with exactly one next copy");
}
