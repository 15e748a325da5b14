//! T16: the multi-process kill loop. Three worker processes open one store (the first becomes
//! its owner, the others its clients; each may take the store over) and run mixed traffic —
//! sync sends, async sends, receive + ack, nack, transactions to a queue; sync, async, batch
//! and transactional publishes to a topic with a shared durable subscription, consumed by
//! all of them — reporting each call over their stdout pipes. The parent SIGKILLs a random
//! worker (owner or client) at random moments and starts a new one; survivors take over and go
//! on. At the end the survivors are stopped cleanly, and the parent opens the store itself and
//! checks the reports:
//!
//! - no acknowledged send or publish (sync returned, async callback fired, transaction
//!   committed) is lost, and none failed (a call whose answer the owner's death lost is resent,
//!   not failed);
//! - no message whose `ack_sync` returned is delivered again (a lazy ack may be lost with a
//!   killed owner: its message comes back, it is never lost);
//! - no send or publish is stored twice (a resend after an owner's death is stored once);
//! - every async callback fired at most once, and exactly once in a worker that ended cleanly
//!   (a killed worker's pending callbacks die with it).
//!
//! CI: 100 kills. `MQLITE_SOAK=1`: 1,000.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::durable::{no_delay_policy, size};
use common::fault::Rng;
use mqlite::*;

fn store_opts() -> StoreOptions {
    StoreOptions {
        redelivery: RedeliveryPolicy {
            max_redeliveries: -1,
            ..no_delay_policy()
        },
        connect_timeout: Duration::from_secs(20),
        segment_bytes: 1 << 20,
        ..Default::default()
    }
}

fn sub_opts() -> SubscriptionOptions {
    SubscriptionOptions {
        name: Some("dur".into()),
        durable: true,
        shared: true,
        ..Default::default()
    }
}

