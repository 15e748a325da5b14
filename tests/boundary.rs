//! What a caller passes is checked where it enters: nothing a send, a settle or an option
//! accepts may panic or make the store unopenable, and options that cannot work are refused
//! once, in the core. Time values round up (nothing is due early) and saturate (never wrap).
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

/// Headers the journal's decoder would refuse (a 17 MiB property, correlation id, group or
/// dedup key) are refused at the send with `InvalidArgument`; the store stays openable and
/// keeps every message it accepted.
#[test]
fn headers_the_journal_cannot_hold_are_refused_at_the_send() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send("before").unwrap();
    let big = "x".repeat(17 << 20);
    let msgs = [
        Message::new("p").property("k", big.as_str()),
        Message::new("k").property(big.as_str(), 1i64),
        Message::new("c").correlation_id(big.as_str()),
        Message::new("g").group(big.as_str()),
        Message::new("d").dedup_key(big.as_str()),
    ];
    for m in msgs {
        let e = q
            .send(m.clone())
            .expect_err("an oversized header was accepted");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let e = q
            .send_batch([m])
            .expect_err("an oversized header was accepted in a batch");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    // Just under the limit is accepted, and survives a reopen.
    let fits = "y".repeat(15 << 20);
    q.send(Message::new("fits").property("k", fits.as_str()))
        .unwrap();
    q.send("after").unwrap();
    drop(q);
    s.close().unwrap();
    let s = env.open();
    let q = s.queue("q").unwrap();
    assert_eq!(drain(&q), ["before", "fits", "after"]);
}

/// A failure text longer than 32 KiB is refused by nack and reject (it is stored, and goes
/// into a dead letter's headers), and the delivery still counts as failed.
#[test]
fn an_oversized_failure_reason_is_refused() {
    let env = Env::new();
    let s = env.open_with(|o| o.redelivery = common::durable::no_delay_policy());
    let q = s.queue("q").unwrap();
    q.send("m").unwrap();
    let long = "r".repeat(32 * 1024 + 1);
    let d = q.receive(NOW).unwrap().unwrap();
    let e = d.nack(&long).expect_err("a 32 KiB + 1 reason");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let d = q
        .receive(NOW)
        .unwrap()
        .expect("the dropped delivery came back");
    assert_eq!(d.delivery_count(), 2);
    d.reject(&"r".repeat(32 * 1024)).unwrap();
    drop(q);
    s.close().unwrap();
    let s = env.open();
    let dlq = s.queue("DLQ").unwrap();
    let d = dlq.receive(NOW).unwrap().unwrap();
    assert_eq!(
        d.message().dead_letter_info().unwrap().last_failure.len(),
        32 * 1024
    );
}

/// Options that cannot work are refused by the core's validation, for every face.
#[test]
fn options_that_cannot_work_are_refused() {
    let env = Env::new();
    for f in [
        (|o: &mut StoreOptions| o.max_pending_messages = 0) as fn(&mut StoreOptions),
        |o| o.max_pending_bytes = 0,
    ] {
        let mut o = env.opts();
        f(&mut o);
        let e = Store::open(env.dir.path(), o).expect_err("a zero producer window");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
    let s = env.open();
    for o in [
        QueueOptions {
            ack_timeout: Some(Duration::ZERO),
            ..Default::default()
        },
        QueueOptions {
            max_messages: Some(0),
            ..Default::default()
        },
    ] {
        let e = s
            .queue_with("q", o)
            .expect_err("an option that cannot work");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    }
}

/// A manual clock advanced past the end of time stays there (it used to wrap to a small value).
#[test]
fn manual_clock_saturates() {
    let c = ManualClock::new(T0);
    c.advance_ms(u64::MAX);
    assert_eq!(c.now_ms(), u64::MAX);
    c.advance(Duration::MAX);
    assert_eq!(c.now_ms(), u64::MAX);
}

/// Durations far beyond the clock's range (a delay or TTL of `Duration::MAX`, a receive that
/// waits "forever" in a tight loop of zero) saturate: nothing panics, nothing wraps.
#[test]
fn huge_durations_saturate() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(Message::new("late").delay(Duration::MAX)).unwrap();
    q.send(Message::new("long").ttl(Duration::MAX)).unwrap();
    env.clock.advance_ms(1 << 62);
    let d = q.receive(NOW).unwrap().expect("the TTL'd message");
    assert_eq!(d.body(), b"long");
    d.nack_with_delay("later", Duration::MAX).unwrap();
    assert!(q.receive(NOW).unwrap().is_none());
    assert_eq!(q.stats().unwrap().messages, 2);
    drop(q);
    s.close().unwrap();
    let s = env.open();
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 2);
}

