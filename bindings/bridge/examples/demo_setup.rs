//! Prepares the brokers and the store for `bridge.example.toml` (used by `try.sh`): streams
//! ORDERS and COMMANDS with three commands, RabbitMQ exchange `audit` with queue `audit` and
//! queue `jobs` with three jobs, and three messages in each of the store's queues `orders` and
//! `audit`. `demo_setup show` prints what arrived on each side instead.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

/// The demo store: `MQLITE_DEMO_STORE` (try.sh sets it to a fresh temporary directory), else
/// the path `bridge.example.toml` names.
fn store_path() -> String {
    std::env::var("MQLITE_DEMO_STORE").unwrap_or_else(|_| "/tmp/mqlite-bridge-demo/store".into())
}

/// A broker port: the environment's (`servers.sh` starts the brokers there too), else the default.
fn port(var: &str, default: u16) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let nats = format!("nats://127.0.0.1:{}", port("MQLITE_NATS_PORT", 14222));
    let js = jetstream::new(async_nats::connect(nats).await?);
    let amqp = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f",
        port("MQLITE_AMQP_PORT", 15699)
    );
    let conn = Connection::connect(&amqp, ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    if std::env::args().nth(1).as_deref() == Some("show") {
        let store = mqlite::Store::open(store_path(), Default::default())?;
        for q in ["commands", "jobs", "orders", "audit", "DLQ"] {
            println!(
                "mqlite queue {q:9}: {} messages",
                store.queue(q)?.stats()?.messages
            );
        }
        for s in ["ORDERS", "COMMANDS"] {
            let mut st = js.get_stream(s).await?;
            println!(
                "JetStream {s:9}: {} messages",
                st.info().await?.state.messages
            );
        }
        let audit = ch
            .queue_declare(
                "audit".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await?;
        println!("RabbitMQ queue audit : {} messages", audit.message_count());
        return Ok(());
    }
    for (name, subject) in [("ORDERS", "orders.>"), ("COMMANDS", "commands.>")] {
        js.get_or_create_stream(stream::Config {
            name: name.into(),
            subjects: vec![subject.into()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await?;
    }
    for i in 1..=3 {
        js.publish("commands.reboot", format!("command {i}").into())
            .await?
            .await?;
    }
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.exchange_declare(
        "audit".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    )
    .await?;
    for q in ["audit", "jobs"] {
        ch.queue_declare(q.into(), durable, FieldTable::default())
            .await?;
    }
    ch.queue_bind(
        "audit".into(),
        "audit".into(),
        "audit.event".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await?;
    for i in 1..=3 {
        let props = BasicProperties::default()
            .with_message_id(format!("job-{i}").as_str().into())
            .with_delivery_mode(2);
        ch.basic_publish(
            "".into(),
            "jobs".into(),
            BasicPublishOptions::default(),
            format!("job {i}").as_bytes(),
            props,
        )
        .await?;
    }
    let store = mqlite::Store::open(store_path(), Default::default())?;
    for i in 1..=3 {
        store
            .queue("orders")?
            .send(mqlite::Message::new(format!("order {i}")).property("amount", 10i64 * i))?;
        store
            .queue("audit")?
            .send(mqlite::Message::new(format!("audit {i}")).correlation_id(format!("req-{i}")))?;
    }
    store.close()?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    println!("brokers and store {} ready", store_path());
    Ok(())
}
