//! Core behaviour: sends, receives, settling, limits, stats (the semantics:
//! `mqlite::docs::semantics`).
mod common;
use common::*;
use mqlite::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[test]
fn priority_then_fifo() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for (b, p) in [
        ("l1", 1),
        ("h1", 9),
        ("n1", 4),
        ("h2", 9),
        ("l2", 1),
        ("n2", 4),
    ] {
        q.send(Message::new(b).priority(p)).unwrap();
    }
    assert_eq!(drain(&q), vec!["h1", "h2", "n1", "n2", "l1", "l2"]);
    assert_eq!(
        q.send(Message::new("x").priority(10)).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn message_fields_round_trip_and_persist() {
    let env = Env::new();
    let id;
    {
        let s = env.open();
        let q = s.queue("q").unwrap();
        let m = Message::new(vec![0u8, 255, 1])
            .property("s", "text")
            .property("i", -5i64)
            .property("f", 2.5f64)
            .property("b", true)
            .property("raw", vec![1u8, 2])
            .correlation_id("corr-1")
            .priority(7)
            .ttl(Duration::from_secs(100))
            .group("g1");
        id = q.send(m).unwrap();
    }
    env.clock.advance_ms(10);
    let s = env.open();
    let d = s.queue("q").unwrap().receive(NOW).unwrap().unwrap();
    assert_eq!(d.id(), id);
    assert_eq!(d.body(), &[0u8, 255, 1]);
    assert_eq!(d.get_property("s"), Some(&Value::Str("text".into())));
    assert_eq!(d.get_property("i"), Some(&Value::Int(-5)));
    assert_eq!(d.get_property("f"), Some(&Value::Float(2.5)));
    assert_eq!(d.get_property("b"), Some(&Value::Bool(true)));
    assert_eq!(d.get_property("raw"), Some(&Value::Bytes(vec![1, 2])));
    assert_eq!(d.get_correlation_id(), Some("corr-1"));
    assert_eq!(d.get_group(), Some("g1"));
    assert_eq!(d.get_priority(), 7);
    assert_eq!(d.timestamp_ms(), T0);
    assert_eq!(d.expires_at_ms(), T0 + 100_000);
    assert_eq!(id.to_string().parse::<MessageId>().unwrap(), id);
}

#[test]
fn ids_are_monotonic_across_restarts() {
    let env = Env::new();
    let a = {
        let s = env.open();
        let q = s.queue("q").unwrap();
        let a = q.send("a").unwrap();
        drain(&q);
        a
    };
    let s = env.open();
    let b = s.queue("q").unwrap().send("b").unwrap();
    assert!(b > a);
}

#[test]
fn delay_and_deliver_at() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send(Message::new("in 5s").delay(Duration::from_secs(5)))
        .unwrap();
    q.send(Message::new("at +2s").deliver_at_ms(T0 + 2000))
        .unwrap();
    assert!(q.receive(NOW).unwrap().is_none());
    assert_eq!(q.stats().unwrap().delayed, 2);
    env.clock.advance_ms(2000);
    assert_eq!(drain(&q), vec!["at +2s"]);
    env.clock.advance_ms(3000);
    assert_eq!(drain(&q), vec!["in 5s"]);
}

#[test]
fn blocking_receive_wakes_on_send_and_on_clock() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let q2 = q.clone();
    let take = |d: Delivery| {
        let b = body(&d);
        d.ack().unwrap();
        b
    };
    let t =
        std::thread::spawn(move || q2.receive(Some(Duration::from_secs(30))).unwrap().map(take));
    std::thread::sleep(Duration::from_millis(50)); // let it block (not a timer wait)
    q.send("wake").unwrap();
    assert_eq!(t.join().unwrap().as_deref(), Some("wake"));

    q.send(Message::new("later").delay(Duration::from_secs(3600)))
        .unwrap();
    let q3 = q.clone();
    let t =
        std::thread::spawn(move || q3.receive(Some(Duration::from_secs(30))).unwrap().map(take));
    std::thread::sleep(Duration::from_millis(50));
    env.clock.advance_ms(3_600_000);
    assert_eq!(t.join().unwrap().as_deref(), Some("later"));
}