/// An ack deadline past the clock's range is "none": with the clock near its maximum, an ack
/// timeout of an hour (or `Duration::MAX`) must not saturate to a deadline that the clock
/// reaches at once (the delivery used to time out and the ack fail with `AlreadySettled`).
#[test]
fn an_ack_deadline_past_the_clock_is_none() {
    let env = Env::new();
    env.clock.set_ms(u64::MAX - 5);
    let s = env.open();
    for (name, t) in [("hour", Duration::from_secs(3600)), ("max", Duration::MAX)] {
        let q = s
            .queue_with(
                name,
                QueueOptions {
                    ack_timeout: Some(t),
                    ..Default::default()
                },
            )
            .unwrap();
        q.send("m").unwrap();
        let d = q.receive(NOW).unwrap().expect("the message");
        env.clock.advance_ms(u64::MAX);
        s.flush().unwrap();
        assert_eq!(q.stats().unwrap().in_flight, 1, "{name}: still in flight");
        d.ack().unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Every duration a Rust caller passes saturates where it becomes an `Instant` or a clock
/// time: a connect timeout, a receive timeout and an overflow block timeout of
/// `Duration::MAX` work (`Instant + Duration::MAX` used to panic).
#[test]
fn duration_max_everywhere_saturates() {
    let env = Env::new();
    let s = env.open_with(|o| o.connect_timeout = Duration::MAX);
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                max_messages: Some(1),
                overflow: Some(OverflowPolicy::Block {
                    timeout: Duration::MAX,
                }),
                ack_timeout: Some(Duration::MAX),
                dedup_window: Some(Duration::MAX),
                retention: Some(Duration::MAX),
                ..Default::default()
            },
        )
        .unwrap();
    q.send(Message::new("a").ttl(Duration::MAX).delay(Duration::ZERO))
        .unwrap();
    let d = q.receive(Some(Duration::MAX)).unwrap().expect("a message");
    d.ack().unwrap();
    q.send("b").unwrap();
    drop(q);
    s.close().unwrap();
}

/// Nothing is delivered before it is due: every redelivery delay and delivery delay from 1 to
/// 20,000 ms makes the message deliverable exactly at its due time and not a millisecond
/// before (1,001 ms used to come out as 1,000: 419 of these values were 1 ms short).
#[test]
fn due_times_round_up_never_down() {
    let env = Env::new();
    let s = env.open_with(|o| o.durability = Durability::Memory);
    let q = s.queue("q").unwrap();
    for ms in 1..=20_000u64 {
        let p = RedeliveryPolicy {
            initial_redelivery_delay: Duration::from_millis(ms),
            ..Default::default()
        };
        assert_eq!(p.delay_ms(1, 0.5), ms, "redelivery delay of {ms} ms");
    }
    // Through the store, on a sample of the values (each sends, nacks and waits for one).
    for ms in (1..=20_000u64).step_by(97).chain([1001, 50, 51]) {
        q.send(Message::new("m").delay(Duration::from_millis(ms)))
            .unwrap();
        env.clock.advance_ms(ms - 1);
        assert!(q.receive(NOW).unwrap().is_none(), "delay {ms} ms: early");
        env.clock.advance_ms(1);
        let d = q.receive(NOW).unwrap().expect("due");
        d.nack_with_delay("x", Duration::from_millis(ms)).unwrap();
        env.clock.advance_ms(ms - 1);
        assert!(
            q.receive(NOW).unwrap().is_none(),
            "nack delay {ms} ms: early"
        );
        env.clock.advance_ms(1);
        q.receive(NOW).unwrap().expect("due").ack().unwrap();
    }
    // A fraction of a millisecond rounds up, never down (50.7 ms is due at 51 ms).
    q.send(Message::new("m").delay(Duration::from_micros(50_700)))
        .unwrap();
    env.clock.advance_ms(50);
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "50.7 ms delivered at 50 ms"
    );
    env.clock.advance_ms(1);
    q.receive(NOW)
        .unwrap()
        .expect("due at 51 ms")
        .ack()
        .unwrap();
}

