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
    assert_eq!(
        d.ack().unwrap_err().kind(),
        ErrorKind::AlreadySettled,
        "a timed-out delivery must not ack the redelivery"
    );
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
