//! A full disk never poisons the store, and a send's callback tells the truth: an error means
//! "not stored", also after a reopen. (Many async sends of large bodies fill the disk part way
//! through a group commit that spans segments: what was written before the disk filled is
//! stored and acknowledged, the rest is refused with `NoSpace`.)
mod common;
use common::durable::{body, no_delay_policy, serial, tag_of};
use common::fault::FaultFs;
use mqlite::*;
use std::collections::BTreeSet;
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