/// As ActiveMQ's RedeliveryPolicy: a zero first delay is followed by `redelivery_delay`, then
/// the multiplier applies ([0, 1, 2, 4] s), through the store as well as in the policy.
#[test]
fn zero_initial_redelivery_delay_then_backoff() {
    let env = Env::new();
    let policy = RedeliveryPolicy {
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::from_secs(1),
        use_exponential_backoff: true,
        backoff_multiplier: 2.0,
        ..Default::default()
    };
    let s = env.open_with(|o| o.redelivery = policy);
    let q = s.queue("q").unwrap();
    q.send("poison").unwrap();
    // The first delivery, then the redeliveries after 0, 1, 2 and 4 s.
    for wait in [0u64, 0, 1000, 2000, 4000] {
        if wait > 0 {
            env.clock.advance_ms(wait - 1);
            assert!(q.receive(NOW).unwrap().is_none(), "early at {wait} ms");
            env.clock.advance_ms(1);
        }
        q.receive(NOW)
            .unwrap()
            .expect("redelivered")
            .nack("x")
            .unwrap();
    }
    assert_eq!(q.stats().unwrap().dead_lettered, 0);
}

/// `max_bytes` counts body bytes as documented: 100 bytes hold ten 10-byte bodies (it used to
/// count ~53 bytes of record header per message and admit one), in a send, a batch and a
/// transaction alike.
#[test]
fn max_bytes_counts_body_bytes() {
    let env = Env::new();
    let s = env.open();
    let opts = QueueOptions {
        max_bytes: Some(100),
        ..Default::default()
    };
    let q = s.queue_with("q", opts.clone()).unwrap();
    for i in 0..10 {
        q.send(format!("{i:010}")).unwrap();
    }
    let e = q.send("0123456789").expect_err("an 11th message");
    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
    let b = s.queue_with("b", opts.clone()).unwrap();
    b.send_batch((0..10).map(|i| format!("{i:010}"))).unwrap();
    assert_eq!(b.stats().unwrap().messages, 10);
    let t = s.queue_with("t", opts).unwrap();
    let mut tx = s.transaction();
    for i in 0..10 {
        tx.send(&t, format!("{i:010}")).unwrap();
    }
    tx.commit().unwrap();
    assert_eq!(t.stats().unwrap().messages, 10);
}

/// `max_bytes` counts the headers a sender sets as well as the body (its documented rule), for
/// the message coming in as for those held, in every way in: 50 bytes held, a 10-byte body
/// with ~60 bytes of properties does not fit a 100-byte limit (the incoming message used to
/// be measured by its body alone and admitted).
#[test]
fn max_bytes_counts_headers_of_the_incoming_message_in_every_way_in() {
    let env = Env::new();
    let s = env.open();
    let opts = QueueOptions {
        max_bytes: Some(100),
        ..Default::default()
    };
    let big = || Message::new("0123456789").property("p", "x".repeat(60));
    for way in ["send", "batch", "async", "txn"] {
        let q = s.queue_with(way, opts.clone()).unwrap();
        q.send("y".repeat(50)).unwrap();
        let r = match way {
            "send" => q.send(big()).map(drop),
            "batch" => q.send_batch([big()]).map(drop),
            "async" => q.send_async(big(), |_| {}),
            _ => {
                let mut tx = s.transaction();
                tx.send(&q, big()).unwrap();
                tx.commit().map(drop)
            }
        };
        let e = r.expect_err(way);
        assert_eq!(e.kind(), ErrorKind::QueueFull, "{way}: {e}");
        assert_eq!(q.stats().unwrap().messages, 1, "{way}");
    }
}

