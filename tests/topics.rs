//! Topics: publish/subscribe with durable, non-durable and shared subscriptions, wildcards and
//! selectors evaluated at publish time; one stored body per publish; recovery; dead letters of
//! subscriptions; T19 (topics under simulated power loss) at CI size (`MQLITE_SOAK=1`: soak).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::durable::*;
use mqlite::*;

const NOW: Option<Duration> = Some(Duration::ZERO);

fn open_tmp(dir: &std::path::Path) -> Store {
    common::open_store(dir, StoreOptions::default()).unwrap()
}

fn durable(name: &str) -> SubscriptionOptions {
    SubscriptionOptions {
        name: Some(name.into()),
        durable: true,
        ..Default::default()
    }
}

fn bodies(q: &Queue) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(d) = q.receive(NOW).unwrap() {
        out.push(String::from_utf8(d.message().body().to_vec()).unwrap());
        d.ack().unwrap();
    }
    out
}

#[test]
fn fan_out_reaches_every_subscription_with_one_id_and_the_topic() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let a = store.subscribe("orders.>", durable("a")).unwrap();
    let b = store.subscribe("orders.*.created", durable("b")).unwrap();
    let c = store
        .subscribe("orders.eu.created", SubscriptionOptions::default())
        .unwrap();
    let other = store.subscribe("invoices.>", durable("other")).unwrap();
    let t = store.topic("orders.eu.created").unwrap();
    let id = t.publish(Message::new("m1").property("k", 1i64)).unwrap();
    for s in [&a, &b, &c] {
        let d = s
            .receive(NOW)
            .unwrap()
            .expect("every matching subscription");
        assert_eq!(d.id(), id, "one id in every subscription");
        assert_eq!(d.message().topic(), Some("orders.eu.created"));
        assert_eq!(d.message().get_property("k"), Some(&Value::Int(1)));
        d.ack().unwrap();
    }
    assert!(other.receive(NOW).unwrap().is_none());
    assert_eq!(t.stats().unwrap().published, 1);
    assert_eq!(t.stats().unwrap().subscriptions, 3);
    // Async and batch publishes reach them too.
    let (tx, rx) = std::sync::mpsc::channel();
    t.publish_async("m2", move |r| tx.send(r).unwrap()).unwrap();
    rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    t.publish_batch(["m3", "m4"]).unwrap();
    for s in [&a, &b, &c] {
        assert_eq!(bodies(s), ["m2", "m3", "m4"]);
    }
}

#[test]
fn publishing_to_no_subscriber_stores_nothing_and_is_counted() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let t = store.topic("nobody.listens").unwrap();
    let before = store.disk_bytes();
    store.flush().unwrap();
    for _ in 0..10 {
        t.publish(vec![0u8; 10_000]).unwrap();
    }
    assert_eq!(store.disk_bytes(), before, "no record written");
    let st = t.stats().unwrap();
    assert_eq!((st.published, st.unrouted, st.subscriptions), (0, 10, 0));
}

#[test]
fn a_late_non_durable_subscriber_sees_nothing_earlier_and_ends_with_its_handle() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let t = store.topic("news").unwrap();
    t.publish("before").unwrap();
    let opts = || SubscriptionOptions {
        name: Some("reader".into()),
        ..Default::default()
    };
    let s = store.subscribe("news", opts()).unwrap();
    t.publish("after").unwrap();
    assert_eq!(bodies(&s), ["after"]);
    t.publish("unread").unwrap();
    drop(s);
    assert!(
        store.subscriptions().is_empty(),
        "gone with its last handle"
    );
    let s = store.subscribe("news", opts()).unwrap();
    assert!(
        s.receive(NOW).unwrap().is_none(),
        "a new subscription, empty"
    );
    t.publish("kept in memory").unwrap();
    let name = s.subscription_name().to_string();
    std::mem::forget(s); // still attached when the store closes
    store.close().unwrap();
    drop(store);
    let store = open_tmp(dir.path());
    assert!(
        store.subscriptions().iter().all(|i| i.name != name),
        "a non-durable subscription is gone at restart"
    );
    assert!(store.queue_names().iter().all(|n| !n.starts_with("$sub.")));
    // Its queue slot is reused by the next subscription.
    let again = store.subscribe("news", durable("d")).unwrap();
    assert_eq!(again.name(), "$sub.d");
}