/// A worker: runs until killed, or until its stop file exists (then it closes the store and
/// reports `E`). Lines: `B tag` before a send or publish (`C tag` before an async one), `S tag id` once a sync one returned,
/// `A tag id` when an async one's callback fired with success, `T tag id` once a transaction's
/// send committed, `G tag id` on a delivery, `K tag id` once its `ack_sync`
/// returned, `L tag id` once its lazy `ack` returned, `X tag error`
/// when a send or publish failed. Queue tags are `w1.5`, topic tags `w1.p6`.
#[test]
fn t16_worker() {
    let Ok(arg) = std::env::var("MQLITE_T16_WORKER") else {
        return;
    };
    let mut parts = arg.split(',');
    let mut next = || parts.next().expect("dir,seed,prefix,stop");
    let (dir, seed, prefix, stop) = (next(), next(), next(), next());
    let stop = std::path::PathBuf::from(stop);
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let say = {
        let out = out.clone();
        move |line: String| {
            let mut o = out.lock().unwrap();
            // One write per line (below PIPE_BUF: atomic), flushed before going on.
            // "@@": libtest may print "test t16_worker ... " on the same line first. The time
            // (the system clock, shared by the workers) orders reports across pipes.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            o.write_all(format!("@@{t} {line}\n").as_bytes()).unwrap();
            o.flush().unwrap();
        }
    };
    // A send or publish that fails is reported (the parent counts it), then ends the worker.
    let check = {
        let say = say.clone();
        move |t: &str, r: Result<Vec<MessageId>>| -> Vec<MessageId> {
            r.unwrap_or_else(|e| {
                say(format!("X {t} {}", e.kind().as_str()));
                panic!("{t}: {e}")
            })
        }
    };
    let store = Store::open(dir, store_opts()).expect("open must succeed");
    let q = store.queue("q").unwrap();
    let topic = store.topic("ev").unwrap();
    let sub = store.subscribe("ev", sub_opts()).unwrap();
    say(format!("R {}", store.role().as_str()));
    let mut rng = Rng::new(seed.parse().unwrap());
    let mut n = 0u64;
    let mut tag = |kind: &str| {
        n += 1;
        format!("{prefix}.{kind}{n}")
    };
    let mut role = store.role();
    while !stop.exists() {
        // A takeover (this client became the owner) is reported as another "R owner".
        if store.role() != role {
            role = store.role();
            say(format!("R {}", role.as_str()));
        }
        match rng.below(16) {
            0..=1 => {
                let t = tag("");
                say(format!("B {t}"));
                let id = check(&t, q.send(t.as_str()).map(|i| vec![i]))[0];
                say(format!("S {t} {}", id.0));
            }
            2 => {
                let t = tag("p");
                say(format!("B {t}"));
                let id = check(&t, topic.publish(t.as_str()).map(|i| vec![i]))[0];
                say(format!("S {t} {}", id.0));
            }
            3..=4 => {
                let t = tag(if rng.below(2) == 0 { "" } else { "p" });
                say(format!("C {t}"));
                let (say2, t2) = (say.clone(), t.clone());
                let cb = move |r: Result<MessageId>| match r {
                    Ok(id) => say2(format!("A {t2} {}", id.0)),
                    Err(e) => say2(format!("X {t2} {}", e.kind().as_str())),
                };
                let r = match t.contains(".p") {
                    true => topic.publish_async(t.as_str(), cb),
                    false => q.send_async(t.as_str(), cb),
                };
                check(&t, r.map(|()| Vec::new()));
            }
            5 => {
                let (t1, t2) = (tag("p"), tag("p"));
                say(format!("B {t1}"));
                say(format!("B {t2}"));
                let ids = check(&t1, topic.publish_batch([t1.as_str(), t2.as_str()]));
                say(format!("S {t1} {}", ids[0].0));
                say(format!("S {t2} {}", ids[1].0));
            }
            6 => {
                let (t1, t2) = (tag(""), tag("p"));
                say(format!("B {t1}"));
                say(format!("B {t2}"));
                let mut tx = store.transaction();
                tx.send(&q, t1.as_str()).unwrap();
                tx.publish(&topic, t2.as_str()).unwrap();
                let ids = check(&t1, tx.commit());
                say(format!("T {t1} {}", ids[0].0));
                say(format!("T {t2} {}", ids[1].0));
            }
            k => {
                let from: &Queue = if k < 12 { &q } else { &sub };
                if let Some(d) = from
                    .receive(Some(Duration::from_millis(20)))
                    .expect("receive")
                {
                    let t = String::from_utf8(d.body().to_vec()).unwrap();
                    say(format!("G {t} {}", d.id().0));
                    let id = d.id().0;
                    // A lazy ack (the default) is durable only once a later sync call of the
                    // store returned: an owner killed before that delivers the message again
                    // (never loses it). So only `ack_sync`'s return is reported as an ack that
                    // must hold (`K`); a lazy one is `L`.
                    let r = match (k % 4, id % 2 == 0) {
                        (0, _) => d.nack("again"),
                        (_, true) => d.ack_sync().map(|()| say(format!("K {t} {id}"))),
                        (_, false) => d.ack().map(|()| say(format!("L {t} {id}"))),
                    };
                    match r {
                        Ok(()) => {}
                        // Handed out by an owner that has died: it comes back by recovery.
                        Err(e) if e.kind() == ErrorKind::DeliveryLost => {}
                        Err(e) => panic!("settle: {e}"),
                    }
                }
            }
        }
    }
    drop((q, topic, sub));
    store.close().expect("close");
    say("E -".to_string());
}

/// The parent's view of one worker: its process and the lines it reported.
struct Worker {
    child: Child,
    prefix: String,
}

fn spawn(
    dir: &std::path::Path,
    stop: &std::path::Path,
    seed: u64,
    prefix: &str,
    tx: &mpsc::Sender<(String, String)>,
) -> Worker {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "t16_worker", "--nocapture", "--test-threads=1"])
        .env(
            "MQLITE_T16_WORKER",
            format!("{},{seed},{prefix},{}", dir.display(), stop.display()),
        )
        .stdout(Stdio::piped())
        // Kept beside the stop file: a worker that did not end cleanly shows why.
        .stderr(
            std::fs::File::create(stop.with_file_name(format!("{prefix}.err")))
                .map_or_else(|_| Stdio::null(), Stdio::from),
        )
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, p) = (tx.clone(), prefix.to_string());
    std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            let Some(at) = line.find("@@") else { continue };
            if tx.send((p.clone(), line[at + 2..].to_string())).is_err() {
                break;
            }
        }
    });
    Worker {
        child,
        prefix: prefix.to_string(),
    }
}