/// A transaction's sends into a full queue follow the queue's overflow policy exactly as plain
/// sends do: `drop_oldest` dead-letters the oldest (it used to fail with `QueueFull`),
/// `reject` fails with `QueueFull`, `block` waits for room.
#[test]
fn transactions_honour_the_overflow_policy() {
    let env = Env::new();
    let s = env.open();
    let limit = |overflow| QueueOptions {
        max_messages: Some(3),
        overflow: Some(overflow),
        ..Default::default()
    };
    let q = s
        .queue_with("drop", limit(OverflowPolicy::DropOldest))
        .unwrap();
    for i in 0..3 {
        q.send(format!("old{i}")).unwrap();
    }
    let mut tx = s.transaction();
    tx.send(&q, "new0").unwrap();
    tx.send(&q, "new1").unwrap();
    tx.commit().expect("drop_oldest makes room");
    let bodies: Vec<Vec<u8>> = q
        .browse(10)
        .unwrap()
        .iter()
        .map(|m| m.body().to_vec())
        .collect();
    assert_eq!(bodies, [&b"old2"[..], b"new0", b"new1"]);
    assert_eq!(q.stats().unwrap().dead_lettered, 2);

    let q = s
        .queue_with("reject", limit(OverflowPolicy::Reject))
        .unwrap();
    for i in 0..3 {
        q.send(format!("old{i}")).unwrap();
    }
    let mut tx = s.transaction();
    tx.send(&q, "new").unwrap();
    let e = tx.commit().expect_err("reject");
    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");

    let q = s
        .queue_with(
            "block",
            limit(OverflowPolicy::Block {
                timeout: Duration::from_secs(600),
            }),
        )
        .unwrap();
    for i in 0..3 {
        q.send(format!("old{i}")).unwrap();
    }
    std::thread::scope(|sc| {
        let t = sc.spawn(|| {
            let mut tx = s.transaction();
            tx.send(&q, "new").unwrap();
            tx.commit()
        });
        // Room comes once a message is acked: the commit waits for it (it used to fail at once).
        let d = q.receive(NOW).unwrap().unwrap();
        d.ack().unwrap();
        t.join().unwrap().expect("block waits for room");
    });
    assert_eq!(q.stats().unwrap().messages, 3);
}

/// A message whose TTL passed leaves on time, without a consumer: after a manual clock's jump
/// (and a flush, which waits for the records) it is in the dead-letter queue with reason
/// `expired`, counted once; a due delay is listed by browse without a receive or stats first.
#[test]
fn timers_run_without_a_consumer() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    q.send(Message::new("ttl").ttl(Duration::from_secs(1)))
        .unwrap();
    q.send(Message::new("late").delay(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(
        q.browse_ready(10).unwrap().len(),
        1,
        "only the TTL one is ready"
    );
    env.clock.advance_ms(1_000);
    s.flush().unwrap();
    let d = dlq.receive(NOW).unwrap().expect("moved on time");
    assert_eq!(
        d.message().dead_letter_info().unwrap().reason,
        DeadLetterReason::Expired
    );
    d.ack().unwrap();
    let b = q.browse_ready(10).unwrap();
    assert_eq!(b.len(), 1, "the due delay is listed");
    assert_eq!(b[0].body(), b"late");
    let st = q.stats().unwrap();
    assert_eq!(
        (st.expired, st.dead_lettered, st.messages),
        (1, 0, 1),
        "{st:?}"
    );
}

/// `overflow = drop_oldest` holds for a batch and for async sends as for single sends: the
/// newest `max_messages` stay, the oldest go to the dead-letter queue with reason `overflow`.
#[test]
fn drop_oldest_works_for_batches_and_async_sends() {
    let env = Env::new();
    let s = env.open();
    let opts = QueueOptions {
        max_messages: Some(3),
        overflow: Some(OverflowPolicy::DropOldest),
        ..Default::default()
    };
    let b = s.queue_with("b", opts.clone()).unwrap();
    b.send_batch((1..=5).map(|i| format!("b{i}"))).unwrap();
    assert_eq!(drain(&b), ["b3", "b4", "b5"]);
    let a = s.queue_with("a", opts).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 1..=5 {
        let tx = tx.clone();
        a.send_async(format!("a{i}"), move |r| tx.send(r.map(|_| ())).unwrap())
            .unwrap();
    }
    for _ in 1..=5 {
        rx.recv().unwrap().expect("every async send was stored");
    }
    assert_eq!(drain(&a), ["a3", "a4", "a5"]);
    let dlq = s.queue("DLQ").unwrap();
    let reasons: Vec<_> = (0..4)
        .map(|_| {
            let d = dlq.receive(NOW).unwrap().unwrap();
            let r = d.message().dead_letter_info().unwrap().reason;
            d.ack().unwrap();
            r
        })
        .collect();
    assert!(reasons.iter().all(|r| *r == DeadLetterReason::Overflow));
}

/// r5 #17: `drop_oldest` with a consumer that prefetched the backlog (not handed out): the
/// oldest prefetched message is taken back from the buffer and dropped, not a false "every
/// message is in flight". Only the handed-out delivery is undroppable.
#[test]
fn drop_oldest_drops_prefetched_messages() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                max_messages: Some(3),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..3 {
        q.send(format!("m{i}")).unwrap();
    }
    let c = q.consumer(ConsumerOptions {
        prefetch: Some(10),
        ..Default::default()
    });
    let d = c.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"m0");
    let st = q.stats().unwrap();
    assert_eq!((st.in_flight, st.prefetched, st.depth), (1, 2, 0));
    q.send("new")
        .expect("drop_oldest drops a prefetched message");
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.dead_lettered), (3, 1), "{st:?}");
    let dlq = s.queue("DLQ").unwrap();
    let dead = dlq.receive(NOW).unwrap().unwrap();
    assert_eq!(dead.body(), b"m1", "the oldest not handed out");
    dead.ack().unwrap();
    // The consumer still gets what it did not lose, in order; the handed-out one is intact.
    let rest: Vec<Vec<u8>> = c
        .receive_batch(10, NOW)
        .unwrap()
        .into_iter()
        .map(|d| {
            let b = d.body().to_vec();
            d.ack().unwrap();
            b
        })
        .collect();
    assert_eq!(rest, [&b"m2"[..], b"new"]);
    d.ack().unwrap();
    // Every message handed out: now the refusal is true, and says so.
    q.send("a").unwrap();
    q.send("b").unwrap();
    q.send("c").unwrap();
    let held: Vec<Delivery> = q.receive_batch(3, NOW).unwrap();
    assert_eq!(held.len(), 3);
    let e = q.send("d").expect_err("nothing can be dropped");
    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
    assert!(e.message().contains("handed out"), "{e}");
}