#[test]
fn a_durable_subscription_collects_while_closed_and_across_reopen() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_tmp(dir.path());
        let s = store.subscribe("audit.>", durable("auditor")).unwrap();
        drop(s);
        let t = store.topic("audit.login").unwrap();
        t.publish("while away 1").unwrap();
        t.publish("while away 2").unwrap();
    }
    let store = open_tmp(dir.path());
    let info = store.subscriptions();
    assert_eq!(info.len(), 1);
    assert_eq!(
        (
            info[0].name.as_str(),
            info[0].pattern.as_str(),
            info[0].durable
        ),
        ("auditor", "audit.>", true)
    );
    store
        .topic("audit.logout")
        .unwrap()
        .publish("after reopen")
        .unwrap();
    let s = store.subscribe("audit.>", durable("auditor")).unwrap();
    assert_eq!(bodies(&s), ["while away 1", "while away 2", "after reopen"]);
    drop(s);
    store.unsubscribe("auditor").unwrap();
    assert_eq!(
        store.unsubscribe("auditor").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store
        .topic("audit.x")
        .unwrap()
        .publish("to nobody")
        .unwrap();
    drop(store);
    let store = open_tmp(dir.path());
    assert!(store.subscriptions().is_empty(), "unsubscribed for good");
}

#[test]
fn a_shared_subscription_has_competing_consumers_and_an_unshared_one_admits_one() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let shared = || SubscriptionOptions {
        name: Some("workers".into()),
        durable: true,
        shared: true,
        ..Default::default()
    };
    let w1 = store.subscribe("jobs", shared()).unwrap();
    let w2 = store.subscribe("jobs", shared()).unwrap();
    let t = store.topic("jobs").unwrap();
    t.publish_batch((0..10).map(|i| format!("job{i}"))).unwrap();
    let mut seen = BTreeSet::new();
    for round in 0..5 {
        for w in [&w1, &w2] {
            let d = w.receive(NOW).unwrap().expect("work for each");
            assert!(seen.insert(d.id()), "round {round}: delivered twice");
            d.ack().unwrap();
        }
    }
    assert_eq!(seen.len(), 10);
    assert!(w1.receive(NOW).unwrap().is_none() && w2.receive(NOW).unwrap().is_none());
    assert_eq!(store.subscriptions()[0].subscribers, 2);

    let _one = store.subscribe("jobs", durable("solo")).unwrap();
    let e = store.subscribe("jobs", durable("solo")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let e = store.unsubscribe("solo").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "attached: {e}");
}

#[test]
fn resubscribing_with_another_selector_replaces_the_subscription() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let with = |sel: &str| SubscriptionOptions {
        selector: Some(sel.into()),
        ..durable("s")
    };
    let s = store.subscribe("t", with("n > 1")).unwrap();
    let t = store.topic("t").unwrap();
    t.publish(Message::new("a").property("n", 5i64)).unwrap();
    drop(s);
    // Same pattern and selector: resumes with what it holds.
    let s = store.subscribe("t", with("n > 1")).unwrap();
    assert_eq!(s.stats().unwrap().depth, 1);
    drop(s);
    // Another selector: JMS deletes the old subscription (and its messages) and makes a new one.
    let s = store.subscribe("t", with("n < 1")).unwrap();
    assert_eq!(s.stats().unwrap().depth, 0);
    t.publish(Message::new("b").property("n", 5i64)).unwrap();
    t.publish(Message::new("c").property("n", 0i64)).unwrap();
    assert_eq!(bodies(&s), ["c"]);
    drop(s);
    drop(store);
    let store = open_tmp(dir.path());
    assert_eq!(store.subscriptions()[0].selector, "n < 1");
    let s = store.subscribe("t", with("n < 1")).unwrap();
    assert!(
        s.receive(NOW).unwrap().is_none(),
        "the replaced messages stay gone"
    );
}

#[test]
fn wildcard_table_patterns_by_names() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let patterns = [
        "orders.eu.created",
        "orders.*.created",
        "orders.>",
        "*.eu.*",
        ">",
        "orders.*",
        "*.*.*.*",
    ];
    let subs: Vec<Subscription> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| store.subscribe(p, durable(&format!("p{i}"))).unwrap())
        .collect();
    // name → which patterns match (by index).
    let table: &[(&str, &[usize])] = &[
        ("orders.eu.created", &[0, 1, 2, 3, 4]),
        ("orders.us.created", &[1, 2, 4]),
        ("orders.eu", &[2, 4, 5]),
        ("orders", &[4]),
        ("orders.eu.created.late", &[2, 4, 6]),
        ("x.eu.y", &[3, 4]),
        ("ordersx.eu.created", &[3, 4]),
    ];
    for (name, want) in table {
        store.topic(name).unwrap().publish(*name).unwrap();
        for (i, s) in subs.iter().enumerate() {
            let got = s.receive(NOW).unwrap();
            assert_eq!(
                got.is_some(),
                want.contains(&i),
                "{name} vs {}",
                patterns[i]
            );
            if let Some(d) = got {
                assert_eq!(d.message().body(), name.as_bytes());
                d.ack().unwrap();
            }
        }
    }
    for bad in ["orders..x", "orders.>.x", "orders.eu*", ""] {
        let e = store.subscribe(bad, durable("bad")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidName, "{bad:?}: {e}");
    }
    for bad in ["orders.*", "a..b", ""] {
        assert_eq!(store.topic(bad).unwrap_err().kind(), ErrorKind::InvalidName);
    }
}

