//! T20: bridges under faults. The `mqlite-bridge` command forwards both ways at once —
//! queue → JetStream, queue → RabbitMQ → (back in) queue, JetStream → queue — while, at random
//! moments, it is SIGKILLed and nats-server or rabbitmq-server is SIGKILLed and restarted.
//! 20 cycles (200 with MQLITE_SOAK=1). Then everything must have arrived exactly once:
//! 0 messages lost either way; the duplicates the crashes caused are counted where they
//! occurred and shown removed — by JetStream's duplicate window (the stream holds each id
//! once although the server saw some twice) and by mqlite's dedup window (the inbound queues
//! hold each message once although RabbitMQ held some twice and brokers redelivered some).

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use lapin::options::{BasicGetOptions, QueueBindOptions};
use lapin::types::FieldTable;

const K: usize = 200;

struct Rng(u64);
impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn config(dir: &Path, stream_in: &str, exchange: &str, loop_q: &str) -> String {
    format!(
        r#"
store = "{store}"
create = true
origin = "t20"
stats_file = "{stats}"
stats_interval = "100ms"
[reconnect]
initial = "50ms"
max = "500ms"
[nats]
url = "{nats}"
ack_timeout = "2s"
[rabbitmq]
url = "{amqp}"
# A crash fails the deliveries in flight: never let that dead-letter them.
[queues.out-nats]
max_redeliveries = -1
redelivery_delay = "10ms"
[queues.out-amqp]
max_redeliveries = -1
redelivery_delay = "10ms"
[[outbound]]
name = "out-nats"
queue = "out-nats"
window = 64
nats = {{ subject = "t20.out" }}
[[outbound]]
name = "out-amqp"
queue = "out-amqp"
window = 64
rabbitmq = {{ exchange = "{exchange}", routing_key = "{loop_q}" }}
[[inbound]]
name = "in-nats"
queue = "in-nats"
window = 64
max_outage = "1m"
nats = {{ stream = "{stream_in}", consumer = "t20", ack_wait = "2s" }}
[[inbound]]
name = "in-amqp"
queue = "in-amqp"
window = 64
max_outage = "1m"
rabbitmq = {{ queue = "{loop_q}" }}
"#,
        store = dir.join("store").display(),
        stats = dir.join("stats.json").display(),
        nats = nats_url(),
        amqp = amqp_url(),
    )
}

fn start_bridge(dir: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bridge.log"))
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_mqlite-bridge"))
        .arg("--config")
        .arg(dir.join("bridge.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting mqlite-bridge")
}

/// The inbound routes' duplicate and redelivery counters from the last stats file.
fn inbound_counts(dir: &Path) -> (u64, u64) {
    let Ok(text) = std::fs::read_to_string(dir.join("stats.json")) else {
        return (0, 0);
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    let mut out = (0, 0);
    for r in v["routes"].as_array().into_iter().flatten() {
        if r["direction"] == "inbound" {
            out.0 += r["duplicates"].as_u64().unwrap_or(0);
            out.1 += r["redelivered"].as_u64().unwrap_or(0);
        }
    }
    out
}

fn stats_file(dir: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join("stats.json")).ok()?).ok()
}