/// r5 #6: a transaction with more sends to a `drop_oldest` queue than its `max_messages` can
/// never fit (its own sends are one atomic record, never dropped): it is refused with a
/// `QueueFull` that says so, before anything is dropped — not "every message is in flight".
#[test]
fn a_transaction_larger_than_the_queue_is_refused_truthfully() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                max_messages: Some(3),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("kept").unwrap();
    let mut tx = s.transaction();
    for i in 0..5 {
        tx.send(&q, format!("t{i}")).unwrap();
    }
    let e = tx.commit().expect_err("5 sends cannot fit max_messages 3");
    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
    assert!(
        e.message().contains("5 sends") && e.message().contains("max_messages 3"),
        "{e}"
    );
    let st = q.stats().unwrap();
    assert_eq!(
        (st.messages, st.dead_lettered),
        (1, 0),
        "nothing dropped: {st:?}"
    );
}

/// A send callback that blocks on another send's future (completed by the callback thread
/// itself) gets `WouldDeadlock` instead of hanging the callback thread for good, and that
/// refused send stores nothing (review r10 #3: it was stored, so a retry on the error doubled
/// it); every later send completes and close returns.
#[test]
fn a_callback_waiting_on_a_pending_future_gets_would_deadlock() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let q2 = q.clone();
    q.send_async("a", move |_| {
        let fut = q2.send_future("b");
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        tx.send(rt.block_on(fut).map_err(|e| e.kind())).unwrap();
    })
    .unwrap();
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the callback hung");
    assert_eq!(got, Err(ErrorKind::WouldDeadlock));
    q.send("c").unwrap();
    assert_eq!(drain(&q), ["a", "c"], "the refused send was stored");
    drop(q);
    s.close().unwrap();
}

/// Review r10 #3: a listener handler runs on a listener thread, not on the thread that completes
/// sends: waiting there on a send's future is safe and must succeed (it got `WouldDeadlock`,
/// the input was redelivered and the output stored again each time).
#[test]
fn a_listener_handler_may_wait_on_a_send_future() {
    let env = Env::new();
    let s = env.open();
    let (q, out) = (s.queue("in").unwrap(), s.queue("out").unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let out2 = out.clone();
    let tx = std::sync::Mutex::new(tx);
    let l = q
        .listen(move |d| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let r = rt.block_on(out2.send_future(Message::new(d.body().to_vec())));
            let ok = r.as_ref().map(|_| ()).map_err(|e| e.to_string());
            tx.lock().unwrap().send(r.map_err(|e| e.kind())).unwrap();
            ok
        })
        .unwrap();
    for i in 0..3 {
        q.send(format!("m{i}")).unwrap();
    }
    for _ in 0..3 {
        let r = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the handler hung");
        assert!(r.is_ok(), "{r:?}");
    }
    drop(l);
    assert_eq!(out.stats().unwrap().messages, 3);
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.redelivered), (0, 0), "{st:?}");
    drop((q, out));
    s.close().unwrap();
}

