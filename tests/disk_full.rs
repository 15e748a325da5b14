//! A full disk never poisons the store, and a send's callback tells the truth: an error means
//! "not stored", also after a reopen. (Many async sends of large bodies fill the disk part way
//! through a group commit that spans segments: what was written before the disk filled is
//! stored and acknowledged, the rest is refused with `NoSpace`.)
mod common;
use common::durable::{body, no_delay_policy, serial, tag_of};
use common::fault::{CrashMode, FaultFs, Rng};
use mqlite::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn async_sends_on_a_full_disk_never_poison_and_callbacks_tell_the_truth() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(6 << 20));
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions {
        vfs: fs.vfs(),
        clock: ManualClock::new(1_700_000_000_000),
        segment_bytes: 1 << 20,
        redelivery: no_delay_policy(),
        ..Default::default()
    };
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let q = s.queue("a").unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..200 {
        let tx = tx.clone();
        let tag = format!("m{i}");
        q.send_async(body(&tag, 64 << 10), move |r| {
            tx.send((tag, r.map_err(|e| e.kind()))).unwrap()
        })
        .unwrap();
    }
    let mut ok = BTreeSet::new();
    let mut refused = 0;
    for _ in 0..200 {
        let (tag, r) = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        match r {
            Ok(_) => {
                ok.insert(tag);
            }
            Err(k) => {
                assert_eq!(k, ErrorKind::NoSpace, "{tag}");
                refused += 1;
            }
        }
    }
    assert!(refused > 0, "the disk never filled");
    // Not poisoned: stats, receive, ack and close all work.
    assert_eq!(q.stats().unwrap().messages, ok.len() as u64);
    let d = q
        .receive(Some(Duration::ZERO))
        .unwrap()
        .expect("a stored message");
    let first = tag_of(d.body()).unwrap();
    d.ack().unwrap();
    ok.remove(&first);
    drop(q);
    s.close().unwrap();
    // After a reopen the store holds exactly the messages whose callback said Ok.
    let s = Store::open(dir.path(), o).unwrap();
    let q = s.queue("a").unwrap();
    let mut stored = BTreeSet::new();
    while let Some(d) = q.receive(Some(Duration::ZERO)).unwrap() {
        stored.insert(tag_of(d.body()).unwrap());
        d.ack().unwrap();
    }
    assert_eq!(stored, ok, "stored after reopen vs. callbacks that said Ok");
}

/// A batch larger than a segment fills the disk part way through (its first segments were
/// written): the store is not poisoned, the written part is stored (and says so), the rest is
/// refused with `NoSpace`, and a reopen finds exactly what was reported stored.
#[test]
fn a_batch_that_fills_the_disk_part_way_keeps_what_was_written() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(6 << 20));
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions {
        vfs: fs.vfs(),
        clock: ManualClock::new(1_700_000_000_000),
        segment_bytes: 1 << 20,
        ..Default::default()
    };
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let q = s.queue("a").unwrap();
    let e = q
        .send_batch((0..120).map(|i| body(&format!("m{i}"), 64 << 10)))
        .expect_err("120 × 64 KiB on a 6 MiB disk");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    let n = q.stats().expect("not poisoned").messages;
    assert!(n > 16, "more than one segment's worth was written: {n}");
    assert_eq!(
        q.send(body("x", 64 << 10)).map_err(|e| e.kind()),
        Err(ErrorKind::NoSpace)
    );
    let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
    d.ack().unwrap();
    drop(q);
    s.close().unwrap();
    let s = Store::open(dir.path(), o).unwrap();
    let q = s.queue("a").unwrap();
    let mut tags = Vec::new();
    while let Some(d) = q.receive(Some(Duration::ZERO)).unwrap() {
        tags.push(tag_of(d.body()).unwrap());
        d.ack().unwrap();
    }
    let want: Vec<String> = (1..n).map(|i| format!("m{i}")).collect();
    assert_eq!(tags, want);
}

// ---- Every operation that stores a message refuses cleanly on a full disk (issue 15 §5,
// review r3 #3): a transaction's commit, a dead-letter move (reject, redelivery exhaustion),
// a dead-letter replay, a move and a copy fail with `NoSpace` (or, without a caller to tell,
// leave the message where it was) instead of poisoning the store. Afterwards receive, ack,
// stats and close work, and after a reopen the store holds exactly what the calls said.

