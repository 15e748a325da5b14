//! What JMS users expect of a message's identity, of transactions and of the counters: a dead
//! letter keeps its send time through the dead-letter queue and back, a transaction owns the
//! acks added to it, one event moves one counter; and a chunked replay reads what it replays.
mod common;
use common::fault::{FaultFs, Op};
use common::*;
use mqlite::*;
use std::time::Duration;

/// A message keeps its original send time through dead-lettering and replay.
#[test]
fn a_dead_letter_keeps_its_send_time_through_the_dlq_and_back() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("orders").unwrap();
    let id = q.send("m").unwrap();
    env.clock.advance_ms(5_000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.message().timestamp_ms(), T0);
    d.reject("bad").unwrap();
    env.clock.advance_ms(5_000);
    let dlq = s.queue("DLQ").unwrap();
    let dl = dlq.receive(NOW).unwrap().unwrap();
    assert_eq!(dl.message().timestamp_ms(), T0, "send time kept in the DLQ");
    assert_eq!(dl.message().dead_letter_info().unwrap().original_id, id);
    dl.release().unwrap();
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
    let back = q.receive(NOW).unwrap().unwrap();
    assert_eq!(
        back.message().timestamp_ms(),
        T0,
        "send time kept on replay"
    );
    back.ack().unwrap();
}

/// Receive in a consumer, ack inside a transaction, close the consumer, roll back: the
/// transaction owns the ack (as in JMS), so the rollback succeeds and the message comes back
/// once, counted as one failed delivery.
#[test]
fn a_transaction_owns_its_acks_after_the_consumer_closes() {
    let env = Env::new();
    let s = env.open_with(|o| o.redelivery = common::durable::no_delay_policy());
    let q = s.queue("q").unwrap();
    q.send("m").unwrap();
    let c = q.consumer(ConsumerOptions::default());
    let d = c.receive(NOW).unwrap().unwrap();
    let mut tx = s.transaction();
    tx.ack(d).unwrap();
    drop(c);
    // Closing the consumer did not fail the delivery the transaction owns.
    assert_eq!(q.stats().unwrap().in_flight, 1);
    tx.rollback().expect("rollback after the consumer closed");
    let again = q.receive(NOW).unwrap().expect("back after the rollback");
    assert_eq!(again.delivery_count(), 2);
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "delivered once more, not twice"
    );
    // And the commit path: the ack holds although the consumer closed first.
    again.release().unwrap();
    let c = q.consumer(ConsumerOptions::default());
    let d = c.receive(NOW).unwrap().unwrap();
    let mut tx = s.transaction();
    tx.ack(d).unwrap();
    drop(c);
    tx.commit().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// One event, one counter: a message dropped by the discard strategy is dead-lettered (not
/// also discarded); a dead letter dropped by retention expired (not also discarded); an expired
/// message moved to the DLQ expired (not also dead-lettered).
#[test]
fn one_event_one_counter() {
    let env = Env::new();
    let s = env.open();
    let discard = QueueOptions {
        dead_letter: Some(DeadLetterStrategy::Discard),
        ..Default::default()
    };
    let q = s.queue_with("d", discard).unwrap();
    q.send("m").unwrap();
    q.receive(NOW).unwrap().unwrap().reject("x").unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.dead_lettered, st.discarded), (1, 0), "{st:?}");

    let dlq = s
        .queue_with(
            "DLQ",
            QueueOptions {
                retention: Some(Duration::from_secs(10)),
                ..Default::default()
            },
        )
        .unwrap();
    let t = s
        .queue_with(
            "t",
            QueueOptions {
                process_expired: Some(true),
                ..Default::default()
            },
        )
        .unwrap();
    t.send(Message::new("ttl").ttl(Duration::from_secs(1)))
        .unwrap();
    env.clock.advance_ms(1_000);
    assert!(t.receive(NOW).unwrap().is_none());
    let st = t.stats().unwrap();
    assert_eq!((st.expired, st.dead_lettered), (1, 0), "{st:?}");
    assert_eq!(
        dlq.stats().unwrap().messages,
        1,
        "the expired message was dead-lettered"
    );
    env.clock.advance_ms(10_000);
    assert!(dlq.receive(NOW).unwrap().is_none());
    let st = dlq.stats().unwrap();
    assert_eq!((st.expired, st.discarded, st.messages), (1, 0, 0), "{st:?}");
}

/// Replaying a large dead-letter queue 10 at a time reads about what it replays on each call,
/// not the whole queue every time (which made a chunked replay quadratic).
#[test]
fn chunked_replay_reads_what_it_replays() {
    let fs = FaultFs::new();
    let clock = ManualClock::new(T0);
    let dir = tempfile::tempdir().unwrap();
    // No compaction: its reads are not the replay's.
    let o = StoreOptions {
        compact_below: 0.0,
        ..common::durable::opts(&fs, &clock)
    };
    let s = Store::open(dir.path(), o).unwrap();
    let q = s.queue("q").unwrap();
    let n = 600;
    q.send_batch((0..n).map(|i| common::durable::body(&format!("m{i}"), 1024)))
        .unwrap();
    for d in q.receive_batch(n, NOW).unwrap() {
        d.reject("x").unwrap();
    }
    let dlq = s.queue("DLQ").unwrap();
    assert_eq!(dlq.stats().unwrap().messages, n as u64);
    fs.reset_counts();
    let limit = ReplayFilter {
        limit: Some(10),
        ..Default::default()
    };
    let mut replayed = 0;
    let mut worst = 0;
    while replayed < n as u64 {
        let before = fs.count(Op::Read);
        let k = dlq.replay(&limit).unwrap();
        assert!(k > 0);
        replayed += k;
        worst = worst.max(fs.count(Op::Read) - before);
    }
    // Each dead letter was written by its own commit (its own frame), so each record read is
    // one read: a call that read the whole queue made 600; one of 10 reads a chunk of 16.
    assert!(worst <= 16, "one replay of 10 made {worst} reads");
    assert_eq!(q.stats().unwrap().messages, n as u64);
}

