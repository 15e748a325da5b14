//! Prefetch and ack durability from a client process's API (a store another handle owns,
//! reached over the store's socket and the wire protocol): `ack_sync`, `ack_batch_sync` and the
//! queue option `ack_durability = sync` answer the client only after the owner's fdatasync, a
//! lazy ack only once the owner queued it; prefetch options (per queue, per subscription, per
//! consumer) reach the owner and its stats count the buffer. The owner runs in this process
//! over the fault-injecting file layer, so "durable" is checked on the image a power loss
//! would leave the moment the call returned.
mod common;

use std::time::Duration;

use common::durable::no_delay_policy;
use common::fault::{CrashMode, FaultFs, Rng};
use common::*;
use mqlite::*;

/// An owner over `fs` (manual clock: lazy acks never fall due on their own, so the only commits
/// are those a call asked for) and a client of it.
struct Pair {
    env: Env,
    fs: FaultFs,
    owner: Store,
    client: Store,
}

impl Pair {
    fn new() -> Pair {
        let env = Env::new();
        let fs = FaultFs::new();
        let owner = Store::open(env.dir.path(), opts(&env, &fs, OpenAs::Owner)).unwrap();
        assert_eq!(owner.role(), Role::Owner);
        let client = Store::open(env.dir.path(), opts(&env, &fs, OpenAs::Client)).unwrap();
        assert_eq!(client.role(), Role::Client);
        Pair {
            env,
            fs,
            owner,
            client,
        }
    }

    /// The store a power loss at this moment would leave: only what the owner synced.
    fn power_loss_image(&self) -> FaultFs {
        self.fs.crash_image(CrashMode::SyncedOnly, &mut Rng::new(7))
    }

    /// Closes the client and the owner; returns the directory, for [`open_image`].
    fn close(self) -> Env {
        self.client.close().unwrap();
        self.owner.close().unwrap();
        self.env
    }
}

fn opts(env: &Env, fs: &FaultFs, open_as: OpenAs) -> StoreOptions {
    let mut o = StoreOptions {
        vfs: fs.vfs(),
        redelivery: no_delay_policy(),
        open_as,
        ..env.opts()
    };
    if open_as == OpenAs::Client {
        // A client runs on its owner's clock (and refuses another: review r5 #16).
        o.clock = std::sync::Arc::new(SystemClock);
    }
    o
}

/// What is left in queue `name` of power-loss image `image` of `env`'s store: each message
/// with its redelivered flag.
fn left_in_image(env: &Env, image: &FaultFs, name: &str) -> Vec<(String, bool)> {
    left_in(env, image, |s| s.queue(name).unwrap())
}

/// What is left in the queue `pick` chooses of power-loss image `image` of `env`'s store.
fn left_in(env: &Env, image: &FaultFs, pick: impl Fn(&Store) -> Queue) -> Vec<(String, bool)> {
    let s = Store::open(env.dir.path(), opts(env, image, OpenAs::Owner)).unwrap();
    let got = pick(&s)
        .receive_batch(100, NOW)
        .unwrap()
        .iter()
        .map(|d| (body(d), d.redelivered()))
        .collect();
    s.close().unwrap();
    got
}

fn pairs(v: &[(&str, bool)]) -> Vec<(String, bool)> {
    v.iter().map(|&(m, r)| (m.to_string(), r)).collect()
}

/// A client's lazy ack is not durable when it returns (the owner only queued it: a power loss
/// then delivers the message again, marked redelivered); its `ack_sync` is, and carries the
/// lazy ack before it (same owner, same commit); `ack_batch_sync` likewise.
#[test]
fn a_clients_ack_sync_is_answered_after_the_owners_fdatasync_and_a_lazy_ack_is_not() {
    let p = Pair::new();
    let q = p.client.queue("q").unwrap();
    q.send_batch(["a", "b", "c", "d", "e"]).unwrap();
    let mut ds = q.receive_batch(2, NOW).unwrap().into_iter();
    let (a, b) = (ds.next().unwrap(), ds.next().unwrap());

    let syncs = p.fs.fsync_calls();
    a.ack().unwrap();
    assert_eq!(p.fs.fsync_calls(), syncs, "a lazy ack waited for an fsync");
    let lazy = p.power_loss_image();

    b.ack_sync().unwrap();
    assert!(
        p.fs.fsync_calls() > syncs,
        "ack_sync returned before any fsync"
    );
    let after_sync = p.power_loss_image();

    let ds = q.receive_batch(2, NOW).unwrap();
    assert_eq!(ds.iter().map(body).collect::<Vec<_>>(), ["c", "d"]);
    q.ack_batch_sync(ds).unwrap();
    let after_batch_sync = p.power_loss_image();

    let e = q.receive(NOW).unwrap().unwrap();
    let syncs = p.fs.fsync_calls();
    q.ack_batch(vec![e]).unwrap();
    assert_eq!(
        p.fs.fsync_calls(),
        syncs,
        "a lazy ack_batch waited for an fsync"
    );
    let lazy_batch = p.power_loss_image();
    assert_eq!(p.owner.queue("q").unwrap().stats().unwrap().messages, 0);

    let env = p.close();
    let all = [
        ("a", true),
        ("b", true),
        ("c", true),
        ("d", true),
        ("e", true),
    ];
    assert_eq!(
        left_in_image(&env, &lazy, "q"),
        pairs(&all),
        "lazy ack durable"
    );
    assert_eq!(left_in_image(&env, &after_sync, "q"), pairs(&all[2..]));
    assert_eq!(
        left_in_image(&env, &after_batch_sync, "q"),
        pairs(&all[4..])
    );
    assert_eq!(left_in_image(&env, &lazy_batch, "q"), pairs(&all[4..]));
}

