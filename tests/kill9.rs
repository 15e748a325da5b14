//! T1: the kill -9 loop (the test catalogue: `mqlite::docs::tests`).
//!
//! The test binary re-executes itself as a child (`t1_child`, active only when
//! `MQLITE_T1_CHILD` is set) that runs a mixed workload (send, send_batch, receive, ack, nack,
//! reject, release, transactions, dead-letter replay) on a real store directory and reports each call over its stdout pipe:
//! `B` before the call (its outcome is in doubt from then on) and `D` once it returned. The
//! parent SIGKILLs the child at a random moment, reopens the store, and checks it against the
//! reported log: no acknowledged send lost, no durable ack undone, every recovery succeeds. Acks
//! are lazy (`D L`) or `ack_sync` (`D A`) at random: a lazy ack counts as durable only once a
//! later durable call returned; before that the model allows the message to come back.
//!
//! CI: 100 cycles. `MQLITE_SOAK=1`: 1,000.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::durable::*;
use mqlite::*;

fn store_opts() -> StoreOptions {
    StoreOptions {
        segment_bytes: 256 << 10,
        redelivery: no_delay_policy(),
        ..Default::default()
    }
}

/// The child: runs until killed.
#[test]
fn t1_child() {
    let Ok(arg) = std::env::var("MQLITE_T1_CHILD") else {
        return;
    };
    let (dir, rest) = arg.split_once(',').expect("dir,seed,prefix");
    let (seed, prefix) = rest.split_once(',').expect("seed,prefix");
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // One write per line (below PIPE_BUF, so it is atomic), flushed before going on.
        out.write_all(format!("{line}\n").as_bytes()).unwrap();
        out.flush().unwrap();
    };
    let store = Store::open(dir, store_opts()).expect("recovery must succeed");
    let qs = [store.queue("a").unwrap(), store.queue("b").unwrap()];
    say("R".into());
    let mut rng = Rng::new(seed.parse().unwrap());
    let mut held: Vec<(Delivery, String)> = Vec::new();
    let mut n = 0u64;
    loop {
        let qi = rng.below(2) as usize;
        let q = &qs[qi];
        let qn = q.name().to_string();
        match rng.below(108) {
            0..=34 => {
                n += 1;
                let tag = format!("{prefix}{n}");
                let len = if rng.chance(0.2) {
                    rng.below(20_000) as usize
                } else {
                    10 + rng.below(200) as usize
                };
                say(format!("B S {tag} {qn}"));
                let id = q.send(body(&tag, len)).unwrap();
                say(format!("D S {tag} {qn} {}", id.0));
            }
            35..=39 => {
                let tags: Vec<String> = (0..1 + rng.below(4))
                    .map(|_| {
                        n += 1;
                        format!("{prefix}{n}")
                    })
                    .collect();
                for t in &tags {
                    say(format!("B S {t} {qn}"));
                }
                let ids = q.send_batch(tags.iter().map(|t| body(t, 50))).unwrap();
                for (t, id) in tags.iter().zip(ids) {
                    say(format!("D S {t} {qn} {}", id.0));
                }
            }
            40..=64 if held.len() < 10 => {
                for d in q
                    .receive_batch(1 + rng.below(3) as usize, Some(Duration::ZERO))
                    .unwrap()
                {
                    let tag = tag_of(d.body()).expect("an intact body");
                    held.push((d, tag));
                }
            }
            65..=84 if !held.is_empty() => {
                let (d, tag) = held.swap_remove(rng.below(held.len() as u64) as usize);
                say(format!("B A {tag}"));
                if rng.below(2) == 0 {
                    // Lazy: in doubt until a later durable call returns.
                    d.ack().unwrap();
                    say(format!("D L {tag}"));
                } else {
                    d.ack_sync().unwrap();
                    say(format!("D A {tag}"));
                }
            }
            85..=92 if !held.is_empty() => {
                let (d, _) = held.swap_remove(rng.below(held.len() as u64) as usize);
                d.nack("t1").unwrap();
            }
            93..=96 if !held.is_empty() => {
                let (d, tag) = held.swap_remove(rng.below(held.len() as u64) as usize);
                say(format!("B J {tag}"));
                d.reject("t1").unwrap();
                say(format!("D J {tag}"));
            }
            97..=99 if !held.is_empty() => {
                let (d, _) = held.swap_remove(rng.below(held.len() as u64) as usize);
                d.release().unwrap();
            }
            100..=103 if !held.is_empty() => {
                // A transaction: ack one delivery and send a new message, all or nothing.
                let (d, acked) = held.swap_remove(rng.below(held.len() as u64) as usize);
                n += 1;
                let tag = format!("{prefix}{n}");
                say(format!("B T {acked} {tag} {qn}"));
                let mut tx = store.transaction();
                tx.ack(d).unwrap();
                tx.send(q, body(&tag, 30)).unwrap();
                let ids = tx.commit().unwrap();
                say(format!("D T {acked} {tag} {qn} {}", ids[0].0));
            }
            104..=107 => {
                // Replay a few dead letters back to their queue: each move is one record.
                let dlq = store.queue("DLQ").unwrap();
                let dead = dlq.browse(3).unwrap();
                if dead.is_empty() {
                    continue;
                }
                let mut moved = Vec::new();
                for m in &dead {
                    let tag = tag_of(m.body()).expect("an intact body");
                    let orig = m
                        .dead_letter_info()
                        .expect("a dead letter")
                        .original_queue
                        .clone();
                    say(format!("B P {tag} {orig}"));
                    moved.push((tag, orig));
                }
                let ids = dead.iter().map(|m| m.id().unwrap()).collect();
                dlq.replay(&ReplayFilter {
                    ids: Some(ids),
                    ..Default::default()
                })
                .unwrap();
                for (tag, orig) in moved {
                    say(format!("D P {tag} {orig}"));
                }
            }
            _ => {}
        }
    }
}