/// Issue 15 F2: a message with 100,000 properties (building it is linear: see the unit test
/// `message::prop_tests`, which checks the key index) is sent, received and reopened with every
/// property, in order, and a key set twice holds its last value at its first place.
#[test]
fn a_message_with_100k_properties_round_trips() {
    const N: i64 = 100_000;
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let mut m = Message::new("many");
    for i in 0..N {
        m.set_property(format!("p{i}"), i);
    }
    m.set_property("p5", "last");
    q.send(m).unwrap();
    drop(q);
    s.close().unwrap();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    let props = d.properties();
    assert_eq!(props.len(), N as usize);
    for (i, (k, v)) in props.iter().enumerate() {
        assert_eq!(k, &format!("p{i}"));
        let want = if i == 5 {
            Value::from("last")
        } else {
            Value::Int(i as i64)
        };
        assert_eq!(v, &want, "{k}");
    }
    assert_eq!(d.get_property("p99999"), Some(&Value::Int(N - 1)));
    d.ack().unwrap();
}

/// Review r5 #15: empty-body messages counted 0 bytes toward `max_bytes`, so any number of
/// them fit. Each message counts at least `MIN_COUNTED_BYTES` (1): of 100 empty messages a
/// `max_bytes` of 50 takes exactly 50, in a send and a batch alike, and a reopened store
/// counts the same (recovery recomputes the count from the journal).
#[test]
fn max_bytes_bounds_empty_messages_by_the_documented_floor() {
    assert_eq!(MIN_COUNTED_BYTES, 1);
    let env = Env::new();
    let opts = QueueOptions {
        max_bytes: Some(50),
        ..Default::default()
    };
    let fit = 50 / MIN_COUNTED_BYTES;
    {
        let s = env.open();
        let q = s.queue_with("q", opts.clone()).unwrap();
        let mut sent = 0;
        for _ in 0..100 {
            match q.send(Vec::<u8>::new()) {
                Ok(_) => sent += 1,
                Err(e) => {
                    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
                    break;
                }
            }
        }
        assert_eq!(sent, fit);
        let b = s.queue_with("b", opts.clone()).unwrap();
        b.send_batch((0..100).map(|_| Vec::<u8>::new()))
            .expect_err("a batch of 100 empty messages over max_bytes 50");
        assert_eq!(b.stats().unwrap().messages, fit);
    }
    let s = env.open();
    for name in ["q", "b"] {
        let q = s.queue_with(name, opts.clone()).unwrap();
        assert_eq!(q.stats().unwrap().messages, fit, "{name}");
        let e = q.send(Vec::<u8>::new()).expect_err("full after the reopen");
        assert_eq!(e.kind(), ErrorKind::QueueFull, "{name}: {e}");
    }
}

/// Review r14 #9: with `drop_oldest`, one message larger than `max_bytes` sent to a queue that
/// holds messages dead-lettered every one of them and was then stored over the limit. What
/// would not fit even an empty queue drops nothing and is refused (`QueueFull`, naming the
/// limits); into an empty queue one such message is still accepted, as documented.
#[test]
fn drop_oldest_drops_nothing_for_a_message_that_could_never_fit() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                max_bytes: Some(100),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..5 {
        q.send(format!("{i:020}")).unwrap();
    }
    let e = q.send(vec![b'x'; 101]).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QueueFull, "{e}");
    assert!(e.message().contains("none was dropped"), "{e}");
    assert_eq!(q.stats().unwrap().messages, 5, "nothing was dropped for it");
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    // A message that fits still drops the oldest, as before.
    q.send(format!("{:020}", 5)).unwrap();
    assert_eq!(q.stats().unwrap().messages, 5);
    // Into an empty queue, one oversized message is accepted (the documented exception).
    let e2 = s
        .queue_with(
            "e",
            QueueOptions {
                max_bytes: Some(100),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
    e2.send(vec![b'y'; 101]).unwrap();
}