fn drain_ids(q: &Queue) -> Vec<(MessageId, String)> {
    let ds = q.receive_batch(1000, NOW).unwrap();
    let v = ds.iter().map(|d| (d.id(), body(d))).collect();
    q.ack_batch(ds).unwrap();
    v
}

/// A message keeps its id through dead-lettering and replay (ActiveMQ keeps the
/// JMSMessageID), also across a reopen and a compaction: recovery never takes the replayed
/// message for its dead letter, and a second trip to the DLQ and back keeps it too.
#[test]
fn a_message_keeps_its_id_through_the_dlq_and_back_across_reopen_and_compaction() {
    let env = Env::new();
    let opts = |o: &mut StoreOptions| {
        o.segment_bytes = 4 << 10;
        o.compact_below = 1.0;
    };
    let s = env.open_with(opts);
    // Prefetch 1: with a larger one the receive's buffer would already hold "fine" when the
    // replayed message comes back, and hand it out first (as a JMS consumer's prefetch does).
    let one = QueueOptions {
        prefetch: Some(1),
        ..Default::default()
    };
    let q = s.queue_with("orders", one).unwrap();
    let id = q.send("poison").unwrap();
    let other = q.send("fine").unwrap();
    for round in 0..2 {
        let d = q.receive(NOW).unwrap().unwrap();
        assert_eq!((d.id(), body(&d)), (id, "poison".into()), "round {round}");
        d.reject("bad").unwrap();
        let dlq = s.queue("DLQ").unwrap();
        let dl = dlq.browse(10).unwrap();
        assert_eq!(dl.len(), 1);
        assert_eq!(
            dl[0].id(),
            Some(id),
            "the dead letter keeps the id (round {round})"
        );
        assert_eq!(dl[0].dead_letter_info().unwrap().original_id, id);
        assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
        assert!(dlq.browse(10).unwrap().is_empty());
        // Filler traffic rolls segments, so compaction has old ones to drop.
        let f = s.queue("filler").unwrap();
        for _ in 0..20 {
            f.send(vec![7u8; 300]).unwrap();
        }
        drain(&f);
    }
    drop(q);
    s.compact().unwrap();
    s.close().unwrap();
    let s = env.open_with(opts);
    let q = s.queue("orders").unwrap();
    let mut got = q.browse(10).unwrap();
    got.sort_by_key(|m| m.id());
    let ids: Vec<Option<MessageId>> = got.iter().map(|m| m.id()).collect();
    let mut want = vec![Some(id), Some(other)];
    want.sort();
    assert_eq!(ids, want, "after reopen");
    assert!(s.queue("DLQ").unwrap().browse(10).unwrap().is_empty());
    s.compact().unwrap();
    drop(q);
    s.close().unwrap();
    let s = env.open();
    let mut got = drain_ids(&s.queue("orders").unwrap());
    got.sort();
    let mut want = vec![(id, "poison".to_string()), (other, "fine".to_string())];
    want.sort();
    assert_eq!(got, want);
    assert!(drain(&s.queue("DLQ").unwrap()).is_empty());
    // Nothing comes back: the acks of the replayed message hold at the next open.
    s.close().unwrap();
    let s = env.open();
    assert!(drain(&s.queue("orders").unwrap()).is_empty());
}

/// A message published to a topic has one id in every subscription; dead-lettered from two
/// of them into the shared DLQ, the second copy cannot take the same id there and gets a new
/// one, and each replays back where it came from.
#[test]
fn a_published_message_dead_lettered_from_two_subscriptions_gets_distinct_dlq_ids() {
    let env = Env::new();
    let s = env.open();
    let sub = |n: &str| {
        s.subscribe(
            "orders",
            SubscriptionOptions {
                name: Some(n.into()),
                durable: true,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let (a, b) = (sub("a"), sub("b"));
    let id = s.topic("orders").unwrap().publish("m").unwrap();
    a.receive(NOW).unwrap().unwrap().reject("x").unwrap();
    b.receive(NOW).unwrap().unwrap().reject("x").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    let mut ids: Vec<MessageId> = dlq
        .browse(10)
        .unwrap()
        .iter()
        .filter_map(|m| m.id())
        .collect();
    ids.sort();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[0], id);
    assert_ne!(ids[1], id);
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 2);
    drop(dlq);
    s.close().unwrap();
    let s = env.open();
    for n in ["a", "b"] {
        let opts = SubscriptionOptions {
            name: Some(n.into()),
            durable: true,
            ..Default::default()
        };
        let q = s.subscribe("orders", opts).unwrap();
        assert_eq!(drain(&q), ["m"], "{n}");
    }
}
