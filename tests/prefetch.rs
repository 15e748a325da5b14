//! Prefetch and lazy acks: one durable delivery-count record per prefetch, fairness between
//! competing consumers, prefetched messages given back uncounted on close and counted after a
//! crash; lazy acks redelivered (never lost) after a crash, `ack_sync` and the sync queue option
//! durable on return (power-loss cases through the fault layer, and SIGKILL).
mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::durable::no_delay_policy;
use common::fault::{CrashMode, FaultFs, Rng};
use common::*;
use mqlite::*;

/// A store over `fs` whose failed deliveries (a crash's included) come back at once.
fn on(env: &Env, fs: &FaultFs) -> Store {
    env.open_with(|o| {
        o.vfs = fs.vfs();
        o.redelivery = no_delay_policy();
    })
}

fn real_opts() -> StoreOptions {
    StoreOptions {
        redelivery: no_delay_policy(),
        ..Default::default()
    }
}

/// The store as a power loss now would leave it (only synced data), reopened. (`s` is closed
/// after the image is taken: what its close writes is not in the image.)
fn after_power_loss(env: &Env, fs: &FaultFs, s: Store) -> Store {
    let image = fs.crash_image(CrashMode::SyncedOnly, &mut Rng::new(1));
    let _ = s.close();
    drop(s);
    on(env, &image)
}

#[test]
fn one_delivery_record_per_prefetch_and_stats_count_the_buffer() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    fs.reset_counts();
    let first = q.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&first), "m0");
    assert_eq!(
        fs.fsync_calls(),
        1,
        "the prefetch of 10 is one durable record"
    );
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.prefetched, st.messages),
        (0, 1, 9, 10)
    );
    let mut rest = Vec::new();
    for i in 1..10 {
        let d = q.receive(NOW).unwrap().unwrap();
        assert_eq!(body(&d), format!("m{i}"), "handed out in order");
        assert_eq!(d.delivery_count(), 1);
        rest.push(d);
    }
    assert_eq!(
        fs.fsync_calls(),
        1,
        "handing out prefetched messages writes nothing"
    );
    let st = q.stats().unwrap();
    assert_eq!((st.in_flight, st.prefetched), (10, 0));
    first.ack_sync().unwrap();
    q.ack_batch_sync(rest).unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

#[test]
fn a_consumer_with_prefetch_one_takes_one_at_a_time() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    let c = q.consumer(ConsumerOptions {
        prefetch: Some(1),
        ..Default::default()
    });
    let d = c.receive(NOW).unwrap().unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.in_flight, st.prefetched), (2, 1, 0));
    d.ack().unwrap();
    let bad = q.consumer(ConsumerOptions {
        prefetch: Some(u32::MAX),
        ..Default::default()
    });
    let e = bad.receive(NOW).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("prefetch"), "{e}");
}

/// Four competing consumers: whenever one finds the queue empty while another's buffer holds
/// messages, it takes from that buffer; no consumer goes without while messages wait.
#[test]
fn competing_consumers_are_not_starved_by_a_buffer() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch((0..100).map(|i| format!("m{i}"))).unwrap();
    let cs: Vec<Consumer> = (0..4)
        .map(|_| q.consumer(ConsumerOptions::default()))
        .collect();
    let mut seen = HashSet::new();
    let mut per = [0u32; 4];
    // The first receive prefetches all 100 into consumer 0's buffer.
    loop {
        let mut got_any = false;
        for (i, c) in cs.iter().enumerate() {
            let waiting = {
                let st = q.stats().unwrap();
                st.depth + st.prefetched
            };
            match c.receive(NOW).unwrap() {
                Some(d) => {
                    assert!(seen.insert(body(&d)), "{} handed out twice", body(&d));
                    per[i] += 1;
                    got_any = true;
                    d.ack().unwrap();
                }
                None => assert_eq!(waiting, 0, "consumer {i} starved while {waiting} wait"),
            }
        }
        if !got_any {
            break;
        }
    }
    assert_eq!(seen.len(), 100);
    assert!(per.iter().all(|&n| n >= 20), "shares {per:?}");
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.redelivered), (0, 0));
}