#[derive(Default)]
struct Log {
    /// Tags whose send was acknowledged, with the id it was stored under.
    acked_sends: BTreeMap<String, u64>,
    /// Tags whose async callback fired (with success or an error), and how often.
    callbacks: BTreeMap<String, u32>,
    /// Tags of async sends and publishes made (`C` lines).
    began: BTreeSet<String>,
    /// Sends and publishes that failed (`X` lines).
    failed: Vec<String>,
    /// Workers that ended cleanly (`E` lines).
    ended: BTreeSet<String>,
    /// Tags whose ack returned.
    acked: BTreeSet<String>,
    /// Tags delivered at least once.
    delivered: BTreeSet<String>,
    /// Deliveries after an ack of the same tag returned.
    redelivered_after_ack: Vec<String>,
    /// When each tag's ack returned, and when each delivery was handed over (ns).
    acked_at: BTreeMap<String, u128>,
    delivered_at: Vec<(String, u128)>,
    /// Every id a tag was seen under (a send stored twice has two).
    ids: BTreeMap<String, BTreeSet<u64>>,
    /// Workers that reported "R", by role.
    roles: BTreeMap<String, u64>,
    /// Prefixes of workers killed.
    killed: BTreeSet<String>,
    lines: u64,
    /// Every reported line per tag, with the worker that reported it (for failure messages).
    history: BTreeMap<String, Vec<String>>,
}

impl Log {
    fn take(&mut self, worker: &str, line: &str) {
        self.lines += 1;
        let mut it = line.split(' ');
        let at: u128 = it.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        let (k, tag) = (it.next().unwrap_or(""), it.next().unwrap_or(""));
        self.history
            .entry(tag.to_string())
            .or_default()
            .push(format!("{worker}: {line}"));
        let id = it.next().and_then(|s| s.parse::<u64>().ok());
        match k {
            "R" => *self.roles.entry(tag.to_string()).or_default() += 1,
            "S" | "T" | "A" => {
                let id = id.unwrap();
                if k == "A" {
                    *self.callbacks.entry(tag.to_string()).or_default() += 1;
                }
                self.acked_sends.insert(tag.to_string(), id);
                self.ids.entry(tag.to_string()).or_default().insert(id);
            }
            "G" => {
                self.delivered.insert(tag.to_string());
                self.delivered_at.push((tag.to_string(), at));
                self.ids
                    .entry(tag.to_string())
                    .or_default()
                    .insert(id.unwrap());
            }
            "K" => {
                self.acked.insert(tag.to_string());
                self.acked_at.insert(tag.to_string(), at);
            }
            "C" => {
                self.began.insert(tag.to_string());
            }
            "X" => {
                *self.callbacks.entry(tag.to_string()).or_default() += 1;
                self.failed
                    .push(format!("{tag}: {}", it.next().unwrap_or("")));
            }
            "E" => {
                self.ended.insert(worker.to_string());
            }
            _ => {}
        }
    }
}

