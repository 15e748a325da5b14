//! W12: the bridge forwards 200,000 messages (100 B bodies) from an mqlite queue to NATS
//! JetStream (file storage, the server fsyncing every write: `sync_interval: always`), each
//! publish confirmed by its PubAck before the local ack — beside the broker's own async publish
//! rate measured in the same run (async-nats publishing the same messages with up to 4,096
//! PubAcks outstanding, every ack awaited). Target: ≥ 0.5× the broker's rate.
//!
//! Run with `bash benches/bridge/run.sh` (it installs and starts nats-server on loopback).
//! Environment: MQLITE_BENCH_QUICK=1 (20,000 messages), MQLITE_BENCH_RUNS (default 3),
//! MQLITE_BENCH_W12_WINDOW (the route's window, default 256), MQLITE_BENCH_DIR (where the store
//! is made, default target/), MQLITE_TEST_NATS_URL.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use mqlite_bridge::{Bridge, Config, NatsServer, OutboundRoute};

const BODY: [u8; 100] = [b'x'; 100];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace([',', '_'], "").parse().ok())
        .unwrap_or(default)
}

async fn fresh_stream(js: &jetstream::Context, name: &str, subject: &str) {
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("creating the stream");
}

/// The broker's own async publish rate: publish without waiting, await acks in order.
async fn broker_rate(js: &jetstream::Context, n: usize) -> f64 {
    fresh_stream(js, "W12BASE", "w12.base").await;
    let start = Instant::now();
    let mut acks = VecDeque::with_capacity(4096);
    for _ in 0..n {
        if acks.len() == 4096 {
            let a: jetstream::context::PublishAckFuture = acks.pop_front().expect("non-empty");
            a.await.expect("PubAck");
        }
        acks.push_back(
            js.publish("w12.base", BODY.to_vec().into())
                .await
                .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("PubAck");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// The bridge's rate: a queue holding `n` messages, forwarded until all are confirmed and acked.
async fn bridge_rate(js: &jetstream::Context, url: &str, n: usize, window: usize) -> f64 {
    fresh_stream(js, "W12", "w12.bridge").await;
    let base = std::env::var("MQLITE_BENCH_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").into());
    let dir = tempfile::tempdir_in(base).expect("temp dir");
    let store = Arc::new(mqlite::Store::open(dir.path(), Default::default()).expect("store"));
    let q = store.queue("w12").expect("queue");
    for chunk in 0..n.div_ceil(1000) {
        let m = 1000.min(n - chunk * 1000);
        q.send_batch((0..m).map(|_| &BODY[..])).expect("fill");
    }
    let config = Config {
        nats: Some(NatsServer {
            url: url.into(),
            ack_timeout: Duration::from_secs(30),
        }),
        origin: Some("w12".into()),
        outbound: vec![OutboundRoute::nats("w12", "w12", "w12.bridge").window(window)],
        ..Config::default()
    };
    let start = Instant::now();
    let bridge = Bridge::start(store.clone(), config).await.expect("bridge");
    while bridge.stats()[0].forwarded < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let stats = bridge.shutdown().await;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(stats[0].failed, 0);
    assert_eq!(
        q.stats().expect("stats").messages,
        0,
        "every message acked locally"
    );
    let mut s = js.get_stream("W12").await.expect("stream");
    assert_eq!(s.info().await.expect("info").state.messages, n as u64);
    store.close().expect("close");
    n as f64 / secs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    let quick = std::env::var("MQLITE_BENCH_QUICK").is_ok_and(|v| v == "1");
    let n = if quick { 20_000 } else { 200_000 };
    let runs = env_usize("MQLITE_BENCH_RUNS", 3).max(1);
    let window = env_usize("MQLITE_BENCH_W12_WINDOW", 256);
    let url = std::env::var("MQLITE_TEST_NATS_URL")
        .expect("MQLITE_TEST_NATS_URL: run benches/bridge_w12.sh, which starts nats-server");
    let client = async_nats::connect(&url)
        .await
        .expect("connecting to nats-server");
    let version = client.server_info().version;
    // Acks of a server that fsyncs every write can take seconds under 4,096 outstanding.
    let js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(60))
        .build(client);
    println!(
        "W12: forward {n} messages of 100 B from an mqlite queue to JetStream (nats-server {version}, \
         file storage, sync_interval: always), window {window}, {runs} runs"
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..runs {
        // Alternate which side goes first, so a burst of load from elsewhere hits both alike.
        if r % 2 == 0 {
            theirs.push(broker_rate(&js, n).await);
            ours.push(bridge_rate(&js, &url, n, window).await);
        } else {
            ours.push(bridge_rate(&js, &url, n, window).await);
            theirs.push(broker_rate(&js, n).await);
        }
        println!(
            "  run {}: bridge {:>9.0} msgs/s   broker async publish {:>9.0} msgs/s",
            r + 1,
            ours[r],
            theirs[r]
        );
    }
    let (lo, hi) = (
        ours.iter().cloned().fold(f64::MAX, f64::min),
        ours.iter().cloned().fold(0.0, f64::max),
    );
    let (blo, bhi) = (
        theirs.iter().cloned().fold(f64::MAX, f64::min),
        theirs.iter().cloned().fold(0.0, f64::max),
    );
    let (m, b) = (median(&mut ours), median(&mut theirs));
    let ratio = m / b;
    println!(
        "W12  bridge {m:>9.0} msgs/s ({lo:.0}–{hi:.0})   JetStream async publish {b:>9.0} msgs/s \
         ({blo:.0}–{bhi:.0})   ratio {ratio:.2}x   target >= 0.50x: {}",
        if ratio >= 0.5 { "PASS" } else { "MISS" }
    );
}
