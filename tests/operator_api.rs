//! The API that operators' tools (`mqlite` command) use: verify agrees with recovery on every
//! damage; transfer (move/copy) and compact lose and double nothing at any crash point (through
//! the fault layer); restored messages keep their send time, expiry and dead-letter info.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::durable::opts;
use common::fault::{CrashMode, FaultFs, Rng};
use common::{NOW, T0};
use mqlite::*;

fn copy_store(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// A closed store over several small segments, some messages acked.
fn several_segments(dir: &Path) {
    let store = Store::open(
        dir,
        StoreOptions {
            segment_bytes: 16 << 10,
            compact_below: 0.0,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let q = store.queue("q").unwrap();
    for i in 0..60 {
        q.send(Message::new(vec![i as u8; 700]).property("i", i as i64))
            .unwrap();
    }
    let ds = q.receive_batch(20, NOW).unwrap();
    q.ack_batch(ds).unwrap();
}

#[test]
fn verify_agrees_with_recovery_on_every_flipped_bit() {
    let base = tempfile::tempdir().unwrap();
    several_segments(base.path());
    let sound = verify(base.path()).unwrap();
    assert!(sound.is_sound() && sound.torn_tail.is_none(), "{sound:?}");
    assert!(
        sound.segments.len() >= 3,
        "{} segments",
        sound.segments.len()
    );
    let files: Vec<(String, u64)> = sound
        .segments
        .iter()
        .map(|s| (s.file.clone(), s.bytes))
        .collect();
    let mut rng = Rng::new(7);
    let (mut damaged, mut torn) = (0, 0);
    let flips = if std::env::var_os("MQLITE_SOAK").is_some() {
        3000
    } else {
        300
    };
    for i in 0..flips {
        let tmp = tempfile::tempdir().unwrap();
        copy_store(base.path(), tmp.path());
        let (file, len) = &files[rng.below(files.len() as u64) as usize];
        // Half the flips land in the data (where damage matters), half anywhere.
        let data_end = std::fs::read(tmp.path().join(file))
            .unwrap()
            .iter()
            .rposition(|&b| b != 0)
            .unwrap_or(0) as u64
            + 1;
        let at = rng.below(if i % 2 == 0 { data_end } else { *len });
        let path = tmp.path().join(file);
        let mut b = std::fs::read(&path).unwrap();
        b[at as usize] ^= 1 << rng.below(8);
        std::fs::write(&path, &b).unwrap();
        let before: Vec<Vec<u8>> = files
            .iter()
            .map(|(f, _)| std::fs::read(tmp.path().join(f)).unwrap())
            .collect();
        let v = verify(tmp.path()).unwrap();
        let after: Vec<Vec<u8>> = files
            .iter()
            .map(|(f, _)| std::fs::read(tmp.path().join(f)).unwrap())
            .collect();
        assert!(before == after, "verify wrote to the journal");
        match Store::open(tmp.path(), StoreOptions::default()) {
            Ok(s) => {
                assert!(
                    v.is_sound(),
                    "flip {file}@{at}: open succeeded, verify says {v:?}"
                );
                assert_eq!(
                    s.recovery_report().torn_tail,
                    v.torn_tail,
                    "flip {file}@{at}: torn tails differ"
                );
                torn += v.torn_tail.is_some() as u32;
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Corrupt, "flip {file}@{at}: {e}");
                let p = v.problems.first().unwrap_or_else(|| {
                    panic!("flip {file}@{at}: open fails ({e}) but verify finds nothing")
                });
                assert!(
                    e.message()
                        .starts_with(&format!("{} at offset {}", p.file, p.offset)),
                    "flip {file}@{at}: open says {e}, verify says {p}"
                );
                damaged += 1;
            }
        }
    }
    println!("{flips} flips: {damaged} damaged, {torn} torn tails, rest harmless");
    assert!(damaged > flips / 4, "too few flips hit data: {damaged}");
}

#[test]
fn verify_goes_on_past_each_problem_and_refuses_a_held_store() {
    let tmp = tempfile::tempdir().unwrap();
    several_segments(tmp.path());
    let v = verify(tmp.path()).unwrap();
    // Damage the middle of the data of the first two segments: both places are named.
    let mut hit = Vec::new();
    for seg in &v.segments[..2] {
        let p = tmp.path().join(&seg.file);
        let mut b = std::fs::read(&p).unwrap();
        let at = b.iter().rposition(|&x| x != 0).unwrap() / 2;
        b[at] ^= 0xff;
        std::fs::write(&p, &b).unwrap();
        hit.push((seg.file.clone(), at as u64));
    }
    let v = verify(tmp.path()).unwrap();
    assert_eq!(v.problems.len(), 2, "{:?}", v.problems);
    for (p, (file, at)) in v.problems.iter().zip(&hit) {
        // The frame holding the damaged byte starts at or before it, within a frame's reach.
        assert!(
            p.file == *file && p.offset <= *at && at - p.offset < 2000,
            "{p} vs {file}@{at}"
        );
    }
    let store = Store::open(
        tmp.path(),
        StoreOptions {
            repair: true,
            ..Default::default()
        },
    )
    .unwrap();
    let e = verify(tmp.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(
        e.message().contains(&format!("pid {}", std::process::id())),
        "{e}"
    );
    drop(store);
    assert!(verify(tmp.path()).unwrap().is_sound(), "repair left damage");
    assert_eq!(
        verify(&tmp.path().join("nope")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// The tagged bodies of every message of `queues`, with their headers.
fn contents(store: &Store, queues: &[&str]) -> BTreeMap<String, Vec<String>> {
    let mut m = BTreeMap::new();
    for q in queues {
        let q = store.queue(q).unwrap();
        for s in q.browse_stored(MessageId(0), usize::MAX).unwrap() {
            let msg = &s.message;
            let key = String::from_utf8(msg.body().to_vec()).unwrap();
            let head = format!(
                "{}|{}|{}|{:?}|{:?}|{}",
                msg.timestamp_ms(),
                msg.expires_at_ms(),
                msg.get_priority(),
                msg.get_group(),
                msg.properties(),
                s.deliver_at_ms
            );
            m.entry(key)
                .or_insert_with(Vec::new)
                .push(format!("{}:{head}", q.name()));
        }
    }
    m
}

fn seed(store: &Store) {
    let q = store.queue("src").unwrap();
    for i in 0..12 {
        // 2 KB each: together more than a 16 KiB segment, so only the one-record move keeps
        // them together.
        let mut m = Message::new(format!("m{i}-{}", "x".repeat(2000)))
            .property("i", i as i64)
            .priority((i % 10) as u8);
        if i % 3 == 0 {
            m = m.ttl(Duration::from_secs(3600)).group("g");
        }
        if i % 4 == 0 {
            m = m.delay(Duration::from_secs(60));
        }
        q.send(m).unwrap();
    }
}

#[test]
fn transfer_moves_or_copies_all_or_nothing_at_every_crash_point() {
    let clock = ManualClock::new(T0);
    let mut cases = 0;
    for copy in [false, true] {
        // How many mutating file operations one transfer makes.
        let span = {
            let dir = tempfile::tempdir().unwrap();
            let fs = FaultFs::new();
            let store = Store::open(dir.path(), opts(&fs, &clock)).unwrap();
            seed(&store);
            let before = fs.mutations();
            let f = TransferFilter {
                to: "dst".into(),
                copy,
                ..Default::default()
            };
            assert_eq!(
                store
                    .queue("src")
                    .unwrap()
                    .transfer(&f)
                    .unwrap()
                    .transferred,
                12
            );
            fs.mutations() - before
        };
        for k in 1..=span + 1 {
            for mode in [
                CrashMode::SyncedOnly,
                CrashMode::RandomSubset,
                CrashMode::TornLast { sector: 512 },
            ] {
                let dir = tempfile::tempdir().unwrap();
                let fs = FaultFs::new();
                let store = Store::open(dir.path(), opts(&fs, &clock)).unwrap();
                seed(&store);
                let original = contents(&store, &["src"]);
                fs.crash_at(fs.mutations() + k);
                let f = TransferFilter {
                    to: "dst".into(),
                    copy,
                    ..Default::default()
                };
                let returned = store.queue("src").unwrap().transfer(&f).is_ok();
                drop(store);
                let img = fs.crash_image(mode, &mut Rng::new(k));
                let store = Store::open(dir.path(), opts(&img, &clock)).unwrap();
                let after = contents(&store, &["src", "dst"]);
                for (body, places) in &original {
                    let head = places[0].split_once(':').unwrap().1;
                    let got = &after[body];
                    let moved = got.iter().any(|p| p.starts_with("dst:"));
                    let want_places = if copy && moved { 2 } else { 1 };
                    assert_eq!(got.len(), want_places, "{body} at k={k} {mode:?}: {got:?}");
                    assert!(
                        got.iter().all(|p| p.ends_with(head)),
                        "{body}: headers changed: {got:?}"
                    );
                    if returned {
                        assert!(
                            moved,
                            "{body}: transfer returned Ok but is not durable (k={k})"
                        );
                    }
                }
                // All or nothing: one record.
                let in_dst = after
                    .values()
                    .filter(|p| p.iter().any(|x| x.starts_with("dst:")))
                    .count();
                assert!(
                    in_dst == 0 || in_dst == 12,
                    "k={k} {mode:?}: {in_dst} of 12 moved"
                );
                cases += 1;
            }
        }
    }
    println!("transfer: {cases} crash images checked");
}

#[test]
fn compact_loses_nothing_at_any_crash_point() {
    let clock = ManualClock::new(T0);
    let build = |fs: &FaultFs, dir: &Path| {
        let store = Store::open(dir, opts(fs, &clock)).unwrap();
        let q = store.queue("q").unwrap();
        for i in 0..80 {
            q.send(format!("m{i:03}-{}", "x".repeat(600))).unwrap();
        }
        let ds = q.receive_batch(70, NOW).unwrap();
        let ids: Vec<MessageId> = ds.iter().map(|d| d.id()).collect();
        for d in ds {
            d.ack().unwrap();
        }
        store.close().unwrap();
        ids
    };
    // Compaction rewrites every segment older than the tail.
    let open_compacting = |fs: &FaultFs, dir: &Path| {
        let o = StoreOptions {
            compact_below: 1.0,
            ..opts(fs, &clock)
        };
        Store::open(dir, o).unwrap()
    };
    let span = {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        build(&fs, dir.path());
        let store = open_compacting(&fs, dir.path());
        let before = fs.mutations();
        let r = store.compact().unwrap();
        assert!(
            r.segments_before >= 3 && r.segments_after < r.segments_before,
            "{r:?}"
        );
        fs.mutations() - before
    };
    let mut cases = 0;
    for k in 1..=span + 1 {
        for mode in [CrashMode::SyncedOnly, CrashMode::RandomSubset] {
            let dir = tempfile::tempdir().unwrap();
            let fs = FaultFs::new();
            build(&fs, dir.path());
            let want = {
                let store = Store::open(dir.path(), opts(&fs, &clock)).unwrap();
                let c = contents(&store, &["q"]);
                store.close().unwrap();
                c
            };
            assert_eq!(want.len(), 10);
            let store = open_compacting(&fs, dir.path());
            fs.crash_at(fs.mutations() + k);
            let _ = store.compact();
            drop(store);
            let img = fs.crash_image(mode, &mut Rng::new(k));
            let store = Store::open(dir.path(), opts(&img, &clock)).unwrap();
            assert_eq!(contents(&store, &["q"]), want, "k={k} {mode:?}");
            cases += 1;
        }
    }
    println!("compact: {cases} crash images checked over {span} file operations");
}

#[test]
fn restored_messages_keep_send_time_expiry_and_dead_letter_info() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let open = || {
        let o = StoreOptions {
            clock: clock.clone(),
            ..Default::default()
        };
        Store::open(dir.path(), o).unwrap()
    };
    let info = DeadLetterInfo {
        original_queue: "orders".into(),
        original_id: MessageId(7),
        reason: DeadLetterReason::Rejected,
        last_failure: "bad".into(),
        delivery_count: 3,
        first_failure_ms: T0 - 50,
        last_failure_ms: T0 - 10,
    };
    {
        let store = open();
        let dlq = store.queue("DLQ").unwrap();
        let m = Message::new("x")
            .ttl(Duration::from_secs(1)) // ignored: the restored expiry wins
            .restore_times(T0 - 1000, T0 + 5000)
            .restore_dead_letter_info(info.clone());
        let mut txn = store.transaction();
        txn.send(&dlq, m).unwrap();
        txn.commit().unwrap();
        store
            .queue("plain")
            .unwrap()
            .send(Message::new("y").ttl(Duration::from_secs(1)))
            .unwrap();
    }
    let store = open();
    let s = &store
        .queue("DLQ")
        .unwrap()
        .browse_stored(MessageId(0), 10)
        .unwrap()[0];
    assert_eq!(
        (s.message.timestamp_ms(), s.message.expires_at_ms()),
        (T0 - 1000, T0 + 5000)
    );
    assert_eq!(s.message.dead_letter_info(), Some(&info));
    // Without restore_times a send stamps now and now + TTL, as always.
    let p = &store
        .queue("plain")
        .unwrap()
        .browse_stored(MessageId(0), 10)
        .unwrap()[0];
    assert_eq!(
        (p.message.timestamp_ms(), p.message.expires_at_ms()),
        (T0, T0 + 1000)
    );
    // A restored dead letter is replayed like any other.
    let n = store
        .queue("DLQ")
        .unwrap()
        .replay(&ReplayFilter {
            reason: Some(DeadLetterReason::Rejected),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(store.queue("orders").unwrap().stats().unwrap().depth, 1);
    assert!(validate_queue_name("ok").is_ok());
    assert_eq!(
        validate_queue_name("").unwrap_err().kind(),
        ErrorKind::InvalidName
    );
}

#[test]
fn a_restored_dead_letter_whose_original_queue_is_no_queue_name_is_refused_from_every_path() {
    // Review r3 #3: `mqlite import` stored dead letters from "" and from an ESC sequence; a
    // replay then stopped at them. The rule is checked at send, so every face (C, Python, Rust,
    // a client through its owner), a transaction and a topic publish refuse it alike.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = store.queue("DLQ").unwrap();
    let info = |name: &str| DeadLetterInfo {
        original_queue: name.to_string(),
        original_id: MessageId(1),
        reason: DeadLetterReason::Rejected,
        last_failure: "x".into(),
        delivery_count: 1,
        first_failure_ms: 0,
        last_failure_ms: 0,
    };
    let long = "q".repeat(256);
    for bad in ["", "a\u{1b}[2Jb", long.as_str()] {
        let m = || Message::new("x").restore_dead_letter_info(info(bad));
        let e = q.send(m()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidName, "{bad:?}: {e}");
        let mut txn = store.transaction();
        let e = txn.send(&q, m()).and_then(|_| txn.commit()).unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidName,
            "{bad:?} in a transaction: {e}"
        );
    }
    assert_eq!(q.stats().unwrap().depth, 0);
    q.send(Message::new("x").restore_dead_letter_info(info("orders")))
        .unwrap();
}

/// Review r6 #1: an operator's tool counts (dry run), asks, then acts; what was sent while it
/// asked must stay. `through` = the dry run's `last` bounds purge and transfer to the messages
/// counted, whatever their state (ready at every priority, delayed, released for a retry).
#[test]
fn purge_and_transfer_through_the_counted_id_keep_later_messages() {
    let clock = ManualClock::new(T0);
    for op in ["purge", "move", "copy"] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let store = Store::open(dir.path(), opts(&fs, &clock)).unwrap();
        seed(&store);
        let q = store.queue("src").unwrap();
        // One message released for a retry: it waits in the retry list.
        let d = q
            .receive(Some(Duration::ZERO))
            .unwrap()
            .expect("a ready message");
        d.release().unwrap();
        let counted = match op {
            "purge" => {
                let r = q
                    .purge_filtered(&PurgeFilter {
                        through: None,
                        dry_run: true,
                    })
                    .unwrap();
                (r.matched, r.last)
            }
            _ => {
                let r = q
                    .transfer(&TransferFilter {
                        to: "dst".into(),
                        copy: op == "copy",
                        dry_run: true,
                        ..Default::default()
                    })
                    .unwrap();
                (r.matched, r.last)
            }
        };
        assert_eq!(counted.0, 12, "{op}");
        // Sent while the operator was asked: a ready one, a high-priority one, a delayed one.
        for m in [
            Message::new("late-ready"),
            Message::new("late-urgent").priority(9),
            Message::new("late-delayed").delay(Duration::from_secs(60)),
        ] {
            q.send(m).unwrap();
        }
        let done = match op {
            "purge" => {
                let r = q
                    .purge_filtered(&PurgeFilter {
                        through: counted.1,
                        dry_run: false,
                    })
                    .unwrap();
                r.purged
            }
            _ => {
                q.transfer(&TransferFilter {
                    to: "dst".into(),
                    copy: op == "copy",
                    through: counted.1,
                    ..Default::default()
                })
                .unwrap()
                .transferred
            }
        };
        assert_eq!(done, 12, "{op}: exactly the counted messages");
        let left = contents(&store, &["src"]);
        let late = left
            .keys()
            .filter(|b| b.starts_with("late-"))
            .collect::<Vec<_>>();
        assert_eq!(late.len(), 3, "{op}: the late messages stay: {left:?}");
        let others = left.len() - 3;
        assert_eq!(others, if op == "copy" { 12 } else { 0 }, "{op}");
        store.close().unwrap();
    }
}

/// Review r12 #12: a message moved out of a queue was counted by no counter, so the stats
/// balance (`enqueued + replayed − (acked + dead_lettered + expired + discarded +
/// replayed_out)` = the change of `messages`) broke. A move counts in `replayed_out` of its
/// source, as a replay out of a dead-letter queue does, and in `enqueued` of its target; a
/// copy takes nothing out.
#[test]
fn a_move_out_of_a_queue_is_counted_and_the_stats_balance() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = store.queue("src").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap();
    }
    q.receive(Some(Duration::ZERO))
        .unwrap()
        .unwrap()
        .ack_sync()
        .unwrap();
    let moved = q
        .transfer(&TransferFilter {
            to: "dst".into(),
            limit: Some(2),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(moved.transferred, 2);
    let copied = q
        .transfer(&TransferFilter {
            to: "dst".into(),
            copy: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(copied.transferred, 2);
    let balance = |s: &QueueStats| {
        (s.enqueued + s.replayed) as i64
            - (s.acked + s.dead_lettered + s.expired + s.discarded + s.replayed_out) as i64
    };
    let s = q.stats().unwrap();
    assert_eq!(
        (s.enqueued, s.acked, s.replayed_out, s.messages),
        (5, 1, 2, 2)
    );
    assert_eq!(balance(&s), s.messages as i64);
    let d = store.queue("dst").unwrap().stats().unwrap();
    assert_eq!((d.enqueued, d.replayed_out, d.messages), (4, 0, 4));
    assert_eq!(balance(&d), d.messages as i64);
}