#[test]
fn selectors_are_evaluated_at_publish_with_the_stored_id_and_time() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let store = common::open_store(
        dir.path(),
        StoreOptions {
            clock: clock.clone(),
            ..Default::default()
        },
    )
    .unwrap();
    let sel = |name: &str, s: &str| SubscriptionOptions {
        selector: Some(s.into()),
        ..durable(name)
    };
    let rich = store
        .subscribe("o.>", sel("rich", "amount > 100 AND region = 'eu'"))
        .unwrap();
    // JMS: a comparison of unlike types is FALSE, so its NOT selects.
    let not_num = store
        .subscribe("o.>", sel("notnum", "NOT (region = 1)"))
        .unwrap();
    let stamped = store
        .subscribe(
            "o.>",
            sel(
                "stamped",
                "JMSTimestamp = 1000000 AND JMSMessageID LIKE 'ID:%'",
            ),
        )
        .unwrap();
    let t = store.topic("o.x").unwrap();
    let m = |a: i64, r: &str| {
        Message::new(format!("{a}{r}"))
            .property("amount", a)
            .property("region", r)
    };
    t.publish(m(150, "eu")).unwrap();
    t.publish(m(150, "us")).unwrap();
    t.publish(m(50, "eu")).unwrap();
    t.publish(Message::new("no props")).unwrap();
    assert_eq!(bodies(&rich), ["150eu"]);
    assert_eq!(
        bodies(&not_num),
        ["150eu", "150us", "50eu"],
        "NULL region stays UNKNOWN"
    );
    assert_eq!(bodies(&stamped).len(), 4);
    clock.advance(Duration::from_millis(1));
    t.publish("later").unwrap();
    assert!(stamped.receive(NOW).unwrap().is_none());

    let e = store
        .subscribe("o.>", sel("bad", "amount >> 1"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.message().contains("at character 9"), "{e}");
    assert!(store.subscriptions().iter().all(|s| s.name != "bad"));
}

#[test]
fn a_subscription_has_its_own_redelivery_policy_and_dead_letter_queue_and_replays_into_it() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let strict = SubscriptionOptions {
        queue: QueueOptions {
            redelivery: Some(RedeliveryPolicy {
                max_redeliveries: 0,
                ..no_delay_policy()
            }),
            dead_letter: Some(DeadLetterStrategy::Individual {
                prefix: "DLQ.".into(),
            }),
            ..Default::default()
        },
        ..durable("strict")
    };
    let lenient = SubscriptionOptions {
        queue: QueueOptions {
            redelivery: Some(no_delay_policy()),
            ..Default::default()
        },
        ..durable("lenient")
    };
    let s1 = store.subscribe("pay.>", strict).unwrap();
    let s2 = store.subscribe("pay.>", lenient).unwrap();
    let id = store.topic("pay.card").unwrap().publish("p").unwrap();
    s1.receive(NOW).unwrap().unwrap().nack("boom").unwrap();
    s2.receive(NOW).unwrap().unwrap().nack("boom").unwrap();
    assert!(
        s1.receive(NOW).unwrap().is_none(),
        "dead-lettered after one failure"
    );
    let again = s2
        .receive(NOW)
        .unwrap()
        .expect("redelivered in the lenient one");
    assert_eq!(again.id(), id);
    again.ack().unwrap();

    let dlq = store.queue("DLQ.$sub.strict").unwrap();
    let dead = dlq.browse(10).unwrap();
    assert_eq!(dead.len(), 1);
    let info = dead[0].dead_letter_info().expect("dead-letter info");
    assert_eq!(info.subscription(), Some("strict"));
    assert_eq!(info.original_id, id);
    assert_eq!(dead[0].topic(), Some("pay.card"));
    assert_eq!(dlq.replay(&ReplayFilter::default()).unwrap(), 1);
    let back = s1
        .receive(NOW)
        .unwrap()
        .expect("replayed into the subscription");
    assert_eq!(back.message().body(), b"p");
    back.ack().unwrap();
    assert!(
        s2.receive(NOW).unwrap().is_none(),
        "only into that subscription"
    );
}