async fn publish_inbound(js: &async_nats::jetstream::Context, id: &str) {
    loop {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(id.to_string().into_bytes().into())
            .message_id(id);
        if let Ok(ack) = js.send_publish("t20.in", publish).await {
            if ack.await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Bodies of every message of `queue` (received and acked), with their counts.
fn drain_local(store: &mqlite::Store, queue: &str) -> HashMap<String, u32> {
    let q = store.queue(queue).unwrap();
    let mut out = HashMap::new();
    loop {
        let ds = q.receive_batch(1000, Some(Duration::ZERO)).unwrap();
        if ds.is_empty() {
            return out;
        }
        for d in &ds {
            *out.entry(String::from_utf8_lossy(d.body()).into_owned())
                .or_insert(0) += 1;
        }
        q.ack_batch(ds).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn t20_kill_the_bridge_and_restart_brokers_while_forwarding_both_ways() {
    let cycles = if std::env::var("MQLITE_SOAK").is_ok_and(|v| v == "1") {
        200
    } else {
        20
    };
    let seed = std::env::var("MQLITE_T20_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("T20: {cycles} cycles, seed {seed} (MQLITE_T20_SEED to replay)");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();

    // Broker side: fresh names so earlier runs do not interfere.
    let js = jetstream().await;
    let _ = js.delete_stream("T20OUT").await;
    let _ = js.delete_stream("T20IN").await;
    create_stream(&js, "T20OUT", &["t20.out"]).await;
    create_stream(&js, "T20IN", &["t20.in"]).await;
    let (exchange, loop_q, tap_q) = (unique("t20x"), unique("t20.loop"), unique("t20.tap"));
    {
        let (_c, ch) = amqp().await;
        declare_bound_queue(&ch, &exchange, &loop_q).await;
        declare_queue(&ch, &tap_q).await;
        // The tap sees every copy that reaches RabbitMQ.
        ch.queue_bind(
            tap_q.as_str().into(),
            exchange.as_str().into(),
            loop_q.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    // A plain NATS subscriber sees every publish the server receives, duplicates included.
    let seen_by_nats: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    {
        let mut sub = js.client().subscribe("t20.out").await.unwrap();
        let seen = seen_by_nats.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                if let Some(id) = m.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
                    *seen.lock().unwrap().entry(id.to_string()).or_insert(0) += 1;
                }
            }
        });
    }
    std::fs::write(
        dir.join("bridge.toml"),
        config(dir, "T20IN", &exchange, &loop_q),
    )
    .unwrap();

    let (mut kills, mut nats_restarts, mut rabbit_restarts) = (0, 0, 0);
    let (mut in_dups, mut in_redelivered) = (0u64, 0u64);
    for c in 0..cycles {
        {
            let store = mqlite::Store::open(dir.join("store"), Default::default()).unwrap();
            store
                .queue("out-nats")
                .unwrap()
                .send_batch((0..K).map(|j| format!("n-{c}-{j}")))
                .unwrap();
            store
                .queue("out-amqp")
                .unwrap()
                .send_batch((0..K).map(|j| format!("a-{c}-{j}")))
                .unwrap();
            store.close().unwrap();
        }
        for j in 0..K {
            publish_inbound(&js, &format!("i-{c}-{j}")).await;
        }
        let _ = std::fs::remove_file(dir.join("stats.json"));
        let mut bridge = start_bridge(dir);
        tokio::time::sleep(Duration::from_millis(rng.next(400))).await;
        match rng.next(4) {
            0 => {
                servers("restart", "nats");
                nats_restarts += 1;
                tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
            }
            1 => {
                servers("restart", "rabbitmq");
                rabbit_restarts += 1;
                tokio::time::sleep(Duration::from_millis(rng.next(300))).await;
            }
            _ => {}
        }
        bridge.kill().unwrap();
        bridge.wait().unwrap();
        kills += 1;
        let (d, r) = inbound_counts(dir);
        in_dups += d;
        in_redelivered += r;
    }

    // Let a last run forward everything, then stop it gracefully (SIGTERM). Messages RabbitMQ
    // had delivered to the bridge's prefetch but the stop left unstored go back to the queue:
    // then one more run takes them.
    let total = (cycles * K) as u64;
    for attempt in 0.. {
        assert!(attempt < 5, "RabbitMQ's loop queue never emptied");
        let _ = std::fs::remove_file(dir.join("stats.json"));
        let mut bridge = start_bridge(dir);
        until(300, "everything forwarded both ways", || {
            let js = js.clone();
            let dir = dir.to_path_buf();
            async move {
                let Some(v) = stats_file(&dir) else { return false };
                let routes = v["routes"].as_array().cloned().unwrap_or_default();
                let idle = routes.iter().all(|r| {
                    r["connected"] == true && r["lag"] == 0 && r["in_flight"] == 0
                });
                let Ok(mut s) = js.get_stream("T20OUT").await else { return false };
                let Ok(info) = s.info().await else { return false };
                if info.state.messages < total || !idle {
                    return false;
                }
                let Ok(stream_in) = js.get_stream("T20IN").await else { return false };
                let Ok(mut consumer) = stream_in
                    .get_consumer::<async_nats::jetstream::consumer::pull::Config>("t20")
                    .await
                else {
                    return false;
                };
                matches!(consumer.info().await, Ok(i) if i.num_pending == 0 && i.num_ack_pending == 0)
            }
        })
        .await;
        // SIGTERM: the graceful stop.
        unsafe {
            libc::kill(bridge.id() as i32, libc::SIGTERM);
        }
        let status = bridge.wait().unwrap();
        assert!(
            status.success(),
            "the bridge's graceful stop failed: {status}"
        );
        let (d, r) = inbound_counts(dir);
        in_dups += d;
        in_redelivered += r;
        let (_c, ch) = amqp().await;
        let left = ch
            .queue_declare(
                loop_q.as_str().into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count();
        if left == 0 {
            break;
        }
    }

    // 0 lost, 0 doubled — outbound to JetStream.
    let stored = read_stream(&js, "T20OUT").await;
    let mut ids = HashMap::new();
    for m in &stored {
        let id = m
            .headers
            .as_ref()
            .unwrap()
            .get("Nats-Msg-Id")
            .unwrap()
            .to_string();
        *ids.entry(id).or_insert(0u32) += 1;
    }
    assert_eq!(
        stored.len() as u64,
        total,
        "T20OUT holds every message once"
    );
    assert!(
        ids.values().all(|&n| n == 1),
        "an id stored twice in JetStream"
    );
    let mut bodies: Vec<String> = stored
        .iter()
        .map(|m| String::from_utf8_lossy(&m.payload).into_owned())
        .collect();
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len() as u64, total, "every outbound body once");
    let nats_seen: u64 = seen_by_nats
        .lock()
        .unwrap()
        .values()
        .map(|&n| n as u64)
        .sum();

    // RabbitMQ copies (the tap) vs unique.
    let (_c, ch) = amqp().await;
    let mut tap: HashMap<String, u32> = HashMap::new();
    while let Some(m) = ch
        .basic_get(tap_q.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
    {
        *tap.entry(String::from_utf8_lossy(&m.delivery.data).into_owned())
            .or_insert(0) += 1;
    }
    let rabbit_copies: u64 = tap.values().map(|&n| n as u64).sum();
    assert_eq!(
        tap.len() as u64,
        total,
        "RabbitMQ received every outbound message"
    );

    // The local side: nothing left outbound, nothing dead-lettered, inbound exactly once.
    let store = mqlite::Store::open(dir.join("store"), Default::default()).unwrap();
    for q in ["out-nats", "out-amqp", "DLQ"] {
        assert_eq!(
            store.queue(q).unwrap().stats().unwrap().messages,
            0,
            "{q} not empty"
        );
    }
    let in_amqp = drain_local(&store, "in-amqp");
    let in_nats = drain_local(&store, "in-nats");
    for (name, got, prefix) in [("in-amqp", &in_amqp, "a"), ("in-nats", &in_nats, "i")] {
        assert_eq!(got.len() as u64, total, "{name}: messages lost");
        assert!(
            got.values().all(|&n| n == 1),
            "{name}: a message stored twice"
        );
        for c in 0..cycles {
            for j in [0, K - 1] {
                assert!(
                    got.contains_key(&format!("{prefix}-{c}-{j}")),
                    "{name}: {prefix}-{c}-{j} missing"
                );
            }
        }
    }
    store.close().unwrap();

    println!(
        "T20: {cycles} cycles: {kills} bridge SIGKILLs, {nats_restarts} nats-server and \
         {rabbit_restarts} rabbitmq-server restarts (SIGKILL + start); {total} messages each way \
         per route: 0 lost, 0 stored twice"
    );
    println!(
        "T20: outbound → JetStream: the server saw {nats_seen} publishes of {total} ids \
         (≥ {} duplicates, all dropped by the stream's duplicate window)",
        nats_seen.saturating_sub(total)
    );
    println!(
        "T20: outbound → RabbitMQ: {rabbit_copies} copies of {total} messages reached RabbitMQ \
         ({} duplicates; RabbitMQ has no publisher dedup) — removed by mqlite's dedup window on \
         the way back in (in-amqp holds {} messages)",
        rabbit_copies - total,
        in_amqp.len()
    );
    println!(
        "T20: inbound: at least {in_dups} deliveries dropped by mqlite's dedup window \
         (broker redeliveries seen: at least {in_redelivered}; counters of killed runs are \
         read from their last stats file)"
    );
}
