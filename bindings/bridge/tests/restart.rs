//! A broker restart while a route is forwarding a backlog, then a graceful stop: the route
//! must resume on its own (a publish or confirm that does not complete within `ack_timeout`
//! counts as a lost connection, and the whole window is given back at once), and SIGTERM must
//! end the process in bounded time with a final stats file. T20 missed this: it SIGKILLs the
//! bridge right after each broker restart, and its one graceful stop follows no restart.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const NATS_BACKLOG: usize = 20_000;
const AMQP_BACKLOG: usize = 3_000;

fn config(dir: &Path, exchange: &str, queue: &str, in_queue: &str) -> String {
    format!(
        r#"
store = "{store}"
create = true
origin = "restart"
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
ack_timeout = "2s"
[[outbound]]
name = "out-nats"
queue = "out-nats"
window = 256
nats = {{ subject = "restart.out" }}
[[outbound]]
name = "out-amqp"
queue = "out-amqp"
window = 256
rabbitmq = {{ exchange = "{exchange}", routing_key = "{queue}" }}
[[inbound]]
name = "in-nats"
queue = "in-nats"
nats = {{ stream = "RESTARTIN", consumer = "restart-in", ack_wait = "2s" }}
[[inbound]]
name = "in-amqp"
queue = "in-amqp"
rabbitmq = {{ queue = "{in_queue}" }}
"#,
        store = dir.join("store").display(),
        stats = dir.join("stats.json").display(),
        nats = nats_url(),
        amqp = amqp_url(),
    )
}

