//! Message groups, transactions and scheduled repeats (`mqlite::docs::semantics`).
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

fn zero_delay() -> Option<RedeliveryPolicy> {
    Some(RedeliveryPolicy {
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::ZERO,
        ..Default::default()
    })
}

#[test]
fn groups_one_in_flight_and_other_groups_flow() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..3 {
        q.send(Message::new(format!("a{i}")).group("A")).unwrap();
        q.send(Message::new(format!("b{i}")).group("B")).unwrap();
    }
    q.send("free").unwrap();
    let first = q.receive_batch(10, NOW).unwrap();
    assert_eq!(
        first.iter().map(body).collect::<Vec<_>>(),
        vec!["a0", "b0", "free"],
        "one in flight per group"
    );
    let mut it = first.into_iter();
    let a0 = it.next().unwrap();
    let b0 = it.next().unwrap();
    // A fails: with the default `block` policy, group A waits for a0's redelivery; B flows.
    a0.nack("a0 failed").unwrap();
    b0.ack().unwrap();
    it.next().unwrap().ack().unwrap();
    let next = q.receive_batch(10, NOW).unwrap();
    assert_eq!(
        next.iter().map(body).collect::<Vec<_>>(),
        vec!["b1"],
        "group A must wait for a0"
    );
    q.ack_batch(next).unwrap();
    env.clock.advance_ms(1000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(
        (body(&d), d.delivery_count()),
        ("a0".to_string(), 2),
        "order holds under redelivery"
    );
    d.ack().unwrap();
    let mut rest = Vec::new();
    while let Some(d) = q.receive(NOW).unwrap() {
        rest.push(body(&d));
        d.ack().unwrap();
    }
    // Each group in order; b2, prefetched with a0's redelivery, may come before group A's rest.
    let a: Vec<&String> = rest.iter().filter(|b| b.starts_with('a')).collect();
    assert_eq!(a, vec!["a1", "a2"]);
    assert_eq!(rest.len(), 3);
    assert!(rest.contains(&"b2".to_string()), "{rest:?}");
}