#[test]
fn dedup_within_window_survives_restart() {
    let env = Env::new();
    let first;
    {
        let s = env.open();
        let q = s
            .queue_with(
                "q",
                QueueOptions {
                    dedup_window: Some(Duration::from_secs(60)),
                    ..Default::default()
                },
            )
            .unwrap();
        first = q.send(Message::new("one").dedup_key("k")).unwrap();
        assert_eq!(q.send(Message::new("two").dedup_key("k")).unwrap(), first);
        assert_eq!(q.stats().unwrap().messages, 1);
        drain(&q);
    }
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                dedup_window: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        q.send(Message::new("three").dedup_key("k")).unwrap(),
        first,
        "dedup window lost on restart"
    );
    assert_eq!(q.stats().unwrap().messages, 0);
    env.clock.advance_ms(60_000);
    assert_ne!(q.send(Message::new("four").dedup_key("k")).unwrap(), first);
    assert_eq!(drain(&q), vec!["four"]);
}

#[test]
fn limits_reject_and_block() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                max_messages: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("1").unwrap();
    q.send("2").unwrap();
    assert_eq!(q.send("3").unwrap_err().kind(), ErrorKind::QueueFull);
    let b = s
        .queue_with(
            "b",
            QueueOptions {
                max_bytes: Some(300),
                overflow: Some(OverflowPolicy::Block {
                    timeout: Duration::from_secs(20),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    b.send(vec![0u8; 150]).unwrap();
    let b2 = b.clone();
    // max_bytes counts body bytes: 150 + 151 > 300.
    let t = std::thread::spawn(move || b2.send(vec![1u8; 151]));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "send did not block on a full queue");
    drain(&b);
    t.join().unwrap().unwrap();
    let short = s
        .queue_with(
            "c",
            QueueOptions {
                max_messages: Some(1),
                overflow: Some(OverflowPolicy::Block {
                    timeout: Duration::from_millis(20),
                }),
                ..Default::default()
            },
        )
        .unwrap();
    short.send("x").unwrap();
    assert_eq!(short.send("y").unwrap_err().kind(), ErrorKind::QueueFull);
}

#[test]
fn settle_paths() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    initial_redelivery_delay: Duration::ZERO,
                    redelivery_delay: Duration::ZERO,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("m").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    d.release().unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 1, "release must not count a failure");
    d.nack_with_delay("later", Duration::from_secs(30)).unwrap();
    assert!(q.receive(NOW).unwrap().is_none());
    env.clock.advance_ms(30_000);
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 2);
    drop(d); // dropped unsettled: a failed delivery
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 3);
    d.ack().unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.acked, st.in_flight), (0, 1, 0));
}