const BIG: usize = 200 << 10;

fn full_disk_options(fs: &FaultFs) -> StoreOptions {
    StoreOptions {
        vfs: fs.vfs(),
        clock: ManualClock::new(1_700_000_000_000),
        // 1 MiB segments keep a 128 KiB reserve: one 200 KiB message does not fit it, so a
        // record carrying one cannot hide in the reserve either.
        segment_bytes: 1 << 20,
        redelivery: RedeliveryPolicy {
            max_redeliveries: 0,
            initial_redelivery_delay: Duration::ZERO,
            redelivery_delay: Duration::ZERO,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Sends 200 KiB messages to `q` until the disk is full; returns their tags.
fn fill(q: &Queue, prefix: &str) -> BTreeSet<String> {
    let mut tags = BTreeSet::new();
    for i in 0.. {
        let tag = format!("{prefix}{i}");
        match q.send(body(&tag, BIG)) {
            Ok(_) => {
                tags.insert(tag);
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
                break;
            }
        }
        assert!(i < 1000, "the disk never filled");
    }
    tags
}

/// The tags of every message `q` holds, in any state.
fn held(s: &Store, q: &str) -> BTreeSet<String> {
    s.queue(q)
        .unwrap()
        .browse(usize::MAX)
        .unwrap()
        .iter()
        .map(|m| tag_of(m.body()).unwrap())
        .collect()
}

/// The store is not poisoned: stats, a small ack (the reserve takes settles) and close work.
fn still_usable(s: Store, q: &Queue) {
    q.stats().expect("stats after the refusal");
    let d = q
        .receive(Some(Duration::ZERO))
        .expect("receive after the refusal")
        .expect("a message");
    d.release().expect("release after the refusal");
    s.flush().expect("flush after the refusal");
    s.close().expect("close after the refusal");
}

#[test]
fn dead_letter_moves_on_a_full_disk_refuse_instead_of_poisoning() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(3 << 20));
    let dir = tempfile::tempdir().unwrap();
    let o = full_disk_options(&fs);
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let q = s.queue("a").unwrap();
    let mut in_a = fill(&q, "a");
    let mut in_dlq = BTreeSet::new();
    let mut refused = 0;
    // Rejects: each is a dead-letter move carrying a 200 KiB copy.
    for _ in 0..4 {
        let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
        let tag = tag_of(d.body()).unwrap();
        match d.reject("bad") {
            Ok(()) => {
                in_a.remove(&tag);
                in_dlq.insert(tag);
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
                refused += 1;
            }
        }
    }
    assert!(
        refused > 0,
        "a reject found room: the test does not fill the disk"
    );
    // Redelivery exhaustion (max_redeliveries 0): the nack is told, as a reject is; the
    // message stays.
    let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
    let e = d
        .nack("failed")
        .expect_err("a refused dead-letter move reported success");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert_eq!(held(&s, "a"), in_a);
    assert_eq!(held(&s, "DLQ"), in_dlq);
    still_usable(s, &q);
    drop(q);
    let s = Store::open(dir.path(), o).unwrap();
    assert_eq!(held(&s, "a"), in_a, "after reopen");
    assert_eq!(held(&s, "DLQ"), in_dlq, "after reopen");
}

/// r5 #10: a message whose redeliveries ran out, on a disk too full for its dead-letter
/// move: the nack fails with `NoSpace` (it did not dead-letter), and the message keeps its
/// delivery count and waits before its next delivery (the policy's delay, at least a second)
/// instead of coming back at once in a hot loop.
#[test]
fn an_exhausted_nack_on_a_full_disk_fails_and_the_message_waits() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(3 << 20));
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let o = StoreOptions {
        clock: clock.clone(),
        ..full_disk_options(&fs)
    };
    let s = Store::open(dir.path(), o).unwrap();
    let q = s.queue("a").unwrap();
    let all = fill(&q, "a");
    let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
    let tag = tag_of(d.body()).unwrap();
    let e = d
        .nack("poison")
        .expect_err("the nack reported a dead-lettering that did not happen");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    let st = q.stats().unwrap();
    assert_eq!((st.dead_lettered, st.messages), (0, all.len() as u64));
    // Not deliverable at once: every other message is, this one is not.
    let others = q.receive_batch(usize::MAX, Some(Duration::ZERO)).unwrap();
    let got: BTreeSet<String> = others.iter().map(|d| tag_of(d.body()).unwrap()).collect();
    assert!(
        !got.contains(&tag),
        "redelivered at once after the refused move"
    );
    assert_eq!(got.len(), all.len() - 1);
    for d in others {
        d.release().unwrap();
    }
    clock.advance(Duration::from_millis(1000));
    let back = q.receive_batch(usize::MAX, Some(Duration::ZERO)).unwrap();
    let d = back
        .into_iter()
        .find(|d| tag_of(d.body()).unwrap() == tag)
        .expect("deliverable again after the wait");
    assert_eq!(d.delivery_count(), 2, "its failed delivery still counts");
    drop(q);
    drop(d);
    s.close().unwrap();
}