/// The same with four threads receiving with a timeout: every message exactly once, and every
/// consumer gets a share — a consumer's prefetch does not keep the others from theirs. Each
/// thread holds its first delivery until all four hold one (a barrier, not the scheduler's luck:
/// on a loaded machine one thread could otherwise drain the queue before another starts).
#[test]
fn competing_consumer_threads_each_get_a_share() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch((0..2000).map(|i| format!("m{i}"))).unwrap();
    let all_hold_one = std::sync::Arc::new(std::sync::Barrier::new(4));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let c = q.consumer(ConsumerOptions {
                prefetch: Some(1),
                ..Default::default()
            });
            let all_hold_one = all_hold_one.clone();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                while let Some(d) = c.receive(Some(Duration::from_millis(200))).unwrap() {
                    got.push(body(&d));
                    if got.len() == 1 {
                        all_hold_one.wait();
                    }
                    d.ack().unwrap();
                    if got.len() % 50 == 0 {
                        std::thread::yield_now();
                    }
                }
                got
            })
        })
        .collect();
    let shares: Vec<Vec<String>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let all: HashSet<&String> = shares.iter().flatten().collect();
    assert_eq!(all.len(), 2000);
    assert_eq!(
        shares.iter().map(Vec::len).sum::<usize>(),
        2000,
        "no duplicates"
    );
    assert!(
        shares.iter().all(|s| !s.is_empty()),
        "shares {:?}",
        shares.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[test]
fn prefetched_messages_go_back_uncounted_when_the_consumer_closes() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    let c = q.consumer(ConsumerOptions::default());
    c.receive(NOW).unwrap().unwrap().ack().unwrap();
    assert_eq!(q.stats().unwrap().prefetched, 9);
    drop(c);
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.prefetched, st.in_flight, st.redelivered),
        (9, 0, 0, 0)
    );
    let ds = q.receive_batch(9, NOW).unwrap();
    assert_eq!(ds.len(), 9);
    assert!(ds
        .iter()
        .all(|d| d.delivery_count() == 1 && !d.redelivered()));
    assert_eq!(body(&ds[0]), "m1", "back in their places");
    drop(ds); // dropped unsettled: failed deliveries, redelivered after the policy's 1 s
    env.clock.advance_ms(1000);
    // The plain receive's buffer goes back when the store closes, also uncounted on disk.
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.delivery_count(), 2);
    d.ack().unwrap();
    drop(q);
    s.close().unwrap();
    let s = env.open();
    let q = s.queue("q").unwrap();
    let ds = q.receive_batch(100, NOW).unwrap();
    assert_eq!(ds.len(), 8);
    assert!(
        ds.iter().all(|d| d.delivery_count() == 2),
        "counts {:?}",
        ds.iter().map(|d| d.delivery_count()).collect::<Vec<_>>()
    );
}

#[test]
fn browse_and_purge_see_prefetched_messages() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    let bodies =
        |ms: Vec<Message>| -> Vec<Vec<u8>> { ms.iter().map(|m| m.body().to_vec()).collect() };
    // The prefetched ones show as prefetched (not ready: stats' depth is 0), the one handed
    // out as in flight, after them; the browse leaves the buffer as it is.
    assert!(q.browse_ready(10).unwrap().is_empty());
    let all = q.browse(10).unwrap();
    assert_eq!(
        bodies(all.clone()),
        vec![b"b".to_vec(), b"c".to_vec(), b"a".to_vec()]
    );
    let states: Vec<_> = all
        .iter()
        .map(|m| (m.state(), m.delivery_count()))
        .collect();
    assert_eq!(
        states,
        [
            (Some(MessageState::Prefetched), 0),
            (Some(MessageState::Prefetched), 0),
            (Some(MessageState::InFlight), 1)
        ]
    );
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.prefetched, st.in_flight), (0, 2, 1));
    q.receive(NOW).unwrap().unwrap().ack().unwrap(); // prefetches again
    assert_eq!(
        q.purge().unwrap(),
        1,
        "the prefetched message is purged too"
    );
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// After a crash every prefetched message counts one failed delivery.
#[test]
fn prefetched_messages_count_one_failed_delivery_after_a_crash() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send_batch((0..5).map(|i| format!("m{i}"))).unwrap();
    q.receive(NOW).unwrap().unwrap().ack_sync().unwrap();
    let s2 = after_power_loss(&env, &fs, s);
    let q2 = s2.queue("q").unwrap();
    let ds = q2.receive_batch(10, NOW).unwrap();
    assert_eq!(
        ds.len(),
        4,
        "the acked one is gone, the prefetched ones are back"
    );
    assert!(ds
        .iter()
        .all(|d| d.delivery_count() == 2 && d.redelivered()));
}

