//! T2: simulated power loss below the file layer (RELIABILITY.md).
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

use common::*;
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
            let mut w =
                Workload::new(&store, seed, &format!("s{seed}-")).map_err(|e| e.to_string())?;
            let (_, err) = run(&mut w, &mut m, &store, STEPS);
            if err.is_some() && !fs.crashed() {
                return Err(format!("workload failed without a crash: {err:?}"));
            }
            drop(w);
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
                let c = m
                    .verify(&store, &QUEUES)
                    .map_err(|e| format!("after the process crash: {e}"))?;
                t.checked += c;
                let mut w = Workload::new(&store, seed + 1000, &format!("t{seed}-"))
                    .map_err(|e| e.to_string())?;
                let (_, err) = run(&mut w, &mut m, &store, STEPS / 2);
                if err.is_some() && !img.crashed() {
                    return Err(format!("second workload failed without a crash: {err:?}"));
                }
                drop(w);
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
    count_panics();
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
    assert_eq!(panics(), 0, "a thread panicked");
    eprintln!(
        "T2 power loss: {} crash images ({} chained process-crash + power-loss), {} reopens, all succeeded; \
         {} acknowledged sends found, 0 lost; {} acknowledged acks/rejects checked, 0 delivered again; \
         {} in-doubt outcomes resolved; {} in-doubt transactions all-or-nothing; {} torn tails cut; \
         {} incomplete segments removed; {} cuts inside open; modes {:?}; {:.1} s",
        t.images,
        t.chains,
        t.reopens,
        t.checked.durable_present,
        t.checked.durable_settled,
        t.checked.in_doubt,
        t.checked.txns,
        t.torn_tails,
        t.incomplete_segments,
        t.cut_during_open,
        t.by_mode,
        started.elapsed().as_secs_f64()
    );
}
