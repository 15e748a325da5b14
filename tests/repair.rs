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