fn apply(m: &mut Model, line: &str) {
    let f: Vec<&str> = line.split(' ').collect();
    match f.as_slice() {
        ["B", "S", tag, q] => m.begin(tag, Loc::Queue(q.to_string())),
        ["D", "S", tag, q, id] => m.done(tag, Loc::Queue(q.to_string()), Some(id.parse().unwrap())),
        ["B", "A", tag] => m.begin(tag, Loc::Absent),
        ["D", "A", tag] => m.done(tag, Loc::Absent, None),
        ["D", "L", tag] => m.lazy_ack(tag),
        ["B", "J", tag] => m.begin(tag, Loc::Dlq),
        ["D", "J", tag] => {
            m.done(tag, Loc::Dlq, None);
            m.new_id(tag, None);
        }
        ["B", "T", acked, tag, q] => {
            m.begin(acked, Loc::Absent);
            m.begin(tag, Loc::Queue(q.to_string()));
        }
        ["D", "T", acked, tag, q, id] => {
            m.done(acked, Loc::Absent, None);
            m.done(tag, Loc::Queue(q.to_string()), Some(id.parse().unwrap()));
        }
        ["B", "P", tag, q] => m.begin(tag, Loc::Queue(q.to_string())),
        ["D", "P", tag, q] => {
            m.done(tag, Loc::Queue(q.to_string()), None);
            m.new_id(tag, None);
        }
        ["R"] => {}
        _ => panic!("unexpected line from the child: {line:?}"),
    }
}

#[test]
fn t1_kill9_loop() {
    let _serial = serial();
    let panics0 = count_panics();
    let cycles = size(100, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let mut m = Model::default();
    let mut rng = Rng::new(0x7111);
    let mut total = Checked::default();
    let (mut lines, mut before_ready, mut torn, mut dones) = (0u64, 0u64, 0u64, 0u64);
    let started = Instant::now();
    for cycle in 0..cycles {
        let child = KillChild::spawn(
            "t1_child",
            "MQLITE_T1_CHILD",
            format!("{},{},c{cycle}-", dir.path().display(), rng.next_u64()),
        );
        let rx = &child.lines;
        // Kill at a random moment: mostly while working, sometimes during startup or recovery.
        let early = rng.chance(0.1);
        let delay = Duration::from_micros(if early {
            rng.below(15_000)
        } else {
            1_000 + rng.below(60_000)
        });
        let mut ready = false;
        let mut got = Vec::new();
        let t0 = Instant::now();
        if !early {
            while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
                let r = l == "R";
                got.push(l);
                if r {
                    ready = true;
                    break;
                }
            }
            assert!(
                ready,
                "cycle {cycle}: the child never became ready (its recovery failed?)"
            );
        }
        let start = Instant::now();
        while start.elapsed() < delay {
            match rx.recv_timeout(delay.saturating_sub(start.elapsed())) {
                Ok(l) => {
                    ready |= l == "R";
                    got.push(l);
                }
                Err(_) => break,
            }
        }
        let status = child.kill(&mut got);
        ready |= got.iter().any(|l| l == "R");
        if !ready {
            before_ready += 1;
        }
        assert!(
            status.code().is_none(),
            "cycle {cycle}: the child exited by itself ({status:?}) after {:?}: {got:?}",
            t0.elapsed()
        );
        lines += got.len() as u64;
        dones += got.iter().filter(|l| l.starts_with("D ")).count() as u64;
        for l in &got {
            apply(&mut m, l);
        }
        let s = Store::open(dir.path(), store_opts())
            .unwrap_or_else(|e| panic!("cycle {cycle}: recovery failed: {e}"));
        torn += s.recovery_report().torn_tail.is_some() as u64;
        let c = m
            .verify(&s, &QUEUES)
            .unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        total += c;
        s.close().unwrap();
    }
    assert_eq!(panics(), panics0);
    eprintln!(
        "T1 kill -9: {cycles} cycles ({before_ready} killed during startup/recovery), {lines} reported calls ({dones} returned); \
         every recovery succeeded; {} acknowledged sends found (0 lost), {} acknowledged acks/rejects checked (0 delivered \
         again), {} in-doubt calls resolved; {torn} recoveries cut a torn tail; {:.1} s",
        total.durable_present,
        total.durable_settled,
        total.in_doubt,
        started.elapsed().as_secs_f64()
    );
}