/// Unsubscribing drops the subscription's references, and a slow subscription's old messages
/// are copied forward by compaction instead of pinning old segments.
#[test]
fn unsubscribe_frees_space_and_compaction_moves_held_messages_forward() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        segment_bytes: 256 << 10,
        ..Default::default()
    };
    let store = common::open_store(dir.path(), opts()).unwrap();
    let slow = store.subscribe("feed", durable("slow")).unwrap();
    let fast = store.subscribe("feed", durable("fast")).unwrap();
    let t = store.topic("feed").unwrap();
    // The slow subscriber holds the first 5 messages; everything else is drained by both.
    t.publish_batch((0..5).map(|i| body(&format!("old{i}"), 1000)))
        .unwrap();
    for _ in 0..5 {
        fast.receive(NOW).unwrap().unwrap().ack().unwrap();
    }
    for round in 0..20 {
        let msgs: Vec<Vec<u8>> = (0..100)
            .map(|i| body(&format!("r{round}-{i}"), 1000))
            .collect();
        t.publish_batch(msgs).unwrap();
        for s in [&fast, &slow] {
            // All it holds in one batch: the slow one gives its 5 old ones back each time.
            let got = s.receive_batch(1000, NOW).unwrap();
            for d in got {
                if tag_of(d.message().body()).is_some_and(|t| t.starts_with("old")) {
                    d.release().unwrap();
                } else {
                    d.ack().unwrap();
                }
            }
        }
    }
    store.compact().unwrap();
    let held = store.disk_bytes();
    assert!(
        held < 4 * (256 << 10),
        "5 held messages pin {held} bytes of journal: compaction did not move them forward"
    );
    drop(slow);
    drop(fast);
    store.close().unwrap();
    drop(store);
    let store = common::open_store(dir.path(), opts()).unwrap();
    let slow = store.subscribe("feed", durable("slow")).unwrap();
    let mut tags: Vec<String> = Vec::new();
    while let Some(d) = slow.receive(NOW).unwrap() {
        tags.push(tag_of(d.message().body()).expect("intact body"));
        d.ack().unwrap();
    }
    assert_eq!(tags, (0..5).map(|i| format!("old{i}")).collect::<Vec<_>>());
    // Fill again, then unsubscribe: its references go and the space is reclaimed.
    t_fill_and_unsubscribe(&store);
}

fn t_fill_and_unsubscribe(store: &Store) {
    let s = store.subscribe("bulk", durable("bulk")).unwrap();
    drop(s);
    let t = store.topic("bulk").unwrap();
    for _ in 0..10 {
        t.publish_batch((0..100).map(|i| body(&format!("b{i}"), 1000)))
            .unwrap();
    }
    store.compact().unwrap();
    let full = store.disk_bytes();
    assert!(full > 900_000, "{full}");
    store.unsubscribe("bulk").unwrap();
    for _ in 0..3 {
        store.compact().unwrap();
    }
    let after = store.disk_bytes();
    assert!(
        after < full / 2,
        "unsubscribe freed nothing: {full} → {after}"
    );
}

#[test]
fn a_body_is_stored_once_however_many_subscriptions_match() {
    let _s = serial();
    let q_dir = tempfile::tempdir().unwrap();
    let t_dir = tempfile::tempdir().unwrap();
    let n = 50_000;
    let one_queue = {
        // Opened as the topic's store is (in the client role too: a client's sends and
        // publishes both carry an automatic dedup key, for resends after a takeover).
        let store = open_tmp(q_dir.path());
        let q = store.queue("q").unwrap();
        q.send_batch((0..n).map(|i| body(&format!("m{i}"), 100)))
            .unwrap();
        drop(store);
        used_bytes(q_dir.path())
    };
    let store = open_tmp(t_dir.path());
    let subs: Vec<Subscription> = (0..10)
        .map(|i| store.subscribe("t", durable(&format!("s{i}"))).unwrap())
        .collect();
    store
        .topic("t")
        .unwrap()
        .publish_batch((0..n).map(|i| body(&format!("m{i}"), 100)))
        .unwrap();
    for s in &subs {
        assert_eq!(s.stats().unwrap().depth, n as u64);
    }
    drop(subs);
    drop(store);
    let topic = used_bytes(t_dir.path());
    assert!(
        (topic as f64) <= 1.3 * one_queue as f64,
        "10 subscriptions take {topic} bytes, one queue {one_queue}"
    );
    assert!(topic > one_queue, "the topic's records hold its references");
}