#[test]
fn a_transaction_on_a_full_disk_fails_whole_and_leaves_the_store_usable() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(3 << 20));
    let dir = tempfile::tempdir().unwrap();
    let o = full_disk_options(&fs);
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let q = s.queue("a").unwrap();
    let b = s.queue("b").unwrap();
    let in_a = fill(&q, "a");
    let mut tx = s.transaction();
    let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
    tx.ack(d).unwrap();
    tx.send(&b, body("t", BIG)).unwrap();
    let e = tx.commit().expect_err("a 200 KiB send on a full disk");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    // Nothing of it took effect: the acked message is back, nothing reached b.
    assert_eq!(held(&s, "a"), in_a);
    assert!(held(&s, "b").is_empty());
    // A transaction of acks only is a settle: it commits on the full disk.
    let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
    let acked = tag_of(d.body()).unwrap();
    let mut tx = s.transaction();
    tx.ack(d).unwrap();
    tx.commit().expect("acks only");
    let mut in_a = in_a;
    in_a.remove(&acked);
    assert_eq!(held(&s, "a"), in_a);
    still_usable(s, &q);
    drop((q, b));
    let s = Store::open(dir.path(), o).unwrap();
    assert_eq!(held(&s, "a"), in_a, "after reopen");
    assert!(held(&s, "b").is_empty(), "after reopen");
}

#[test]
fn replay_move_and_copy_on_a_full_disk_refuse_instead_of_poisoning() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(3 << 20));
    let dir = tempfile::tempdir().unwrap();
    let o = full_disk_options(&fs);
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let d_q = s.queue("d").unwrap();
    let mut dead = BTreeSet::new();
    for i in 0..2 {
        let tag = format!("d{i}");
        d_q.send(body(&tag, BIG)).unwrap();
        d_q.receive(Some(Duration::ZERO))
            .unwrap()
            .unwrap()
            .reject("bad")
            .unwrap();
        dead.insert(tag);
    }
    let q = s.queue("a").unwrap();
    let in_a = fill(&q, "a");
    let dlq = s.queue("DLQ").unwrap();
    let e = dlq
        .replay(&ReplayFilter::default())
        .expect_err("replaying 200 KiB dead letters on a full disk");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert_eq!(held(&s, "DLQ"), dead);
    assert!(held(&s, "d").is_empty());
    for copy in [false, true] {
        let e = q
            .transfer(&TransferFilter {
                to: "b".into(),
                limit: Some(2),
                copy,
                ..Default::default()
            })
            .expect_err("moving 200 KiB messages on a full disk");
        assert_eq!(e.kind(), ErrorKind::NoSpace, "copy {copy}: {e}");
        assert_eq!(held(&s, "a"), in_a, "copy {copy}");
        assert!(held(&s, "b").is_empty(), "copy {copy}");
    }
    still_usable(s, &q);
    drop((q, d_q, dlq));
    let s = Store::open(dir.path(), o).unwrap();
    assert_eq!(held(&s, "a"), in_a, "after reopen");
    assert_eq!(held(&s, "DLQ"), dead, "after reopen");
    assert!(held(&s, "b").is_empty(), "after reopen");
    assert!(held(&s, "d").is_empty(), "after reopen");
}

