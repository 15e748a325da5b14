//! Repair keeps what it can and says what it dropped; what it keeps, the next plain open finds.
mod common;
use common::*;
use mqlite::*;

/// The frame that held a queue's declaration is damaged: repair used to fail with "messages for
/// undeclared queue 0". It keeps the queue's surviving messages under a placeholder name,
/// reports it, and declares it durably, so the next plain open works.
#[test]
fn repair_keeps_messages_whose_queue_declaration_was_damaged() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("orders").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap(); // the declaration was its own (first) commit
    }
    drop(q);
    s.close().unwrap();
    let seg = env.dir.path().join("0000000000000001.seg");
    let mut b = std::fs::read(&seg).unwrap();
    b[64 + 40] ^= 0xff; // inside the first frame
    std::fs::write(&seg, &b).unwrap();
    let e = Store::open(env.dir.path(), env.opts()).expect_err("damage");
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    let s = env.open_with(|o| o.repair = true);
    let r = s.recovery_report();
    assert_eq!(r.lost_queues, ["__lost_queue_0"], "{r:?}");
    assert_eq!(r.quarantined.len(), 1, "{r:?}");
    let lost = s.queue("__lost_queue_0").unwrap();
    assert_eq!(lost.stats().unwrap().messages, 5);
    drop(lost);
    s.close().unwrap();
    // Repair sticks: a plain open finds the queue and its messages.
    let s = env.open();
    assert!(s.recovery_report().lost_queues.is_empty());
    assert_eq!(
        drain(&s.queue("__lost_queue_0").unwrap()),
        ["m0", "m1", "m2", "m3", "m4"]
    );
}

/// Repairing the same place twice keeps both quarantine files: the second repair used to
/// overwrite the first, destroying the bytes it saved.
#[test]
fn a_second_repair_never_overwrites_a_quarantine_file() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap();
    }
    drop(q);
    s.close().unwrap();
    let seg = env.dir.path().join("0000000000000001.seg");
    let damage = || {
        let mut b = std::fs::read(&seg).unwrap();
        b[64 + 40] ^= 0xff;
        std::fs::write(&seg, &b).unwrap();
    };
    damage();
    let first = env.open_with(|o| o.repair = true);
    let saved1 = first.recovery_report().quarantined[0].saved_as.clone();
    first.close().unwrap();
    let bytes1 = std::fs::read(env.dir.path().join(&saved1)).unwrap();
    damage();
    let second = env.open_with(|o| o.repair = true);
    let saved2 = second.recovery_report().quarantined[0].saved_as.clone();
    second.close().unwrap();
    assert_ne!(saved1, saved2);
    assert_eq!(
        std::fs::read(env.dir.path().join(&saved1)).unwrap(),
        bytes1,
        "the first quarantine file was changed"
    );
    assert!(env.dir.path().join(&saved2).exists());
    env.open().close().unwrap();
}
