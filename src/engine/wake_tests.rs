//! Missed wake-ups of the commit mechanism, reproduced deterministically: the io lock is held
//! by the test (as a leader or the commit thread would hold it) at the moment a caller starts
//! to wait, and the store's clock is a manual one that never makes lazy acks due by itself.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::clock::ManualClock;
use crate::{Store, StoreOptions};

/// Generous bound for a wait that must end (a failure bound, not a timing).
const BOUND: Duration = Duration::from_secs(20);

fn open(dir: &std::path::Path) -> Store {
    let clock = ManualClock::new(1_000_000);
    Store::open(
        dir,
        StoreOptions {
            clock,
            ..Default::default()
        },
    )
    .unwrap()
}

/// The store's own engine (a store opened alone is its owner).
pub(super) fn engine(s: &Store) -> &super::Engine {
    match &s.engine {
        crate::remote::backend::Backend::Local(e, _) => e,
        crate::remote::backend::Backend::Remote(_) => panic!("a store opened alone is its owner"),
    }
}

/// Switches off the commit thread's periodic wake-up, so that a missed wake-up hangs its
/// caller until the failure bound instead of being hidden.
fn no_periodic_wake(s: &Store) {
    engine(s)
        .test_hooks()
        .no_periodic_wake
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // A commit thread already asleep for its 250 ms is woken, to sleep for good from now on.
    engine(s).shared.work.notify_one();
}

/// Waits (bounded) until `n` callers wait for a commit.
fn until_waiters(s: &Store, n: usize) {
    let end = Instant::now() + BOUND;
    while engine(s).shared.lock().progress.waiters < n {
        assert!(Instant::now() < end, "the caller never started to wait");
        std::thread::yield_now();
    }
}

/// A caller waits for a batch that holds only lazy acks (here `flush`; in the field a
/// receive whose delivery record a leader had taken while later lazy acks filled the batch)
/// while another thread holds the io lock. When that holder lets go without committing the
/// batch, the commit thread must commit it at once: the lazy-ack interval never passes on a
/// manual clock, so holding the batch back as lazy hangs the caller for good.
#[test]
fn a_caller_waiting_for_a_batch_of_lazy_acks_is_not_left_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let q = s.queue("q").unwrap();
    q.send("m").unwrap();
    let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
    d.ack().unwrap(); // lazy: pending, not due on the manual clock
    let io = engine(&s).shared.io.lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let e = s.engine.clone();
    std::thread::spawn(move || drop(tx.send(e.flush())));
    until_waiters(&s, 1);
    drop(io);
    rx.recv_timeout(BOUND)
        .expect("the caller was never woken")
        .unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// A producer blocked by `overflow = block` is woken by the ack (ack durability sync) that
/// makes room, appends its message and, like the acker, finds the io lock held by a leader that
/// is not writing their batch. When the leader lets go, their batch must be committed at once,
/// not at the commit thread's next periodic wake-up (250 ms): here that wake-up is switched
/// off, so a missed wake-up hangs both until the failure bound.
#[test]
fn a_blocked_producer_returns_once_an_ack_made_room() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    no_periodic_wake(&s);
    let q = s
        .queue_with(
            "q",
            crate::QueueOptions {
                max_messages: Some(1),
                overflow: Some(crate::OverflowPolicy::Block { timeout: BOUND }),
                ack_durability: Some(crate::AckDurability::Sync),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("a").unwrap();
    let d = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
    let (tx, rx) = mpsc::channel();
    let q2 = q.clone();
    let producer = tx.clone();
    std::thread::spawn(move || drop(producer.send(q2.send("b").map(|_| ()))));
    let io = engine(&s).shared.io.lock().unwrap();
    std::thread::spawn(move || drop(tx.send(d.ack())));
    until_waiters(&s, 2); // the acker and the producer wait for their batch
    drop(io);
    for _ in 0..2 {
        rx.recv_timeout(BOUND)
            .expect("a caller was never woken")
            .unwrap();
    }
    assert_eq!(q.stats().unwrap().messages, 1);
}

/// `compact` drives commits by waiting for the batch being gathered, which may be empty. A
/// caller waiting for an empty batch finds the io lock held (here by the test; in the field by
/// the commit thread, which took it and let go again without a commit) and sleeps until a
/// commit's wake-up. The commit thread must take that empty batch as work and commit it: an
/// earlier version saw "nothing pending", slept, and left the caller (and `compact`, and every
/// client request behind it) waiting for good. The periodic wake-up is switched off, so a
/// missed wake-up hangs the caller until the failure bound.
#[test]
fn a_caller_waiting_for_an_empty_batch_is_not_left_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    no_periodic_wake(&s);
    let io = engine(&s).shared.io.lock().unwrap();
    let (tx, rx) = mpsc::channel();
    let crate::remote::backend::Backend::Local(e, _) = s.engine.clone() else {
        panic!("a store opened alone is its owner")
    };
    std::thread::spawn(move || {
        let g = e.shared.lock();
        assert!(g.pending.is_empty(), "nothing is pending");
        let no = g.progress.batch_no;
        drop(tx.send(e.wait_done(g, no).map(drop)));
    });
    until_waiters(&s, 1);
    drop(io);
    rx.recv_timeout(BOUND)
        .expect("the caller was never woken")
        .unwrap();
}

/// An owner's close while a receive's take reads its records (the lock released): the close
/// gives the prefetch buffers back first, and the take, finishing after it, filled its
/// consumer's buffer all the same. Those messages stayed in flight through the close: in a
/// store with client processes the owner handed them over as deliveries its client held (the
/// client never saw them: they came back a minute later, CI's test_multiproc); alone, they
/// came back counted as a crashed delivery's. Now the take gives them back uncounted, and the
/// closing commit thread writes that.
#[test]
fn a_take_that_ends_after_the_close_gave_buffers_back_gives_back_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let s = open(dir.path());
    let q = s.queue("q").unwrap();
    for i in 0..20 {
        q.send(format!("m{i}")).unwrap();
    }
    let (reached_tx, reached) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    *engine(&s).test_hooks().pause_take.lock().unwrap() = Some((reached_tx, go_rx));
    std::thread::scope(|sc| {
        let receiver = sc.spawn(|| {
            let d = q.receive(Some(Duration::ZERO)).unwrap().expect("a message");
            (d.body().to_vec(), d.delivery_count())
        });
        reached.recv_timeout(BOUND).expect("the take never started");
        let closer = sc.spawn(|| s.close());
        let end = Instant::now() + BOUND;
        while !engine(&s).shared.lock().closing {
            assert!(Instant::now() < end, "the close never started");
            std::thread::yield_now();
        }
        go.send(()).unwrap();
        let (body, count) = receiver.join().unwrap();
        assert_eq!((body.as_slice(), count), (&b"m0"[..], 1));
        closer.join().unwrap().unwrap();
    });
    drop(q);
    drop(s);

    // Reopened: the one handed out comes back counted (its consumer never settled it); the
    // others the take had taken for the buffer were never handed out: uncounted.
    let s = open(dir.path());
    let q = s.queue("q").unwrap();
    let all = q.browse(100).unwrap();
    assert_eq!(all.len(), 20);
    let counted: Vec<_> = all
        .iter()
        .filter(|m| m.delivery_count() > 0)
        .map(|m| String::from_utf8_lossy(m.body()).into_owned())
        .collect();
    assert_eq!(counted, ["m0"], "only the delivery handed out counts");
}
