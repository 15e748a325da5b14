//! The index checkpoint (`CHECKPOINT`, written at a clean close): used when it matches the
//! journal, ignored (and the journal replayed) when it is stale, torn, of another format version,
//! or a segment it covers changed; a store opened through it equals one opened by a full replay.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::durable::{CrashMode, FaultFs, Rng};
use mqlite::*;
use proptest::prelude::*;

const T0: u64 = 1_700_000_000_000;
const NOW: Option<Duration> = Some(Duration::ZERO);

/// Small segments (so histories span several, and compaction runs), a manual clock, a
/// redelivery policy with delays and a dead-letter limit.
fn opts(fs: &FaultFs, clock: &Arc<ManualClock>) -> StoreOptions {
    StoreOptions {
        vfs: fs.vfs(),
        clock: clock.clone(),
        segment_bytes: 16 << 10,
        redelivery: RedeliveryPolicy {
            max_redeliveries: 2,
            initial_redelivery_delay: Duration::from_millis(500),
            redelivery_delay: Duration::from_millis(500),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn open(dir: &Path, fs: &FaultFs, clock: &Arc<ManualClock>) -> Store {
    Store::open(dir, opts(fs, clock)).unwrap()
}

/// Everything a user can observe of a store without changing it: queues (with their stats and
/// every stored message, in flight or not, with its state and count) and subscriptions.
fn observe(s: &Store) -> String {
    observe_ids_below(s, u64::MAX)
}

/// [`observe`], with the ids of messages made after the reopen (`>= new`) shown as `new`: a
/// replay may hand out again an id that was given to a publish no subscription took (no record
/// holds it), where the checkpoint keeps the store's next id, so ids are never given twice.
fn observe_ids_below(s: &Store, new: u64) -> String {
    let mut out = String::new();
    let mut names: Vec<String> = s
        .queue_names()
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    for name in names {
        let q = s.queue(&name).unwrap();
        let st = q.stats().unwrap();
        out += &format!(
            "{name}: depth {} in_flight {} delayed {} messages {} bytes {}\n",
            st.depth, st.in_flight, st.delayed, st.messages, st.bytes
        );
        for m in q.browse(1 << 20).unwrap() {
            let id = m.id().filter(|i| i.0 < new);
            out += &format!(
                "  {:?} {:?} count {} prio {} group {:?} dedup {:?} exp {} dl {:?} body {:?}\n",
                id,
                m.state(),
                m.delivery_count(),
                m.get_priority(),
                m.get_group(),
                m.get_dedup_key(),
                m.expires_at_ms(),
                m.dead_letter_info(),
                String::from_utf8_lossy(m.body()),
            );
        }
    }
    for sub in s.subscriptions() {
        out += &format!("sub {sub:?}\n");
    }
    out
}

/// What consumers get from now on: every queue drained (the clock moved past every delay), in
/// order, with counts and the redelivered flag, each rejected (so its failure history shows in
/// the dead letter it becomes; a dead letter is acked); then what the store holds after that.
fn drain(s: &Store, clock: &ManualClock) -> String {
    let new = s
        .queue_names()
        .iter()
        .filter(|n| !n.is_empty())
        .flat_map(|n| s.queue(n).unwrap().browse(1 << 20).unwrap())
        .filter_map(|m| m.id())
        .map(|i| i.0 + 1)
        .max()
        .unwrap_or(1);
    clock.advance(Duration::from_secs(1));
    let mut out = String::new();
    let mut names: Vec<String> = s
        .queue_names()
        .into_iter()
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    for name in names {
        let q = s.queue(&name).unwrap();
        loop {
            let ds = q.receive_batch(100, NOW).unwrap();
            if ds.is_empty() {
                break;
            }
            for d in &ds {
                out += &format!(
                    "{name} {:?} count {} redelivered {}\n",
                    Some(d.id()).filter(|i| i.0 < new),
                    d.delivery_count(),
                    d.redelivered()
                );
            }
            // A dead letter cannot be dead-lettered again (the store's default strategy: one
            // shared "DLQ"): drained from there by an ack.
            let dead = name == "DLQ" || name.starts_with("DLQ.");
            for d in ds {
                if dead {
                    d.ack().unwrap();
                } else {
                    d.reject("drained").unwrap();
                }
            }
        }
    }
    out += &observe_ids_below(s, new);
    // Dedup windows: a key still remembered takes no new message.
    for q in ["q0", "q1"] {
        let Ok(q) = s.queue(q) else { continue };
        for k in 0..4 {
            let _ = q.send(Message::new("probe").dedup_key(format!("k{k}")));
            out += &format!("dedup k{k}: {}\n", q.stats().unwrap().messages);
        }
    }
    out
}

/// A copy of `fs` as it is now (every write, synced or not).
fn copy(fs: &FaultFs) -> FaultFs {
    fs.crash_image(CrashMode::ProcessCrash, &mut Rng::new(1))
}

fn fill(s: &Store, n: usize) {
    let q = s.queue("jobs").unwrap();
    for i in 0..n {
        q.send(Message::new(format!("m{i}")).priority((i % 3) as u8))
            .unwrap();
    }
    let ds = q.receive_batch(n / 3, NOW).unwrap();
    q.ack_batch_sync(ds).unwrap();
}

struct Setup {
    dir: tempfile::TempDir,
    fs: FaultFs,
    clock: Arc<ManualClock>,
    /// What a full replay of the journal opens to (observed).
    expected: String,
}

/// A store with messages, closed (so it has a checkpoint), and what a full replay of it shows.
fn setup(n: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let clock = ManualClock::new(T0);
    let s = open(dir.path(), &fs, &clock);
    fill(&s, n);
    s.close().unwrap();
    assert!(
        fs.names().iter().any(|n| n == "CHECKPOINT"),
        "{:?}",
        fs.names()
    );
    let replay = copy(&fs);
    replay.delete("CHECKPOINT");
    let s = open(dir.path(), &replay, &clock);
    assert!(!s.recovery_report().checkpoint_used);
    let expected = observe(&s);
    drop(s);
    Setup {
        dir,
        fs,
        clock,
        expected,
    }
}

/// Opens `fs`, checks what it shows against the full replay, returns the report.
fn reopen(t: &Setup, fs: &FaultFs) -> RecoveryReport {
    let s = open(t.dir.path(), fs, &t.clock);
    assert_eq!(observe(&s), t.expected);
    // Removed once read: a later crash can never find it beside a newer journal.
    assert!(!fs.names().iter().any(|n| n.starts_with("CHECKPOINT")));
    s.recovery_report().clone()
}

fn ignored_because(rep: &RecoveryReport, what: &str) {
    assert!(!rep.checkpoint_used, "{rep:?}");
    let why = rep.checkpoint_ignored.as_deref().unwrap_or("");
    assert!(
        why.contains(what),
        "ignored because {why:?}, expected {what:?}"
    );
    assert!(rep.records > 0, "a full replay: {rep:?}");
}

#[test]
fn a_valid_checkpoint_is_used_and_replays_nothing() {
    let t = setup(300);
    let rep = reopen(&t, &copy(&t.fs));
    assert!(rep.checkpoint_used, "{rep:?}");
    assert_eq!(rep.checkpoint_ignored, None);
    assert_eq!((rep.frames, rep.records), (0, 0), "{rep:?}");
    assert!(rep.segments > 1, "{rep:?}");
}

/// A clean close writes the checkpoint from the segments' running CRC32C, reading no journal
/// byte back: for a new store, for one opened from its checkpoint (the tail goes on from the
/// CRC the open checked) that then rolled on and compacted, and, reading them, for segments a
/// full replay opened. Every such checkpoint is used by the next open.
#[test]
fn a_clean_close_reads_no_segment_it_wrote_or_checked() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let clock = ManualClock::new(T0);
    // Closes `s`, returns the reads the close made.
    let close = |s: Store| {
        s.flush().unwrap();
        fs.reset_counts();
        s.close().unwrap();
        fs.count(common::fault::Op::Read)
    };
    let s = open(dir.path(), &fs, &clock);
    fill(&s, 300);
    assert!(segments(&fs).len() > 1);
    assert_eq!(close(s), 0, "a new store's close");
    for round in 0..3 {
        let s = open(dir.path(), &fs, &clock);
        assert!(
            s.recovery_report().checkpoint_used,
            "{:?}",
            s.recovery_report()
        );
        let before = segments(&fs);
        fill(&s, 300);
        s.compact().unwrap();
        assert_ne!(segments(&fs), before, "round {round}: it rolled on");
        assert_eq!(
            close(s),
            0,
            "round {round}: a close after an open from the checkpoint"
        );
    }
    // A full replay takes each segment's CRC as it replays it: the close reads none back, and
    // its checkpoint is good.
    fs.delete("CHECKPOINT");
    let s = open(dir.path(), &fs, &clock);
    assert!(!s.recovery_report().checkpoint_used);
    fill(&s, 30);
    assert_eq!(close(s), 0, "segments replayed at open");
    let s = open(dir.path(), &fs, &clock);
    assert!(
        s.recovery_report().checkpoint_used,
        "{:?}",
        s.recovery_report()
    );
    drop(s);
    // A repair writes into segments as it replays them: those are read back at close (and
    // the checkpoint is good all the same).
    let mut o = opts(&fs, &clock);
    o.repair = true;
    let s = Store::open(dir.path(), o).unwrap();
    assert!(close(s) > 0, "segments a repair opened are read back");
    let s = open(dir.path(), &fs, &clock);
    assert!(
        s.recovery_report().checkpoint_used,
        "{:?}",
        s.recovery_report()
    );
}

/// On the real file system the open reads through memory maps (the fault layer offers none, so
/// the tests above read): the checkpoint's entries (more than one 8 MiB window of them, after
/// what the head's reader read ahead) and the segments. A valid checkpoint is used and opens
/// the store a full replay opens; a changed byte of a covered segment is caught (the open
/// fails as without a checkpoint); data after the tail's recorded end makes it stale.
#[test]
fn the_real_file_system_reads_through_maps() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let o = || StoreOptions {
        clock: clock.clone(),
        segment_bytes: 1 << 20,
        ..Default::default()
    };
    let s = Store::open(dir.path(), o()).unwrap();
    let q = s.queue("jobs").unwrap();
    let n = 200_000;
    for b in 0..n / 1000 {
        let batch: Vec<Message> = (0..1000)
            .map(|i| Message::new(format!("m{b}-{i}")).priority((i % 3) as u8))
            .collect();
        q.send_batch(batch).unwrap();
    }
    let ds = q.receive_batch(500, NOW).unwrap();
    q.ack_batch_sync(ds).unwrap();
    s.close().unwrap();
    let ckpt = std::fs::read(dir.path().join("CHECKPOINT")).unwrap();
    // 49 bytes per entry: more than a map window of them.
    assert!(ckpt.len() > 9 << 20, "{}", ckpt.len());
    let s = Store::open(dir.path(), o()).unwrap();
    assert!(
        s.recovery_report().checkpoint_used,
        "{:?}",
        s.recovery_report()
    );
    let seen = observe(&s);
    assert!(
        seen.contains(&format!("messages {}", n - 500)),
        "{}",
        &seen[..200]
    );
    drop(s);
    std::fs::remove_file(dir.path().join("CHECKPOINT")).unwrap();
    let s = Store::open(dir.path(), o()).unwrap();
    assert!(!s.recovery_report().checkpoint_used);
    assert!(
        observe(&s) == seen,
        "the checkpoint's store differs from the replay's"
    );
    drop(s);
    let mut segs: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    assert!(segs.len() > 2, "{segs:?}");
    let ckpt = std::fs::read(dir.path().join("CHECKPOINT")).unwrap();
    let flip = |p: &Path, at: usize| {
        let mut b = std::fs::read(p).unwrap();
        b[at] ^= 0x40;
        std::fs::write(p, b).unwrap();
    };
    // A record byte of a segment before the tail.
    flip(&segs[1], 200);
    let err = Store::open(dir.path(), o()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    flip(&segs[1], 200);
    // A non-zero byte after the tail's data: a session wrote on after it (then crashed).
    std::fs::write(dir.path().join("CHECKPOINT"), &ckpt).unwrap();
    let tail = segs.last().unwrap();
    let len = std::fs::metadata(tail).unwrap().len() as usize;
    flip(tail, len - 1);
    let s = Store::open(dir.path(), o()).unwrap();
    ignored_because(s.recovery_report(), "stale");
    assert!(observe(&s) == seen);
}

fn segments(fs: &FaultFs) -> Vec<String> {
    fs.names()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect()
}

#[test]
fn a_stale_checkpoint_is_ignored_when_the_journal_went_on_after_it() {
    let t = setup(300);
    let old = t.fs.read("CHECKPOINT").unwrap();
    // A later session wrote more (a few records into the same tail segment, or enough to roll
    // on to new segments) and crashed; its open had removed the checkpoint, but suppose that
    // removal was lost: the old file is back beside the newer journal.
    for (sends, rolls) in [(1, false), (400, true)] {
        let fs = copy(&t.fs);
        let s = open(t.dir.path(), &fs, &t.clock);
        let q = s.queue("jobs").unwrap();
        for i in 0..sends {
            q.send(format!("after-{i}")).unwrap();
        }
        let crashed = copy(&fs); // the process dies: no close, no checkpoint
        drop(s);
        assert_eq!(segments(&crashed) != segments(&t.fs), rolls);
        crashed.put("CHECKPOINT", old.clone());
        let s = open(t.dir.path(), &crashed, &t.clock);
        ignored_because(s.recovery_report(), "stale");
        // The records after it count, as a full replay finds them.
        let seen = observe(&s);
        drop(s);
        let replay = copy(&crashed);
        replay.delete("CHECKPOINT");
        let full = open(t.dir.path(), &replay, &t.clock);
        assert_eq!(seen, observe(&full));
        assert_eq!(seen.matches("\"after-").count(), sends, "{seen}");
    }
}

#[test]
fn a_torn_checkpoint_is_ignored() {
    let t = setup(300);
    let b = t.fs.read("CHECKPOINT").unwrap();
    for cut in [0, 7, 12, 40, b.len() / 2, b.len() - 49, b.len() - 1] {
        let fs = copy(&t.fs);
        fs.put("CHECKPOINT", b[..cut].to_vec());
        ignored_because(&reopen(&t, &fs), "torn");
    }
    // Whole length, one entry byte changed: only its own CRC tells.
    let fs = copy(&t.fs);
    let mut bad = b.clone();
    let k = bad.len() - 20;
    bad[k] ^= 0x01;
    fs.put("CHECKPOINT", bad);
    ignored_because(&reopen(&t, &fs), "CRC32C does not match");
}

#[test]
fn a_checkpoint_of_another_format_version_is_ignored() {
    let t = setup(50);
    let mut b = t.fs.read("CHECKPOINT").unwrap();
    assert_eq!(&b[..8], b"MQLCKPT\0");
    b[8..12].copy_from_slice(&1u32.to_le_bytes());
    let fs = copy(&t.fs);
    fs.put("CHECKPOINT", b);
    ignored_because(&reopen(&t, &fs), "format version 1");
}

#[test]
fn a_damaged_covered_segment_is_caught_by_its_crc_and_the_replay_reports_it() {
    let t = setup(300);
    let segs: Vec<String> =
        t.fs.names()
            .into_iter()
            .filter(|n| n.ends_with(".seg"))
            .collect();
    assert!(segs.len() > 1);
    // A byte of a record, and a byte of the zeros after the data of a full segment, changed:
    // the checkpoint is ignored (its CRC32C of the segment no longer matches), and the full
    // replay finds the damage and reports it as it does without a checkpoint.
    for at in [200, usize::MAX] {
        let fs = copy(&t.fs);
        let mut b = fs.read(&segs[0]).unwrap();
        let at = at.min(b.len() - 1);
        b[at] ^= 0x40;
        fs.put(&segs[0], b);
        let without = copy(&fs);
        without.delete("CHECKPOINT");
        let expected = Store::open(t.dir.path(), opts(&without, &t.clock)).unwrap_err();
        let err = Store::open(t.dir.path(), opts(&fs, &t.clock)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
        assert_eq!(err.to_string(), expected.to_string());
        assert!(err.to_string().contains(&segs[0]), "{err}");
    }
}

#[test]
fn a_missing_or_added_segment_makes_it_ignored() {
    let t = setup(300);
    let fs = copy(&t.fs);
    let first = fs
        .names()
        .into_iter()
        .find(|n| n.ends_with(".seg"))
        .unwrap();
    fs.delete(&first);
    let err = Store::open(t.dir.path(), opts(&fs, &t.clock)).unwrap_err();
    // The checkpoint was ignored, and the replay names the missing segment, as without one.
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

#[test]
fn repair_ignores_the_checkpoint() {
    let t = setup(100);
    let fs = copy(&t.fs);
    let mut o = opts(&fs, &t.clock);
    o.repair = true;
    let s = Store::open(t.dir.path(), o).unwrap();
    ignored_because(s.recovery_report(), "repair");
    assert_eq!(observe(&s), t.expected);
}

/// Power loss while the close writes the checkpoint (temporary file, fdatasync, rename,
/// directory fsync): at every cut, under every crash image, the next open either finds no
/// checkpoint or a whole one it uses, and the store is as a full replay makes it.
#[test]
fn power_loss_while_the_checkpoint_is_written() {
    let t = setup(120);
    let mut used = 0;
    let mut absent = 0;
    // The mutations the close makes (the checkpoint's), counted on a dry run.
    let dry = copy(&t.fs);
    let s = open(t.dir.path(), &dry, &t.clock);
    s.flush().unwrap();
    let before = dry.mutations();
    s.close().unwrap();
    let ops = dry.mutations() - before;
    assert!(ops >= 3, "create, write, rename at least: {ops}");
    let mut rng = Rng::new(7);
    for k in 1..=ops + 1 {
        for mode in [
            CrashMode::SyncedOnly,
            CrashMode::RandomSubset,
            CrashMode::TornLast { sector: 512 },
        ] {
            let fs = copy(&t.fs);
            let s = open(t.dir.path(), &fs, &t.clock);
            s.flush().unwrap();
            fs.crash_at(fs.mutations() + k);
            let _ = s.close();
            let img = fs.crash_image(mode, &mut rng);
            img.clear_faults();
            let rep = reopen(&t, &img);
            // Never a torn one: it is renamed into place only once its bytes are durable.
            assert_eq!(rep.checkpoint_ignored, None, "cut {k} {mode:?}: {rep:?}");
            if rep.checkpoint_used {
                used += 1;
            } else {
                absent += 1;
            }
        }
    }
    assert!(used > 0 && absent > 0, "used {used}, absent {absent}");
}

// ---- equivalence: a store opened through its checkpoint equals one opened by full replay ----

#[derive(Debug, Clone)]
enum Op {
    Send {
        q: u8,
        prio: u8,
        delay: bool,
        group: Option<u8>,
        dedup: Option<u8>,
    },
    Publish {
        topic: u8,
    },
    Ack {
        q: u8,
    },
    Nack {
        q: u8,
    },
    Reject {
        q: u8,
    },
    Hold {
        q: u8,
    },
    Txn {
        q: u8,
        commit: bool,
    },
    Advance {
        ms: u16,
    },
    Unsubscribe,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    let q = 0u8..4;
    prop_oneof![
        4 => (q.clone(), 0u8..4, any::<bool>(), proptest::option::of(0u8..3), proptest::option::of(0u8..4))
            .prop_map(|(q, prio, delay, group, dedup)| Op::Send { q, prio, delay, group, dedup }),
        2 => (0u8..3).prop_map(|topic| Op::Publish { topic }),
        2 => q.clone().prop_map(|q| Op::Ack { q }),
        2 => q.clone().prop_map(|q| Op::Nack { q }),
        1 => q.clone().prop_map(|q| Op::Reject { q }),
        1 => q.clone().prop_map(|q| Op::Hold { q }),
        1 => (q, any::<bool>()).prop_map(|(q, commit)| Op::Txn { q, commit }),
        1 => (0u16..2000).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Unsubscribe),
        1 => Just(Op::Reopen),
    ]
}

/// The queue op `q` acts on: two plain queues and two durable subscriptions' queues (`None`
/// once the subscription is gone).
fn queue_of(s: &Store, subs: &[Option<Subscription>], q: u8) -> Option<Queue> {
    match q {
        0 | 1 => Some(s.queue(&format!("q{q}")).unwrap()),
        _ => subs[(q - 2) as usize].as_ref().map(|x| x.queue().clone()),
    }
}

/// Attaches to the two durable subscriptions (creating them the first time).
fn subscribe(s: &Store, gone: bool) -> Vec<Option<Subscription>> {
    let mut out = Vec::new();
    for (name, pattern) in [("a", "t.*"), ("b", "t.x")] {
        if name == "b" && gone {
            out.push(None);
            continue;
        }
        let o = SubscriptionOptions {
            name: Some(name.into()),
            durable: true,
            ..Default::default()
        };
        out.push(Some(s.subscribe(pattern, o).unwrap()));
    }
    out
}

fn run(ops: &[Op], dir: &Path, fs: &FaultFs, clock: &Arc<ManualClock>) {
    let mut s = open(dir, fs, clock);
    let mut gone = false;
    let mut subs = subscribe(&s, gone);
    let mut held: Vec<Delivery> = Vec::new();
    let mut n = 0u32;
    for op in ops {
        n += 1;
        let receive = |q: u8| queue_of(&s, &subs, q).and_then(|q| q.receive(NOW).unwrap());
        match op {
            Op::Send {
                q,
                prio,
                delay,
                group,
                dedup,
            } => {
                let mut m = Message::new(format!("b{n}")).priority(*prio);
                if *delay {
                    m = m.delay(Duration::from_millis(700));
                }
                if let Some(g) = group {
                    m = m.group(format!("g{g}"));
                }
                if let Some(k) = dedup {
                    m = m.dedup_key(format!("k{k}"));
                }
                let _ = s.queue(&format!("q{}", q % 2)).unwrap().send(m);
            }
            Op::Publish { topic } => {
                let t = s.topic(["t.x", "t.y", "u.z"][*topic as usize]).unwrap();
                let _ = t.publish(Message::new(format!("p{n}")));
            }
            Op::Ack { q } => {
                if let Some(d) = receive(*q) {
                    d.ack().unwrap();
                }
            }
            Op::Nack { q } => {
                if let Some(d) = receive(*q) {
                    d.nack("try again").unwrap();
                }
            }
            Op::Reject { q } => {
                if let Some(d) = receive(*q) {
                    d.reject("bad").unwrap();
                }
            }
            Op::Hold { q } => {
                if let Some(d) = receive(*q) {
                    held.push(d);
                }
            }
            Op::Txn { q, commit } => {
                let d = receive(*q);
                let mut t = s.transaction();
                t.send(&s.queue("q1").unwrap(), Message::new(format!("t{n}")))
                    .unwrap();
                if let Some(d) = d {
                    t.ack(d).unwrap();
                }
                if *commit {
                    t.commit().unwrap();
                } else {
                    t.rollback().unwrap();
                }
            }
            Op::Advance { ms } => clock.advance(Duration::from_millis(*ms as u64)),
            Op::Unsubscribe => {
                if let Some(b) = subs[1].take() {
                    b.close().unwrap();
                    s.unsubscribe("b").unwrap();
                    gone = true;
                }
            }
            Op::Reopen => {
                // Deliveries left unsettled stay in flight across the close (counts durable).
                std::mem::forget(std::mem::take(&mut held));
                drop(std::mem::take(&mut subs));
                s.close().unwrap();
                s = open(dir, fs, clock);
                subs = subscribe(&s, gone);
            }
        }
    }
    s.flush().unwrap();
    // Left unsettled at close: in flight, as after a crash.
    std::mem::forget(held);
    drop(subs);
    s.close().unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn opening_through_the_checkpoint_equals_a_full_replay(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        let clock = ManualClock::new(T0);
        run(&ops, dir.path(), &fs, &clock);
        prop_assert!(fs.names().iter().any(|n| n == "CHECKPOINT"), "{:?}", fs.names());
        let replay = copy(&fs);
        replay.delete("CHECKPOINT");
        let (c1, c2) = (ManualClock::new(clock.now_ms()), ManualClock::new(clock.now_ms()));
        let a = open(dir.path(), &fs, &c1);
        prop_assert!(a.recovery_report().checkpoint_used, "{:?}", a.recovery_report());
        let other = tempfile::tempdir().unwrap();
        let b = open(other.path(), &replay, &c2);
        prop_assert!(!b.recovery_report().checkpoint_used);
        prop_assert_eq!(observe(&a), observe(&b));
        prop_assert_eq!(drain(&a, &c1), drain(&b, &c2));
    }
}
