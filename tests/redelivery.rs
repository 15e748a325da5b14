//! Redelivery policy and dead-letter queues (`mqlite::docs::semantics`), on the virtual clock.
mod common;
use common::*;
use mqlite::*;
use std::time::Duration;

/// The classic ActiveMQ scenario: default policy, a consumer that fails every delivery sees the
/// message 7 times, 1 s apart; then it is in `DLQ` with reason max_redeliveries, delivery count 7
/// and the consumer's last failure text.
#[test]
fn classic_activemq_scenario() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("orders").unwrap();
    let id = q.send("poison").unwrap();
    let mut seen = Vec::new();
    for attempt in 1..=7u32 {
        let d = q.receive(NOW).unwrap().expect("due now");
        assert_eq!(d.id(), id);
        assert_eq!(d.delivery_count(), attempt);
        assert_eq!(d.redelivered(), attempt > 1);
        seen.push(env.clock.now_ms() - T0);
        d.nack(&format!("failure #{attempt}")).unwrap();
        if attempt < 7 {
            env.clock.advance_ms(999);
            assert!(
                q.receive(NOW).unwrap().is_none(),
                "redelivered before its 1 s delay"
            );
            env.clock.advance_ms(1);
        }
    }
    assert_eq!(seen, vec![0, 1000, 2000, 3000, 4000, 5000, 6000]);
    assert!(q.receive(NOW).unwrap().is_none());
    let dlq = s.queue("DLQ").unwrap();
    let d = dlq.receive(NOW).unwrap().expect("dead letter");
    let info = d.dead_letter_info().expect("info").clone();
    assert_eq!(d.body(), b"poison");
    assert_eq!(info.original_queue, "orders");
    assert_eq!(info.original_id, id);
    assert_eq!(info.reason, DeadLetterReason::MaxRedeliveries);
    assert_eq!(info.delivery_count, 7);
    assert_eq!(info.last_failure, "failure #7");
    assert_eq!(info.first_failure_ms, T0);
    assert_eq!(info.last_failure_ms, T0 + 6000);
    assert_eq!(q.stats().unwrap().dead_lettered, 1);
    assert_eq!(q.stats().unwrap().redelivered, 6);
}

fn delays_seen(env: &Env, q: &Queue, max_failures: usize) -> (Vec<u64>, bool) {
    let mut delays = Vec::new();
    let mut last = env.clock.now_ms();
    for _ in 0..max_failures {
        // Find when it comes back by stepping the clock in 1 ms... too slow for 125 s; step by
        // asking the stats for the next due instead: jump in 1 s steps, then refine.
        let d = loop {
            if let Some(d) = q.receive(NOW).unwrap() {
                break Some(d);
            }
            if q.stats().unwrap().messages == 0 {
                break None;
            }
            env.clock.advance_ms(50);
        };
        let Some(d) = d else { return (delays, true) };
        let now = env.clock.now_ms();
        if !delays.is_empty() || d.delivery_count() > 1 {
            delays.push(now - last);
        }
        last = now;
        d.nack("again").unwrap();
    }
    (delays, false)
}

#[test]
fn exponential_backoff_capped() {
    let env = Env::new();
    let s = env.open();
    let policy = RedeliveryPolicy {
        use_exponential_backoff: true,
        maximum_redelivery_delay: Some(Duration::from_secs(200)),
        ..Default::default()
    };
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(policy),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("x").unwrap();
    let (delays, dead) = delays_seen(&env, &q, 10);
    assert_eq!(delays, vec![1000, 5000, 25000, 125000, 200000, 200000]);
    assert!(dead);
}

#[test]
fn collision_avoidance_within_15_percent() {
    let env = Env::new();
    let s = env.open();
    let policy = RedeliveryPolicy {
        use_collision_avoidance: true,
        max_redeliveries: 20,
        ..Default::default()
    };
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(policy),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("x").unwrap();
    let (delays, _) = delays_seen(&env, &q, 20);
    assert_eq!(delays.len(), 19);
    // 50 ms clock steps: the observed delay is the jittered one rounded up to the next step.
    assert!(
        delays.iter().all(|&d| (850..=1200).contains(&d)),
        "{delays:?}"
    );
    assert!(
        delays.iter().any(|&d| d != delays[0]),
        "no jitter at all: {delays:?}"
    );
}

#[test]
fn explicit_delay_list_and_limits() {
    let env = Env::new();
    let s = env.open();
    let policy = RedeliveryPolicy {
        backoff: vec![
            Duration::from_millis(100),
            Duration::from_millis(500),
            Duration::from_millis(1500),
        ],
        max_redeliveries: 4,
        ..Default::default()
    };
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(policy),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("x").unwrap();
    let (delays, dead) = delays_seen(&env, &q, 10);
    assert_eq!(delays, vec![100, 500, 1500, 1500]);
    assert!(dead);
}

#[test]
fn zero_and_unlimited_redeliveries() {
    let env = Env::new();
    let s = env.open();
    let zero = s
        .queue_with(
            "zero",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: 0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    zero.send("x").unwrap();
    zero.receive(NOW)
        .unwrap()
        .unwrap()
        .nack("first failure")
        .unwrap();
    assert_eq!(zero.stats().unwrap().messages, 0);
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 1);

    let inf = s
        .queue_with(
            "inf",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: -1,
                    redelivery_delay: Duration::ZERO,
                    initial_redelivery_delay: Duration::ZERO,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    inf.send("y").unwrap();
    for n in 1..=100 {
        let d = inf.receive(NOW).unwrap().unwrap();
        assert_eq!(d.delivery_count(), n);
        d.nack("again").unwrap();
    }
    assert_eq!(inf.stats().unwrap().messages, 1);
}

#[test]
fn restart_keeps_count_and_next_due_time() {
    let env = Env::new();
    {
        let s = env.open();
        let q = s.queue("q").unwrap();
        q.send("x").unwrap();
        for _ in 0..3 {
            q.receive(NOW).unwrap().unwrap().nack("boom").unwrap();
            env.clock.advance_ms(1000);
        }
        q.receive(NOW).unwrap().unwrap().nack("boom 4").unwrap(); // 4 failures, due at +1 s
    }
    env.clock.advance_ms(500);
    let s = env.open();
    let q = s.queue("q").unwrap();
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "due time lost on restart"
    );
    env.clock.advance_ms(500);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 5);
    assert!(d.redelivered());
}