#[test]
fn competing_consumers_get_each_message_once() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch((0..2000).map(|i| format!("{i}"))).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            let seen = seen.clone();
            std::thread::spawn(move || {
                let c = q.consumer(ConsumerOptions::default());
                while let Some(d) = c.receive(Some(Duration::from_millis(200))).unwrap() {
                    seen.lock().unwrap().push(body(&d));
                    d.ack().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut v = seen.lock().unwrap().clone();
    v.sort_by_key(|x| x.parse::<u32>().unwrap());
    assert_eq!(v, (0..2000).map(|i| format!("{i}")).collect::<Vec<_>>());
}

#[test]
fn consumer_drop_returns_unsettled_as_failures() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    initial_redelivery_delay: Duration::ZERO,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    q.send_batch(["a", "b"]).unwrap();
    {
        let c = q.consumer(ConsumerOptions {
            ack_mode: AckMode::Cumulative,
            ..Default::default()
        });
        let ds = c.receive_batch(2, NOW).unwrap();
        assert_eq!(ds.len(), 2);
        drop(ds); // cumulative mode: deliveries belong to the consumer
        assert_eq!(q.stats().unwrap().in_flight, 2);
    }
    let ds = q.receive_batch(10, NOW).unwrap();
    assert_eq!(
        ds.iter().map(|d| d.delivery_count()).collect::<Vec<_>>(),
        vec![2, 2]
    );
    q.ack_batch(ds).unwrap();
}

#[test]
fn cumulative_and_auto_ack() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    let c = q.consumer(ConsumerOptions {
        ack_mode: AckMode::Cumulative,
        ..Default::default()
    });
    let mut ds = c.receive_batch(3, NOW).unwrap();
    let last = ds.pop().unwrap();
    let mid = ds.pop().unwrap();
    mid.ack().unwrap(); // acks a and b
    assert_eq!(q.stats().unwrap().in_flight, 1);
    last.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);

    q.send("auto").unwrap();
    let c = q.consumer(ConsumerOptions {
        ack_mode: AckMode::Auto,
        ..Default::default()
    });
    let d = c.receive(NOW).unwrap().unwrap();
    assert_eq!(
        q.stats().unwrap().messages,
        0,
        "auto mode acks on hand-over"
    );
    assert_eq!(d.ack().unwrap_err().kind(), ErrorKind::AlreadySettled);
    drop(c);
    drop(q);
    drop(s);
    assert_eq!(env.open().queue("q").unwrap().stats().unwrap().messages, 0);
}

#[test]
fn listener_acks_ok_and_nacks_err() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    max_redeliveries: 1,
                    initial_redelivery_delay: Duration::ZERO,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    let done = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
    let d2 = done.clone();
    let l = q
        .listen(move |d| {
            let b = body(d);
            let (m, cv) = &*d2;
            m.lock().unwrap().push((b.clone(), d.delivery_count()));
            cv.notify_all();
            if b == "bad" {
                Err("no good".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    q.send("good").unwrap();
    q.send("bad").unwrap();
    let (m, cv) = &*done;
    let g = cv
        .wait_timeout_while(m.lock().unwrap(), Duration::from_secs(10), |v| v.len() < 3)
        .unwrap()
        .0;
    assert_eq!(
        *g,
        vec![("good".into(), 1), ("bad".into(), 1), ("bad".into(), 2)]
    );
    drop(g);
    drop(l);
    let dead = s.queue("DLQ").unwrap().browse(10).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].dead_letter_info().unwrap().last_failure, "no good");
    assert_eq!(q.stats().unwrap().messages, 0);
}

#[test]
fn async_callbacks_fire_exactly_once_and_close_completes_them() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let fired = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(Vec::new()));
    for i in 0..5000 {
        let f = fired.clone();
        let ids = ids.clone();
        q.send_async(format!("{i}"), move |r| {
            ids.lock().unwrap().push(r.unwrap());
            f.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    }
    s.close().unwrap();
    assert_eq!(fired.load(Ordering::SeqCst), 5000);
    let mut v = ids.lock().unwrap().clone();
    v.sort();
    v.dedup();
    assert_eq!(v.len(), 5000);
    assert_eq!(q.send("after").unwrap_err().kind(), ErrorKind::Closed);
    drop(s);
    let s = env.open();
    assert_eq!(s.queue("q").unwrap().stats().unwrap().messages, 5000);
}

#[test]
fn callbacks_may_reenter_but_not_close() {
    let env = Env::new();
    let s = Arc::new(env.open());
    let q = s.queue("q").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let s2 = s.clone();
    q.send_async("first", move |r| {
        r.unwrap();
        let nested = q2.send("from callback");
        let close = s2.close();
        tx.send((nested.is_ok(), close.map_err(|e| e.kind())))
            .unwrap();
    })
    .unwrap();
    let (nested_ok, close) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("callback deadlocked");
    assert!(nested_ok);
    assert_eq!(close, Err(ErrorKind::WouldDeadlock));
    assert_eq!(drain(&q), vec!["first", "from callback"]);
}

#[test]
fn send_future_and_batch() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let id = rt.block_on(q.send_future("fut")).unwrap();
    let ids = q.send_batch(["a", "b"]).unwrap();
    assert!(ids[0] > id && ids[1] > ids[0]);
    assert_eq!(drain(&q), vec!["fut", "a", "b"]);
}

