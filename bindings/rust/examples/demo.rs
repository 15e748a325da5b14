//! The mqlite demo: a producer, a consumer that fails, redelivery with backoff, the dead-letter
//! queue, a restart that loses nothing, and a replay.
//!
//! Run: `cargo run --release --example demo [STORE_DIR]`

use mqlite::{Message, QueueOptions, RedeliveryPolicy, ReplayFilter, Store, StoreOptions};
use std::time::{Duration, Instant};

fn main() -> mqlite::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let d = std::env::temp_dir().join(format!("mqlite-demo-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            d
        });
    // Short delays so the demo runs in seconds: 100 ms, then ×5 backoff, 3 redeliveries.
    let policy = RedeliveryPolicy {
        max_redeliveries: 3,
        initial_redelivery_delay: Duration::from_millis(100),
        use_exponential_backoff: true,
        backoff_multiplier: 5.0,
        ..Default::default()
    };
    let opts = || QueueOptions {
        redelivery: Some(policy.clone()),
        ..Default::default()
    };
    let start = Instant::now();
    let t = || format!("{:>6.3}s", start.elapsed().as_secs_f64());

    println!("== store at {}", dir.display());
    let store = Store::open(&dir, StoreOptions::default())?;
    let orders = store.queue_with("orders", opts())?;

    println!("== producer: 5 orders, each durable (fdatasync'd) when send returns");
    for n in 1..=5 {
        let id =
            orders.send(Message::new(format!("order #{n}")).property("amount", 10 * n as i64))?;
        println!("{}  sent   order #{n} as {id}", t());
    }

    println!("== consumer: order #2 fails once, order #4 always fails");
    let mut attempts_2 = 0;
    while let Some(d) = orders.receive(Some(Duration::from_secs(5)))? {
        let body = String::from_utf8_lossy(d.body()).into_owned();
        let fail = match body.as_str() {
            "order #2" => {
                attempts_2 += 1;
                attempts_2 == 1
            }
            "order #4" => true,
            _ => false,
        };
        if fail {
            println!(
                "{}  FAIL   {body} (delivery {}, redelivered={})",
                t(),
                d.delivery_count(),
                d.redelivered()
            );
            d.nack(&format!("payment service rejected {body}"))?;
        } else {
            println!("{}  ack    {body} (delivery {})", t(), d.delivery_count());
            d.ack()?;
        }
        if orders.stats()?.messages == 0 {
            break;
        }
    }

    println!("== dead-letter queue");
    let dlq = store.queue("DLQ")?;
    for m in dlq.browse(10)? {
        let i = m
            .dead_letter_info()
            .expect("dead letters carry why they died");
        println!(
            "   {}  from {:?} {}: reason={} deliveries={} last failure={:?}",
            String::from_utf8_lossy(m.body()),
            i.original_queue,
            i.original_id,
            i.reason,
            i.delivery_count,
            i.last_failure
        );
    }

    println!("== restart: send one more, close, reopen");
    orders.send("order #6")?;
    drop((orders, dlq));
    store.close()?;
    drop(store);
    let store = Store::open(&dir, StoreOptions::default())?;
    let orders = store.queue_with("orders", opts())?;
    let dlq = store.queue("DLQ")?;
    println!(
        "   orders: {} waiting; DLQ: {} dead letter(s)",
        orders.stats()?.messages,
        dlq.stats()?.messages
    );

    println!("== replay the dead letters (the payment service is fixed)");
    let n = dlq.replay(&ReplayFilter::default())?;
    println!("   replayed {n}");
    for d in orders.receive_batch(10, Some(Duration::from_secs(1)))? {
        println!(
            "{}  ack    {} (delivery {})",
            t(),
            String::from_utf8_lossy(d.body()),
            d.delivery_count()
        );
        d.ack()?;
    }
    let s = orders.stats()?;
    println!(
        "== done: orders acked={} redelivered={} dead-lettered={} replayed={}",
        s.acked, s.redelivered, s.dead_lettered, s.replayed
    );
    store.close()?;
    Ok(())
}