#[test]
fn crash_in_flight_counts_as_failure() {
    let env = Env::new();
    {
        let s = env.open();
        let q = s.queue("q").unwrap();
        q.send("x").unwrap();
        let d = q.receive(NOW).unwrap().unwrap();
        std::mem::forget(d);
        // Dropping the store without settling simulates the process ending.
        drop(q);
        std::mem::forget(s);
    }
    // The lock of the forgotten store is still held in this process; reopen in a fresh dir copy.
    let copy = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(env.dir.path()).unwrap() {
        let e = e.unwrap();
        // The store's files, not the owner's socket.
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), copy.path().join(e.file_name())).unwrap();
        }
    }
    let s = Store::open(copy.path(), env.opts()).unwrap();
    let q = s.queue("q").unwrap();
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "a crash is a failed delivery: redelivery delay applies"
    );
    env.clock.advance_ms(1000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 2);
    assert!(d.redelivered());
}

#[test]
fn reject_and_dlq_strategies() {
    let env = Env::new();
    let s = env.open();
    let shared = s.queue("a").unwrap();
    let indiv = s
        .queue_with(
            "b",
            QueueOptions {
                dead_letter: Some(DeadLetterStrategy::Individual {
                    prefix: "DLQ.".into(),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let discard = s
        .queue_with(
            "c",
            QueueOptions {
                dead_letter: Some(DeadLetterStrategy::Discard),
                ..Default::default()
            },
        )
        .unwrap();
    for q in [&shared, &indiv, &discard] {
        q.send("bad").unwrap();
        q.receive(NOW)
            .unwrap()
            .unwrap()
            .reject("cannot parse")
            .unwrap();
        assert_eq!(q.stats().unwrap().dead_lettered, 1);
        assert_eq!(q.stats().unwrap().messages, 0);
    }
    let d = s.queue("DLQ").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(
        d.dead_letter_info().unwrap().reason,
        DeadLetterReason::Rejected
    );
    assert_eq!(d.dead_letter_info().unwrap().last_failure, "cannot parse");
    assert_eq!(d.dead_letter_info().unwrap().original_queue, "a");
    let d2 = s.queue("DLQ.b").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(d2.dead_letter_info().unwrap().original_queue, "b");
    assert!(
        s.queue("DLQ").unwrap().receive(NOW).unwrap().is_none(),
        "discard strategy stored a dead letter"
    );
}

#[test]
fn expiry_goes_to_dlq_or_is_dropped() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(Message::new("short").ttl(Duration::from_secs(5)))
        .unwrap();
    q.send("long").unwrap();
    env.clock.advance_ms(5000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"long", "an expired message was delivered");
    d.ack().unwrap();
    let dead = s.queue("DLQ").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(
        dead.dead_letter_info().unwrap().reason,
        DeadLetterReason::Expired
    );
    assert_eq!(q.stats().unwrap().expired, 1);
    dead.ack().unwrap();

    let q2 = s
        .queue_with(
            "q2",
            QueueOptions {
                process_expired: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
    q2.send(Message::new("gone").ttl(Duration::from_millis(1)))
        .unwrap();
    env.clock.advance_ms(2);
    assert!(q2.receive(NOW).unwrap().is_none());
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
}

#[test]
fn a_ttl_of_zero_never_expires_as_in_jms() {
    // Review r1 #4: `ttl(0)` expired the message at once (dead-lettered as expired).
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(Message::new("forever").ttl(Duration::ZERO)).unwrap();
    // A zero ttl also clears an earlier one.
    q.send(
        Message::new("cleared")
            .ttl(Duration::from_millis(1))
            .ttl(Duration::ZERO),
    )
    .unwrap();
    env.clock.advance_ms(10 * 365 * 24 * 3600 * 1000);
    for body in [&b"forever"[..], b"cleared"] {
        let d = q.receive(NOW).unwrap().unwrap();
        assert_eq!(d.body(), body);
        assert_eq!(d.expires_at_ms(), 0);
        d.ack().unwrap();
    }
    assert_eq!(q.stats().unwrap().expired, 0);
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
}

#[test]
fn ack_timeout_counts_as_failure() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                ack_timeout: Some(Duration::from_secs(30)),
                redelivery: Some(RedeliveryPolicy {
                    initial_redelivery_delay: Duration::ZERO,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("slow").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    env.clock.advance_ms(29_999);
    assert!(q.receive(NOW).unwrap().is_none());
    env.clock.advance_ms(1);
    let again = q
        .receive(NOW)
        .unwrap()
        .expect("redelivered after the ack timeout");
    assert_eq!(again.delivery_count(), 2);
    if common::client_role() {
        // A client's lazy ack goes one way (issue 10): the owner's refusal is reported by the
        // client's next flush (or ack_sync, commit, close).
        d.ack().unwrap();
        let e = s.flush().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DeliveryLost, "{e}");
        assert!(e.message().starts_with("1 lazy ack failed"), "{e}");
        s.flush().unwrap(); // reported once
    } else {
        assert_eq!(
            d.ack().unwrap_err().kind(),
            ErrorKind::AlreadySettled,
            "a timed-out delivery must not ack the redelivery"
        );
    }
    again.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

#[test]
fn drop_oldest_overflow_and_retention() {
    let env = Env::new();
    let s = env.open();
    s.queue_with(
        "DLQ",
        QueueOptions {
            retention: Some(Duration::from_secs(60)),
            ..Default::default()
        },
    )
    .unwrap();
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
    for i in 0..5 {
        q.send(format!("m{i}")).unwrap();
    }
    assert_eq!(drain(&q), vec!["m2", "m3", "m4"]);
    let dlq = s.queue("DLQ").unwrap();
    let dead: Vec<_> = dlq.browse(10).unwrap();
    assert_eq!(dead.len(), 2);
    assert!(dead
        .iter()
        .all(|m| m.dead_letter_info().unwrap().reason == DeadLetterReason::Overflow));
    env.clock.advance_ms(60_000);
    assert_eq!(
        dlq.receive(NOW).unwrap().map(|d| d.id()),
        None,
        "dead letters past retention were kept"
    );
    assert_eq!(dlq.stats().unwrap().messages, 0);
}

/// A dead letter sent to `DLQ` by a reject of a message of `q`, now.
fn dead_letter_one(q: &Queue, body: &str) {
    q.send(body).unwrap();
    q.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
}

fn with_retention(secs: Option<u64>) -> QueueOptions {
    QueueOptions {
        retention: secs.map(Duration::from_secs),
        // Some option set: the declaration gives the queue its options (retention included).
        process_expired: Some(true),
        ..Default::default()
    }
}

#[test]
fn retention_declared_later_expires_the_letters_already_held() {
    // Review r12 #8: a letter got a retention deadline only if its dead-letter queue had the
    // option when the letter arrived; one held before was kept for ever, also after a reopen
    // that declared the retention.
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    dead_letter_one(&q, "a"); // DLQ made by the dead-lettering, default options
    let dlq = s.queue_with("DLQ", with_retention(Some(10))).unwrap();
    assert_eq!(dlq.stats().unwrap().messages, 1, "expired before its time");
    env.clock.advance_ms(9_999);
    assert_eq!(dlq.stats().unwrap().messages, 1, "expired before its time");
    env.clock.advance_ms(1);
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.messages, st.expired),
        (0, 1),
        "letter held before the option"
    );
    // Declared after the letter's age passed it: expired at once, counted once.
    dead_letter_one(&q, "b");
    let dlq = s.queue_with("DLQ", with_retention(None)).unwrap();
    env.clock.advance_ms(111_000);
    assert_eq!(dlq.stats().unwrap().messages, 1, "no retention: kept");
    let dlq = s.queue_with("DLQ", with_retention(Some(10))).unwrap();
    let st = dlq.stats().unwrap();
    assert_eq!((st.messages, st.expired), (0, 2));
    assert_eq!(dlq.stats().unwrap().expired, 2, "counted once");
}

#[test]
fn retention_declared_at_a_reopen_expires_the_letters_held() {
    let env = Env::new();
    let s = env.open();
    dead_letter_one(&s.queue("q").unwrap(), "a"); // no retention: no deadline in its record
    env.clock.advance_ms(5_000);
    dead_letter_one(&s.queue("q").unwrap(), "b");
    drop(s);
    env.clock.advance_ms(6_000);
    let s = env.open();
    // Options are not stored: the reopen declares them again. "a" is 11 s old, "b" 6 s.
    let dlq = s.queue_with("DLQ", with_retention(Some(10))).unwrap();
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.messages, st.expired),
        (1, 1),
        "the older letter expires at once"
    );
    env.clock.advance_ms(3_999);
    assert_eq!(dlq.stats().unwrap().messages, 1, "expired before its time");
    env.clock.advance_ms(1);
    let st = dlq.stats().unwrap();
    assert_eq!((st.messages, st.expired), (0, 2), "the newer one on time");
}

#[test]
fn a_changed_retention_rules_the_letters_held() {
    let env = Env::new();
    let s = env.open();
    let dlq = s.queue_with("DLQ", with_retention(Some(100))).unwrap();
    let q = s.queue("q").unwrap();
    dead_letter_one(&q, "a"); // at T0: deadline T0 + 100 s
    env.clock.advance_ms(30_000);
    // Shorter: 50 s from its dead-letter time, not from the change.
    s.queue_with("DLQ", with_retention(Some(50))).unwrap();
    env.clock.advance_ms(19_999);
    assert_eq!(dlq.stats().unwrap().messages, 1, "expired before its time");
    env.clock.advance_ms(1);
    assert_eq!(
        dlq.stats().unwrap().expired,
        1,
        "a shorter retention kept the old deadline"
    );
    dead_letter_one(&q, "b"); // at T0 + 50 s: deadline T0 + 100 s
    env.clock.advance_ms(10_000);
    // Longer: the letter is not expired at its old deadline.
    s.queue_with("DLQ", with_retention(Some(200))).unwrap();
    env.clock.advance_ms(189_999);
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.messages, st.expired),
        (1, 1),
        "a longer retention expired it early"
    );
    env.clock.advance_ms(1);
    assert_eq!(dlq.stats().unwrap().expired, 2);
}