#[test]
fn t16_multi_process_kill_loop() {
    let kills = size(100, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let ctl = tempfile::tempdir().unwrap();
    let stop = ctl.path().join("stop");
    let (tx, rx) = mpsc::channel::<(String, String)>();
    let mut rng = Rng::new(16);
    let mut next = 0u64;
    let mut new_worker = |tx: &mpsc::Sender<(String, String)>| {
        next += 1;
        spawn(dir.path(), &stop, 1000 + next, &format!("w{next}"), tx)
    };
    let mut workers: Vec<Worker> = (0..3).map(|_| new_worker(&tx)).collect();
    let mut stopped = Vec::new();
    let mut log = Log::default();
    let drain = |log: &mut Log, wait: Duration| {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok((w, line)) => log.take(&w, &line),
                Err(_) => break,
            }
        }
    };
    for _ in 0..kills {
        drain(&mut log, Duration::from_millis(20 + rng.below(120)));
        let i = rng.below(workers.len() as u64) as usize;
        let mut w = workers.swap_remove(i);
        w.child.kill().unwrap();
        w.child.wait().unwrap();
        log.killed.insert(w.prefix.clone());
        workers.push(new_worker(&tx));
    }
    // Let the survivors settle, then stop them cleanly: each closes the store (its async
    // calls answered first) and says so.
    drain(&mut log, Duration::from_millis(500));
    std::fs::write(&stop, b"").unwrap();
    let until = Instant::now() + Duration::from_secs(120);
    let mut hung = Vec::new();
    for mut w in workers {
        while w.child.try_wait().unwrap().is_none() && Instant::now() < until {
            drain(&mut log, Duration::from_millis(50));
        }
        if w.child.try_wait().unwrap().is_none() {
            hung.push(w.prefix.clone());
            w.child.kill().unwrap();
        }
        w.child.wait().unwrap();
        stopped.push(w.prefix);
    }
    drop(tx);
    while let Ok((w, line)) = rx.recv_timeout(Duration::from_secs(2)) {
        log.take(&w, &line);
    }
    assert!(
        hung.is_empty(),
        "workers did not stop within 120 s: {hung:?}"
    );
    let unclean: Vec<_> = stopped.iter().filter(|w| !log.ended.contains(*w)).collect();
    let why = |w: &String| {
        let err = std::fs::read_to_string(ctl.path().join(format!("{w}.err"))).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    };
    assert!(
        unclean.is_empty(),
        "workers did not close cleanly: {unclean:?}; the first one's stderr:\n{}",
        unclean.first().map(|w| why(w)).unwrap_or_default()
    );
    assert!(
        log.failed.is_empty(),
        "sends or publishes failed: {:?}",
        log.failed
    );
    assert!(
        log.roles.get("owner").copied().unwrap_or(0) > kills / 10,
        "takeovers did not happen: {:?}",
        log.roles
    );
    assert!(
        log.acked_sends.len() > 100,
        "too little traffic: {} lines",
        log.lines
    );

    // A delivery after the ack of the same message returned (by the time of the reports: the
    // pipes of different workers are read in no particular order).
    for (t, at) in &log.delivered_at {
        if log.acked_at.get(t).is_some_and(|k| k < at) {
            log.redelivered_after_ack.push(t.clone());
        }
    }
    // What is left in the store.
    let s = Store::open(
        dir.path(),
        StoreOptions {
            open_as: OpenAs::Owner,
            ..store_opts()
        },
    )
    .unwrap();
    let q = s.queue("q").unwrap();
    let sub = s.subscribe("ev", sub_opts()).unwrap();
    let mut left = q.receive_batch(1_000_000, Some(Duration::ZERO)).unwrap();
    left.extend(sub.receive_batch(1_000_000, Some(Duration::ZERO)).unwrap());
    let mut stored: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for d in &left {
        let t = String::from_utf8(d.body().to_vec()).unwrap();
        if log.acked.contains(&t) {
            log.redelivered_after_ack.push(t.clone());
        }
        stored.entry(t.clone()).or_default().insert(d.id().0);
        log.ids.entry(t).or_default().insert(d.id().0);
    }
    // A message delivered whose ack did not report back (its worker was killed, or its owner
    // died while the ack was in flight) may have been acked durably: in doubt, not lost.
    let lost: Vec<_> = log
        .acked_sends
        .keys()
        .filter(|t| {
            !stored.contains_key(*t) && !log.acked.contains(*t) && !log.delivered.contains(*t)
        })
        .collect();
    assert!(lost.is_empty(), "acknowledged sends lost: {lost:?}");
    assert!(
        log.redelivered_after_ack.is_empty(),
        "delivered again after their ack returned: {:?}; the first one's reports: {:?}",
        log.redelivered_after_ack,
        log.redelivered_after_ack
            .first()
            .and_then(|t| log.history.get(t))
    );
    let doubled: Vec<_> = log.ids.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(doubled.is_empty(), "sends stored twice: {doubled:?}");
    let twice: Vec<_> = log.callbacks.iter().filter(|(_, &n)| n > 1).collect();
    assert!(twice.is_empty(), "async callbacks fired twice: {twice:?}");
    // A worker that closed cleanly saw every async callback it asked for.
    let of_worker = |t: &String| t.split('.').next().unwrap_or("").to_string();
    let missing: Vec<_> = log
        .began
        .iter()
        .filter(|t| log.ended.contains(&of_worker(t)) && !log.callbacks.contains_key(*t))
        .collect();
    assert!(
        missing.is_empty(),
        "async callbacks that never fired in a worker that closed: {missing:?}"
    );
    let published = log.acked_sends.keys().filter(|t| t.contains(".p")).count();
    let ended_async = log
        .began
        .iter()
        .filter(|t| log.ended.contains(&of_worker(t)))
        .count();
    println!(
        "T16: {kills} kills, {} reported lines, {} acknowledged sends ({published} of them \
         publishes), {} acks, {} owners started, {} left, {} workers closed cleanly with \
         {ended_async} async calls all called back once",
        log.lines,
        log.acked_sends.len(),
        log.acked.len(),
        log.roles.get("owner").copied().unwrap_or(0),
        left.len(),
        log.ended.len()
    );
}
