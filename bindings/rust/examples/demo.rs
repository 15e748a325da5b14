//! The mqlite demo: a producer, a consumer that fails, redelivery with backoff, the dead-letter
//! queue, a restart that loses nothing, and a replay.
//!
//! Run: `cargo run --release --example demo [STORE_DIR]`
//!
//! Without STORE_DIR the store lives in a temporary directory that is removed at the end; with
//! it, the store is kept there for inspection.

use mqlite::{Message, QueueOptions, RedeliveryPolicy, ReplayFilter, Store, StoreOptions};
use std::time::{Duration, Instant};

/// What the demo did, counted by the demo itself: `Queue::stats` counts only since the store was
/// opened, so after the restart it no longer covers the first half.
#[derive(Default)]
struct Totals {
    sent: u64,
    acked: u64,
    nacked: u64,
    redelivered: u64,
    dead_lettered: u64,
    replayed: u64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The TempDir is removed when dropped: at the end, or when an error returns early.
    let (dir, temp) = match std::env::args().nth(1) {
        Some(d) => (std::path::PathBuf::from(d), None),
        None => {
            let t = tempfile::Builder::new().prefix("mqlite-demo-").tempdir()?;
            (t.path().join("store"), Some(t))
        }
    };
    let mut total = Totals::default();
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

    match temp {
        Some(_) => println!(
            "== store at {} (temporary: removed at the end)",
            dir.display()
        ),
        None => println!("== store at {}", dir.display()),
    }
    let store = Store::open(&dir, StoreOptions::default())?;
    let orders = store.queue_with("orders", opts())?;

    println!("== producer: 5 orders, each durable (fdatasync'd) when send returns");
    for n in 1..=5 {
        let id =
            orders.send(Message::new(format!("order #{n}")).property("amount", 10 * n as i64))?;
        total.sent += 1;
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
        total.redelivered += u64::from(d.redelivered());
        if fail {
            total.nacked += 1;
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
            total.acked += 1;
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
        total.dead_lettered += 1;
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
    total.sent += 1;
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
    total.replayed += n;
    for d in orders.receive_batch(10, Some(Duration::from_secs(1)))? {
        println!(
            "{}  ack    {} (delivery {})",
            t(),
            String::from_utf8_lossy(d.body()),
            d.delivery_count()
        );
        total.redelivered += u64::from(d.redelivered());
        d.ack()?;
        total.acked += 1;
    }
    println!(
        "== done: sent={} acked={} nacked={} redelivered={} dead-lettered={} replayed={} (whole demo)",
        total.sent, total.acked, total.nacked, total.redelivered, total.dead_lettered, total.replayed
    );
    let s = orders.stats()?;
    println!(
        "   orders.stats() since the reopen (its counters restart at each open): acked={} redelivered={} dead-lettered={} replayed={}",
        s.acked, s.redelivered, s.dead_lettered, s.replayed
    );
    store.close()?;
    drop(store);
    if let Some(t) = temp {
        let path = t.path().to_path_buf();
        t.close()?;
        println!("== removed {}", path.display());
    }
    Ok(())
}
