//! Shared by the broker tests: where the servers are (started by `run_tests.sh`), and small
//! broker-side helpers written with the same clients the bridge uses.
#![allow(dead_code)]

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need real nats-server and rabbitmq-server processes; \
             run bindings/bridge/run_tests.sh, which installs and starts them on loopback"
        )
    })
}

pub fn nats_url() -> String {
    var("MQLITE_TEST_NATS_URL")
}

pub fn amqp_url() -> String {
    var("MQLITE_TEST_AMQP_URL")
}

/// Runs `servers.sh <action> <server>` (start, stop, kill, restart).
pub fn servers(action: &str, server: &str) {
    let script = var("MQLITE_TEST_SERVERS");
    let out = Command::new("bash")
        .arg(&script)
        .arg(action)
        .arg(server)
        .output()
        .expect("running servers.sh");
    assert!(
        out.status.success(),
        "servers.sh {action} {server} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Polls `cond` until it holds, failing the test with `what` after `secs` seconds. (Waiting
/// for an event in another process — a broker, a bridge — not for a timer.)
pub async fn until<F: Future<Output = bool>>(secs: u64, what: &str, mut cond: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn jetstream() -> jetstream::Context {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats_url())
        .await
        .expect("connecting to nats-server");
    jetstream::new(client)
}

/// A file-backed stream capturing `subjects`.
pub async fn create_stream(js: &jetstream::Context, name: &str, subjects: &[&str]) {
    js.create_stream(stream::Config {
        name: name.to_string(),
        subjects: subjects.iter().map(|s| s.to_string()).collect(),
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .expect("creating a stream");
}

/// Every message of `stream`, in stream order, read with an ephemeral ordered consumer.
pub async fn read_stream(js: &jetstream::Context, name: &str) -> Vec<jetstream::Message> {
    use futures_util::StreamExt;
    let mut s = js.get_stream(name).await.expect("stream");
    let n = s.info().await.expect("stream info").state.messages as usize;
    let consumer = s
        .create_consumer(jetstream::consumer::pull::Config {
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut out = Vec::with_capacity(n);
    let mut msgs = consumer.messages().await.expect("messages");
    while out.len() < n {
        let m = tokio::time::timeout(Duration::from_secs(10), msgs.next())
            .await
            .expect("reading the stream timed out")
            .expect("stream ended")
            .expect("message");
        out.push(m);
    }
    out
}

pub async fn amqp() -> (Connection, Channel) {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .expect("connecting to rabbitmq-server");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// A durable queue bound to a durable direct exchange with its own name as routing key.
pub async fn declare_bound_queue(ch: &Channel, exchange: &str, queue: &str) {
    ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    declare_queue(ch, queue).await;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        queue.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
}

pub async fn declare_queue(ch: &Channel, queue: &str) {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await
    .expect("queue.declare");
}

/// Takes every message of `queue` (acking them), waiting up to 10 s for `n`.
pub async fn drain_amqp(
    ch: &Channel,
    queue: &str,
    n: usize,
) -> Vec<lapin::message::BasicGetMessage> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while out.len() < n && Instant::now() < deadline {
        match ch
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            Some(m) => out.push(m),
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    out
}

pub fn store(dir: &std::path::Path) -> std::sync::Arc<mqlite::Store> {
    std::sync::Arc::new(mqlite::Store::open(dir, mqlite::StoreOptions::default()).expect("store"))
}

pub fn base_config() -> mqlite_bridge::Config {
    mqlite_bridge::Config {
        nats: Some(mqlite_bridge::NatsServer {
            url: nats_url(),
            ack_timeout: Duration::from_secs(5),
        }),
        rabbitmq: Some(mqlite_bridge::RabbitServer {
            url: amqp_url(),
            ack_timeout: Duration::from_secs(30),
        }),
        origin: Some(unique("origin")),
        stats_interval: Duration::from_millis(200),
        reconnect: mqlite_bridge::Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
        },
        ..Default::default()
    }
}
