//! What a route reports while it sets up, against the real brokers (started by
//! `run_tests.sh`): nothing after a clean start; the broker's own reply for a missing RabbitMQ
//! exchange (not a lost connection); and a refusal naming both routes when a stream captures
//! the subject an outbound route publishes from the queue the inbound route stores into.

mod common;

use common::*;
use lapin::options::{ExchangeDeleteOptions, QueueBindOptions};
use lapin::types::FieldTable;
use mqlite_bridge::{Bridge, InboundRoute, OutboundRoute, RouteStats};

fn route(stats: &[RouteStats], name: &str) -> RouteStats {
    stats
        .iter()
        .find(|s| s.name == name)
        .expect("route")
        .clone()
}

/// The shared NATS client connects in the background: a route that tried before it was done
/// used to keep "nats: not connected" as its last error for as long as it stayed idle.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_routes_show_no_error_after_a_clean_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let (stream, subject) = (unique("IDLE"), unique("idle.subject"));
    create_stream(&js, &stream, &[&subject]).await;
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("o", "idle-out", &subject)];
    config.inbound = vec![InboundRoute::nats("i", &stream, "idle", "idle-in")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(20, "both routes connected", || async {
        bridge.stats().iter().all(|s| s.connected)
    })
    .await;
    for s in bridge.shutdown().await {
        assert_eq!(s.last_error, None, "{s:?}");
        assert_eq!(s.reconnects, 0, "{s:?}");
    }
}

async fn exchange_with_queue(ch: &lapin::Channel, exchange: &str, queue: &str) {
    declare_bound_queue(ch, exchange, queue).await;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

/// A missing exchange is found at connect (a passive declare) and reported with the broker's
/// reply, every attempt, until it is created; one deleted while the route runs closes the
/// channel: the message is given back (not dead-lettered), the broker's 404 is the last error,
/// and the channel's close is not counted as a reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_exchange_is_reported_with_the_broker_reply_until_it_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let (_conn, ch) = amqp().await;
    let (exchange, bound) = (unique("x-missing"), unique("q-bound"));
    let q = store.queue("out").unwrap();
    q.send("first").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::rabbitmq("o", "out", &exchange, "k")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    let not_found = |s: &RouteStats| {
        s.last_error.as_deref().is_some_and(|e| {
            e.contains(&format!("exchange {exchange:?} not found")) && e.contains("(404)")
        })
    };
    until(20, "the broker's 404 as the last error", || async {
        not_found(&route(&bridge.stats(), "o"))
    })
    .await;
    let s = route(&bridge.stats(), "o");
    assert_eq!(
        (s.connected, s.reconnects, s.failed),
        (false, 0, 0),
        "{s:?}"
    );
    exchange_with_queue(&ch, &exchange, &bound).await;
    until(20, "forwarded once the exchange exists", || async {
        let s = route(&bridge.stats(), "o");
        s.forwarded == 1 && s.last_error.is_none()
    })
    .await;
    // Deleted under the running route: the next publish closes the channel.
    ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .expect("exchange.delete");
    q.send("second").unwrap();
    until(20, "the 404 again", || async {
        not_found(&route(&bridge.stats(), "o"))
    })
    .await;
    exchange_with_queue(&ch, &exchange, &bound).await;
    until(20, "the second forwarded", || async {
        route(&bridge.stats(), "o").forwarded == 2
    })
    .await;
    let s = route(&bridge.shutdown().await, "o");
    assert_eq!(
        (s.reconnects, s.failed, s.last_error.clone()),
        (0, 0, None),
        "{s:?}"
    );
    assert!(store.queue("DLQ").unwrap().stats().unwrap().messages == 0);
    let got = drain_amqp(&ch, &bound, 2).await;
    let bodies: Vec<&[u8]> = got.iter().map(|m| m.delivery.data.as_slice()).collect();
    assert_eq!(bodies, [b"first".as_slice(), b"second".as_slice()]);
}

/// The stream's subjects live on the server: a stream capturing the subject an outbound route
/// publishes to from the very queue an inbound route (reading that stream) stores into is a
/// loop. The inbound route is refused at connect naming both routes; the outbound one runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_feeding_its_own_queue_is_refused_at_connect_naming_both_routes() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let js = jetstream().await;
    let stream = unique("LOOP");
    let prefix = unique("loop");
    create_stream(&js, &stream, &[&format!("{prefix}.>")]).await;
    let q = store.queue("loop").unwrap();
    q.send("once").unwrap();
    let mut config = base_config();
    config.outbound = vec![OutboundRoute::nats("out", "loop", &format!("{prefix}.a"))];
    config.inbound = vec![InboundRoute::nats("in", &stream, "loopc", "loop")];
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(
        20,
        "the inbound route refused, the message forwarded",
        || async {
            let stats = bridge.stats();
            let i = route(&stats, "in");
            route(&stats, "out").forwarded == 1
                && i.last_error.as_deref().is_some_and(|e| {
                    e.contains("outbound route \"out\"")
                        && e.contains("inbound route \"in\"")
                        && e.contains(&format!("{prefix}.>"))
                })
        },
    )
    .await;
    let stats = bridge.shutdown().await;
    let (o, i) = (route(&stats, "out"), route(&stats, "in"));
    assert_eq!((i.forwarded, o.forwarded), (0, 1), "{i:?} {o:?}");
    assert_eq!(read_stream(&js, &stream).await.len(), 1);
}
