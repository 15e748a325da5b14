//! Defaults and failure paths that must not lose a message (review r3 of the bridge): a store
//! re-created at the same path, a route over a dead-letter queue, a store owner that goes away
//! under a route running as its client.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use mqlite::{Message, QueueOptions, RedeliveryPolicy, Role};
use mqlite_bridge::{Bridge, OutboundRoute};

/// Messages the short-lived owner process sends before the bridge starts.
const OWNED: usize = 20_000;

/// A store deleted and created again at the same path restarts its ids at `ID:1`. With the
/// default origin, its first messages must not reuse the old store's broker ids (JetStream's
/// duplicate window would drop them, though they are acked locally).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_recreated_at_the_same_path_keeps_its_first_messages() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let js = jetstream().await;
    let (stream, subject) = (unique("RECREATE"), unique("recreate.out"));
    create_stream(&js, &stream, &[&subject]).await;
    let mut ids = Vec::new();
    for body in ["first", "second"] {
        let _ = std::fs::remove_dir_all(&path);
        let store = store(&path);
        ids.push(store.id().to_string());
        store.queue("oq").unwrap().send(body).unwrap();
        let mut config = base_config();
        config.origin = None; // the default
        config.outbound = vec![OutboundRoute::nats("o", "oq", &subject)];
        let bridge = Bridge::start(store.clone(), config).await.unwrap();
        until(20, "forwarded", || async {
            bridge.stats()[0].forwarded == 1
        })
        .await;
        let stats = bridge.shutdown().await;
        assert_eq!(stats[0].duplicates, 0, "{body}: dropped as a duplicate");
        store.close().unwrap();
    }
    assert_ne!(ids[0], ids[1], "a re-created store has a new id");
    let msgs = read_stream(&js, &stream).await;
    let bodies: Vec<&[u8]> = msgs.iter().map(|m| &m.payload[..]).collect();
    assert_eq!(bodies, [&b"first"[..], b"second"]);
    let id = |i: usize| {
        let h = msgs[i].headers.as_ref().unwrap();
        h.get("Nats-Msg-Id").unwrap().as_str().to_string()
    };
    assert!(id(0).ends_with(&format!("#{}:ID:1", ids[0])), "{}", id(0));
    assert!(id(1).ends_with(&format!("#{}:ID:1", ids[1])), "{}", id(1));

    // An explicit origin is used as written.
    let store = store(&path);
    store.queue("oq").unwrap().send("third").unwrap();
    let mut config = base_config();
    let origin = config.origin.clone().unwrap();
    config.outbound = vec![OutboundRoute::nats("o", "oq", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "forwarded", || async {
        bridge.stats()[0].forwarded == 1
    })
    .await;
    bridge.shutdown().await;
    let msgs = read_stream(&js, &stream).await;
    let h = msgs[2].headers.as_ref().unwrap();
    let id = h.get("Nats-Msg-Id").unwrap().as_str();
    assert!(id.starts_with(&format!("{origin}:ID:")), "{id}");
}

/// Not a test of its own: the short-lived store owner process of
/// `the_route_outlives_its_store_owner_*`, run by them as a child (this test binary with
/// `MQLITE_TEST_OWNER_OF` set). It creates the store, sends `OWNED` messages, says
/// `owner ready`, and on a line `close` on its stdin closes the store and exits (or is killed).
#[test]
fn owner_process() {
    let Ok(dir) = std::env::var("MQLITE_TEST_OWNER_OF") else {
        return;
    };
    let store = mqlite::Store::open(&dir, mqlite::StoreOptions::default()).unwrap();
    assert_eq!(store.role(), Role::Owner);
    let q = store.queue("out").unwrap();
    for chunk in (0..OWNED).collect::<Vec<_>>().chunks(1000) {
        q.send_batch(chunk.iter().map(|i| Message::new(format!("m{i}"))))
            .unwrap();
    }
    println!("owner ready");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    store.close().unwrap();
}