/// Journal bytes written (segments are preallocated: up to the last non-zero byte of each).
fn used_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            let b = std::fs::read(e.path()).unwrap();
            b.iter().rposition(|&x| x != 0).map_or(0, |p| p as u64 + 1)
        })
        .sum()
}

/// T19: publishes to a topic with three durable subscriptions (acks in some) over the
/// fault-injecting file layer, cut at the k-th mutating operation, crash image, reopen: every
/// publish that returned is in every subscription that had not acked it; no acked message
/// comes back; a publish in doubt is in all three or in none (one record).
#[test]
fn t19_topics_under_power_loss() {
    let _s = serial();
    let images = size(150, 3000);
    let mut checked = 0;
    for i in 0..images {
        let mode = match i % 3 {
            0 => CrashMode::SyncedOnly,
            1 => CrashMode::RandomSubset,
            _ => CrashMode::TornLast { sector: 512 },
        };
        checked += t19_image(i, 1 + (i * 7) % 400, mode);
    }
    assert!(
        checked > images,
        "the images held publishes to check: {checked}"
    );
}

const SUBS: [&str; 3] = ["s0", "s1", "s2"];

fn t19_image(seed: u64, k: u64, mode: CrashMode) -> u64 {
    let fs = FaultFs::new();
    let clock = ManualClock::new(1_000_000);
    let dir = std::path::Path::new("/t19");
    // tag → subscriptions that acked it (durably).
    let mut done: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    let mut in_doubt: Vec<String> = Vec::new();
    let mut ack_doubt: BTreeSet<(String, usize)> = BTreeSet::new();
    // Lazy acks returned but not yet known durable: they are once a later publish (a sync
    // operation of the same store) returned.
    let mut lazy: Vec<(String, usize)> = Vec::new();
    {
        let Ok(store) = open(dir, &fs, &clock) else {
            return 0;
        };
        let subs: Vec<Subscription> = match SUBS
            .iter()
            .map(|n| store.subscribe("ev.>", durable(n)))
            .collect::<Result<Vec<_>>>()
        {
            Ok(s) => s,
            Err(_) => return 0,
        };
        fs.crash_at(fs.mutations() + k);
        let t = store.topic("ev.x").unwrap();
        let mut rng = Rng::new(seed);
        for step in 0..60 {
            let tag = format!("p{step}");
            match t.publish(body(&tag, 50 + rng.below(300) as usize)) {
                Ok(_) => {
                    for (t, si) in lazy.drain(..) {
                        if let Some(s) = done.get_mut(&t) {
                            s.insert(si);
                        }
                    }
                    done.insert(tag, BTreeSet::new());
                }
                Err(_) => {
                    in_doubt.push(tag);
                    break;
                }
            }
            let si = rng.below(3) as usize;
            if rng.chance(0.5) {
                if let Ok(Some(d)) = subs[si].receive(NOW) {
                    let tag = tag_of(d.message().body()).expect("intact");
                    if d.ack().is_ok() {
                        lazy.push((tag, si));
                    } else {
                        // An ack in doubt: the message may or may not come back there.
                        ack_doubt.insert((tag, si));
                        break;
                    }
                }
            }
        }
        std::mem::forget(subs);
        drop(store);
    }
    ack_doubt.extend(lazy);
    let image = fs.crash_image(mode, &mut Rng::new(seed ^ 0x5eed));
    let store =
        open(dir, &image, &clock).unwrap_or_else(|e| panic!("seed {seed} k {k}: reopen: {e}"));
    let mut held: Vec<BTreeSet<String>> = Vec::new();
    for n in SUBS {
        let s = store.subscribe("ev.>", durable(n)).unwrap();
        let mut got = BTreeSet::new();
        while let Some(d) = s.receive(NOW).unwrap() {
            let tag =
                tag_of(d.message().body()).unwrap_or_else(|| panic!("seed {seed}: torn body"));
            assert!(got.insert(tag.clone()), "seed {seed}: {tag} twice in {n}");
            d.ack().unwrap();
        }
        held.push(got);
    }
    let mut checked = 0;
    for (tag, acked) in &done {
        for (si, got) in held.iter().enumerate() {
            if ack_doubt.contains(&(tag.clone(), si)) {
                continue;
            }
            if acked.contains(&si) {
                assert!(
                    !got.contains(tag),
                    "seed {seed} k {k}: acked {tag} came back in s{si}"
                );
            } else {
                assert!(
                    got.contains(tag),
                    "seed {seed} k {k}: published {tag} lost in s{si}"
                );
                checked += 1;
            }
        }
    }
    for tag in &in_doubt {
        let n = held.iter().filter(|g| g.contains(tag)).count();
        assert!(
            n == 0 || n == 3,
            "seed {seed}: publish {tag} in doubt is in {n} of 3"
        );
    }
    for got in &held {
        for tag in got {
            assert!(
                done.contains_key(tag) || in_doubt.contains(tag),
                "seed {seed}: {tag} from nowhere"
            );
        }
    }
    checked
}