#[test]
fn browse_purge_stats() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    let view = |ms: Vec<Message>| -> Vec<(Vec<u8>, Option<MessageState>, u32)> {
        ms.iter()
            .map(|m| (m.body().to_vec(), m.state(), m.delivery_count()))
            .collect()
    };
    // browse lists every message with its state (the receive prefetched b and c: they show
    // as prefetched, as stats count them, and stay in the buffer); browse_ready the ready ones.
    assert_eq!(
        view(q.browse(10).unwrap()),
        vec![
            (b"b".to_vec(), Some(MessageState::Prefetched), 0),
            (b"c".to_vec(), Some(MessageState::Prefetched), 0),
            (b"a".to_vec(), Some(MessageState::InFlight), 1),
        ]
    );
    assert_eq!(view(q.browse_ready(10).unwrap()), vec![]);
    let st = q.stats().unwrap();
    assert_eq!(
        (
            st.depth,
            st.prefetched,
            st.in_flight,
            st.messages,
            st.enqueued
        ),
        (0, 2, 1, 3, 3)
    );
    assert_eq!(q.purge().unwrap(), 2);
    d.ack().unwrap();
    drop(q);
    drop(s);
    assert_eq!(
        env.open().queue("q").unwrap().stats().unwrap().messages,
        0,
        "purge not durable"
    );
}