/// `ack_sync` is durable when it returns: a power loss right after keeps the ack. (Without its
/// fdatasync the ack record would not be in the synced image and the message would come back.)
#[test]
fn ack_sync_survives_a_power_loss_right_after_it() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b"]).unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&d), "a");
    d.ack_sync().unwrap();
    let s2 = after_power_loss(&env, &fs, s);
    let left: Vec<String> = s2
        .queue("q")
        .unwrap()
        .receive_batch(10, NOW)
        .unwrap()
        .iter()
        .map(body)
        .collect();
    assert_eq!(left, vec!["b"]);
}

/// With `ack_durability: Sync` a plain `ack()` is durable when it returns.
#[test]
fn the_sync_ack_option_makes_ack_durable() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let o = QueueOptions {
        ack_durability: Some(AckDurability::Sync),
        ..Default::default()
    };
    let q = s.queue_with("q", o).unwrap();
    q.send_batch(["a", "b"]).unwrap();
    q.receive(NOW).unwrap().unwrap().ack().unwrap();
    let ds = q.receive_batch(1, NOW).unwrap();
    q.ack_batch(ds).unwrap();
    let s2 = after_power_loss(&env, &fs, s);
    assert_eq!(s2.queue("q").unwrap().stats().unwrap().messages, 0);
}

/// A lazy ack whose commit never happened (the disk stops taking writes right after it) is not
/// lost: the message comes back with `redelivered`. A later durable call makes it durable.
#[test]
fn a_lazy_ack_before_its_commit_is_redelivered_and_a_later_sync_call_makes_it_durable() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    let a = q.receive(NOW).unwrap().unwrap();
    let b = q.receive(NOW).unwrap().unwrap();
    a.ack().unwrap();
    q.send("d").unwrap(); // a durable call: the ack of "a" shares its commit
                          // Cut the disk: every write from now on fails, so the lazy ack of "b" is never committed.
    fs.crash_at(fs.mutations() + 1);
    b.ack().unwrap();
    let s2 = after_power_loss(&env, &fs, s);
    let q2 = s2.queue("q").unwrap();
    let ds = q2.receive_batch(10, NOW).unwrap();
    let got: Vec<(String, bool)> = ds.iter().map(|d| (body(d), d.redelivered())).collect();
    assert_eq!(
        got,
        vec![
            ("b".to_string(), true),
            ("c".to_string(), true),
            ("d".to_string(), false)
        ]
    );
}

/// A lazy ack is committed within the commit interval with no further traffic.
#[test]
fn a_lazy_ack_is_committed_without_more_traffic() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send("a").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    let before = fs.fsync_calls();
    d.ack().unwrap();
    env.clock.advance_ms(1); // the commit interval passes (the clock's jump wakes the store)
                             // Wait for the commit thread's fsync (an event, not a timer of the test: it returns as soon
                             // as the fsync happened; the bound only keeps a broken build from hanging).
    let t0 = Instant::now();
    while fs.fsync_calls() == before {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the lazy ack was never committed"
        );
        std::thread::yield_now();
    }
    let s2 = after_power_loss(&env, &fs, s);
    assert_eq!(s2.queue("q").unwrap().stats().unwrap().messages, 0);
}

/// Closing the store flushes lazy acks.
#[test]
fn close_flushes_lazy_acks() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let q = s.queue("q").unwrap();
    q.send_batch(["a", "b"]).unwrap();
    let ds = q.receive_batch(2, NOW).unwrap();
    q.ack_batch(ds).unwrap();
    drop(q);
    s.close().unwrap();
    let s2 = after_power_loss(&env, &fs, s);
    assert_eq!(s2.queue("q").unwrap().stats().unwrap().messages, 0);
}

