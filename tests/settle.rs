//! Settling in batches and cumulatively: every settle path checks the delivery it names (the
//! same check a single `ack()` makes), validates before it settles anything, and leaves every
//! delivery it settled reporting `is_settled() == true`. On the virtual clock.
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

/// Redeliver at once, so a failed delivery is ready again without moving the clock.
fn at_once() -> RedeliveryPolicy {
    RedeliveryPolicy {
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::ZERO,
        ..Default::default()
    }
}

fn queue(s: &Store, name: &str, ack_timeout: Option<Duration>) -> Queue {
    s.queue_with(
        name,
        QueueOptions {
            redelivery: Some(at_once()),
            ack_timeout,
            ..Default::default()
        },
    )
    .unwrap()
}

/// Lets `stale` (a delivery of queue `q`, whose ack timeout is 1 s) time out, and has another
/// consumer receive the message again: returns that consumer and its delivery.
fn redeliver_elsewhere(env: &Env, q: &Queue, stale: &Delivery) -> (Consumer, Delivery) {
    env.clock.advance_ms(1_000);
    let other = q.consumer(ConsumerOptions::default());
    let fresh = other
        .receive(NOW)
        .unwrap()
        .expect("redelivered after the timeout");
    assert_eq!((fresh.id(), fresh.delivery_count()), (stale.id(), 2));
    (other, fresh)
}

/// `ack_batch` refused for a delivery of another queue settles nothing: the deliveries it was
/// given are dropped unsettled (failed deliveries, back in their queues), none stays in flight.
#[test]
fn ack_batch_validates_before_it_settles() {
    let env = Env::new();
    let s = env.open();
    let a = queue(&s, "a", None);
    let b = queue(&s, "b", None);
    a.send("x").unwrap();
    b.send("y").unwrap();
    let da = a.receive(NOW).unwrap().unwrap();
    let db = b.receive(NOW).unwrap().unwrap();
    let e = a.ack_batch(vec![da, db]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        a.stats().unwrap().in_flight,
        0,
        "a's delivery left in flight"
    );
    assert_eq!(b.stats().unwrap().in_flight, 0);
    let again = a.receive(NOW).unwrap().expect("a's message is back");
    assert_eq!((again.body(), again.delivery_count()), (&b"x"[..], 2));
    again.ack().unwrap();
    assert_eq!(b.receive(NOW).unwrap().unwrap().delivery_count(), 2);
}

/// A delivery that timed out cannot ack the redelivery of its message through `ack_batch`.
#[test]
fn ack_batch_checks_the_delivery_tag() {
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", Some(Duration::from_secs(1)));
    q.send("x").unwrap();
    let stale = q.receive(NOW).unwrap().unwrap();
    let (_other, fresh) = redeliver_elsewhere(&env, &q, &stale);
    let e = q.ack_batch(vec![stale]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadySettled, "{e}");
    assert_eq!(q.stats().unwrap().in_flight, 1, "the redelivery was acked");
    fresh.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// A cumulative ack skips the earlier deliveries that are no longer this consumer's: it does
/// not ack another consumer's redelivery of the same message.
#[test]
fn cumulative_ack_checks_the_delivery_tags() {
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", Some(Duration::from_secs(1)));
    q.send("first").unwrap();
    let c = q.consumer(ConsumerOptions {
        ack_mode: AckMode::Cumulative,
        ..Default::default()
    });
    let d1 = c.receive(NOW).unwrap().unwrap();
    let (_other, fresh) = redeliver_elsewhere(&env, &q, &d1);
    q.send("second").unwrap();
    let d2 = c.receive(NOW).unwrap().unwrap();
    assert_eq!(d2.body(), b"second");
    d2.ack().unwrap(); // cumulative: up to d2; d1 is no longer this consumer's
    assert_eq!(q.stats().unwrap().in_flight, 1, "the redelivery was acked");
    fresh.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
    assert_eq!(d1.ack().unwrap_err().kind(), ErrorKind::AlreadySettled);
}

/// After a cumulative ack, the earlier deliveries it acked report settled, and settling one
/// again says so; a delivery that timed out reports settled too.
#[test]
fn cumulative_ack_settles_the_earlier_deliveries() {
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", Some(Duration::from_secs(60)));
    q.send_batch(["a", "b", "c"]).unwrap();
    let c = q.consumer(ConsumerOptions {
        ack_mode: AckMode::Cumulative,
        ..Default::default()
    });
    let [first, mid, last]: [Delivery; 3] = c
        .receive_batch(3, NOW)
        .unwrap()
        .try_into()
        .expect("three deliveries");
    assert!(!first.is_settled() && !mid.is_settled() && !last.is_settled());
    mid.ack().unwrap();
    assert!(
        first.is_settled(),
        "acked cumulatively, yet reports unsettled"
    );
    assert!(!last.is_settled());
    assert_eq!(first.ack().unwrap_err().kind(), ErrorKind::AlreadySettled);
    env.clock.advance_ms(60_000);
    assert_eq!(q.stats().unwrap().in_flight, 0, "timed out");
    assert!(
        last.is_settled(),
        "a timed-out delivery can no longer be settled"
    );
}

#[test]
fn a_released_message_is_delivered_again_before_later_prefetched_ones() {
    // A bridge route releasing a message it could not forward then forwarded the next one
    // first: the released message went back to the queue while the later ones sat in the
    // receiving consumer's prefetch buffer. Release keeps the queue's order, for a plain
    // receive and for a consumer (as a JMS session's recover does).
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", None);
    q.send_batch((0..4).map(|i| format!("m{i}"))).unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(
        q.stats().unwrap().prefetched,
        3,
        "the plain receive prefetched"
    );
    d.release().unwrap();
    let again = q.receive(NOW).unwrap().unwrap();
    assert_eq!((body(&again), again.delivery_count()), ("m0".into(), 1));
    let c = q.consumer(ConsumerOptions::default());
    again.release().unwrap();
    let mut got = Vec::new();
    for i in 0..4 {
        let d = c.receive(NOW).unwrap().unwrap();
        got.push(body(&d));
        if i == 1 {
            d.release().unwrap(); // m1, with m2 and m3 in `c`'s buffer
        } else {
            d.ack().unwrap();
        }
    }
    assert_eq!(got, ["m0", "m1", "m1", "m2"]);
    let last = c.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&last), "m3");
    last.ack().unwrap();
}