#[test]
fn memory_and_batched_durability() {
    let env = Env::new();
    {
        let s = env.open();
        let m = s
            .queue_with(
                "mem",
                QueueOptions {
                    durability: Some(Durability::Memory),
                    ..Default::default()
                },
            )
            .unwrap();
        let b = s
            .queue_with(
                "batched",
                QueueOptions {
                    durability: Some(Durability::Batched {
                        max_delay: Duration::from_millis(5),
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        m.send("volatile").unwrap();
        b.send("batched").unwrap();
        assert_eq!(drain(&m), vec!["volatile"]);
        m.send("lost on restart").unwrap();
    }
    let s = env.open();
    assert_eq!(s.queue("mem").unwrap().stats().unwrap().messages, 0);
    assert_eq!(drain(&s.queue("batched").unwrap()), vec!["batched"]);
}

#[test]
fn names_are_validated_and_never_paths() {
    let env = Env::new();
    let store_dir = env.dir.path().join("inner").join("store");
    let s = Store::open(&store_dir, env.opts()).unwrap();
    for bad in ["", "a\0b", "tab\there", &"x".repeat(256)] {
        assert_eq!(
            s.queue(bad).unwrap_err().kind(),
            ErrorKind::InvalidName,
            "{bad:?}"
        );
    }
    for odd in ["../x", "/abs", "a/b", "ünïcödé", &"y".repeat(255)] {
        let q = s.queue(odd).unwrap();
        q.send("ok").unwrap();
    }
    drop(s);
    let names: Vec<_> = std::fs::read_dir(&store_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        // `owner.sock`: the owner's socket for other processes (removed when the owner closes;
        // in the client role the owner is still open here); `CHECKPOINT`: the index checkpoint
        // a clean close writes.
        names.iter().all(|n| n == "LOCK"
            || n == "STORE_ID"
            || n == "CHECKPOINT"
            || n.ends_with(".seg")
            || n == "owner.sock"),
        "{names:?}"
    );
    let outside: Vec<_> = std::fs::read_dir(env.dir.path().join("inner"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outside,
        vec![std::ffi::OsString::from("store")],
        "a file was created outside the store"
    );
}

#[test]
fn second_opener_gets_locked_with_pid() {
    let env = Env::new();
    let s = env.open();
    // Refusing to be a client: `Locked`, naming the owner's pid.
    let owner_only = StoreOptions {
        open_as: OpenAs::Owner,
        ..env.opts()
    };
    let e = Store::open(env.dir.path(), owner_only.clone()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.message().contains(&std::process::id().to_string()), "{e}");
    // By default the second opener becomes a client of the owner (on the system clock: a
    // client refuses another, as it runs on its owner's: review r5 #16).
    let c = Store::open(
        env.dir.path(),
        StoreOptions {
            clock: Arc::new(SystemClock),
            ..env.opts()
        },
    )
    .unwrap();
    assert_eq!(c.role(), Role::Client);
    assert_eq!(c.owner_pid(), std::process::id());
    c.queue("q").unwrap().send("via the owner").unwrap();
    drop(c);
    s.close().unwrap();
    drop(s);
    let s = env.open();
    assert_eq!(drain(&s.queue("q").unwrap()), vec!["via the owner"]);
}

#[test]
fn disk_use_stays_bounded_and_old_live_messages_move_forward() {
    let env = Env::new();
    let s = env.open_with(|o| o.segment_bytes = 64 << 10);
    // A consumer that keeps up exactly: one batch of 50 per 50 sent. With prefetch, a receive
    // hands out what the buffer holds first and may return fewer than 50 (the rest stays
    // ready), so a backlog — live data compaction must carry — would build up.
    let one = QueueOptions {
        prefetch: Some(1),
        ..Default::default()
    };
    let q = s.queue_with("q", one).unwrap();
    let old = q.send("old but live").unwrap();
    let mut peak = 0;
    for round in 0..200 {
        q.send_batch((0..50).map(|i| vec![round as u8; 100 + i]))
            .unwrap();
        let ds = q.receive_batch(50, NOW).unwrap();
        if round == 0 {
            // keep `old` unacked (it was first): release it, settle the rest
            let (keep, rest): (Vec<_>, Vec<_>) = ds.into_iter().partition(|d| d.id() == old);
            for k in keep {
                k.release().unwrap();
            }
            q.ack_batch(rest).unwrap();
            continue;
        }
        let (keep, rest): (Vec<_>, Vec<_>) = ds.into_iter().partition(|d| d.id() == old);
        for k in keep {
            k.release().unwrap();
        }
        q.ack_batch(rest).unwrap();
        peak = peak.max(s.disk_bytes());
    }
    s.flush().unwrap();
    let total_written = 200 * 50 * 200;
    assert!(
        peak < (total_written as u64) / 2,
        "journal grew to {peak} bytes"
    );
    // A client's sends carry automatic dedup keys (so that a resend after an owner's death is
    // stored once): the window's keys (here all 10,000) are live data that compaction carries
    // forward, about 40 bytes each. (15, not 14, since compaction's copies go after the
    // batch's own records, so that a full disk can refuse them alone (review r12 #6): with the
    // keys' 400 KB moving forward, the peak holds one segment more.)
    let segments = if client_role() { 15 } else { 8 };
    assert!(
        peak <= segments * (64 << 10),
        "journal grew to {peak} bytes"
    );
    drop(q);
    drop(s);
    let s = env.open_with(|o| o.segment_bytes = 64 << 10);
    let q = s.queue("q").unwrap();
    let left = q.receive_batch(10_000, NOW).unwrap();
    assert!(
        left.iter().any(|d| d.id() == old),
        "the old live message was lost by compaction"
    );
}

#[test]
fn store_dropped_in_its_own_callback_can_be_reopened() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let holder = Arc::new(Mutex::new(Some(s)));
    let h2 = holder.clone();
    q.send_async("last", move |r| {
        r.unwrap();
        drop(h2.lock().unwrap().take()); // closes from the callback thread: no self-join
        tx.send(()).unwrap();
    })
    .unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(q.send("x").unwrap_err().kind(), ErrorKind::Closed);
    // The background close finishes, then the lock is free: no `Locked`.
    let s = env.open();
    assert_eq!(drain(&s.queue("q").unwrap()), vec!["last"]);
}