/// Review r5 #21: a repair that failed with `NoSpace` while saving the damaged bytes left an
/// empty `quarantine-….bin`, which looks like the saved bytes (and made the next repair write
/// `…-2.bin`). The bytes go to `….bin.partial`, renamed when complete and removed on failure:
/// no quarantine file is left by the failed repair, and the next one saves under the first name.
#[test]
fn a_repair_that_fails_on_a_full_disk_leaves_no_quarantine_file() {
    use common::fault::{Fault, Op};
    let _serial = serial();
    let fs = FaultFs::new();
    let dir = tempfile::tempdir().unwrap();
    let o = StoreOptions {
        vfs: fs.vfs(),
        clock: ManualClock::new(1_700_000_000_000),
        ..Default::default()
    };
    let s = Store::open(dir.path(), o.clone()).unwrap();
    let q = s.queue("q").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap();
    }
    drop(q);
    s.close().unwrap();
    let seg = "0000000000000001.seg";
    let mut b = fs.read(seg).unwrap();
    b[64 + 40] ^= 0xff;
    fs.put(seg, b);
    let quarantine = |fs: &FaultFs| -> Vec<String> {
        let mut v: Vec<String> = fs
            .names()
            .into_iter()
            .filter(|n| n.starts_with("quarantine-"))
            .collect();
        v.sort();
        v
    };
    fs.reset_counts();
    fs.add_fault(Fault {
        op: Op::Write,
        nth: 1,
        errno: libc::ENOSPC,
        persistent: true,
    });
    let e = Store::open(
        dir.path(),
        StoreOptions {
            repair: true,
            ..o.clone()
        },
    )
    .expect_err("a repair on a full disk");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert!(e.message().contains("quarantine"), "{e}");
    assert_eq!(quarantine(&fs), Vec::<String>::new());
    fs.clear_faults();
    let s = Store::open(
        dir.path(),
        StoreOptions {
            repair: true,
            ..o.clone()
        },
    )
    .unwrap();
    let saved = s.recovery_report().quarantined[0].saved_as.clone();
    assert!(
        saved.ends_with(".bin") && !saved.ends_with("-2.bin"),
        "{saved}"
    );
    assert_eq!(quarantine(&fs), vec![saved]);
    s.close().unwrap();
}

// ---- A disk-full episode never leaves the store full for good (issue 15 §5, review r12 #6).
// Reclaiming a segment copies its live messages forward; on a disk with less than a segment
// free that copy once needed a new whole segment, so a few long-lived messages pinned every
// segment for good although nearly all the store held was settled.

/// Fills a store on `fs` with `len`-byte bodies, every `every`th to the long-lived queue
/// "keep" and the rest to "q" (each 1 MiB segment then holds about one long-lived message),
/// and drains "q". Returns the store, the kept tags and the disk use when full.
fn fill_and_drain(
    fs: &FaultFs,
    dir: &Path,
    len: usize,
    every: usize,
) -> (Store, BTreeSet<String>, u64) {
    let s = Store::open(dir, full_disk_options(fs)).unwrap();
    let (q, keep) = (s.queue("q").unwrap(), s.queue("keep").unwrap());
    let mut kept = BTreeSet::new();
    let mut stored = 0;
    for i in 0..400 {
        let tag = format!("m{i}");
        let to = if i % every == 0 { &keep } else { &q };
        match to.send(body(&tag, len)) {
            Ok(_) => {
                stored += 1;
                if i % every == 0 {
                    kept.insert(tag);
                }
            }
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
                break;
            }
        }
    }
    assert!(stored > 40 && stored < 400, "the disk filled: {stored}");
    assert!(kept.len() >= 4, "{kept:?}");
    let full = s.disk_bytes();
    while let Some(d) = q.receive(Some(Duration::ZERO)).unwrap() {
        d.ack_sync().unwrap();
    }
    (s, kept, full)
}