/// One fsync per receive_batch/ack_batch cycle: the acks of a batch ride on the next batch's
/// delivery record. (The manual clock does not move, so the commit thread never finds lazy acks
/// due on its own: every fsync here is one a caller waited for.)
#[test]
fn a_batch_cycle_costs_one_fsync() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let o = QueueOptions {
        prefetch: Some(1),
        ..Default::default()
    };
    let q = s.queue_with("q", o).unwrap();
    q.send_batch((0..100).map(|i| format!("m{i}"))).unwrap();
    fs.reset_counts();
    let mut cycles = 0;
    loop {
        let ds = q.receive_batch(10, NOW).unwrap();
        if ds.is_empty() {
            break;
        }
        q.ack_batch(ds).unwrap();
        cycles += 1;
    }
    assert_eq!(cycles, 10);
    assert_eq!(fs.fsync_calls(), 10, "one fsync per cycle");
    s.flush().unwrap();
    assert_eq!(fs.fsync_calls(), 11, "the last acks");
    let s2 = after_power_loss(&env, &fs, s);
    assert_eq!(s2.queue("q").unwrap().stats().unwrap().messages, 0);
}

/// SIGKILL right after a lazy ack returned: the message comes back, marked redelivered (never
/// lost); after `ack_sync` it never comes back.
#[test]
fn sigkill_after_a_lazy_ack_redelivers_and_after_ack_sync_does_not() {
    let exe = std::env::current_exe().unwrap();
    let mut redelivered = 0;
    for cycle in 0..20 {
        let sync = cycle % 4 == 3;
        let env = Env::new();
        let s = Store::open(env.dir.path(), real_opts()).unwrap();
        s.queue("q").unwrap().send("m").unwrap();
        s.close().unwrap();
        let status = Command::new(&exe)
            .args([
                "--exact",
                "sigkill_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "MQLITE_PREFETCH_CHILD",
                format!("{},{}", env.dir.path().display(), sync),
            )
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(
            status.code().is_none(),
            "the child was not killed: {status:?}"
        );
        let s = Store::open(env.dir.path(), real_opts()).unwrap();
        let q = s.queue("q").unwrap();
        match q.receive(NOW).unwrap() {
            Some(d) => {
                assert!(!sync, "cycle {cycle}: acked with ack_sync, delivered again");
                assert!(
                    d.redelivered(),
                    "a lazy ack lost: the message must say redelivered"
                );
                assert_eq!(d.delivery_count(), 2);
                redelivered += 1;
                d.ack_sync().unwrap();
            }
            None => assert_eq!(q.stats().unwrap().messages, 0),
        }
    }
    // The kill follows the ack by microseconds, the commit by up to a millisecond: most lazy
    // acks are lost, and the test must see it happen.
    assert!(redelivered > 0, "no lazy ack was ever lost to SIGKILL");
}

/// The child of the test above: receive, ack (lazily or with ack_sync), SIGKILL itself.
#[test]
fn sigkill_child() {
    let Ok(arg) = std::env::var("MQLITE_PREFETCH_CHILD") else {
        return;
    };
    let (dir, sync) = arg.rsplit_once(',').unwrap();
    let s = Store::open(dir, real_opts()).unwrap();
    let d = s.queue("q").unwrap().receive(NOW).unwrap().unwrap();
    if sync == "true" {
        d.ack_sync().unwrap();
    } else {
        d.ack().unwrap();
    }
    // SAFETY: plain syscalls; the process ends here without running any destructor.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    unreachable!("SIGKILL did not end the process");
}

/// A selective consumer takes its matches out of a plain consumer's prefetch buffer (it is not
/// starved by it), never prefetches what its selector refuses, and holds nothing others could
/// take.
#[test]
fn a_selective_consumer_takes_its_matches_from_a_buffer_and_prefetches_nothing() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    for i in 0..20i64 {
        q.send(Message::new(format!("m{i}")).property("n", i))
            .unwrap();
    }
    let plain = q.consumer(ConsumerOptions::default());
    let first = plain.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&first), "m0");
    assert_eq!(
        q.stats().unwrap().prefetched,
        19,
        "the plain consumer holds the rest"
    );
    let sel = q
        .consumer_with_selector(ConsumerOptions::default(), "n = 7 OR n = 15")
        .unwrap();
    let a = sel.receive(NOW).unwrap().expect("a match from the buffer");
    assert_eq!((body(&a), a.delivery_count()), ("m7".to_string(), 1));
    let b = sel.receive(NOW).unwrap().expect("the second match");
    assert_eq!(body(&b), "m15");
    assert!(sel.receive(NOW).unwrap().is_none(), "nothing else matches");
    let st = q.stats().unwrap();
    assert_eq!((st.in_flight, st.prefetched), (3, 17));
    a.ack().unwrap();
    b.ack().unwrap();
    drop(plain);
    // Back uncounted: a selective consumer on a plain queue takes exactly what it asks for.
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.prefetched, st.redelivered), (17, 0, 0));
    let sel2 = q
        .consumer_with_selector(ConsumerOptions::default(), "n > 10")
        .unwrap();
    let c = sel2.receive(NOW).unwrap().unwrap();
    assert_eq!(body(&c), "m11");
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.prefetched),
        (16, 1, 0),
        "the selective consumer prefetched nothing (m0 waits for its redelivery delay)"
    );
}