/// The bridge runs as a client of another process that owns the store (an operator's
/// `mqlite receive --wait`, an import, an application); that owner goes away while the route
/// forwards. The confirms the route holds can no longer be acked (`delivery_lost`): the route
/// must not stop, the store is taken over, and every message reaches the stream exactly once
/// (what came back is published again under the same id, and JetStream drops the duplicate).
async fn the_route_outlives_its_store_owner(kill: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    let mut owner = Command::new(std::env::current_exe().unwrap())
        .args([
            "owner_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MQLITE_TEST_OWNER_OF", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(owner.stdout.take().unwrap());
    let ready = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        while out.read_line(&mut line).unwrap() > 0 {
            if line.contains("owner ready") {
                return true;
            }
            line.clear();
        }
        false
    });
    assert!(ready.await.unwrap(), "the owner process did not start");
    let js = jetstream().await;
    let (stream, subject) = (unique("OWNERGONE"), unique("ownergone.out"));
    create_stream(&js, &stream, &[&subject]).await;
    let store = store(&path);
    assert_eq!(store.role(), Role::Client);
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "out", &subject).window(256)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(60, "a part forwarded", || async {
        bridge.stats()[0].forwarded >= 2_000
    })
    .await;
    if kill {
        owner.kill().unwrap();
    } else {
        owner.stdin.as_mut().unwrap().write_all(b"close\n").unwrap();
    }
    assert!(tokio::task::spawn_blocking(move || owner.wait())
        .await
        .unwrap()
        .is_ok());
    let q = store.queue("out").unwrap();
    until(120, "the whole queue forwarded", || async {
        let s = bridge.stats();
        assert!(!s[0].stopped, "the route stopped: {:?}", s[0].last_error);
        q.stats().unwrap().messages == 0
    })
    .await;
    assert_eq!(store.role(), Role::Owner, "the bridge took the store over");
    assert!(bridge.failed_route().is_none());
    let stats = bridge.shutdown().await;
    // Killed, the owner loses the confirms the route holds (`delivery_lost`); closing
    // normally it hands them over to the next owner, which takes their acks (issue 10 F10).
    if kill {
        assert!(
            stats[0].settle_errors >= 1,
            "the owner went away with no settle in flight: {stats:?}"
        );
    } else {
        assert_eq!(stats[0].settle_errors, 0, "handed over, settled: {stats:?}");
    }
    let msgs = read_stream(&js, &stream).await;
    let bodies: HashSet<Vec<u8>> = msgs.iter().map(|m| m.payload.to_vec()).collect();
    assert_eq!(msgs.len(), OWNED, "each message once in the stream");
    assert_eq!(bodies.len(), OWNED);
    for i in 0..OWNED {
        assert!(bodies.contains(format!("m{i}").as_bytes()), "m{i} lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_outlives_its_store_owner_closing() {
    the_route_outlives_its_store_owner(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_outlives_its_store_owner_killed() {
    the_route_outlives_its_store_owner(true).await;
}

/// A route shipping a dead-letter queue to the broker: a dead letter the broker refuses must
/// stay in the dead-letter queue (nacking it would count against the dead-letter queue's own
/// policy, which drops its dead letters), counted as failed and retried after a pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_dead_letter_stays_in_its_dead_letter_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    // A strict policy on the DLQ itself: without the rule, two refusals would drop it.
    let fast = RedeliveryPolicy {
        max_redeliveries: 1,
        initial_redelivery_delay: Duration::from_millis(10),
        redelivery_delay: Duration::from_millis(10),
        ..Default::default()
    };
    let dlq = store
        .queue_with(
            "DLQ",
            QueueOptions {
                redelivery: Some(fast),
                ..Default::default()
            },
        )
        .unwrap();
    let work = store.queue("work").unwrap();
    work.send("precious").unwrap();
    let d = work.receive(Some(Duration::ZERO)).unwrap().unwrap();
    d.reject("bad").unwrap();
    until(10, "a dead letter", || async {
        dlq.stats().unwrap().messages == 1
    })
    .await;
    // The stream takes messages of at most 4 bytes: every publish of "precious" is refused.
    // (A subject no stream captures makes the route wait instead, review r3 #13.)
    let js = jetstream().await;
    let subject = unique("tiny.out");
    js.create_stream(async_nats::jetstream::stream::Config {
        name: unique("TINY"),
        subjects: vec![subject.clone()],
        max_message_size: 4,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("ship", "DLQ", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "five refusals", || async {
        let s = &bridge.stats()[0];
        assert!(!s.stopped, "{:?}", s.last_error);
        s.failed >= 5
    })
    .await;
    let stats = bridge.shutdown().await;
    let e = stats[0].last_error.clone().unwrap_or_default();
    assert!(e.starts_with("nats: ") && !e.contains("no stream"), "{e}");
    assert!(e.contains("kept in queue \"DLQ\""), "{e}");
    assert_eq!(
        dlq.stats().unwrap().messages,
        1,
        "the dead letter was dropped"
    );
    let d = dlq.receive(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!(d.body(), b"precious");
    let info = d.dead_letter_info().unwrap();
    assert_eq!(
        (info.original_queue.as_str(), info.last_failure.as_str()),
        ("work", "bad")
    );
    d.ack().unwrap();
}