/// After the drain, sends work again (without a reopen and without `compact`); what "keep"
/// holds survives, also a reopen.
fn sends_work_again(fs: &FaultFs, s: Store, dir: &Path, kept: &BTreeSet<String>, full: u64) {
    let q = s.queue("q").unwrap();
    for i in 0..40 {
        q.send(body(&format!("n{i}"), 60_000))
            .unwrap_or_else(|e| panic!("send {i} after draining: {e}"));
    }
    assert!(s.disk_bytes() <= full, "{} > {full}", s.disk_bytes());
    assert_eq!(&held(&s, "keep"), kept);
    drop(q);
    s.close().unwrap();
    let s = Store::open(dir, full_disk_options(fs)).unwrap();
    assert_eq!(&held(&s, "keep"), kept, "after a reopen");
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 40);
}

/// The reviewer's scenario on a disk filled to the last byte (no room for any new segment):
/// the copies of each old segment's long-lived message borrow the tail's reserve.
#[test]
fn draining_after_a_full_disk_makes_room_again() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(6 << 20));
    let dir = tempfile::tempdir().unwrap();
    let (s, kept, full) = fill_and_drain(&fs, dir.path(), 60_000, 15);
    assert_eq!(full, 6 << 20, "filled to the last byte");
    sends_work_again(&fs, s, dir.path(), &kept, full);
}

/// The reviewer's scenario as a tmpfs gives it (less than a segment free) with bodies too
/// large to borrow the reserve: the copies go into a short segment sized to them.
#[test]
fn draining_after_a_full_disk_copies_into_a_short_segment() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some((6 << 20) - (64 << 10)));
    let dir = tempfile::tempdir().unwrap();
    let (s, kept, full) = fill_and_drain(&fs, dir.path(), 100_000, 8);
    sends_work_again(&fs, s, dir.path(), &kept, full);
}

/// A disk with no room for the copies at all (filled to the last byte, bodies too large for
/// the reserve): `compact` says so, naming the space it needs, instead of reporting a no-op as
/// success; nothing is lost, and once the disk has room it proceeds.
#[test]
fn compact_that_cannot_proceed_says_so() {
    let _serial = serial();
    let fs = FaultFs::new();
    fs.set_capacity(Some(6 << 20));
    let dir = tempfile::tempdir().unwrap();
    let (s, kept, _) = fill_and_drain(&fs, dir.path(), 100_000, 8);
    let segments = s.compact().map_or(0, |r| r.segments_after);
    let e = s.compact().expect_err("no room to copy into");
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert!(
        e.message().contains("needs") && e.message().contains("bytes of free disk"),
        "{e}"
    );
    assert_eq!(segments, 0, "the first compact failed too");
    assert_eq!(held(&s, "keep"), kept);
    // Someone frees disk space: compaction proceeds and the store shrinks.
    fs.set_capacity(Some(7 << 20));
    let r = s.compact().unwrap();
    assert!(r.segments_after < r.segments_before, "{r:?}");
    assert!(r.bytes_after < 5 << 20, "{r:?}");
    assert_eq!(held(&s, "keep"), kept);
    s.close().unwrap();
}