#[test]
fn retention_leaves_a_plain_message_of_the_queue_to_its_ttl() {
    // Retention is for dead letters: a message sent to the dead-letter queue itself keeps its
    // own TTL (or none) when the retention is declared.
    let env = Env::new();
    let s = env.open();
    let dlq = s.queue("DLQ").unwrap();
    dlq.send("no ttl").unwrap();
    dlq.send(Message::new("ttl").ttl(Duration::from_secs(100)))
        .unwrap();
    dead_letter_one(&s.queue("q").unwrap(), "a");
    s.queue_with("DLQ", with_retention(Some(10))).unwrap();
    env.clock.advance_ms(10_000);
    let st = dlq.stats().unwrap();
    assert_eq!((st.messages, st.expired), (2, 1));
    env.clock.advance_ms(90_000);
    assert_eq!(drain(&dlq), vec!["no ttl"]);
}

#[test]
fn retention_by_count_declared_later_trims_the_letters_already_held() {
    // The same kind as review r12 #8: a count limit declared on a dead-letter queue holding
    // more letters than it allows discarded them only when the next dead letter arrived.
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..5 {
        dead_letter_one(&q, &format!("m{i}"));
    }
    let dlq = s
        .queue_with(
            "DLQ",
            QueueOptions {
                max_messages: Some(2),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.messages, st.discarded),
        (2, 3),
        "the oldest letters over the limit"
    );
    assert_eq!(drain(&dlq), vec!["m3", "m4"]);
}