/// The queue option `ack_durability = sync`, given by a client (for a queue and for a
/// subscription), makes the client's plain `ack()` and `ack_batch()` durable when they return.
#[test]
fn a_clients_sync_ack_option_reaches_the_owner() {
    let p = Pair::new();
    let sync = QueueOptions {
        ack_durability: Some(AckDurability::Sync),
        ..Default::default()
    };
    let q = p.client.queue_with("q", sync.clone()).unwrap();
    let sub_opts = SubscriptionOptions {
        name: Some("s".into()),
        durable: true,
        queue: sync,
        ..Default::default()
    };
    let sub = p.client.subscribe("t.*", sub_opts.clone()).unwrap();
    q.send_batch(["a", "b", "c"]).unwrap();
    p.client.topic("t.x").unwrap().publish("p").unwrap();
    q.receive(NOW).unwrap().unwrap().ack().unwrap();
    let ds = q.receive_batch(1, NOW).unwrap();
    q.ack_batch(ds).unwrap();
    sub.queue().receive(NOW).unwrap().unwrap().ack().unwrap();
    let image = p.power_loss_image();
    drop(sub);
    let env = p.close();
    assert_eq!(left_in_image(&env, &image, "q"), pairs(&[("c", true)]));
    let in_sub = left_in(&env, &image, |s| {
        s.subscribe("t.*", sub_opts.clone())
            .unwrap()
            .queue()
            .clone()
    });
    assert_eq!(in_sub, pairs(&[]), "the subscription's ack was not durable");
}

/// Prefetch from a client: the queue's prefetch (given by the client) and a consumer's own
/// fill buffers at the owner, with one durable delivery-count record each; the client's stats
/// (and the owner's) count them as `prefetched`; a closed consumer gives its buffer back
/// uncounted, and so does a client that goes away.
#[test]
fn prefetch_options_from_a_client_reach_the_owner_and_its_stats() {
    let p = Pair::new();
    let o = QueueOptions {
        prefetch: Some(5),
        ..Default::default()
    };
    let q = p.client.queue_with("q", o).unwrap();
    q.send_batch((0..20).map(|i| format!("m{i}"))).unwrap();
    let count = |s: &QueueStats| (s.depth, s.in_flight, s.prefetched);

    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(
        count(&q.stats().unwrap()),
        (15, 1, 4),
        "the queue's prefetch"
    );
    assert_eq!(
        p.owner.queue("q").unwrap().stats().unwrap(),
        q.stats().unwrap()
    );

    let c = q.consumer(ConsumerOptions {
        prefetch: Some(3),
        ..Default::default()
    });
    let cd = c.receive(NOW).unwrap().unwrap();
    assert_eq!(
        count(&q.stats().unwrap()),
        (12, 2, 6),
        "the consumer's own prefetch"
    );
    cd.ack_sync().unwrap();
    drop(c);
    assert_eq!(
        count(&q.stats().unwrap()),
        (14, 1, 4),
        "its buffer given back"
    );
    d.ack_sync().unwrap();

    // The messages given back were never handed out: delivered now, they are first deliveries.
    let owner_q = p.owner.queue("q").unwrap();
    let ds = owner_q.receive_batch(100, NOW).unwrap();
    assert_eq!(ds.len(), 18 - 4, "the client's own buffer stays its own");
    assert!(ds
        .iter()
        .all(|d| d.delivery_count() == 1 && !d.redelivered()));
    owner_q.ack_batch_sync(ds).unwrap();

    // A client that goes away gives its buffer back, uncounted.
    let env = {
        let Pair {
            env,
            fs: _fs,
            owner,
            client,
        } = p;
        client.close().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while owner_q.stats().unwrap().prefetched > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the buffer never came back"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let ds = owner_q.receive_batch(100, NOW).unwrap();
        assert_eq!(ds.len(), 4);
        assert!(ds
            .iter()
            .all(|d| d.delivery_count() == 1 && !d.redelivered()));
        drop(ds);
        owner.close().unwrap();
        env
    };
    drop(env);
}

/// An invalid prefetch from a client is refused by the client's own checks, as in-process.
#[test]
fn an_invalid_prefetch_from_a_client_is_refused() {
    let p = Pair::new();
    let o = QueueOptions {
        prefetch: Some(u32::MAX),
        ..Default::default()
    };
    let e = p.client.queue_with("q", o).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let q = p.client.queue("q").unwrap();
    let c = q.consumer(ConsumerOptions {
        prefetch: Some(u32::MAX),
        ..Default::default()
    });
    let e = c.receive(NOW).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    p.close();
}
