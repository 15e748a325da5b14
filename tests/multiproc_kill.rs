//! T16: the multi-process kill loop. Three worker processes open one store (the first becomes
//! its owner, the others its clients; each may take the store over) and run mixed traffic —
//! sync sends, async sends, receive + ack, nack, transactions — reporting each call over
//! their stdout pipes. The parent SIGKILLs a random worker (owner or client) at random
//! moments and starts a new one; survivors take over and go on. At the end the parent opens
//! the store itself and checks the reports:
//!
//! - no acknowledged send (sync returned, async callback fired, transaction committed) is lost;
//! - no message whose ack returned is delivered again;
//! - no send is stored twice (a resend after an owner's death is stored once);
//! - every async callback fired at most once (a worker is killed, not closed: callbacks still
//!   pending in it die with it).
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

/// A worker: runs until killed. Lines: `B tag` before a send, `S tag id` once a sync send
/// returned, `A tag id` when an async send's callback fired with success, `T tag id` once a
/// transaction's send committed, `G tag id` on a delivery, `K tag id` once its ack returned.
#[test]
fn t16_worker() {
    let Ok(arg) = std::env::var("MQLITE_T16_WORKER") else {
        return;
    };
    let (dir, rest) = arg.split_once(',').expect("dir,seed,prefix");
    let (seed, prefix) = rest.split_once(',').expect("seed,prefix");
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
    let store = Store::open(dir, store_opts()).expect("open must succeed");
    let q = store.queue("q").unwrap();
    say(format!("R {}", store.role().as_str()));
    let mut rng = Rng::new(seed.parse().unwrap());
    let mut n = 0u64;
    let mut tag = || {
        n += 1;
        format!("{prefix}.{n}")
    };
    let mut role = store.role();
    loop {
        // A takeover (this client became the owner) is reported as another "R owner".
        if store.role() != role {
            role = store.role();
            say(format!("R {}", role.as_str()));
        }
        match rng.below(10) {
            0..=2 => {
                let t = tag();
                say(format!("B {t}"));
                let id = q.send(t.as_str()).expect("sync send");
                say(format!("S {t} {}", id.0));
            }
            3..=4 => {
                let t = tag();
                say(format!("B {t}"));
                let say2 = say.clone();
                let t2 = t.clone();
                q.send_async(t.as_str(), move |r| {
                    say2(format!("A {t2} {}", r.expect("async send").0));
                })
                .expect("async send");
            }
            5 => {
                let t = tag();
                say(format!("B {t}"));
                let mut tx = store.transaction();
                tx.send(&q, t.as_str()).unwrap();
                let ids = tx.commit().expect("commit");
                say(format!("T {t} {}", ids[0].0));
            }
            6..=8 => {
                if let Some(d) = q.receive(Some(Duration::from_millis(20))).expect("receive") {
                    let t = String::from_utf8(d.body().to_vec()).unwrap();
                    say(format!("G {t} {}", d.id().0));
                    let id = d.id().0;
                    match d.ack() {
                        Ok(()) => say(format!("K {t} {id}")),
                        // Handed out by an owner that has died: it comes back by recovery.
                        Err(e) if e.kind() == ErrorKind::DeliveryLost => {}
                        Err(e) => panic!("ack: {e}"),
                    }
                }
            }
            _ => {
                if let Some(d) = q.receive(Some(Duration::from_millis(20))).expect("receive") {
                    let t = String::from_utf8(d.body().to_vec()).unwrap();
                    say(format!("G {t} {}", d.id().0));
                    match d.nack("again") {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::DeliveryLost => {}
                        Err(e) => panic!("nack: {e}"),
                    }
                }
            }
        }
    }
}

/// The parent's view of one worker: its process and the lines it reported.
struct Worker {
    child: Child,
    prefix: String,
}

fn spawn(
    dir: &std::path::Path,
    seed: u64,
    prefix: &str,
    tx: &mpsc::Sender<(String, String)>,
) -> Worker {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "t16_worker", "--nocapture", "--test-threads=1"])
        .env(
            "MQLITE_T16_WORKER",
            format!("{},{seed},{prefix}", dir.display()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
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
    /// Tags whose async callback fired, and how often.
    callbacks: BTreeMap<String, u32>,
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
            _ => {}
        }
    }
}

#[test]
fn t16_multi_process_kill_loop() {
    let kills = size(100, 1_000);
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = mpsc::channel::<(String, String)>();
    let mut rng = Rng::new(16);
    let mut next = 0u64;
    let mut new_worker = |tx: &mpsc::Sender<(String, String)>| {
        next += 1;
        spawn(dir.path(), 1000 + next, &format!("w{next}"), tx)
    };
    let mut workers: Vec<Worker> = (0..3).map(|_| new_worker(&tx)).collect();
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
    // Let the survivors settle, then stop them all.
    drain(&mut log, Duration::from_millis(500));
    for mut w in workers {
        w.child.kill().unwrap();
        w.child.wait().unwrap();
    }
    drop(tx);
    while let Ok((w, line)) = rx.recv_timeout(Duration::from_secs(2)) {
        log.take(&w, &line);
    }
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
    let left = q.receive_batch(1_000_000, Some(Duration::ZERO)).unwrap();
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
    println!(
        "T16: {kills} kills, {} reported lines, {} acknowledged sends, {} acks, {} owners started, {} left",
        log.lines,
        log.acked_sends.len(),
        log.acked.len(),
        log.roles.get("owner").copied().unwrap_or(0),
        left.len()
    );
}
