//! Review r9 #2, #6: what the broker refuses at connect — a wrong password, a missing vhost, a
//! port that does not speak AMQP, a push consumer — is a misconfiguration, logged at ERROR on
//! every attempt naming the cause (as the README promises), not one "broker not reachable"
//! WARN followed by silent debug retries. Against the real brokers (started by
//! `run_tests.sh`); the bridge's log is captured (one test per binary: the subscriber is
//! global).

mod common;

use std::sync::{Arc, Mutex};

use async_nats::jetstream::consumer::push;
use common::*;
use mqlite_bridge::{Bridge, InboundRoute, OutboundRoute};

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    /// The captured lines of route `route` at `level`.
    fn lines(&self, route: &str, level: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).to_string();
        let tag = format!("route={route}");
        text.lines()
            .filter(|l| l.contains(&tag) && l.contains(level))
            .map(str::to_string)
            .collect()
    }
}

/// Runs one route until its ERROR lines number 3, then checks each names `cause` and that no
/// attempt was logged as "broker not reachable".
async fn refused_every_attempt(log: &Log, config: mqlite_bridge::Config, route: &str, cause: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let bridge = Bridge::start(store.clone(), config).await.unwrap();
    until(60, &format!("3 ERROR lines of route {route}"), || async {
        log.lines(route, "ERROR").len() >= 3
    })
    .await;
    let stats = bridge.shutdown().await;
    let errors = log.lines(route, "ERROR");
    for e in &errors {
        assert!(e.contains(cause), "{route}: {e}");
    }
    let all = log.lines(route, "");
    assert!(
        !all.iter().any(|l| l.contains("not reachable")),
        "{route}: {all:#?}"
    );
    let last = stats[0].last_error.clone().unwrap_or_default();
    assert!(last.contains(cause), "{route}: {last}");
    assert!(!stats[0].connected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_refusals_are_errors_on_every_attempt_naming_the_cause() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("mqlite_bridge=debug"))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let amqp = amqp_url();
    let (scheme_auth, rest) = amqp.split_once('@').expect("amqp url with credentials");
    let host_port = rest.split('/').next().unwrap();

    // A wrong password: 403 ACCESS_REFUSED at login.
    let mut config = base_config();
    let user = scheme_auth.rsplit_once(':').unwrap().0;
    config.rabbitmq.as_mut().unwrap().url = format!("{user}:wrong-password@{host_port}/%2f");
    config.outbound = vec![OutboundRoute::rabbitmq("badpw", "q1", "", "q1")];
    refused_every_attempt(&log, config, "badpw", "ACCESS_REFUSED").await;

    // A vhost that does not exist: 530 NOT_ALLOWED.
    let mut config = base_config();
    config.rabbitmq.as_mut().unwrap().url = format!("{scheme_auth}@{host_port}/no-such-vhost");
    config.inbound = vec![InboundRoute::rabbitmq("vhost", "src", "q2")];
    refused_every_attempt(&log, config, "vhost", "NOT_ALLOWED").await;

    // NATS's port given as RabbitMQ's: not AMQP at all.
    let nats = nats_url();
    let nats_port = nats.rsplit(':').next().unwrap();
    let mut config = base_config();
    config.rabbitmq.as_mut().unwrap().url = format!("{scheme_auth}@127.0.0.1:{nats_port}/%2f");
    config.outbound = vec![OutboundRoute::rabbitmq("notamqp", "q3", "", "q3")];
    refused_every_attempt(&log, config, "notamqp", "did not answer as AMQP 0-9-1").await;

    // A push consumer, found (create = false) or met when creating (create = true).
    let js = jetstream().await;
    let stream = unique("PUSH");
    create_stream(&js, &stream, &[&unique("push.subject")]).await;
    let s = js.get_stream(&stream).await.unwrap();
    for (name, create) in [("push-found", false), ("push-create", true)] {
        s.create_consumer(push::Config {
            durable_name: Some(name.into()),
            deliver_subject: unique("deliver"),
            ..Default::default()
        })
        .await
        .unwrap();
        let mut route = InboundRoute::nats(name, &stream, name, name);
        route.nats.as_mut().unwrap().create = create;
        let mut config = base_config();
        config.inbound = vec![route];
        refused_every_attempt(&log, config, name, "is a push consumer").await;
    }
}