#[test]
fn group_skip_and_park() {
    let env = Env::new();
    let s = env.open();
    let skip = s
        .queue_with(
            "skip",
            QueueOptions {
                group_failure: Some(GroupFailurePolicy::Skip),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..3 {
        skip.send(Message::new(format!("s{i}")).group("G")).unwrap();
    }
    skip.receive(NOW)
        .unwrap()
        .unwrap()
        .nack("s0 failed")
        .unwrap();
    assert_eq!(drain(&skip), vec!["s1"]);
    assert_eq!(drain(&skip), vec!["s2"]);
    let dlq = s.queue("DLQ").unwrap();
    let dead = dlq.browse(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), b"s0");

    let park = s
        .queue_with(
            "park",
            QueueOptions {
                group_failure: Some(GroupFailurePolicy::Park),
                ..Default::default()
            },
        )
        .unwrap();
    for i in 0..3 {
        park.send(Message::new(format!("p{i}")).group("P")).unwrap();
    }
    park.send(Message::new("other").group("O")).unwrap();
    park.receive(NOW)
        .unwrap()
        .unwrap()
        .nack("p0 failed")
        .unwrap();
    assert_eq!(
        drain(&park),
        vec!["other"],
        "a parked group's messages must not be delivered"
    );
    park.send(Message::new("p3").group("P")).unwrap();
    assert!(drain(&park).is_empty());
    let reasons: Vec<_> = dlq
        .browse(10)
        .unwrap()
        .iter()
        .map(|m| {
            (
                String::from_utf8(m.body().to_vec()).unwrap(),
                m.dead_letter_info().unwrap().reason,
            )
        })
        .collect();
    assert!(reasons.contains(&("p0".into(), DeadLetterReason::MaxRedeliveries)));
    for p in ["p1", "p2", "p3"] {
        assert!(
            reasons.contains(&(p.into(), DeadLetterReason::GroupParked)),
            "{p} missing from {reasons:?}"
        );
    }
    // The park survives a restart; replay unparks and restores the group's order.
    drop((skip, park, dlq));
    drop(s);
    let s = env.open();
    let park = s
        .queue_with(
            "park",
            QueueOptions {
                group_failure: Some(GroupFailurePolicy::Park),
                ..Default::default()
            },
        )
        .unwrap();
    park.send(Message::new("p4").group("P")).unwrap();
    assert!(drain(&park).is_empty(), "park lost on restart");
    let dlq = s.queue("DLQ").unwrap();
    let n = dlq
        .replay(&ReplayFilter {
            original_queue: Some("park".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 5);
    let mut order = Vec::new();
    while let Some(d) = park.receive(NOW).unwrap() {
        order.push(body(&d));
        d.ack().unwrap();
    }
    assert_eq!(order, vec!["p0", "p1", "p2", "p3", "p4"]);
}

#[test]
fn transaction_commit_is_atomic_and_durable() {
    let env = Env::new();
    let (a_id, ids);
    {
        let s = env.open();
        let a = s.queue("a").unwrap();
        let b = s.queue("b").unwrap();
        a_id = a.send("in").unwrap();
        let d = a.receive(NOW).unwrap().unwrap();
        let mut tx = s.transaction();
        tx.ack(d).unwrap();
        tx.send(&b, "out1").unwrap();
        tx.send(&b, Message::new("out2").priority(9)).unwrap();
        assert_eq!(b.stats().unwrap().messages, 0, "visible before commit");
        ids = tx.commit().unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(a.stats().unwrap().messages, 0);
    }
    let s = env.open();
    assert_eq!(
        s.queue("a").unwrap().stats().unwrap().messages,
        0,
        "acked in a committed transaction, yet back"
    );
    let got = s.queue("b").unwrap().receive_batch(10, NOW).unwrap();
    assert_eq!(
        got.iter().map(|d| d.id()).collect::<Vec<_>>(),
        vec![ids[1], ids[0]],
        "priority order"
    );
    assert!(got.iter().all(|d| d.id() != a_id));
}

#[test]
fn transaction_rollback_fails_the_acks() {
    let env = Env::new();
    let s = env.open();
    let a = s
        .queue_with(
            "a",
            QueueOptions {
                redelivery: zero_delay(),
                ..Default::default()
            },
        )
        .unwrap();
    let b = s.queue("b").unwrap();
    a.send("in").unwrap();
    let d = a.receive(NOW).unwrap().unwrap();
    let mut tx = s.transaction();
    tx.ack(d).unwrap();
    tx.send(&b, "never").unwrap();
    tx.rollback().unwrap();
    assert_eq!(b.stats().unwrap().messages, 0);
    let again = a
        .receive(NOW)
        .unwrap()
        .expect("rolled-back ack returns the message");
    assert_eq!(
        again.delivery_count(),
        2,
        "a rollback counts as a failed delivery"
    );
    // Dropping an uncommitted transaction rolls back too.
    let mut tx = s.transaction();
    tx.ack(again).unwrap();
    drop(tx);
    assert_eq!(a.receive(NOW).unwrap().unwrap().delivery_count(), 3);
}

#[test]
fn transaction_refused_when_a_queue_is_full_changes_nothing() {
    let env = Env::new();
    let s = env.open();
    let a = s
        .queue_with(
            "a",
            QueueOptions {
                redelivery: zero_delay(),
                ..Default::default()
            },
        )
        .unwrap();
    let small = s
        .queue_with(
            "small",
            QueueOptions {
                max_messages: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    a.send("in").unwrap();
    let d = a.receive(NOW).unwrap().unwrap();
    let mut tx = s.transaction();
    tx.ack(d).unwrap();
    tx.send(&small, "1").unwrap();
    tx.send(&small, "2").unwrap();
    assert_eq!(tx.commit().unwrap_err().kind(), ErrorKind::QueueFull);
    assert_eq!(small.stats().unwrap().messages, 0);
    assert_eq!(a.receive(NOW).unwrap().unwrap().delivery_count(), 2);
}

#[test]
fn scheduled_repeats_survive_restart() {
    let env = Env::new();
    {
        let s = env.open();
        let q = s.queue("tick").unwrap();
        q.send(
            Message::new("tick")
                .delay(Duration::from_secs(10))
                .repeat(Duration::from_secs(60), 2),
        )
        .unwrap();
        assert!(q.receive(NOW).unwrap().is_none());
        env.clock.advance_ms(10_000);
        let d = q.receive(NOW).unwrap().unwrap();
        assert_eq!(d.body(), b"tick");
        d.ack().unwrap();
        assert_eq!(
            q.stats().unwrap().delayed,
            1,
            "next occurrence not scheduled"
        );
    }
    let s = env.open();
    let q = s.queue("tick").unwrap();
    env.clock.advance_ms(59_999);
    assert!(q.receive(NOW).unwrap().is_none());
    env.clock.advance_ms(1);
    let d = q.receive(NOW).unwrap().expect("second occurrence");
    let first_id = d.id();
    d.nack("fail once").unwrap(); // a failed occurrence does not schedule another copy
    env.clock.advance_ms(1000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.id(), first_id);
    d.ack().unwrap();
    env.clock.advance_ms(59_000);
    let third = q.receive(NOW).unwrap().expect("third occurrence");
    assert_ne!(third.id(), first_id);
    third.ack().unwrap();
    env.clock.advance_ms(600_000);
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "more occurrences than 1 + repeats"
    );
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// Issue 15 kind 3: a scheduled repeat's next copy is made by the timer when it is due, with
/// nobody receiving (it used to be made only by the receive that took the previous one).
#[test]
fn repeats_are_made_on_time_without_a_consumer() {
    for memory in [false, true] {
        let env = Env::new();
        let s = env.open();
        let mut o = QueueOptions::default();
        if memory {
            o.durability = Some(Durability::Memory);
        }
        let q = s.queue_with("tick", o).unwrap();
        q.send(Message::new("tick").repeat(Duration::from_secs(1), 3))
            .unwrap();
        let st = q.stats().unwrap();
        assert_eq!(
            (st.depth, st.delayed),
            (1, 1),
            "memory {memory}: after the send"
        );
        for n in 2..=4u64 {
            env.clock.advance_ms(1000);
            let st = q.stats().unwrap();
            let delayed = u64::from(n < 4);
            assert_eq!(
                (st.depth, st.delayed),
                (n, delayed),
                "memory {memory}: copies made on time, none received"
            );
            assert_eq!(q.browse(100).unwrap().len() as u64, n + delayed);
        }
        env.clock.advance_ms(60_000);
        let st = q.stats().unwrap();
        assert_eq!(
            (st.depth, st.delayed),
            (4, 0),
            "memory {memory}: 1 + 3 repeats, no more"
        );
        let ids: Vec<_> = q
            .receive_batch(10, NOW)
            .unwrap()
            .iter()
            .map(|d| d.id())
            .collect();
        assert_eq!(ids.len(), 4);
    }
}

/// A timer less than the misfire threshold (1 s) late catches the schedule up slot by slot: a
/// 1 ms period used to make one copy where three were due (the C test's case), and a 100 ms
/// period jumped over by 500 ms gets each of its five slots, with the next one pending.
#[test]
fn a_slightly_late_timer_catches_repeats_up() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("tick").unwrap();
    q.send(Message::new("tick").repeat(Duration::from_millis(100), 10))
        .unwrap();
    env.clock.advance_ms(500);
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.delayed),
        (6, 1),
        "the first and slots 100..500 ms"
    );
    env.clock.advance_ms(100);
    assert_eq!(q.stats().unwrap().depth, 7);
}

/// Slots missed while nothing could make them (here the clock jumps; the same holds for a
/// closed store) are skipped, Quartz's "fire once now": one late copy, then the next slot after
/// now, the skipped slots using up their repeats. A late consumer gets no burst.
#[test]
fn missed_repeat_slots_fire_once_now() {
    let env = Env::new();
    {
        let s = env.open();
        let q = s.queue("tick").unwrap();
        q.send(
            Message::new("tick")
                .delay(Duration::from_secs(1))
                .repeat(Duration::from_secs(1), 10),
        )
        .unwrap();
        // Slots: 1 s (the first), 2 s ... 11 s. The clock jumps to 5.5 s.
        env.clock.advance_ms(5_500);
        let st = q.stats().unwrap();
        assert_eq!(
            (st.depth, st.delayed),
            (1, 1),
            "one late copy, the next slot pending"
        );
        env.clock.advance_ms(499);
        assert_eq!(q.stats().unwrap().depth, 1, "the next slot is 6 s");
        env.clock.advance_ms(1);
        assert_eq!(q.stats().unwrap().depth, 2, "made at 6 s");
    }
    // Closed over the slots 7 s .. 11 s: one copy at reopen, and the schedule is over.
    env.clock.advance_ms(100_000);
    let s = env.open();
    let q = s.queue("tick").unwrap();
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.delayed),
        (3, 0),
        "one copy for the missed slots, no more"
    );
    env.clock.advance_ms(100_000);
    assert_eq!(q.stats().unwrap().depth, 3);
}