/// A topic subscription is a queue: its consumers prefetch with one record, and its acks are
/// lazy until a later sync call.
#[test]
fn subscriptions_prefetch_and_ack_lazily() {
    let env = Env::new();
    let fs = FaultFs::new();
    let s = on(&env, &fs);
    let sub = s
        .subscribe(
            "ev.>",
            SubscriptionOptions {
                name: Some("billing".into()),
                durable: true,
                ..Default::default()
            },
        )
        .unwrap();
    let t = s.topic("ev.x").unwrap();
    t.publish_batch((0..10).map(|i| format!("e{i}"))).unwrap();
    fs.reset_counts();
    let d = sub.receive(NOW).unwrap().unwrap();
    assert_eq!(fs.fsync_calls(), 1, "one record for the prefetch");
    assert_eq!(sub.stats().unwrap().prefetched, 9);
    for _ in 0..9 {
        sub.receive(NOW).unwrap().unwrap().ack().unwrap();
    }
    d.ack().unwrap();
    assert_eq!(
        fs.fsync_calls(),
        1,
        "the buffer and lazy acks cost no fsync"
    );
}

/// A batch receive that empties the consumer's buffer fills the rest of the batch from the
/// queue: `receive_batch(30)` with 7 prefetched and 90 waiting returns 30, not 7.
#[test]
fn a_batch_receive_is_not_cut_short_by_the_buffer() {
    let env = Env::new();
    let s = env.open();
    let q = s
        .queue_with(
            "q",
            QueueOptions {
                prefetch: Some(10),
                ..Default::default()
            },
        )
        .unwrap();
    let bodies: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    q.send_batch(bodies.iter().map(|b| b.as_str())).unwrap();
    let first = q.receive_batch(3, NOW).unwrap();
    assert_eq!(first.len(), 3);
    assert_eq!(q.stats().unwrap().prefetched, 7);
    let second = q.receive_batch(30, NOW).unwrap();
    assert_eq!(second.len(), 30, "the batch was cut at the buffer's end");
    // In order, nothing skipped or doubled.
    let got: Vec<String> = first
        .iter()
        .chain(second.iter())
        .map(|d| String::from_utf8(d.body().to_vec()).unwrap())
        .collect();
    assert_eq!(got, bodies[..33].to_vec());
    q.ack_batch(first).unwrap();
    q.ack_batch(second).unwrap();
    assert_eq!(q.stats().unwrap().messages, 67);
}

/// r5 #2: a message that expires while only prefetched by an idle consumer leaves on time
/// (the timer, not that consumer's next receive): to the dead-letter queue as `expired`,
/// counted once, out of the buffer.
#[test]
fn a_prefetched_message_expires_on_time_without_its_consumer() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send("first").unwrap();
    q.send(Message::new("second").ttl(Duration::from_secs(1)))
        .unwrap();
    q.send("third").unwrap();
    let c = q.consumer(ConsumerOptions {
        prefetch: Some(10),
        ..Default::default()
    });
    let d = c.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"first");
    assert_eq!(q.stats().unwrap().prefetched, 2);
    env.clock.advance(Duration::from_secs(2));
    s.flush().unwrap();
    // The dead-letter queue's own view (its stats tick only it): moved on time.
    let dlq = s.queue("DLQ").unwrap();
    let dead = dlq.browse(10).unwrap();
    assert_eq!(
        dead.len(),
        1,
        "the expired prefetched message was not moved"
    );
    assert_eq!(dead[0].body(), b"second");
    assert_eq!(
        dead[0].dead_letter_info().unwrap().reason,
        DeadLetterReason::Expired
    );
    let st = q.stats().unwrap();
    assert_eq!(
        (st.expired, st.prefetched, st.in_flight, st.messages),
        (1, 1, 1, 2),
        "{st:?}"
    );
    let next = c.receive(NOW).unwrap().unwrap();
    assert_eq!(next.body(), b"third");
    next.ack().unwrap();
    d.ack().unwrap();
}

