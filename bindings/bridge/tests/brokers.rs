//! Both directions against both real brokers (started by `run_tests.sh`), with the failure
//! paths: a refused publish ends in the dead-letter queue with the broker's error; a broker
//! that is away keeps messages waiting until it is back; a redelivery already stored is not
//! stored twice.

mod common;

use std::time::Duration;

use common::*;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use mqlite::{Message, QueueOptions, Value};
use mqlite_bridge::{mapping, Bridge, InboundRoute, OutboundRoute, RouteStats};

fn route<'a>(stats: &'a [RouteStats], name: &str) -> &'a RouteStats {
    stats.iter().find(|s| s.name == name).expect("route")
}

fn sample(i: usize) -> Message {
    Message::new(format!("body {i}"))
        .property("seq", i as i64)
        .property("price", i as f64 + 0.5)
        .property("ok", i.is_multiple_of(2))
        .property("raw", vec![i as u8, 0, 255])
        .property("text", format!("é {i}\n"))
        .priority((i % 10) as u8)
        .correlation_id(format!("corr-{i}"))
        .ttl(Duration::from_secs(3600))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_outbound_in_order_with_types_and_ids() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("OUT"), unique("out.subject"));
    create_stream(&js, &stream, &[&subject]).await;
    let q = store.queue("out").unwrap();
    // One priority, so the queue's order is the send order.
    let n = 300;
    q.send_batch((0..n).map(|i| sample(i).priority(4))).unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "out", &subject).window(64)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "300 forwarded", || async {
        route(&bridge.stats(), "o").forwarded == n as u64
    })
    .await;
    until(10, "the local queue empty", || async {
        q.stats().unwrap().messages == 0
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!(stats[0].failed, 0);
    let msgs = read_stream(&js, &stream).await;
    assert_eq!(msgs.len(), n);
    let origin = base_config().origin; // a fresh one: only the shape is compared
    assert!(origin.is_some());
    for (i, m) in msgs.iter().enumerate() {
        let h = m.headers.as_ref().unwrap();
        let id = h.get("Nats-Msg-Id").unwrap().as_str();
        assert!(id.ends_with(&format!(":ID:{}", i + 1)), "{id}");
        let back = mapping::from_string_headers(
            &m.payload,
            h.iter().map(|(k, v)| (k.as_ref(), v[0].as_str())),
            None,
            mapping::now_ms(),
        );
        let want = sample(i);
        assert_eq!(back.body(), want.body());
        for (k, v) in want.properties() {
            assert_eq!(back.get_property(k), Some(v), "message {i} property {k}");
        }
        assert_eq!(back.get_correlation_id(), want.get_correlation_id());
        assert!(back.get_property(mapping::TIMESTAMP_PROPERTY).is_some());
        assert!(h.get(mapping::EXPIRES).is_some());
    }
}

/// A queue whose messages go to the dead-letter queue at their first failure.
fn no_retries(store: &mqlite::Store, name: &str) -> mqlite::Queue {
    let options = QueueOptions {
        redelivery: Some(mqlite::RedeliveryPolicy {
            max_redeliveries: 0,
            ..Default::default()
        }),
        ..Default::default()
    };
    store.queue_with(name, options).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_refused_publish_is_dead_lettered_with_the_broker_error() {
    // A refusal about the message itself: the stream takes at most 16-byte messages.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("SMALL"), unique("small.subject"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        max_message_size: 16,
        ..Default::default()
    })
    .await
    .unwrap();
    let q = no_retries(&store, "big");
    q.send("far too long for this stream").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "big", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let dlq = store.queue("DLQ").unwrap();
    until(20, "a dead letter", || async {
        dlq.stats().unwrap().messages == 1
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!((stats[0].failed, stats[0].forwarded), (1, 0));
    let d = dlq.receive(Some(Duration::ZERO)).unwrap().unwrap();
    let text = &d.dead_letter_info().unwrap().last_failure;
    assert!(
        text.starts_with("nats: ") && !text.contains("no stream"),
        "{text}"
    );
    assert_eq!(d.body(), b"far too long for this stream");
    d.ack().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_missing_stream_makes_messages_wait_not_die() {
    // Review r3 #13: with no stream capturing the subject (one being re-created, say) every
    // message was refused and the whole backlog dead-lettered within seconds.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let q = no_retries(&store, "later");
    for i in 0..3 {
        q.send(format!("m{i}")).unwrap();
    }
    let (stream, subject) = (unique("LATE"), unique("late.subject"));
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "later", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the missing stream reported", || async {
        let s = bridge.stats();
        let e = route(&s, "o").last_error.clone().unwrap_or_default();
        e.contains("no stream captures subject")
    })
    .await;
    // Nothing failed or died: the messages wait in their queue.
    let s = route(&bridge.stats(), "o").clone();
    assert_eq!((s.failed, s.forwarded, s.connected), (0, 0, false));
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    assert_eq!(q.stats().unwrap().messages, 3);
    let js = jetstream().await;
    create_stream(&js, &stream, &[&subject]).await;
    until(30, "3 forwarded once the stream exists", || async {
        route(&bridge.stats(), "o").forwarded == 3
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!(stats[0].failed, 0);
    let bodies: Vec<Vec<u8>> = read_stream(&js, &stream)
        .await
        .iter()
        .map(|m| m.payload.to_vec())
        .collect();
    assert_eq!(bodies, [b"m0".to_vec(), b"m1".to_vec(), b"m2".to_vec()]);
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
}

/// Review r11 #11: a sealed stream refuses every publish (error 10109): that is the stream's
/// state, not each message's fault, yet the whole backlog was dead-lettered. The messages wait,
/// the route reports the stream, and nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_sealed_stream_makes_messages_wait_not_die() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let q = no_retries(&store, "sealed");
    for i in 0..3 {
        q.send(format!("m{i}")).unwrap();
    }
    let js = jetstream().await;
    let (stream, subject) = (unique("SEALED"), unique("sealed.subject"));
    create_stream(&js, &stream, &[&subject]).await;
    let mut cfg = js
        .get_stream(&stream)
        .await
        .unwrap()
        .cached_info()
        .config
        .clone();
    cfg.sealed = true;
    js.update_stream(cfg).await.unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "sealed", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "the sealed stream reported", || async {
        let s = bridge.stats();
        let e = route(&s, "o").last_error.clone().unwrap_or_default();
        e.contains("refuses every publish")
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!((stats[0].failed, stats[0].forwarded), (0, 0));
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    assert_eq!(q.stats().unwrap().messages, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_inbound_stores_once_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("IN"), unique("in.subject"));
    create_stream(&js, &stream, &[&subject]).await;
    let n = 200u64;
    for i in 0..n {
        let mut h = async_nats::HeaderMap::new();
        h.insert("kind", "order");
        h.insert(mapping::TYPES, "n=i");
        h.insert("n", i.to_string().as_str());
        h.insert(mapping::PRIORITY, "8");
        js.publish_with_headers(subject.clone(), h, format!("m{i}").into())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    // The first 20 were stored before a crash that lost the broker acks: the local queue
    // holds their dedup keys already.
    let created = js
        .get_stream(&stream)
        .await
        .unwrap()
        .cached_info()
        .created
        .unix_timestamp_nanos();
    let q = store.queue("in").unwrap();
    for seq in 1..=20 {
        q.send(
            Message::new(format!("m{}", seq - 1))
                .dedup_key(format!("nats:{stream}:{created}:{seq}")),
        )
        .unwrap();
    }
    let mut config = base_config();
    config.inbound = vec![InboundRoute::nats("i", &stream, "bridge", "in").window(32)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "180 stored and 20 skipped", || async {
        let s = route(&bridge.stats(), "i").clone();
        s.forwarded == n - 20 && s.duplicates == 20
    })
    .await;
    until(10, "every broker message acked", || {
        let js = js.clone();
        let stream = stream.clone();
        async move {
            let mut c = js
                .get_stream(&stream)
                .await
                .unwrap()
                .get_consumer::<async_nats::jetstream::consumer::pull::Config>("bridge")
                .await
                .unwrap();
            let i = c.info().await.unwrap();
            i.num_ack_pending == 0 && i.num_pending == 0
        }
    })
    .await;
    bridge.shutdown().await;
    let got = q.receive_batch(1000, Some(Duration::ZERO)).unwrap();
    assert_eq!(got.len() as u64, n, "each message stored exactly once");
    let mut seen = std::collections::HashSet::new();
    for d in &got {
        assert!(
            seen.insert(d.body().to_vec()),
            "stored twice: {:?}",
            d.body()
        );
        if d.get_property("kind").is_some() {
            assert_eq!(d.get_priority(), 8);
            assert!(matches!(d.get_property("n"), Some(Value::Int(_))));
            assert!(d
                .get_dedup_key()
                .unwrap()
                .starts_with(&format!("nats:{stream}:")));
        }
    }
    q.ack_batch(got).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_both_ways_with_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let (exchange, queue) = (unique("x"), unique("q"));
    declare_bound_queue(&ch, &exchange, &queue).await;
    let out = store.queue("to-rabbit").unwrap();
    let n = 100;
    out.send_batch((0..n).map(|i| sample(i).priority(4).group("g")))
        .unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "to-rabbit", &exchange, &queue)];
    // The same RabbitMQ queue comes back in, into another local queue.
    config.inbound = vec![InboundRoute::rabbitmq("i", &queue, "from-rabbit")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "out and back", || async {
        let s = bridge.stats();
        route(&s, "o").forwarded == n as u64 && route(&s, "i").forwarded == n as u64
    })
    .await;
    bridge.shutdown().await;
    let back = store.queue("from-rabbit").unwrap();
    assert_eq!(back.stats().unwrap().messages, n as u64);
    for i in 0..n {
        // One group: the queue hands out its messages one at a time, in order.
        let d = back.receive(Some(Duration::ZERO)).unwrap().unwrap();
        let want = sample(i);
        assert_eq!(d.body(), want.body(), "in queue order");
        for (k, v) in want.properties() {
            assert_eq!(d.get_property(k), Some(v), "message {i} property {k}");
        }
        assert_eq!(d.get_correlation_id(), want.get_correlation_id());
        assert_eq!(d.get_group(), Some("g"));
        assert!(d.expires_at_ms() > 0, "expiration came back as a TTL");
        let id = d.get_property("amqp.message_id").unwrap();
        assert!(matches!(id, Value::Str(s) if s.ends_with(&format!(":ID:{}", i + 1))));
        assert!(d.get_dedup_key().unwrap().starts_with("amqp:"));
        d.ack().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_unroutable_is_dead_lettered_with_the_broker_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let exchange = unique("x-unbound");
    declare_bound_queue(&ch, &exchange, &unique("q")).await;
    let q = store
        .queue_with(
            "unroutable",
            QueueOptions {
                redelivery: Some(mqlite::RedeliveryPolicy {
                    max_redeliveries: 0,
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
    q.send("no route").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq(
        "o",
        "unroutable",
        &exchange,
        "no-such-key",
    )];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let dlq = store.queue("DLQ").unwrap();
    until(20, "a dead letter", || async {
        dlq.stats().unwrap().messages == 1
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!((stats[0].failed, stats[0].forwarded), (1, 0));
    let d = dlq.receive(Some(Duration::ZERO)).unwrap().unwrap();
    let text = &d.dead_letter_info().unwrap().last_failure;
    assert!(text.contains("312") && text.contains("NO_ROUTE"), "{text}");
    // Review r11 #9: the text names where it was sent, so an operator finds the missing binding.
    assert!(
        text.contains(&exchange) && text.contains("no-such-key"),
        "{text}"
    );
    d.ack().unwrap();
}

/// Review r7 #1: a message the broker answers by closing the whole connection (here a headers
/// table larger than the negotiated frame_max, a FRAME_ERROR no mapping check catches; a NaN
/// float did the same and is now refused by the mapping) was given back and published again
/// forever: the route stalled and the messages published beside it were copied at every
/// reconnect. Now it is published alone after the first loss and nacked with the broker's
/// close reason after the third; the others are forwarded, each at most twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_message_that_closes_the_connection_is_dead_lettered_not_published_forever() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("closer");
    declare_queue(&ch, &queue).await;
    let q = no_retries(&store, "closer");
    q.send("before").unwrap();
    q.send(Message::new("huge").property("h", "x".repeat(300_000)))
        .unwrap();
    q.send("after").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "closer", "", &queue)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let dlq = store.queue("DLQ").unwrap();
    until(
        60,
        "the closing message dead-lettered, the others forwarded",
        || async { dlq.stats().unwrap().messages == 1 && bridge.stats()[0].forwarded == 2 },
    )
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!(stats[0].failed, 1);
    assert!(stats[0].reconnects >= 3, "{:?}", stats[0]);
    let d = dlq.receive(Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(d.body(), b"huge");
    let text = &d.dead_letter_info().unwrap().last_failure;
    assert!(
        text.contains("3 times in a row") && text.contains("rabbitmq"),
        "{text}"
    );
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
    let got = drain_amqp(&ch, &queue, 4).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.delivery.data.as_slice()).collect();
    for b in [&b"before"[..], b"after"] {
        let n = bodies.iter().filter(|x| **x == b).count();
        assert!((1..=2).contains(&n), "{bodies:?}");
    }
    assert!(!bodies.contains(&&b"huge"[..]), "{bodies:?}");
}

/// Review r8 #1: a closing message behind a full window of good ones. Their confirms had not
/// come when the broker closed the connection, so the oldest unconfirmed one was taken as the
/// suspect, confirmed, and the whole window published again at every loss: about k²/2 copies
/// (1651 messages for 100 ids) and a stalled route. Now what was unconfirmed at the loss is
/// published again one at a time until each is settled: every good message arrives at most a
/// few times, the closing one is dead-lettered with the reason, and the rest goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_closing_message_behind_a_full_window_does_not_multiply_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("window-closer");
    declare_queue(&ch, &queue).await;
    let q = no_retries(&store, "wcloser");
    q.send_batch((1..=100).map(|i| Message::new(format!("m{i}"))))
        .unwrap();
    q.send(Message::new("big").property("h", "h".repeat(200_000)))
        .unwrap();
    q.send_batch((101..=200).map(|i| Message::new(format!("m{i}"))))
        .unwrap();
    let mut config = base_config();
    // The default window (256): the big one and all 200 good ones in flight at once.
    config.outbound = vec![OutboundRoute::rabbitmq("o", "wcloser", "", &queue)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let dlq = store.queue("DLQ").unwrap();
    until(
        120,
        "the closing message dead-lettered, the 200 others forwarded",
        || async { dlq.stats().unwrap().messages == 1 && bridge.stats()[0].forwarded >= 200 },
    )
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!(stats[0].failed, 1, "{:?}", stats[0]);
    let d = dlq.receive(Some(Duration::ZERO)).unwrap().unwrap();
    assert_eq!(d.body(), b"big");
    let text = &d.dead_letter_info().unwrap().last_failure;
    assert!(
        text.contains("3 times in a row") && text.contains("rabbitmq"),
        "{text}"
    );
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().messages, 0);
    let passive = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let held = ch
        .queue_declare(queue.as_str().into(), passive, FieldTable::default())
        .await
        .unwrap()
        .message_count() as usize;
    let got = drain_amqp(&ch, &queue, held).await;
    assert_eq!(got.len(), held);
    let mut copies = std::collections::HashMap::new();
    for m in &got {
        *copies
            .entry(String::from_utf8(m.delivery.data.clone()).unwrap())
            .or_insert(0) += 1;
    }
    assert!(!copies.contains_key("big"));
    for i in 1..=200 {
        let n = copies.get(&format!("m{i}")).copied().unwrap_or(0);
        assert!(
            (1..=3).contains(&n),
            "m{i} arrived {n} times ({held} in all)"
        );
    }
}

/// Review r8 #3: properties named like the bridge's own headers (`Mqlite-Group`,
/// `Mqlite-Timestamp`, `Mqlite-Correlation-Id`) were lost through RabbitMQ, and the last one
/// replaced the correlation id. Out and back, they keep their names and values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_reserved_property_names_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("reserved");
    declare_queue(&ch, &queue).await;
    let sent = Message::new("body1")
        .property("Mqlite-Group", "usergroupprop")
        .property("Mqlite-Timestamp", "userts")
        .property("Mqlite-Correlation-Id", "usercid")
        .property("%4Dqlite-Group", 7i64)
        .group("G1")
        .correlation_id("C1");
    store
        .queue("out-reserved")
        .unwrap()
        .send(sent.clone())
        .unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "out-reserved", "", &queue)];
    config.inbound = vec![InboundRoute::rabbitmq("i", &queue, "back-reserved")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(30, "out and back", || async {
        route(&bridge.stats(), "i").forwarded == 1
    })
    .await;
    bridge.shutdown().await;
    let d = store
        .queue("back-reserved")
        .unwrap()
        .receive(Some(Duration::ZERO))
        .unwrap()
        .unwrap();
    assert_eq!(d.get_correlation_id(), Some("C1"));
    assert_eq!(d.get_group(), Some("G1"));
    for (k, v) in sent.properties() {
        assert_eq!(d.get_property(k), Some(v), "property {k}");
    }
    d.ack().unwrap();
}

/// Review r8 #8: through the default exchange (`exchange = ""`) the routing key names the
/// target queue; a missing one made every publish unroutable and dead-lettered the backlog.
/// It is a missing target, like a missing exchange: reported at connect with an error, every
/// attempt, while the messages wait; once the queue exists they are forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_a_missing_target_queue_of_the_default_exchange_makes_messages_wait_not_die() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("later");
    let q = no_retries(&store, "to-later");
    q.send("m0").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "to-later", "", &queue)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the missing queue reported", || async {
        let e = bridge.stats()[0].last_error.clone().unwrap_or_default();
        e.contains("not found") && e.contains(&queue)
    })
    .await;
    assert_eq!(bridge.stats()[0].failed, 0);
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    declare_queue(&ch, &queue).await;
    until(30, "forwarded once the queue exists", || async {
        bridge.stats()[0].forwarded == 1
    })
    .await;
    let stats = bridge.shutdown().await;
    assert_eq!(stats[0].failed, 0);
    let got = drain_amqp(&ch, &queue, 1).await;
    assert_eq!(got[0].delivery.data, b"m0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_back_pressure_makes_messages_wait_not_die() {
    // Review r3 #13: a queue at its x-max-length with reject-publish nacks publishes; each
    // nack dead-lettered a message, so the backlog died within seconds.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let limited = unique("limited");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    args.insert(
        "x-overflow".into(),
        AMQPValue::LongString("reject-publish".into()),
    );
    ch.queue_declare(
        limited.as_str().into(),
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    )
    .await
    .unwrap();
    let q = no_retries(&store, "pressed");
    for i in 0..3 {
        q.send(format!("m{i}")).unwrap();
    }
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "pressed", "", &limited).window(1)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the broker's nack reported", || async {
        let s = bridge.stats();
        let e = route(&s, "o").last_error.clone().unwrap_or_default();
        e.contains("nacked")
    })
    .await;
    assert_eq!(route(&bridge.stats(), "o").failed, 0);
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    // Taking the messages out at the broker makes room: every one arrives, in order.
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "got only {got:?}");
        for m in drain_amqp(&ch, &limited, 1).await {
            got.push(String::from_utf8(m.delivery.data.clone()).unwrap());
        }
    }
    assert_eq!(got, ["m0", "m1", "m2"]);
    let stats = bridge.shutdown().await;
    assert_eq!((stats[0].failed, stats[0].forwarded), (0, 3));
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_inbound_dedups_on_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("q-in");
    declare_queue(&ch, &queue).await;
    let mut headers = FieldTable::default();
    headers.insert("n".into(), AMQPValue::LongInt(7));
    // "a" is published twice (a producer's retry): stored once.
    for id in ["a", "b", "a", "c"] {
        ch.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            id.as_bytes(),
            BasicProperties::default()
                .with_message_id(id.into())
                .with_delivery_mode(2)
                .with_headers(headers.clone()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    let mut config = base_config();
    config.inbound = vec![InboundRoute::rabbitmq("i", &queue, "in")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "3 stored, 1 duplicate", || async {
        let s = route(&bridge.stats(), "i").clone();
        s.forwarded == 3 && s.duplicates == 1
    })
    .await;
    bridge.shutdown().await;
    let q = store.queue("in").unwrap();
    let got = q.receive_batch(10, Some(Duration::ZERO)).unwrap();
    let bodies: Vec<&[u8]> = got.iter().map(|d| d.body()).collect();
    assert_eq!(bodies, [&b"a"[..], b"b", b"c"]);
    assert_eq!(got[0].get_property("n"), Some(&Value::Int(7)));
    q.ack_batch(got).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_away_messages_wait_then_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("AWAY"), unique("away.subject"));
    create_stream(&js, &stream, &[&subject]).await;
    let (conn, ch) = amqp().await;
    let (exchange, queue) = (unique("x-away"), unique("q-away"));
    declare_bound_queue(&ch, &exchange, &queue).await;
    drop((ch, conn));
    servers("stop", "nats");
    servers("stop", "rabbitmq");
    let mut config = base_config();
    config.outbound = vec![
        OutboundRoute::nats("n", "to-nats", &subject),
        OutboundRoute::rabbitmq("r", "to-rabbit", &exchange, &queue),
    ];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let (qn, qr) = (
        store.queue("to-nats").unwrap(),
        store.queue("to-rabbit").unwrap(),
    );
    let n = 50;
    qn.send_batch((0..n).map(|i| format!("n{i}"))).unwrap();
    qr.send_batch((0..n).map(|i| format!("r{i}"))).unwrap();
    // Both routes tried and failed to connect; every message is still here.
    until(20, "both routes reporting the broker away", || async {
        bridge
            .stats()
            .iter()
            .all(|s| !s.connected && s.last_error.is_some())
    })
    .await;
    assert_eq!(qn.stats().unwrap().messages, n as u64);
    assert_eq!(qr.stats().unwrap().messages, n as u64);
    servers("start", "nats");
    servers("start", "rabbitmq");
    until(60, "everything forwarded after the restart", || async {
        bridge.stats().iter().all(|s| s.forwarded == n as u64)
    })
    .await;
    bridge.shutdown().await;
    let js = jetstream().await;
    assert_eq!(read_stream(&js, &stream).await.len(), n);
    let (_conn, ch) = amqp().await;
    assert_eq!(drain_amqp(&ch, &queue, n).await.len(), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_refuses_a_dedup_window_shorter_than_the_redelivery_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .queue_with(
            "short",
            QueueOptions {
                dedup_window: Some(Duration::from_secs(60)),
                ..Default::default()
            },
        )
        .unwrap();
    let js = jetstream().await;
    let stream = unique("HORIZON");
    create_stream(&js, &stream, &[&unique("h.subject")]).await;
    let mut config = base_config();
    config.inbound = vec![InboundRoute::nats("i", &stream, "c", "short")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the route to stop", || async {
        bridge.stats()[0].stopped
    })
    .await;
    let e = bridge.stats()[0].last_error.clone().unwrap();
    assert!(
        e.contains("redelivery horizon") && e.contains("5m 30s"),
        "{e}"
    );
    bridge.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_filter_matching_no_subject_of_the_stream_is_an_error_retried() {
    // Review r3 #14: a typo in `filter_subject` looked exactly like a quiet stream.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("FILT"), unique("filt"));
    create_stream(&js, &stream, &[&format!("{subject}.in.>")]).await;
    let mut r = InboundRoute::nats("i", &stream, &unique("c"), "filtered");
    r.nats.as_mut().unwrap().filter_subject = Some(format!("{subject}.other.x"));
    let mut config = base_config();
    config.inbound = vec![r];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the filter reported", || async {
        let s = bridge.stats();
        route(&s, "i")
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("matches no subject of stream"))
    })
    .await;
    let s = bridge.stats();
    assert!(!route(&s, "i").connected, "{s:?}");
    assert!(!route(&s, "i").stopped, "retried, not stopped: {s:?}");
    // Once the stream captures the filter's subjects, the route runs without a restart.
    let mut st = js.get_stream(&stream).await.unwrap();
    let mut c = st.info().await.unwrap().config.clone();
    c.subjects.push(format!("{subject}.other.>"));
    js.update_stream(c).await.unwrap();
    js.publish(format!("{subject}.other.x"), "hello".into())
        .await
        .unwrap()
        .await
        .unwrap();
    until(20, "the message stored", || async {
        route(&bridge.stats(), "i").forwarded == 1
    })
    .await;
    let s = bridge.shutdown().await;
    assert!(s[0].last_error.is_none(), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_a_full_stream_is_waited_for_connected_and_not_a_reconnect() {
    // Review r3 #32: a stream at its limits (discard new) was reported as a lost connection.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("LIM"), unique("lim.x"));
    js.create_stream(async_nats::jetstream::stream::Config {
        name: stream.clone(),
        subjects: vec![subject.clone()],
        max_messages: 2,
        discard: async_nats::jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    })
    .await
    .unwrap();
    let q = no_retries(&store, "lim");
    for i in 0..6 {
        q.send(format!("m{i}")).unwrap();
    }
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "lim", &subject).window(4)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "the full stream reported", || async {
        route(&bridge.stats(), "o").broker_full > 0
    })
    .await;
    // Several pauses later: still connected, no reconnect, nothing failed or dead-lettered.
    until(20, "a few full pauses", || async {
        route(&bridge.stats(), "o").broker_full >= 3
    })
    .await;
    let s = bridge.stats();
    let o = route(&s, "o");
    assert!(o.connected, "{o:?}");
    assert_eq!((o.reconnects, o.failed, o.forwarded), (0, 0, 2), "{o:?}");
    let e = o.last_error.as_deref().unwrap_or_default();
    assert!(e.starts_with("broker full, waiting: nats: "), "{e}");
    assert_eq!(store.queue("DLQ").unwrap().stats().unwrap().messages, 0);
    // Room made: everything arrives, in queue order, once.
    let mut st = js.get_stream(&stream).await.unwrap();
    let mut c = st.info().await.unwrap().config.clone();
    c.max_messages = -1;
    js.update_stream(c).await.unwrap();
    until(30, "every message forwarded", || async {
        route(&bridge.stats(), "o").forwarded == 6
    })
    .await;
    let s = bridge.shutdown().await;
    assert_eq!((s[0].reconnects, s[0].failed), (0, 0), "{s:?}");
    let bodies: Vec<String> = read_stream(&js, &stream)
        .await
        .iter()
        .map(|m| String::from_utf8(m.payload.to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3", "m4", "m5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbitmq_inbound_header_names_nested_values_and_decimals_map_to_forwardable_text() {
    // Review r3 #20: header names no face takes (empty, control characters) were stored as
    // is, and an outbound NATS route then dead-lettered the message. Review r3 #24: nested
    // tables and decimals were lapin's debug dump.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let queue = unique("odd");
    declare_queue(&ch, &queue).await;
    let js = jetstream().await;
    let (stream, subject) = (unique("ODD"), unique("odd.out"));
    create_stream(&js, &stream, &[&subject]).await;
    let mut nested = FieldTable::default();
    nested.insert(
        "k".into(),
        AMQPValue::FieldArray(vec![AMQPValue::LongInt(1), AMQPValue::LongInt(2)].into()),
    );
    let mut h = FieldTable::default();
    h.insert("".into(), AMQPValue::LongString("empty".into()));
    h.insert("a\u{1}b".into(), AMQPValue::LongInt(1));
    h.insert("nested".into(), AMQPValue::FieldTable(nested));
    h.insert(
        "dec".into(),
        AMQPValue::DecimalValue(lapin::types::DecimalValue {
            scale: 1,
            value: 15,
        }),
    );
    ch.basic_publish(
        "".into(),
        queue.as_str().into(),
        BasicPublishOptions::default(),
        b"odd",
        BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id("odd-1".into())
            .with_headers(h),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let mut config = base_config();
    config.inbound = vec![InboundRoute::rabbitmq("i", &queue, "odd")];
    // What came in goes on to NATS: every stored name must be forwardable.
    config.outbound = vec![OutboundRoute::nats("o", "odd", &subject)];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "in and on to NATS", || async {
        let s = bridge.stats();
        route(&s, "i").forwarded == 1 && route(&s, "o").forwarded == 1
    })
    .await;
    let s = bridge.shutdown().await;
    assert!(s.iter().all(|r| r.failed == 0), "{s:?}");
    let m = read_stream(&js, &stream).await.remove(0);
    let back = mapping::from_string_headers(
        &m.payload,
        m.headers
            .iter()
            .flat_map(|h| h.iter())
            .filter_map(|(n, vs)| vs.first().map(|v| (n.as_ref(), v.as_str()))),
        None,
        0,
    );
    let str_of = |k: &str| match back.get_property(k) {
        Some(Value::Str(s)) => s.clone(),
        v => panic!("{k}: {v:?}"),
    };
    assert_eq!(str_of("%"), "empty");
    assert_eq!(back.get_property("a%01b"), Some(&Value::Int(1)));
    assert_eq!(str_of("nested"), r#"{"k":[1,2]}"#);
    assert_eq!(str_of("dec"), "1.5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_is_a_route_source_and_its_topic_travels_both_brokers() {
    // Review r3 #30: `queue = "$sub.<name>"` forwards a subscription; each message carries
    // the topic it was published to (`Mqlite-Topic`), back in as property `bridge.topic`.
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("SUB"), unique("sub.out"));
    create_stream(&js, &stream, &[&subject]).await;
    let (_conn, ch) = amqp().await;
    let (exchange, queue) = (unique("subx"), unique("subq"));
    declare_bound_queue(&ch, &exchange, &queue).await;
    for name in ["billing", "audit"] {
        store
            .subscribe(
                "orders.>",
                mqlite::SubscriptionOptions {
                    name: Some(name.into()),
                    durable: true,
                    ..Default::default()
                },
            )
            .unwrap();
    }
    store.topic("orders.eu").unwrap().publish("e").unwrap();
    store.topic("orders.us").unwrap().publish("u").unwrap();
    let mut config = base_config();
    config.outbound = vec![
        OutboundRoute::nats("n", "$sub.billing", &subject),
        OutboundRoute::rabbitmq("r", "$sub.audit", &exchange, &queue),
    ];
    config.inbound = vec![InboundRoute::rabbitmq("i", &queue, "back")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "both forwarded both ways", || async {
        let s = bridge.stats();
        ["n", "r", "i"].iter().all(|n| route(&s, n).forwarded == 2)
    })
    .await;
    bridge.shutdown().await;
    let msgs = read_stream(&js, &stream).await;
    let topics: Vec<&str> = msgs
        .iter()
        .map(|m| {
            m.headers
                .as_ref()
                .unwrap()
                .get(mapping::TOPIC)
                .unwrap()
                .as_str()
        })
        .collect();
    assert_eq!(topics, ["orders.eu", "orders.us"]);
    let back = store.queue("back").unwrap();
    for want in ["orders.eu", "orders.us"] {
        let d = back.receive(Some(Duration::ZERO)).unwrap().unwrap();
        assert_eq!(
            d.get_property(mapping::TOPIC_PROPERTY),
            Some(&Value::Str(want.into()))
        );
        d.ack().unwrap();
    }
}