#[test]
fn a_million_delayed_do_not_block_ready_ones() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let delayed: Vec<_> = (0..20_000)
        .map(|i| Message::new(format!("later{i}")).delay(Duration::from_secs(3600)))
        .collect();
    q.send_batch(delayed).unwrap();
    q.send("now").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"now");
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().delayed, 20_000);
}

/// r5 #4: parking a group dead-letters the rest of its messages at once (reason
/// `group_parked`), not when some receive happens to reach them: depth and browse show no
/// work that no consumer will ever get.
#[test]
fn a_parked_group_leaves_the_queue_at_once() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                group_failure: Some(GroupFailurePolicy::Park),
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: 0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    for b in ["g1", "g2", "g3"] {
        q.send(Message::new(b).group("g")).unwrap();
    }
    q.send("other").unwrap();
    q.receive(NOW).unwrap().unwrap().nack("x").unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.dead_lettered), (1, 3), "{st:?}");
    let left: Vec<Vec<u8>> = q
        .browse(10)
        .unwrap()
        .iter()
        .map(|m| m.body().to_vec())
        .collect();
    assert_eq!(left, [b"other".to_vec()]);
    let dlq = s.queue("DLQ").unwrap();
    let dead: Vec<(Vec<u8>, DeadLetterReason)> = dlq
        .browse(10)
        .unwrap()
        .iter()
        .map(|m| (m.body().to_vec(), m.dead_letter_info().unwrap().reason))
        .collect();
    assert_eq!(
        dead,
        [
            (b"g1".to_vec(), DeadLetterReason::MaxRedeliveries),
            (b"g2".to_vec(), DeadLetterReason::GroupParked),
            (b"g3".to_vec(), DeadLetterReason::GroupParked),
        ]
    );
}