/// Review r5 #11: a nack refused for its reason (over `MAX_REASON_BYTES`) changes nothing: the
/// delivery is still held and unsettled, counted nowhere, and a later settle of the same handle
/// works — as a refused reject already did.
#[test]
fn a_nack_refused_for_its_reason_leaves_the_delivery_held() {
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", None);
    q.send("m").unwrap();
    let long = "r".repeat(MAX_REASON_BYTES + 1);
    let mut d = q.receive(NOW).unwrap().unwrap();
    for refused in [
        d.try_nack(&long),
        d.try_nack_with_delay(&long, Duration::from_secs(1)),
        d.try_reject(&long),
    ] {
        let e = refused.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("over the limit"), "{e}");
        assert!(!d.is_settled(), "a refused settle settled the delivery");
        let st = q.stats().unwrap();
        assert_eq!((st.in_flight, st.redelivered, st.dead_lettered), (1, 0, 0));
    }
    // A reason of exactly the limit is accepted, through the same handle.
    d.try_nack(&"r".repeat(MAX_REASON_BYTES)).unwrap();
    assert!(d.is_settled());
    let again = d.try_nack("short").unwrap_err();
    assert_eq!(again.kind(), ErrorKind::AlreadySettled, "{again}");
    drop(d);
    let d = q.receive(NOW).unwrap().expect("redelivered at once");
    assert_eq!(d.delivery_count(), 2, "one failure counted, not two");
    d.ack().unwrap();
}

/// The texts the library composes are cut to `MAX_REASON_BYTES` on a char boundary, ending in
/// `REASON_ELLIPSIS`; a text that fits is kept as it is.
#[test]
fn truncate_reason_cuts_on_a_char_boundary() {
    assert_eq!(truncate_reason("short"), "short");
    let fits = "é".repeat(MAX_REASON_BYTES / 2);
    assert_eq!(truncate_reason(&fits), fits.as_str());
    // 'é' is 2 bytes: the cut point (limit − 3) falls inside one and moves back.
    let long = "é".repeat(MAX_REASON_BYTES);
    let cut = truncate_reason(&long);
    assert!(cut.len() <= MAX_REASON_BYTES, "{}", cut.len());
    assert!(cut.len() >= MAX_REASON_BYTES - 4, "{}", cut.len());
    assert!(cut.ends_with(REASON_ELLIPSIS));
    assert!(long.starts_with(cut.trim_end_matches(REASON_ELLIPSIS)));
    let ascii = "y".repeat(40_000);
    assert_eq!(truncate_reason(&ascii).len(), MAX_REASON_BYTES);
}