/// A consumer holds messages in its prefetch buffer (not handed out): a purge's dry run left
/// them out of its count while the purge removed them, so an operator confirming "purge 3"
/// removed 10. One selection serves both: the dry run counts what the purge removes, through
/// the dry run's `last` too; the one handed out stays.
#[test]
fn a_purge_dry_run_counts_the_prefetched_messages_the_purge_removes() {
    let env = Env::new();
    let s = env.open();
    let q = s.queue("q").unwrap();
    q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    let c = q.consumer(ConsumerOptions {
        prefetch: Some(6),
        ..Default::default()
    });
    let held = c.receive(NOW).unwrap().unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.prefetched, st.in_flight), (4, 5, 1), "{st:?}");
    let dry = q
        .purge_filtered(&PurgeFilter {
            through: None,
            dry_run: true,
        })
        .unwrap();
    assert_eq!((dry.matched, dry.purged), (9, 0), "{dry:?}");
    assert_eq!(dry.last, Some(MessageId(10)), "{dry:?}");
    assert_eq!(q.stats().unwrap(), st, "a dry run changes nothing");
    let real = q
        .purge_filtered(&PurgeFilter {
            through: dry.last,
            dry_run: false,
        })
        .unwrap();
    assert_eq!((real.matched, real.purged, real.last), (9, 9, dry.last));
    let st = q.stats().unwrap();
    assert_eq!(
        (st.messages, st.in_flight, st.prefetched),
        (1, 1, 0),
        "{st:?}"
    );
    held.ack().unwrap();
    assert_eq!(c.receive(NOW).unwrap().map(|d| body(&d)), None);
}

/// Issue 15 #6: `move`/`copy` (`Queue::transfer`) left messages a consumer had prefetched (not
/// handed out) behind, where a purge takes them back from the buffer first. They take what a
/// purge takes: waiting and prefetched messages, never those in flight.
#[test]
fn move_and_copy_take_prefetched_messages_as_purge_does() {
    for copy in [false, true] {
        let env = Env::new();
        let s = env.open();
        let q = s.queue("q").unwrap();
        q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
        let c = q.consumer(ConsumerOptions {
            prefetch: Some(6),
            ..Default::default()
        });
        let held = c.receive(NOW).unwrap().unwrap();
        let st = q.stats().unwrap();
        assert_eq!((st.depth, st.prefetched, st.in_flight), (4, 5, 1), "{st:?}");
        let mut f = TransferFilter {
            to: "other".into(),
            copy,
            dry_run: true,
            ..Default::default()
        };
        let dry = q.transfer(&f).unwrap();
        assert_eq!(dry.matched, 9, "copy {copy}: {dry:?}");
        assert_eq!(q.stats().unwrap(), st, "a dry run changes nothing");
        // The prefetched ones are listed as such (not in flight) by browse_stored.
        let states: Vec<_> = q
            .browse_stored(MessageId(1), 100)
            .unwrap()
            .iter()
            .map(|m| m.state)
            .collect();
        assert_eq!(
            states
                .iter()
                .filter(|s| **s == MessageState::Prefetched)
                .count(),
            5,
            "{states:?}"
        );
        f.dry_run = false;
        f.through = dry.last;
        let r = q.transfer(&f).unwrap();
        assert_eq!((r.matched, r.transferred), (9, 9), "copy {copy}: {r:?}");
        let other = s.queue("other").unwrap();
        assert_eq!(other.stats().unwrap().messages, 9);
        let st = q.stats().unwrap();
        let left = if copy { 10 } else { 1 };
        assert_eq!(
            (st.messages, st.in_flight, st.prefetched),
            (left, 1, 0),
            "copy {copy}: {st:?}"
        );
        held.ack().unwrap();
    }
}