#[test]
fn a_transaction_publishes_sends_and_acks_all_or_nothing() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let sub = store.subscribe("ev.>", durable("s")).unwrap();
    let nd = store
        .subscribe("ev.>", SubscriptionOptions::default())
        .unwrap();
    let q = store
        .queue_with(
            "work",
            QueueOptions {
                redelivery: Some(no_delay_policy()),
                ..Default::default()
            },
        )
        .unwrap();
    let out = store.queue("out").unwrap();
    q.send("job").unwrap();
    let t = store.topic("ev.done").unwrap();

    let d = q.receive(NOW).unwrap().unwrap();
    let mut tx = store.transaction();
    tx.ack(d).unwrap();
    tx.publish(&t, "done").unwrap();
    tx.send(&out, "result").unwrap();
    tx.rollback().unwrap();
    assert!(sub.receive(NOW).unwrap().is_none() && nd.receive(NOW).unwrap().is_none());
    assert!(out.receive(NOW).unwrap().is_none());

    let d = q
        .receive(NOW)
        .unwrap()
        .expect("failed by the rollback, redelivered");
    let mut tx = store.transaction();
    tx.ack(d).unwrap();
    tx.publish(&t, "done").unwrap();
    tx.send(&out, "result").unwrap();
    let ids = tx.commit().unwrap();
    assert_eq!(ids.len(), 2);
    let got = sub.receive(NOW).unwrap().expect("published at commit");
    assert_eq!((got.id(), got.message().topic()), (ids[0], Some("ev.done")));
    got.ack().unwrap();
    assert_eq!(bodies(&nd), ["done"]);
    assert_eq!(bodies(&out), ["result"]);
    assert!(q.receive(NOW).unwrap().is_none(), "acked with the commit");

    // A transaction's publish is in the journal with it: it survives a reopen.
    let mut tx = store.transaction();
    tx.publish(&t, "kept").unwrap();
    tx.commit().unwrap();
    drop((sub, nd, q, out, t));
    drop(store);
    let store = open_tmp(dir.path());
    let sub = store.subscribe("ev.>", durable("s")).unwrap();
    assert_eq!(bodies(&sub), ["kept"]);
}

/// A selective queue consumer finds its matches deep in a large backlog, leaves the rest for
/// others, and sees `JMSRedelivered` as the delivery it is about to get.
#[test]
fn a_selective_queue_consumer_sees_matches_deep_in_a_backlog() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let q = store
        .queue_with(
            "work",
            QueueOptions {
                redelivery: Some(no_delay_policy()),
                ..Default::default()
            },
        )
        .unwrap();
    let n = 5000;
    q.send_batch((0..n).map(|i| {
        Message::new(format!("m{i}"))
            .property("kind", if i % 1000 == 999 { "rare" } else { "common" })
    }))
    .unwrap();
    let rare = q
        .consumer_with_selector(ConsumerOptions::default(), "kind = 'rare'")
        .unwrap();
    let got = rare.receive_batch(10, NOW).unwrap();
    let bodies: Vec<&[u8]> = got.iter().map(|d| d.message().body()).collect();
    assert_eq!(
        bodies,
        [&b"m999"[..], b"m1999", b"m2999", b"m3999", b"m4999"]
    );
    // A failed one comes back to the selective consumer, redelivered.
    let mut it = got.into_iter();
    it.next().unwrap().nack("again").unwrap();
    for d in it {
        d.ack().unwrap();
    }
    let again = rare.receive(NOW).unwrap().expect("redelivered");
    assert_eq!(again.message().body(), b"m999");
    assert!(again.redelivered());
    again.ack().unwrap();
    let redelivered = q
        .consumer_with_selector(ConsumerOptions::default(), "JMSRedelivered")
        .unwrap();
    assert!(redelivered.receive(NOW).unwrap().is_none());
    // The others stayed, in order, for a plain receive.
    assert_eq!(q.stats().unwrap().depth, (n - 5) as u64);
    let first = q.receive(NOW).unwrap().unwrap();
    assert_eq!(first.message().body(), b"m0");
    first.release().unwrap();
    let e = q
        .consumer_with_selector(ConsumerOptions::default(), "kind == 'x'")
        .err()
        .expect("a bad selector is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
}