fn routes(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("stats.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["routes"].as_array().cloned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_forwarding_resumes_and_sigterm_exits_with_final_stats() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let js = jetstream().await;
    let _ = js.delete_stream("RESTART").await;
    create_stream(&js, "RESTART", &["restart.out"]).await;
    let _ = js.delete_stream("RESTARTIN").await;
    create_stream(&js, "RESTARTIN", &["restart.in"]).await;
    let (exchange, queue) = (unique("restartx"), unique("restart.q"));
    let in_queue = unique("restart.in");
    {
        let (_c, ch) = amqp().await;
        declare_bound_queue(&ch, &exchange, &queue).await;
        declare_queue(&ch, &in_queue).await;
    }
    {
        let store = mqlite::Store::open(dir.join("store"), Default::default()).unwrap();
        let body = vec![b'x'; 256];
        let q = store.queue("out-nats").unwrap();
        for chunk in (0..NATS_BACKLOG).collect::<Vec<_>>().chunks(1000) {
            q.send_batch(chunk.iter().map(|_| body.clone())).unwrap();
        }
        store
            .queue("out-amqp")
            .unwrap()
            .send_batch((0..AMQP_BACKLOG).map(|_| body.clone()))
            .unwrap();
        store.close().unwrap();
    }
    std::fs::write(
        dir.join("bridge.toml"),
        config(dir, &exchange, &queue, &in_queue),
    )
    .unwrap();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_mqlite-bridge"))
        .arg("--config")
        .arg(dir.join("bridge.toml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bridge.log")).unwrap())
        .spawn()
        .expect("starting mqlite-bridge");

    // Mid-forwarding: the NATS route has forwarded some and not all.
    until(120, "the NATS route forwarding", || {
        let r = routes(dir);
        async move { r.first().is_some_and(|r| r["forwarded"].as_u64() > Some(0)) }
    })
    .await;
    servers("kill", "nats");
    servers("kill", "rabbitmq");
    let r = routes(dir);
    let lag_at_kill = r[0]["lag"].as_u64().unwrap();
    assert!(
        lag_at_kill > 0,
        "the backlog was gone before the kill; raise NATS_BACKLOG"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    // While the broker is away the waiting messages show as lag.
    let r = routes(dir);
    assert!(
        r[0]["lag"].as_u64() > Some(0),
        "lag while NATS is down: {r:?}"
    );
    assert!(
        r[0]["last_error"].is_string(),
        "no error while NATS is down: {r:?}"
    );
    // Every route, inbound ones included, shows the outage: not connected, counted.
    let down = r.clone();
    for r in &r {
        assert_eq!(
            r["connected"], false,
            "connected while its broker is down: {r}"
        );
        assert!(
            r["reconnects"].as_u64() >= Some(1),
            "outage not counted: {r}"
        );
        assert!(r["last_error"].is_string(), "no error while down: {r}");
    }
    servers("start", "nats");
    servers("start", "rabbitmq");
    // One message to each inbound source: forwarding it clears the inbound routes' errors.
    let js = jetstream().await;
    js.publish("restart.in", "in".into())
        .await
        .unwrap()
        .await
        .unwrap();
    {
        let (_c, ch) = amqp().await;
        ch.basic_publish(
            "".into(),
            in_queue.as_str().into(),
            Default::default(),
            b"in",
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }

    // Resumes: the backlog drains (a stalled window would hold it for in_flight ×
    // ack_timeout, minutes).
    until(
        120,
        "both routes forwarding everything after the restart",
        || {
            let r = routes(dir);
            async move {
                r.len() == 4
                    && r.iter().all(|r| {
                        r["lag"] == 0
                            && r["in_flight"] == 0
                            && r["connected"] == true
                            && r["forwarded"].as_u64() > Some(0)
                    })
            }
        },
    )
    .await;
    let r = routes(dir);
    assert!(
        r[0]["reconnects"].as_u64() >= Some(1),
        "the NATS restart is not counted: {r:?}"
    );
    // The outage's error stays (with its time) on a route that had nothing left to forward
    // after it, and is over on one that forwarded since.
    let forwarded_since =
        |r: &serde_json::Value, i: usize| r["forwarded"].as_u64() > down[i]["forwarded"].as_u64();
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r["last_error"].is_null(), forwarded_since(r, i), "{r}");
    }
    let mut s = js.get_stream("RESTART").await.unwrap();
    assert_eq!(
        s.info().await.unwrap().state.messages,
        NATS_BACKLOG as u64,
        "every message once in the stream (the duplicate window drops resends)"
    );

    // SIGTERM: the graceful stop ends the process, with the stats file rewritten at the end.
    std::fs::remove_file(dir.join("stats.json")).unwrap();
    unsafe {
        libc::kill(bridge.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = bridge.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = bridge.kill();
            panic!(
                "SIGTERM did not stop the bridge: {}",
                std::fs::read_to_string(dir.join("bridge.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "graceful stop failed: {status}");
    let r = routes(dir);
    assert_eq!(r.len(), 4, "the stats file is not rewritten at stop");
    for (i, r) in r.iter().enumerate() {
        assert_eq!(r["stopped"], true, "{r}");
        assert_eq!(r["connected"], false, "{r}");
        assert_eq!(r["last_error"].is_null(), forwarded_since(r, i), "{r}");
        assert_eq!(r["lag"], 0, "{r}");
    }
    let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap();
    assert!(!log.contains('\x1b'), "ANSI colours in a log file");
    // Review r3 #27: the broker restart is the bridge's WARN, not lapin's own ERROR events
    // ("error doing IO", "Connection error"), which the default filter keeps out.
    let noise: Vec<&str> = log.lines().filter(|l| l.contains(" lapin::")).collect();
    assert!(noise.is_empty(), "lapin's own events in the log: {noise:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_that_cannot_start_stops_the_bridge_with_a_non_zero_status() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let queue = unique("refused.q");
    {
        let (_c, ch) = amqp().await;
        declare_queue(&ch, &queue).await;
    }
    // The queue forgets dedup keys after 1 s: far less than max_outage, so the inbound route
    // must refuse to run (a redelivery after an outage could be stored twice).
    let config = format!(
        r#"
store = "{store}"
create = true
stats_file = "{stats}"
[rabbitmq]
url = "{amqp}"
[queues.in]
dedup_window = "1s"
[[inbound]]
name = "refused-in"
queue = "in"
max_outage = "5m"
rabbitmq = {{ queue = "{queue}" }}
"#,
        store = dir.join("store").display(),
        stats = dir.join("stats.json").display(),
        amqp = amqp_url(),
    );
    std::fs::write(dir.join("bridge.toml"), config).unwrap();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_mqlite-bridge"))
        .arg("--config")
        .arg(dir.join("bridge.toml"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting mqlite-bridge");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = bridge.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = bridge.kill();
            panic!("the bridge kept running with a route that cannot run");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut bridge.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        !status.success(),
        "exit status 0 after a failed route: {err}"
    );
    assert!(
        err.contains("route \"refused-in\" stopped") && err.contains("dedup"),
        "{err}"
    );
    assert!(!err.contains('\x1b'), "ANSI colours on a pipe: {err}");
    let r = routes(dir);
    assert_eq!(r[0]["stopped"], true, "{r:?}");
    assert!(
        r[0]["last_error"].as_str().unwrap().contains("dedup"),
        "{r:?}"
    );
}

/// What an inbound route names may be missing: a stream, a consumer (with `create = false`),
/// a queue. The broker answers, so this is a misconfiguration, not an outage: an ERROR in the
/// log (seen with RUST_LOG=error) and the route's last_error, retried with backoff — and the
/// route runs as soon as an operator creates what was missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_stream_consumer_or_queue_is_an_error_retried_until_it_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let js = jetstream().await;
    let (no_stream, has_stream) = (unique("NOSTREAM"), unique("HASSTREAM"));
    let (s1, s2) = (unique("nostream"), unique("hasstream"));
    create_stream(&js, &has_stream, &[&s2]).await;
    let no_queue = unique("noqueue");
    let config = format!(
        r#"
store = "{store}"
create = true
stats_file = "{stats}"
stats_interval = "100ms"
[reconnect]
initial = "50ms"
max = "300ms"
[nats]
url = "{nats}"
[rabbitmq]
url = "{amqp}"
[[inbound]]
name = "no-stream"
queue = "a"
nats = {{ stream = "{no_stream}", consumer = "c" }}
[[inbound]]
name = "no-consumer"
queue = "b"
nats = {{ stream = "{has_stream}", consumer = "absent", create = false }}
[[inbound]]
name = "no-queue"
queue = "c"
rabbitmq = {{ queue = "{no_queue}" }}
"#,
        store = dir.join("store").display(),
        stats = dir.join("stats.json").display(),
        nats = nats_url(),
        amqp = amqp_url(),
    );
    std::fs::write(dir.join("bridge.toml"), config).unwrap();
    let mut bridge = Command::new(env!("CARGO_BIN_EXE_mqlite-bridge"))
        .arg("--config")
        .arg(dir.join("bridge.toml"))
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("bridge.log")).unwrap())
        .spawn()
        .expect("starting mqlite-bridge");
    until(60, "each route showing what is missing", || {
        let r = routes(dir);
        async move {
            r.len() == 3
                && r.iter().all(|r| {
                    r["connected"] == false
                        && r["stopped"] == false
                        && r["last_error_at_ms"].is_u64()
                        && r["last_error"].as_str().is_some_and(|e| {
                            e.contains("does not exist") || e.contains("NOT_FOUND")
                        })
                })
        }
    })
    .await;
    let log = std::fs::read_to_string(dir.join("bridge.log")).unwrap();
    for (route, name) in [
        ("no-stream", &no_stream),
        ("no-consumer", &"absent".to_string()),
        ("no-queue", &no_queue),
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains(route) && l.contains(name.as_str())),
            "no error naming {route} / {name}: {log}"
        );
    }

    // An operator creates them: each route connects and forwards, and its error is over.
    create_stream(&js, &no_stream, &[&s1]).await;
    let stream = js.get_stream(&has_stream).await.unwrap();
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("absent".into()),
            ack_policy: async_nats::jetstream::consumer::AckPolicy::Explicit,
            ..Default::default()
        })
        .await
        .unwrap();
    js.publish(s1, "1".into()).await.unwrap().await.unwrap();
    js.publish(s2, "2".into()).await.unwrap().await.unwrap();
    {
        let (_c, ch) = amqp().await;
        declare_queue(&ch, &no_queue).await;
        ch.basic_publish(
            "".into(),
            no_queue.as_str().into(),
            Default::default(),
            b"3",
            lapin::BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    }
    until(
        60,
        "each route forwarding once what it names exists",
        || {
            let r = routes(dir);
            async move {
                r.len() == 3
                    && r.iter().all(|r| {
                        r["connected"] == true && r["forwarded"] == 1 && r["last_error"].is_null()
                    })
            }
        },
    )
    .await;
    unsafe {
        libc::kill(bridge.id() as i32, libc::SIGTERM);
    }
    assert!(bridge.wait().unwrap().success());
    let _ = js.delete_stream(&no_stream).await;
    let _ = js.delete_stream(&has_stream).await;
}