#[test]
fn replay_into_a_dead_letter_queue_is_refused() {
    // Review r1 #20: replaying DLQ into DLQ stripped the dead-letter info, so the letters sat
    // there as plain messages no dead-letter tool found again.
    let env = Env::new();
    let s = env.open();
    let a = s.queue("a").unwrap();
    let b = s
        .queue_with(
            "b",
            QueueOptions {
                dead_letter: Some(DeadLetterStrategy::Individual {
                    prefix: "DLQ.".into(),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    a.send("a1").unwrap();
    a.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    for to in ["DLQ", "DLQ.b"] {
        for dry_run in [true, false] {
            let e = dlq
                .replay(&ReplayFilter {
                    to: Some(to.into()),
                    dry_run,
                    ..Default::default()
                })
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{to}: {e}");
            assert!(e.message().contains(to), "{e}");
        }
    }
    let info = dlq.browse(10).unwrap();
    assert_eq!(info.len(), 1);
    assert!(
        info[0].dead_letter_info().is_some(),
        "dead-letter info lost"
    );
    // An ordinary queue is still a target.
    assert_eq!(
        dlq.replay(&ReplayFilter {
            to: Some("b".into()),
            ..Default::default()
        })
        .unwrap(),
        1
    );
    assert_eq!(drain(&b), vec!["a1"]);
}

#[test]
fn replay_moves_back_once_with_counts_reset() {
    let env = Env::new();
    let s = env.open();
    let a = s.queue("a").unwrap();
    let b = s.queue("b").unwrap();
    a.send("a1").unwrap();
    a.send("a2").unwrap();
    b.send("b1").unwrap();
    for q in [&a, &b] {
        for d in q.receive_batch(10, NOW).unwrap() {
            d.reject("bad").unwrap();
        }
    }
    let dlq = s.queue("DLQ").unwrap();
    assert_eq!(
        dlq.replay(&ReplayFilter {
            dry_run: true,
            ..Default::default()
        })
        .unwrap(),
        3
    );
    assert_eq!(dlq.stats().unwrap().messages, 3, "dry run moved something");
    let n = dlq
        .replay(&ReplayFilter {
            original_queue: Some("a".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 2);
    let back = a.receive_batch(10, NOW).unwrap();
    assert_eq!(back.iter().map(body).collect::<Vec<_>>(), vec!["a1", "a2"]);
    assert!(back
        .iter()
        .all(|d| d.delivery_count() == 1 && d.dead_letter_info().is_none()));
    a.ack_batch(back).unwrap();
    assert_eq!(a.stats().unwrap().replayed, 2);
    assert_eq!(dlq.stats().unwrap().messages, 1);
    let n = dlq
        .replay(&ReplayFilter {
            to: Some("elsewhere".into()),
            reason: Some(DeadLetterReason::Rejected),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(drain(&s.queue("elsewhere").unwrap()), vec!["b1"]);
    drop((a, b, dlq));
    drop(s);
    // After a restart nothing comes back twice.
    let s = env.open();
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    assert_eq!(s.queue("a").unwrap().stats().unwrap().messages, 0);
}

/// Review r4 #16: a reject of a message held from a dead-letter queue dropped it ("a dead letter
/// of the dead-letter queue itself is dropped rather than looping"): a silent delete. It is
/// refused with `InvalidArgument` before anything changes; the delivery stays held. In every
/// kind of dead-letter queue: the shared one, an individual one, a queue whose strategy names
/// itself.
#[test]
fn a_reject_from_a_dead_letter_queue_is_refused_and_loses_nothing() {
    let env = Env::new();
    let s = env.open();
    let no_delay = || RedeliveryPolicy {
        max_redeliveries: -1,
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::ZERO,
        ..Default::default()
    };
    let with = |name: &str, dead_letter: DeadLetterStrategy| {
        s.queue_with(
            name,
            QueueOptions {
                dead_letter: Some(dead_letter),
                redelivery: Some(no_delay()),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let a = s.queue("a").unwrap();
    let b = with(
        "b",
        DeadLetterStrategy::Individual {
            prefix: "DLQ.".into(),
        },
    );
    for q in [&a, &b] {
        q.send("m").unwrap();
        q.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
    }
    for name in ["DLQ", "DLQ.b"] {
        let q = s.queue(name).unwrap();
        let mut d = q.receive(NOW).unwrap().unwrap();
        let e = d.try_reject("again").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}: {e}");
        assert!(
            e.message().contains("cannot be dead-lettered again") && e.message().contains(name),
            "{name}: {e}"
        );
        let st = q.stats().unwrap();
        assert_eq!((st.in_flight, st.dead_lettered, st.discarded), (1, 0, 0));
        // Still held: released, it comes back uncounted.
        d.release().unwrap();
        let d = q.receive(NOW).unwrap().unwrap();
        assert_eq!(d.delivery_count(), 1, "{name}");
        // The consuming reject: refused too; the dropped delivery counts as failed.
        let e = d.reject("again").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name}: {e}");
        assert_eq!(
            q.stats().unwrap().messages,
            1,
            "{name}: the dead letter is gone"
        );
    }
    // Nothing was dropped anywhere; the dead letters still say where they came from.
    let dlq = s.queue("DLQ").unwrap();
    env.clock.advance(Duration::from_secs(10));
    let d = dlq.receive(NOW).unwrap().unwrap();
    assert_eq!(d.dead_letter_info().unwrap().original_queue, "a");
    // An ack deletes it.
    d.ack().unwrap();
    assert_eq!(dlq.stats().unwrap().messages, 0);
    assert_eq!(s.queue("DLQ.b").unwrap().stats().unwrap().messages, 1);
}

/// Review r4 #16, issue 15 #2: a dead letter whose redeliveries in its dead-letter queue run
/// out has nowhere to go: dead-lettered into its own queue it would loop, dropped it was lost
/// with only a counter to tell (so it was, as ActiveMQ's "not re-adding to DLQ" drops it). It
/// stays in the dead-letter queue, delivered again no sooner than the policy's delay and at
/// least 1 s later (never a hot loop), until acked, purged or replayed — also when the queue
/// is its own dead-letter queue through the store's default strategy (default `Shared("work")`,
/// queue "work"), and for a dead-letter queue the engine declared.
#[test]
fn a_dead_letter_queues_own_failures_stay_in_it() {
    let once = RedeliveryPolicy {
        max_redeliveries: 1,
        initial_redelivery_delay: Duration::ZERO,
        redelivery_delay: Duration::ZERO,
        ..Default::default()
    };
    for case in [
        "declared DLQ",
        "store default names the work queue",
        "engine's DLQ",
    ] {
        let env = Env::new();
        let s = env.open_with(|o| {
            if case == "store default names the work queue" {
                o.dead_letter = DeadLetterStrategy::Shared {
                    name: "work".into(),
                };
                o.redelivery = once.clone();
            }
        });
        let dlq = match case {
            "declared DLQ" => {
                let a = s.queue("a").unwrap();
                let dlq = s
                    .queue_with(
                        "DLQ",
                        QueueOptions {
                            redelivery: Some(once.clone()),
                            ..Default::default()
                        },
                    )
                    .unwrap();
                a.send("m").unwrap();
                a.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
                dlq
            }
            "engine's DLQ" => {
                // Declared by the first dead letter, with the store's policy (6 redeliveries).
                let a = s.queue("a").unwrap();
                a.send("m").unwrap();
                a.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
                s.queue("DLQ").unwrap()
            }
            _ => {
                let work = s.queue("work").unwrap();
                work.send("m").unwrap();
                work
            }
        };
        let runs_out = if case == "engine's DLQ" { 7 } else { 2 };
        for i in 0..runs_out {
            // Each redelivery after the first failure may wait (the store's default policy).
            env.clock.advance(Duration::from_secs(3600));
            let d = dlq
                .receive(NOW)
                .unwrap()
                .unwrap_or_else(|| panic!("{case}: delivery {i}"));
            d.nack("still bad").unwrap();
        }
        let st = dlq.stats().unwrap();
        assert_eq!(
            (
                st.messages,
                st.delayed,
                st.discarded,
                st.dead_lettered,
                st.acked
            ),
            (1, 1, 0, 0, 0),
            "{case}: kept, waiting: {st:?}"
        );
        assert!(dlq.receive(NOW).unwrap().is_none(), "{case}: no hot loop");
        env.clock.advance(Duration::from_millis(999));
        if case != "engine's DLQ" {
            assert!(dlq.receive(NOW).unwrap().is_none(), "{case}: 1 s at least");
        }
        env.clock.advance(Duration::from_secs(3600));
        let d = dlq.receive(NOW).unwrap().expect("delivered again");
        assert_eq!(d.delivery_count(), runs_out + 1, "{case}");
        assert_eq!(d.body(), b"m");
        d.ack().unwrap();
        let st = dlq.stats().unwrap();
        assert_eq!(
            (st.messages, st.acked, st.discarded),
            (0, 1, 0),
            "{case}: {st:?}"
        );
    }
}

/// Issue 15 §6 (F16): a replay ignored its target's limits (`max_messages`, `max_bytes`),
/// filling a queue past them. Refused with `QueueFull` before anything moves (and by its dry
/// run), whatever the target's overflow policy: a replay neither drops a queue's oldest
/// messages nor waits.
#[test]
fn a_replay_past_its_targets_limits_is_refused_before_anything_moves() {
    let env = Env::new();
    let s = env.open();
    // Bodies of 150 bytes: with `max_bytes` 400 one held and two replayed (450) do not fit, one
    // held and one replayed do (with whatever headers a client adds).
    let b = |tag: &str| format!("{tag}{}", "x".repeat(150 - tag.len()));
    let cases = [
        ("by_count", Some(2), None, OverflowPolicy::Reject),
        ("by_count_drop", Some(2), None, OverflowPolicy::DropOldest),
        ("by_bytes", None, Some(400), OverflowPolicy::Reject),
    ];
    for (name, max_messages, max_bytes, overflow) in cases {
        let q = s
            .queue_with(
                name,
                QueueOptions {
                    max_messages,
                    max_bytes,
                    overflow: Some(overflow),
                    ..Default::default()
                },
            )
            .unwrap();
        for tag in ["dead-1", "dead-2"] {
            q.send(b(tag)).unwrap();
            q.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
        }
        q.send(b("kept")).unwrap();
        let dlq = s.queue("DLQ").unwrap();
        let only = |limit: Option<usize>, dry_run: bool| ReplayFilter {
            original_queue: Some(name.into()),
            limit,
            dry_run,
            ..Default::default()
        };
        for dry_run in [true, false] {
            let e = dlq.replay(&only(None, dry_run)).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::QueueFull, "{name}: {e}");
            assert!(e.message().contains("nothing moved"), "{name}: {e}");
            assert_eq!(q.stats().unwrap().messages, 1, "{name}");
        }
        // Room for one: one goes back, the held message stays.
        assert_eq!(dlq.replay(&only(Some(1), false)).unwrap(), 1, "{name}");
        let mut got = drain(&q);
        got.sort();
        assert_eq!(got, vec![b("dead-1"), b("kept")], "{name}");
        assert_eq!(dlq.replay(&only(None, false)).unwrap(), 1, "{name}");
        assert_eq!(drain(&q), vec![b("dead-2")], "{name}");
        assert_eq!(
            q.stats().unwrap().dead_lettered,
            2,
            "{name}: nothing dropped"
        );
    }
}

/// r5 #7: a queue that would be its own dead-letter queue loses every failed message (a
/// dead-letter queue discards what runs out of redeliveries in it, and refuses reject). The
/// configuration is refused where it is made, in the core, so in every face: a queue's own
/// strategy naming it, an empty individual prefix (every queue its own dead-letter queue),
/// and a strategy naming subscriptions' queues.
#[test]
fn a_queue_cannot_be_its_own_dead_letter_queue() {
    let env = Env::new();
    let s = env.open();
    for (name, dl) in [
        (
            "orders",
            DeadLetterStrategy::Shared {
                name: "orders".into(),
            },
        ),
        (
            "orders",
            DeadLetterStrategy::Individual {
                prefix: String::new(),
            },
        ),
    ] {
        let e = s
            .queue_with(
                name,
                QueueOptions {
                    dead_letter: Some(dl.clone()),
                    ..Default::default()
                },
            )
            .expect_err("a queue that is its own dead-letter queue was accepted");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{dl:?}: {e}");
        assert!(
            e.message().contains("\"orders\"") || e.message().contains("empty prefix"),
            "{dl:?}: {e}"
        );
    }
    assert!(
        !s.queue_names().contains(&"orders".to_string()),
        "nothing was declared"
    );
    for dl in [
        DeadLetterStrategy::Individual {
            prefix: String::new(),
        },
        DeadLetterStrategy::Individual {
            prefix: "$sub.".into(),
        },
        DeadLetterStrategy::Shared {
            name: "$sub.x".into(),
        },
    ] {
        let e = StoreOptions {
            dead_letter: dl.clone(),
            ..Default::default()
        }
        .validate()
        .expect_err("a store-wide strategy that cannot work was accepted");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{dl:?}: {e}");
    }
    // The dead-letter queue itself, opened with the store's strategy to read dead letters, is
    // not refused; nor is a queue naming another one.
    s.queue("DLQ").unwrap();
    s.queue_with(
        "orders",
        QueueOptions {
            dead_letter: Some(DeadLetterStrategy::Shared {
                name: "orders.failed".into(),
            }),
            ..Default::default()
        },
    )
    .unwrap();
}

/// r5 #22: with individual dead-letter queues, a queue (or subscription) whose dead-letter
/// queue's name would pass the 255-byte limit is refused where it is declared, not at its
/// first failed message.
#[test]
fn an_individual_dead_letter_queue_name_must_fit() {
    let env = Env::new();
    let s = env.open_with(|o| o.dead_letter = DeadLetterStrategy::individual());
    let e = s
        .queue(&"q".repeat(255))
        .expect_err("a queue whose DLQ name cannot exist was accepted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("259 bytes"), "{e}");
    s.queue(&"q".repeat(251)).expect("DLQ. + 251 bytes fits");
    let e = s
        .subscribe(
            "t",
            SubscriptionOptions {
                name: Some("é".repeat(125)),
                durable: true,
                ..Default::default()
            },
        )
        .expect_err("a subscription whose DLQ name cannot exist was accepted");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

/// Review r5 #23: limits on a dead-letter queue used to be accepted and ignored (a DLQ of
/// `max_messages: 2` held 4 dead letters). The rule: with `drop_oldest` they apply to dead
/// letters (the oldest discarded to make room, counted `discarded`: retention by count); with
/// reject or block (the default overflow is reject) they are refused at declaration, since a
/// dead letter has nowhere else to go — also on a queue that names an existing limited queue
/// as its own dead-letter queue.
#[test]
fn dead_letter_queue_limits_keep_the_newest_or_are_refused() {
    let env = Env::new();
    let s = env.open();
    for overflow in [
        None,
        Some(OverflowPolicy::Reject),
        Some(OverflowPolicy::Block {
            timeout: Duration::from_secs(1),
        }),
    ] {
        for (max_messages, max_bytes) in [(Some(2), None), (None, Some(100))] {
            let e = s
                .queue_with(
                    "DLQ",
                    QueueOptions {
                        max_messages,
                        max_bytes,
                        overflow,
                        ..Default::default()
                    },
                )
                .expect_err("limits that would refuse dead letters");
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
            assert!(
                e.message().contains("\"DLQ\" is a dead-letter queue")
                    && e.message().contains("retention")
                    && e.message().contains("drop_oldest"),
                "{e}"
            );
        }
    }
    // A working queue whose own strategy names an existing queue limited with reject.
    s.queue_with(
        "parking",
        QueueOptions {
            max_messages: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let e = s
        .queue_with(
            "w",
            QueueOptions {
                dead_letter: Some(DeadLetterStrategy::Shared {
                    name: "parking".into(),
                }),
                ..Default::default()
            },
        )
        .expect_err("its dead-letter queue would refuse dead letters");
    assert!(e.message().contains("\"parking\""), "{e}");

    // drop_oldest: the newest two dead letters stay, the two oldest are discarded.
    let dlq = s
        .queue_with(
            "DLQ",
            QueueOptions {
                max_messages: Some(2),
                overflow: Some(OverflowPolicy::DropOldest),
                ..Default::default()
            },
        )
        .unwrap();
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
    for i in 0..4 {
        q.send(format!("{i}")).unwrap();
    }
    for i in 0..4 {
        let d = q.receive(NOW).unwrap().unwrap();
        if i == 3 {
            d.nack("exhausted").unwrap();
        } else {
            d.reject("bad").unwrap();
        }
    }
    let st = dlq.stats().unwrap();
    assert_eq!((st.messages, st.discarded), (2, 2), "{st:?}");
    let kept: Vec<String> = dlq
        .browse(10)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8(m.body().to_vec()).unwrap())
        .collect();
    assert_eq!(kept, ["2", "3"]);
    assert_eq!(q.stats().unwrap().dead_lettered, 4);
    // What it kept, it keeps across a reopen.
    drop((q, dlq));
    s.close().unwrap();
    let s = env.open();
    assert_eq!(drain(&s.queue("DLQ").unwrap()), ["2", "3"]);
}

/// `enqueued + replayed − (acked + dead_lettered + expired + discarded + replayed_out)`: the
/// change of `messages` since the open, by the documented one-event-one-counter rule.
fn unbalanced(q: &Queue, at_open: u64) -> Option<String> {
    let s = q.stats().unwrap();
    let arrived = s.enqueued + s.replayed;
    let left = s.acked + s.dead_lettered + s.expired + s.discarded + s.replayed_out;
    (at_open + arrived != s.messages + left).then(|| format!("{s:?} (held at open {at_open})"))
}

/// Review r5 #14: a message replayed out of a dead-letter queue was counted nowhere there (its
/// books did not balance), and the target counted it twice (`enqueued` and `replayed`). Now it
/// leaves the dead-letter queue as `replayed_out` and arrives as `replayed` only; the books of
/// both balance, also after a reopen (the counters start again at 0).
#[test]
fn replays_are_counted_once_on_each_side_and_the_books_balance() {
    let env = Env::new();
    let open = |env: &Env| {
        let s = env.open();
        s.queue_with(
            "DLQ",
            QueueOptions {
                retention: Some(Duration::from_secs(5)),
                ..Default::default()
            },
        )
        .unwrap();
        let q = s
            .queue_with(
                "q",
                QueueOptions {
                    max_messages: Some(1),
                    overflow: Some(OverflowPolicy::DropOldest),
                    redelivery: Some(RedeliveryPolicy {
                        max_redeliveries: 0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        let dlq = s.queue("DLQ").unwrap();
        (s, q, dlq)
    };
    let (s, q, dlq) = open(&env);
    // Three dead letters: overflow, max_redeliveries, expired.
    q.send("overflowed").unwrap();
    let failed = q.send("failed").unwrap();
    q.receive(NOW).unwrap().unwrap().nack("x").unwrap();
    q.send(Message::new("expires").ttl(Duration::from_secs(1)))
        .unwrap();
    env.clock.advance_ms(1000);
    assert_eq!(dlq.stats().unwrap().messages, 3);
    let n = dlq
        .replay(&ReplayFilter {
            ids: Some(vec![failed]),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(n, 1);
    let (qs, ds) = (q.stats().unwrap(), dlq.stats().unwrap());
    assert_eq!((qs.enqueued, qs.replayed), (3, 1), "{qs:?}");
    assert_eq!((ds.enqueued, ds.replayed_out), (3, 1), "{ds:?}");
    for x in [&q, &dlq] {
        assert_eq!(unbalanced(x, 0), None);
    }
    env.clock.advance_ms(5000);
    assert_eq!(dlq.stats().unwrap().expired, 2);
    for x in [&q, &dlq] {
        assert_eq!(unbalanced(x, 0), None);
    }
    drop((q, dlq));
    drop(s);

    let (s, q, dlq) = open(&env);
    let held = (q.stats().unwrap().messages, dlq.stats().unwrap().messages);
    assert_eq!(held, (1, 0));
    q.receive(NOW).unwrap().unwrap().reject("again").unwrap();
    assert_eq!(
        dlq.replay(&ReplayFilter {
            to: Some("other".into()),
            ..Default::default()
        })
        .unwrap(),
        1
    );
    let other = s.queue("other").unwrap();
    assert_eq!(unbalanced(&q, held.0), None);
    assert_eq!(unbalanced(&dlq, held.1), None);
    assert_eq!(unbalanced(&other, 0), None);
    let os = other.stats().unwrap();
    assert_eq!((os.enqueued, os.replayed, os.messages), (0, 1, 1), "{os:?}");
}

fn restored_info(from: &str) -> DeadLetterInfo {
    DeadLetterInfo {
        original_queue: from.into(),
        original_id: MessageId(1),
        reason: DeadLetterReason::Rejected,
        last_failure: String::new(),
        delivery_count: 1,
        first_failure_ms: 1,
        last_failure_ms: 2,
    }
}

#[test]
fn a_restored_dead_letter_that_could_never_be_replayed_is_refused_at_the_send() {
    // Review r10 #1: a restored dead letter may carry headers up to the meta limit (the room
    // kept for the dead-letter part); a replay sends it back as a plain message, whose headers
    // must fit the send limit. The send of such a dead letter is refused, nothing stored.
    let env = Env::new();
    let s = env.open();
    let dlq = s.queue("DLQ").unwrap();
    let mut m = Message::new("x").restore_dead_letter_info(restored_info("q"));
    m.set_property("p", "v".repeat((16 << 20) - 2000));
    let e = dlq.send(m).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("replay could never"), "{e}");
    assert_eq!(dlq.stats().unwrap().messages, 0);
    // One that fits the send limit is stored and replays.
    let mut m = Message::new("x").restore_dead_letter_info(restored_info("q"));
    m.set_property("p", "v".repeat((16 << 20) - 40_000));
    dlq.send(m).unwrap();
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 1);
}

#[test]
fn a_replay_whose_send_is_refused_moves_nothing_and_keeps_the_dead_letter() {
    // Review r10 #1: the move removed the dead letter before its send was checked; a refused
    // send lost it. Here the store's body limit was lowered since it was dead-lettered.
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(vec![7u8; 4096]).unwrap();
    q.send("small").unwrap();
    for d in q.receive_batch(10, NOW).unwrap() {
        d.reject("bad").unwrap();
    }
    drop(q);
    s.close().unwrap();
    let s = env.open_with(|o| o.max_body_bytes = 1024);
    let dlq = s.queue("DLQ").unwrap();
    for dry_run in [true, false] {
        let e = dlq
            .replay(&ReplayFilter {
                dry_run,
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("nothing moved"), "{e}");
    }
    assert_eq!(dlq.stats().unwrap().messages, 2, "a dead letter was lost");
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 0);
    drop(dlq);
    s.close().unwrap();
    let s = env.open();
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 2);
}

#[test]
fn a_dead_letter_cycle_is_refused_at_declare() {
    // Review r10 #4: two queues naming each other as dead-letter queue were accepted; their
    // failed messages went back and forth, with their original queue overwritten.
    let env = Env::new();
    let s = env.open();
    let with = |to: DeadLetterStrategy| QueueOptions {
        dead_letter: Some(to),
        ..Default::default()
    };
    s.queue_with("a", with(DeadLetterStrategy::Shared { name: "b".into() }))
        .unwrap();
    let e = s
        .queue_with("b", with(DeadLetterStrategy::Shared { name: "a".into() }))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains(r#""b" -> "a" -> "b""#), "{e}");
    // Through three queues, and through an individual strategy.
    s.queue_with("c", with(DeadLetterStrategy::Shared { name: "a".into() }))
        .unwrap();
    let e = s
        .queue_with(
            "b",
            with(DeadLetterStrategy::Individual {
                prefix: String::new() + "x",
            }),
        )
        .map(|_| ())
        .and_then(|()| {
            s.queue_with("xb", with(DeadLetterStrategy::Shared { name: "c".into() }))
                .map(|_| ())
        })
        .unwrap_err();
    assert!(
        e.message().contains(r#""xb" -> "c" -> "a" -> "b" -> "xb""#),
        "{e}"
    );
    // Chains that end in a dead-letter queue are fine, and a queue opened again without
    // options keeps its own.
    s.queue_with("d", with(DeadLetterStrategy::Shared { name: "a".into() }))
        .unwrap();
    s.queue("a").unwrap();
    s.queue("DLQ").unwrap();
}

/// Review r12 #5: a move (or copy) out of a dead-letter queue gave the message a new id, left
/// its dead-letter headers on a live message and counted no replay. Refused, naming replay —
/// which keeps the id — and nothing moves.
#[test]
fn a_dead_letter_queue_is_left_by_replay_not_by_move_or_copy() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let id = q.send("bad").unwrap();
    q.receive(NOW).unwrap().unwrap().reject("bad one").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    for copy in [false, true] {
        let f = TransferFilter {
            to: "q".into(),
            copy,
            ..Default::default()
        };
        let e = dlq.transfer(&f).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(e.message().contains("replay"), "{e}");
    }
    assert_eq!(
        (dlq.stats().unwrap().messages, q.stats().unwrap().messages),
        (1, 0)
    );
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
    let d = q.receive(NOW).unwrap().expect("replayed");
    assert_eq!(d.id(), id);
    assert!(d.dead_letter_info().is_none());
}

fn individual() -> QueueOptions {
    QueueOptions {
        dead_letter: Some(DeadLetterStrategy::Individual {
            prefix: "DLQ.".into(),
        }),
        ..Default::default()
    }
}

/// Review r14 #3: retention in `DLQ.q` dead-lettered its letters onward into the shared `DLQ`
/// (original queue `DLQ.q`, reason `expired`: origin, reason and failure text lost, kept for
/// good). Retention drops a dead letter, counted once as `expired`.
#[test]
fn retention_in_a_dead_letter_queue_drops_and_never_dead_letters_onward() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue_with("q", individual()).unwrap();
    let dlq = s.queue_with("DLQ.q", with_retention(Some(10))).unwrap();
    for b in ["a", "b", "c"] {
        dead_letter_one(&q, b);
    }
    assert_eq!(dlq.stats().unwrap().messages, 3);
    env.clock.advance_ms(11_000);
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.messages, st.expired, st.dead_lettered, st.discarded),
        (0, 3, 0, 0),
        "{st:?}"
    );
    let shared = s.queue("DLQ").unwrap().stats().unwrap();
    assert_eq!(
        (shared.messages, shared.enqueued),
        (0, 0),
        "dead-lettered onward: {shared:?}"
    );
    // A plain message's TTL in a dead-letter queue drops it too.
    dlq.send(Message::new("plain").ttl(Duration::from_secs(1)))
        .unwrap();
    env.clock.advance_ms(1_001);
    let st = dlq.stats().unwrap();
    assert_eq!((st.messages, st.expired), (0, 4), "{st:?}");
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    // A queue that only its name marks as a dead-letter queue (`DLQ.x`, no queue `x`) follows
    // the same one rule as move, copy and replay (review r15 #8): its expired messages drop.
    let named = s.queue("DLQ.x").unwrap();
    named
        .send(Message::new("n").ttl(Duration::from_secs(1)))
        .unwrap();
    env.clock.advance_ms(1_001);
    let st = named.stats().unwrap();
    assert_eq!((st.messages, st.expired), (0, 1), "{st:?}");
    assert_eq!(s.queue("DLQ").unwrap().stats().unwrap().messages, 0);
}

/// Review r14 #3: the API's replay took a target that is a dead-letter queue by name only
/// (`DLQ.x`, no queue `x`), which the CLI refuses: the letters became plain messages there.
/// And a dead letter whose original queue is a dead-letter queue stays where it is.
#[test]
fn replay_refuses_every_dead_letter_queue_as_target_by_one_rule() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    dead_letter_one(&q, "a");
    let dlq = s.queue("DLQ").unwrap();
    for dry_run in [true, false] {
        let e = dlq
            .replay(&ReplayFilter {
                to: Some("DLQ.x".into()),
                dry_run,
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.message().contains("\"DLQ.x\": it is a dead-letter queue"),
            "{e}"
        );
    }
    assert_eq!(dlq.stats().unwrap().messages, 1);
    // A letter whose original queue is a dead-letter queue (as the onward dead-lettering of
    // older versions left them): no replay to its original queue, only with a target.
    let stuck = dlq
        .send(Message::new("old").restore_dead_letter_info(restored_info("DLQ.q")))
        .unwrap();
    let all = ReplayFilter {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(dlq.replay(&all).unwrap(), 1, "only the letter of q");
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
    assert_eq!(drain(&q), vec!["a"]);
    let left = dlq.browse(10).unwrap();
    assert_eq!(
        left.iter().map(|m| m.id()).collect::<Vec<_>>(),
        vec![Some(stuck)]
    );
    assert_eq!(
        dlq.replay(&ReplayFilter {
            to: Some("q".into()),
            ..Default::default()
        })
        .unwrap(),
        1
    );
    assert_eq!(drain(&q), vec!["old"]);
}

/// Review r14 #1: `move DLQ DLQ.x` (allowed: between dead-letter queues) then `move DLQ.x q`
/// passed, as the source was asked by the strategies only and `DLQ.x` is one by name: a live
/// message in `q` with a stale dead-letter block. One rule for source and target.
#[test]
fn a_dead_letter_queue_by_name_is_one_for_a_moves_source_too() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    dead_letter_one(&q, "a");
    let dlq = s.queue("DLQ").unwrap();
    let r = dlq
        .transfer(&TransferFilter {
            to: "DLQ.x".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.transferred, 1);
    let x = s.queue("DLQ.x").unwrap();
    for copy in [false, true] {
        let e = x
            .transfer(&TransferFilter {
                to: "q".into(),
                copy,
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        assert!(
            e.message().contains("\"DLQ.x\" is a dead-letter queue"),
            "{e}"
        );
    }
    assert_eq!(
        (x.stats().unwrap().messages, q.stats().unwrap().messages),
        (1, 0)
    );
    assert!(x.browse(1).unwrap()[0].dead_letter_info().is_some());
}

/// Review r14 #13: a consumer of the DLQ that prefetched dead letters (a browser with the
/// default prefetch) blocked their replay: dry run and replay said 0. Replay takes what a
/// purge takes: prefetched letters not handed out come back (uncounted) and are replayed;
/// the one handed out stays.
#[test]
fn replay_takes_dead_letters_a_consumer_prefetched_but_not_the_one_in_flight() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..10 {
        dead_letter_one(&q, &format!("m{i}"));
    }
    let dlq = s.queue("DLQ").unwrap();
    let c = dlq.consumer(ConsumerOptions {
        prefetch: Some(100),
        ..Default::default()
    });
    let held = c.receive(NOW).unwrap().expect("a dead letter");
    let st = dlq.stats().unwrap();
    assert_eq!((st.in_flight, st.prefetched), (1, 9), "{st:?}");
    let dry = ReplayFilter {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(dlq.replay(&dry).unwrap(), 9, "dry run");
    let st = dlq.stats().unwrap();
    assert_eq!(
        (st.in_flight, st.prefetched),
        (1, 9),
        "a dry run changes nothing"
    );
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 9);
    let st = dlq.stats().unwrap();
    assert_eq!(
        (
            st.messages,
            st.in_flight,
            st.prefetched,
            st.redelivered,
            st.replayed_out
        ),
        (1, 1, 0, 0, 9),
        "{st:?}"
    );
    let mut back = drain(&q);
    back.sort();
    let mut want: Vec<String> = (1..10).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(back, want);
    assert_eq!(String::from_utf8(held.body().to_vec()).unwrap(), "m0");
    held.ack().unwrap();
    assert!(c.receive(Some(Duration::ZERO)).unwrap().is_none());
}