/// A client process's automatic dedup key (producer id and sequence, under the prefix the
/// client gives them) makes a publish resent after its owner's death store nothing twice: each
/// subscription it reached remembers the key in its dedup window, across a reopen and after
/// compaction removed the segment of the PUBLISH record (the keys carried forward in DEDUP
/// records). The publishes are made as a client process makes them, on the owner's socket
/// (`common::raw`). A dedup key of the program's own is still refused (a queue feature), and
/// one of the automatic keys' form is not the program's: it is dropped (F11).
#[test]
fn a_client_publish_resent_under_its_automatic_key_is_stored_once() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let opts = || StoreOptions {
        segment_bytes: 256 << 10,
        ..Default::default()
    };
    let once = || Message::new("once").dedup_key("\u{1}mq5eed.1");
    let store = common::open_store(dir.path(), opts()).unwrap();
    let a = store.subscribe("ev.*", durable("a")).unwrap();
    let b = store.subscribe("ev.x", durable("b")).unwrap();
    let t = store.topic("ev.x").unwrap();
    let e = t
        .publish(Message::new("own").dedup_key("mine"))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let raw = |m: Message| common::raw::publish(dir.path(), "ev.x", m);
    let id = raw(once());
    assert_eq!(raw(once()), id);
    assert_eq!(
        common::raw::publish_batch(dir.path(), "ev.x", vec![once(), once()]),
        vec![id, id]
    );
    assert_eq!(bodies(&a), vec!["once"]);
    assert_eq!(bodies(&b), vec!["once"]);
    // Consumed: the key is still remembered.
    assert_eq!(raw(once()), id);
    // The program's message with a key of that form is a message without a key: stored.
    assert_ne!(t.publish(once()).unwrap(), id);
    assert_eq!(bodies(&a), vec!["once"]);
    assert_eq!(bodies(&b), vec!["once"]);
    // Enough traffic to fill segments, all consumed, then compaction.
    for round in 0..10 {
        let msgs: Vec<Vec<u8>> = (0..100)
            .map(|i| body(&format!("r{round}-{i}"), 1000))
            .collect();
        t.publish_batch(msgs).unwrap();
        for s in [&a, &b] {
            for d in s.receive_batch(1000, NOW).unwrap() {
                d.ack().unwrap();
            }
        }
    }
    store.compact().unwrap();
    let held = store.disk_bytes();
    assert!(held < 3 * (256 << 10), "compaction left {held} bytes");
    drop((a, b, t));
    store.close().unwrap();
    drop(store);
    let store = common::open_store(dir.path(), opts()).unwrap();
    let a = store.subscribe("ev.*", durable("a")).unwrap();
    let b = store.subscribe("ev.x", durable("b")).unwrap();
    let raw = |m: Message| common::raw::publish(dir.path(), "ev.x", m);
    assert_eq!(raw(once()), id);
    assert!(bodies(&a).is_empty());
    assert!(bodies(&b).is_empty());
    // A new key is published as usual.
    raw(Message::new("next").dedup_key("\u{1}mq5eed.2"));
    assert_eq!(bodies(&a), vec!["next"]);
}