/// A send into a group that is already parked goes to the dead-letter queue (reason
/// `group_parked`) as the group's earlier messages did, without a receive: it used to sit
/// `ready` in browse and `depth` — deliverable work no consumer would get — until some receive
/// reached it. A replay unparks the group, and the group's messages come back in order.
#[test]
fn a_send_into_a_parked_group_is_dead_lettered_at_once() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                group_failure: Some(GroupFailurePolicy::Park),
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: 0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    q.send(Message::new("g1").group("g")).unwrap();
    q.send(Message::new("g2").group("g")).unwrap();
    q.receive(NOW).unwrap().unwrap().nack("x").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    assert_eq!(dlq.browse(10).unwrap().len(), 2);
    q.send(Message::new("g3").group("g")).unwrap();
    q.send(Message::new("other")).unwrap();
    // No receive: stats and browse already tell where g3 is.
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.messages), (1, 1), "{st:?}");
    assert_eq!(
        q.browse(10)
            .unwrap()
            .iter()
            .map(|m| String::from_utf8_lossy(m.body()).into_owned())
            .collect::<Vec<_>>(),
        vec!["other"]
    );
    s.flush().unwrap(); // the move's record is written with the next commit
    let dead: Vec<_> = dlq.browse(10).unwrap();
    let g3 = dead
        .iter()
        .find(|m| m.body() == b"g3")
        .expect("g3 in the DLQ");
    assert_eq!(
        g3.dead_letter_info().unwrap().reason,
        DeadLetterReason::GroupParked
    );
    let n = dlq
        .replay(&ReplayFilter {
            original_queue: Some("q".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 3);
    let mut order = Vec::new();
    while let Some(d) = q.receive(NOW).unwrap() {
        order.push(body(&d));
        d.ack().unwrap();
    }
    order.retain(|b| b != "other");
    assert_eq!(order, vec!["g1", "g2", "g3"]);
}
