//! W11: a topic with 10 durable subscriptions: publish (batch of 1,000 and async with a callback
//! per message), then drain every subscription; disk use against one queue holding the same
//! messages. Beside it, in the same run: the SQLite baseline's W2 (1,000 INSERTs per
//! transaction) and W3 (SELECT + DELETE, 100 per transaction), and mqlite's own queue.

use super::*;
use mqlite::SubscriptionOptions;

/// Subscriptions of W11.
const SUBS: usize = 10;

/// A fresh store with `SUBS` durable subscriptions to `w11.>` and the topic `w11.t`.
struct Fanout {
    topic: mqlite::Topic,
    subs: Vec<mqlite::Subscription>,
    store: Store,
    dir: tempfile::TempDir,
}

impl Fanout {
    fn new(cfg: &Cfg) -> Fanout {
        let dir = cfg.tempdir("mqlite-w11");
        let store = open_store(dir.path());
        let subs = (0..SUBS)
            .map(|i| {
                store
                    .subscribe(
                        "w11.>",
                        SubscriptionOptions {
                            name: Some(format!("s{i}")),
                            durable: true,
                            ..Default::default()
                        },
                    )
                    .expect("subscribe")
            })
            .collect();
        let topic = store.topic("w11.t").expect("topic");
        topic
            .publish(Message::new(&b"warm-up"[..]))
            .expect("warm-up");
        let f = Fanout {
            topic,
            subs,
            store,
            dir,
        };
        f.drain_all(1);
        f
    }

    fn publish_batches(&self, n: usize, b: &[u8]) {
        let mut left = n;
        while left > 0 {
            let k = left.min(1_000);
            let ids = self
                .topic
                .publish_batch((0..k).map(|_| Message::new(b)))
                .expect("publish_batch");
            assert_eq!(ids.len(), k);
            left -= k;
        }
    }

    /// Drains `k` messages from every subscription, one after another.
    fn drain_all(&self, k: usize) {
        for s in &self.subs {
            let mut got = 0;
            while got < k {
                let ds = s
                    .receive_batch((k - got).min(1_000), Some(Duration::ZERO))
                    .expect("receive_batch");
                assert!(!ds.is_empty(), "a subscription ran dry");
                got += ds.len();
                s.ack_batch(ds).expect("ack_batch");
            }
        }
    }
}

fn ours_publish_batch<'a>(cfg: &Cfg) -> Step<'a> {
    let f = Fanout::new(cfg);
    let b = body(100);
    Box::new(move |k| {
        let t0 = Instant::now();
        f.publish_batches(k, &b);
        t0.elapsed()
    })
}

fn ours_publish_async<'a>(cfg: &Cfg) -> Step<'a> {
    let f = Fanout::new(cfg);
    let b = body(100);
    Box::new(move |k| {
        let f = &f; // capture the whole store (not just the topic field), so it stays open
        let done = Completions::new(k);
        let t0 = Instant::now();
        for _ in 0..k {
            let d = done.clone();
            f.topic
                .publish_async(Message::new(b.as_slice()), move |r| d.hit(r.is_ok()))
                .expect("publish_async");
        }
        done.wait();
        t0.elapsed()
    })
}

/// Drains: a flushed backlog of `n` in every subscription (untimed); `k` per step from each.
/// The rate counts deliveries (k × 10 per step): each subscription's own drain rate, since
/// they are drained one after another.
fn ours_drain<'a>(cfg: &Cfg, n: usize) -> Step<'a> {
    let f = Fanout::new(cfg);
    f.publish_batches(n, &body(100));
    f.store.flush().expect("flush");
    Box::new(move |k| {
        let t0 = Instant::now();
        f.drain_all(k / SUBS);
        t0.elapsed()
    })
}

/// Journal bytes written in `dir` (segments are preallocated: up to each one's last non-zero
/// byte).
fn used_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .expect("listing")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            let b = std::fs::read(e.path()).expect("reading a segment");
            b.iter().rposition(|&x| x != 0).map_or(0, |p| p as u64 + 1)
        })
        .sum()
}

/// Disk use of `n` published messages in 10 subscriptions and of `n` sent to one queue.
fn disk_ratio(cfg: &Cfg, n: usize) -> (u64, u64) {
    let f = Fanout::new(cfg);
    f.publish_batches(n, &body(100));
    let topic = used_bytes(f.dir.path());
    let q = Fresh::new(cfg);
    send_batches(&q.q, n, &body(100));
    let queue = used_bytes(q._dir.as_ref().expect("Fresh::new has a directory").path());
    (topic, queue)
}

pub(crate) fn run_w11(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w2_n;
    println!(
        "\n== W11: topic with {SUBS} durable subscriptions, 100 B bodies, {} msgs/run, {} runs, interleaved in chunks of {}",
        thousands(n as f64),
        cfg.runs,
        thousands((n / 10) as f64)
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_publish_batch(cfg)),
            side(n, || ours_publish_async(cfg)),
            side(n, || ours_batch(Fresh::new(cfg), 100)),
            side(n, || sqlite_w2(cfg, 100)),
        ],
    );
    let (pb, pa, qb, s2) = (
        stat(&rates[0]),
        stat(&rates[1]),
        stat(&rates[2]),
        stat(&rates[3]),
    );
    line("mqlite publish_batch() of 1,000 to 10 subscriptions", pb);
    line("mqlite publish_async() + callback per message", pa);
    line("mqlite send_batch() of 1,000 to one queue (info)", qb);
    line(
        "SQLite: WAL, synchronous=FULL, 1,000 INSERTs/transaction",
        s2,
    );
    let t = "publish ≥ 1,000,000/s";
    for (what, x) in [
        ("publish_batch, 10 subs", pb),
        ("publish_async, 10 subs", pa),
    ] {
        rep.add(
            "W11",
            what,
            [
                rate_str(x),
                format!("{}/s", thousands(s2.med)),
                format!("{:.2}×", x.med / s2.med),
            ],
            t,
            verdict(x.med >= 1e6).into(),
        );
    }
    // Drain: 10 × n deliveries per run; SQLite drains its n once.
    let m = cfg.w3_n;
    let rates = interleave(
        cfg,
        10,
        &[
            side(m * SUBS, || ours_drain(cfg, m)),
            side(m, || ours_w3(Fresh::new(cfg), m, 1_000, Ack::Batch)),
            side(m, || sqlite_w3(cfg, m)),
        ],
    );
    let (d, q3, s3) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    line(
        "mqlite drain each subscription: receive_batch(1000) + ack_batch",
        d,
    );
    line("mqlite drain one queue the same way (info)", q3);
    line("SQLite: SELECT 100 + DELETE each, 100/transaction", s3);
    rep.add(
        "W11",
        "drain, per subscription",
        [
            rate_str(d),
            format!("{}/s", thousands(s3.med)),
            format!("{:.2}×", d.med / s3.med),
        ],
        "each subscription ≥ 1,000,000/s",
        verdict(d.med >= 1e6).into(),
    );
    let (topic, queue) = disk_ratio(cfg, n);
    let r = topic as f64 / queue as f64;
    println!(
        "  disk: {} msgs in {SUBS} subscriptions {} bytes, in one queue {} bytes: {r:.2}×",
        thousands(n as f64),
        thousands(topic as f64),
        thousands(queue as f64)
    );
    rep.add(
        "W11",
        "disk vs one queue",
        [
            format!("{} B", thousands(topic as f64)),
            format!("one queue {} B", thousands(queue as f64)),
            format!("{r:.2}×"),
        ],
        "≤ 1.3× one queue",
        verdict(r <= 1.3).into(),
    );
}