/// A replay whose targets include the queue of a subscription that is gone stopped half-way
/// (the letters before it moved, then `NotFound`), and its dry run promised the whole replay.
/// Every target is checked first: the whole replay (and its dry run) is refused, nothing moves.
#[test]
fn a_replay_to_a_missing_subscription_is_refused_before_anything_moves() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let plain = store.queue("plain").unwrap();
    plain.send("q1").unwrap();
    plain.receive(NOW).unwrap().unwrap().reject("bad").unwrap();
    let gone = store
        .subscribe(
            "ev.>",
            SubscriptionOptions {
                queue: QueueOptions {
                    redelivery: Some(RedeliveryPolicy {
                        max_redeliveries: 0,
                        ..no_delay_policy()
                    }),
                    ..Default::default()
                },
                ..durable("gone")
            },
        )
        .unwrap();
    store.topic("ev.a").unwrap().publish("p1").unwrap();
    gone.receive(NOW).unwrap().unwrap().nack("boom").unwrap();
    drop(gone);
    store.unsubscribe("gone").unwrap();
    let dlq = store.queue("DLQ").unwrap();
    assert_eq!(dlq.stats().unwrap().messages, 2);
    for dry_run in [true, false] {
        let e = dlq
            .replay(&ReplayFilter {
                dry_run,
                ..Default::default()
            })
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert!(e.message().contains("nothing moved"), "{e}");
        assert!(e.message().contains("$sub.gone"), "{e}");
        assert_eq!(dlq.stats().unwrap().messages, 2, "dry run {dry_run}");
        assert_eq!(plain.stats().unwrap().messages, 0, "dry run {dry_run}");
    }
    // An explicit target that is a missing subscription's queue: refused the same way.
    let e = dlq
        .replay(&ReplayFilter {
            to: Some("$sub.nope".into()),
            ..Default::default()
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(dlq.stats().unwrap().messages, 2);
    // Left out by a filter, the others go back.
    let only_plain = ReplayFilter {
        original_queue: Some("plain".into()),
        ..Default::default()
    };
    assert_eq!(dlq.replay(&only_plain).unwrap(), 1);
    assert_eq!(plain.stats().unwrap().messages, 1);
    assert_eq!(dlq.stats().unwrap().messages, 1);
}

fn limited(name: &str, max: u64, overflow: OverflowPolicy) -> SubscriptionOptions {
    SubscriptionOptions {
        queue: QueueOptions {
            max_messages: Some(max),
            overflow: Some(overflow),
            ..Default::default()
        },
        ..durable(name)
    }
}

/// A publish follows each reached subscription's overflow policy, as a send to a queue does:
/// `drop_oldest` dead-letters that subscription's oldest, `reject` refuses the whole publish
/// before anything was dropped for it, a full subscription the selector does not reach does
/// not count, and `block` waits for room.
#[test]
fn a_publish_follows_each_subscriptions_overflow_policy() {
    let _s = serial();
    let dir = tempfile::tempdir().unwrap();
    let store = open_tmp(dir.path());
    let keep = store
        .subscribe("ev.>", limited("keep", 2, OverflowPolicy::DropOldest))
        .unwrap();
    let strict = store
        .subscribe("ev.>", limited("strict", 3, OverflowPolicy::Reject))
        .unwrap();
    let big = SubscriptionOptions {
        selector: Some("n > 100".into()),
        ..limited("big", 1, OverflowPolicy::Reject)
    };
    let big = store.subscribe("ev.>", big).unwrap();
    let t = store.topic("ev.a").unwrap();
    t.publish(Message::new("0").property("n", 500i64)).unwrap();
    for i in 1..=2 {
        // "big" is full, but its selector does not reach these.
        t.publish(Message::new(i.to_string()).property("n", 1i64))
            .unwrap();
    }
    assert_eq!(keep.stats().unwrap().dead_lettered, 1, "0 made room for 2");
    let e = t
        .publish(Message::new("3").property("n", 1i64))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::QueueFull);
    assert!(e.to_string().contains("\"strict\""), "{e}");
    assert_eq!(
        keep.stats().unwrap().dead_lettered,
        1,
        "nothing dropped for a publish a rejecting subscription refused"
    );
    drop((keep, strict, big));
    drop(store);

    let store = open_tmp(dir.path());
    let keep = store.subscribe("ev.>", limited("keep", 2, OverflowPolicy::DropOldest));
    let keep = keep.unwrap();
    let strict = store.subscribe("ev.>", limited("strict", 3, OverflowPolicy::Reject));
    assert_eq!(
        bodies(&keep),
        ["1", "2"],
        "the oldest went, across a reopen"
    );
    assert_eq!(bodies(&strict.unwrap()), ["0", "1", "2"]);

    // `block`: the publisher waits until a consumer makes room (here another thread).
    let wait = OverflowPolicy::Block {
        timeout: Duration::from_secs(600),
    };
    let slow = store.subscribe("ev.>", limited("slow", 1, wait)).unwrap();
    let t = store.topic("ev.a").unwrap();
    t.publish(Message::new("a").property("n", 1i64)).unwrap();
    std::thread::scope(|s| {
        let publisher = s.spawn(|| t.publish(Message::new("b").property("n", 1i64)));
        let first = slow
            .receive(Some(Duration::from_secs(600)))
            .unwrap()
            .unwrap();
        assert_eq!(first.message().body(), b"a");
        first.ack().unwrap();
        publisher
            .join()
            .unwrap()
            .expect("published once there was room");
    });
    assert_eq!(bodies(&slow), ["b"]);
}