/// A listener handler's `Err` text over the limit is cut, not refused: the failure keeps (the
/// start of) the handler's own text, as the dead letter shows.
#[test]
fn a_listener_failure_text_over_the_limit_is_cut() {
    use std::sync::{Arc, Condvar, Mutex};
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: 0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let long = format!("ValueError: {}", "y".repeat(40_000));
    let done = Arc::new((Mutex::new(0), Condvar::new()));
    let (d2, text) = (done.clone(), long.clone());
    let l = q
        .listen(move |_| {
            let (m, cv) = &*d2;
            *m.lock().unwrap() += 1;
            cv.notify_all();
            Err(text.clone())
        })
        .unwrap();
    q.send("bad").unwrap();
    let (m, cv) = &*done;
    let g = cv
        .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(10), |n| *n < 1)
        .unwrap()
        .0;
    assert_eq!(*g, 1);
    drop(g);
    // Stopping joins the listener thread: its nack is done.
    drop(l);
    let dead = s.queue("DLQ").unwrap().browse(10).unwrap();
    assert_eq!(dead.len(), 1);
    let info = dead[0].dead_letter_info().unwrap();
    assert_eq!(info.last_failure, truncate_reason(&long));
    assert!(info.last_failure.starts_with("ValueError: yyy"));
}

/// `release_batch` gives a batch back as a `release` each would (no failure counted, back ahead
/// of what was prefetched after them, in queue order), in one commit; a delivery settled
/// meanwhile is named as `AlreadySettled` and the others are released all the same; what it
/// released is back after a reopen. Review r11 #1/#2: a bridge gave back its window one release
/// (one fdatasync) at a time, 60,000 in 60–90 s.
#[test]
fn release_batch_releases_each_like_release_and_names_the_settled_ones() {
    let env = Env::new();
    {
        let s = env.open();
        let q = queue(&s, "q", None);
        q.send_batch((0..6).map(|i| format!("m{i}"))).unwrap();
        let c = q.consumer(ConsumerOptions::default());
        let ds: Vec<Delivery> = (0..4).map(|_| c.receive(NOW).unwrap().unwrap()).collect();
        assert_eq!(q.stats().unwrap().in_flight, 4);
        let mut ds = ds.into_iter();
        let (d0, d1, d2, d3) = (
            ds.next().unwrap(),
            ds.next().unwrap(),
            ds.next().unwrap(),
            ds.next().unwrap(),
        );
        d3.ack().unwrap();
        let other = queue(&s, "other", None);
        other.send("y").unwrap();
        let foreign = other.receive(NOW).unwrap().unwrap();
        // A delivery of another queue: refused before anything is released.
        let e = q.release_batch(vec![foreign]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        d0.release().unwrap();
        q.release_batch(vec![d1, d2]).unwrap();
        let st = q.stats().unwrap();
        assert_eq!((st.in_flight, st.messages), (0, 5), "{st:?}");
        drop(c);
        // Back in queue order, each with the delivery count it had before (not a failure).
        let held: Vec<Delivery> = (0..5).map(|_| q.receive(NOW).unwrap().unwrap()).collect();
        let got: Vec<(String, u32)> = held.iter().map(|d| (body(d), d.delivery_count())).collect();
        let want: Vec<(String, u32)> = [0, 1, 2, 4, 5].map(|i| (format!("m{i}"), 1)).into();
        assert_eq!(got, want);
        q.release_batch(held).unwrap();
        assert_eq!(q.stats().unwrap().in_flight, 0);
        s.close().unwrap();
    }
    // After a reopen: the released messages are there, their counts not raised by the release.
    let s = env.open();
    let q = queue(&s, "q", None);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!((body(&d), d.delivery_count()), ("m0".into(), 1));
    assert_eq!(q.stats().unwrap().messages, 5);
}

/// A delivery that timed out cannot release the redelivery of its message through
/// `release_batch`: it is named `AlreadySettled`, and the rest of the batch is released.
#[test]
fn release_batch_checks_the_delivery_tag() {
    let env = Env::new();
    let s = env.open();
    let q = queue(&s, "q", Some(Duration::from_secs(1)));
    q.send("x").unwrap();
    let stale = q.receive(NOW).unwrap().unwrap();
    let (_other, fresh) = redeliver_elsewhere(&env, &q, &stale);
    q.send("z").unwrap();
    let c = q.consumer(ConsumerOptions::default());
    let z = c.receive(NOW).unwrap().unwrap();
    assert_eq!(z.body(), b"z");
    let e = q.release_batch(vec![stale, z]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::AlreadySettled, "{e}");
    assert!(e.message().contains(&fresh.id().to_string()), "{e}");
    assert_eq!(
        q.stats().unwrap().in_flight,
        1,
        "only the redelivery is in flight"
    );
    fresh.ack().unwrap();
    let back = c.receive(NOW).unwrap().expect("z released");
    assert_eq!((back.body(), back.delivery_count()), (&b"z"[..], 1));
}