/// Compaction at disk full (copies into the tail's reserve, or into a short segment, then the
/// emptied segment removed) loses and doubles nothing whatever the moment of a power loss: the
/// drain and the sends after it are cut at every k-th mutating file operation, the synced
/// bytes (or a torn last write) reopened, and every queue checked against what the calls said.
#[test]
fn compaction_at_disk_full_loses_and_doubles_nothing_at_any_crash_point() {
    let _serial = serial();
    // Without a redelivery limit: the messages a crash leaves lent count a failed delivery at
    // the next open, and must not dead-letter here.
    let crash_opts = |fs: &FaultFs| StoreOptions {
        redelivery: no_delay_policy(),
        ..full_disk_options(fs)
    };
    // (capacity, body bytes, every how many to "keep"): the reserve path, the short segment.
    for (cap, len, every) in [(6 << 20, 60_000, 15), ((6 << 20) - (64 << 10), 100_000, 8)] {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultFs::new();
        fs.set_capacity(Some(cap));
        let (mut kept, mut in_q) = (Vec::new(), Vec::new());
        {
            let s = Store::open(dir.path(), crash_opts(&fs)).unwrap();
            let (q, keep) = (s.queue("q").unwrap(), s.queue("keep").unwrap());
            for i in 0..400 {
                let tag = format!("m{i}");
                let (to, list) = match i % every {
                    0 => (&keep, &mut kept),
                    _ => (&q, &mut in_q),
                };
                match to.send(body(&tag, len)) {
                    Ok(_) => list.push(tag),
                    Err(e) if e.kind() == ErrorKind::NoSpace => break,
                    Err(e) => panic!("{e}"),
                }
            }
            drop((q, keep));
            s.close().unwrap();
        }
        kept.sort();
        let base = fs.crash_image(CrashMode::ProcessCrash, &mut Rng::new(1));
        // The drain and the sends after it; returns what the calls said was done: acked
        // (and the one whose ack the cut left in doubt), sent.
        type Said = (BTreeSet<String>, Option<String>, BTreeSet<String>);
        let phase = |img: &FaultFs| -> Said {
            let (mut acked, mut sent) = (BTreeSet::new(), BTreeSet::new());
            let Ok(s) = Store::open(dir.path(), crash_opts(img)) else {
                return (acked, None, sent);
            };
            let Ok(q) = s.queue("q") else {
                return (acked, None, sent);
            };
            while let Ok(Some(d)) = q.receive(Some(Duration::ZERO)) {
                let tag = tag_of(d.body()).unwrap();
                if d.ack_sync().is_err() {
                    return (acked, Some(tag), sent);
                }
                acked.insert(tag);
            }
            for i in 0..10 {
                let tag = format!("n{i}");
                if q.send(body(&tag, 60_000)).is_ok() {
                    sent.insert(tag);
                }
            }
            drop(q);
            let _ = s.close();
            (acked, None, sent)
        };
        let whole = base.crash_image(CrashMode::ProcessCrash, &mut Rng::new(1));
        whole.set_capacity(Some(cap));
        let (acked, _, sent) = phase(&whole);
        assert_eq!(acked.len(), in_q.len(), "the whole run drains q");
        assert_eq!(sent.len(), 10, "the whole run's sends all work");
        let total = whole.mutations();
        let stride = (total / 150).max(1);
        let mut images = 0;
        for k in (1..=total).step_by(stride as usize) {
            let img = base.crash_image(CrashMode::ProcessCrash, &mut Rng::new(1));
            img.set_capacity(Some(cap));
            img.crash_at(k);
            let (acked, doubt, sent) = phase(&img);
            let mode = match k % 3 {
                0 => CrashMode::SyncedOnly,
                1 => CrashMode::TornLast { sector: 512 },
                _ => CrashMode::RandomSubset,
            };
            let after = img.crash_image(mode, &mut Rng::new(k));
            let s = Store::open(dir.path(), crash_opts(&after))
                .unwrap_or_else(|e| panic!("cap {cap}, k {k}: reopen: {e}"));
            let tags = |name: &str| -> Vec<String> {
                let mut v: Vec<String> = s
                    .queue(name)
                    .unwrap()
                    .browse(usize::MAX)
                    .unwrap()
                    .iter()
                    .map(|m| tag_of(m.body()).expect("a body intact"))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(tags("keep"), kept, "cap {cap}, k {k}: keep");
            let q = tags("q");
            let mut dedup = q.clone();
            dedup.dedup();
            assert_eq!(dedup, q, "cap {cap}, k {k}: doubled in q");
            for t in &q {
                assert!(!acked.contains(t), "cap {cap}, k {k}: {t} acked, back");
                assert!(
                    in_q.contains(t) || t.starts_with('n'),
                    "cap {cap}, k {k}: {t}"
                );
            }
            for t in in_q.iter() {
                if !acked.contains(t) && doubt.as_ref() != Some(t) {
                    assert!(q.contains(t), "cap {cap}, k {k}: {t} never acked, lost");
                }
            }
            for t in &sent {
                assert!(q.contains(t), "cap {cap}, k {k}: sent {t} lost");
            }
            s.close().unwrap();
            images += 1;
        }
        eprintln!("cap {cap}: {images} crash images of {total} mutations checked");
    }
}
