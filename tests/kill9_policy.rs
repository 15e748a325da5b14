//! kill -9 in the middle of replays and redelivery sequences (issue 3's crash proofs). The
//! child is this test binary re-executed; the parent kills it at a random moment and reopens.
mod common;
use mqlite::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const N: usize = 200;

fn cycles(ci: usize) -> usize {
    if std::env::var_os("MQLITE_SOAK").is_some() {
        ci * 20
    } else {
        ci
    }
}

fn qopts(max_redeliveries: i32, delay_ms: u64) -> QueueOptions {
    QueueOptions {
        redelivery: Some(RedeliveryPolicy {
            max_redeliveries,
            initial_redelivery_delay: Duration::from_millis(delay_ms),
            redelivery_delay: Duration::from_millis(delay_ms),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn spawn(mode: &str, dir: &std::path::Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env("MQLITE_CHILD", mode)
        .env("MQLITE_DIR", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn random_ms(seed: &mut u64, lo: u64, hi: u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    lo + *seed % (hi - lo)
}

/// Runs in the child process only.
#[test]
fn child() {
    let Some(mode) = std::env::var_os("MQLITE_CHILD") else {
        return;
    };
    let dir = std::env::var_os("MQLITE_DIR").unwrap();
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    if mode == "replay" {
        // Dead letters travel back and forth between the DLQ and "q", one record per move.
        let q = s.queue_with("q", qopts(0, 0)).unwrap();
        let dlq = s.queue("DLQ").unwrap();
        loop {
            dlq.replay(&ReplayFilter {
                limit: Some(3),
                ..Default::default()
            })
            .unwrap();
            for d in q.receive_batch(2, Some(Duration::ZERO)).unwrap() {
                d.reject("back to the DLQ").unwrap();
            }
        }
    } else {
        // A message that always fails: report each delivery count once its nack returned.
        let q = s.queue_with("q", qopts(-1, 1)).unwrap();
        loop {
            if let Some(d) = q.receive(Some(Duration::from_millis(100))).unwrap() {
                let c = d.delivery_count();
                d.nack("still failing").unwrap();
                println!("nacked {c}");
            }
        }
    }
}

#[test]
fn replay_under_kill9_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue_with("q", qopts(0, 0)).unwrap();
        q.send_batch((0..N).map(|i| format!("m{i}"))).unwrap();
        let ds = q.receive_batch(N, Some(Duration::ZERO)).unwrap();
        for d in ds {
            d.reject("initial").unwrap();
        }
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let n = cycles(25);
    for cycle in 0..n {
        let mut child = spawn("replay", dir.path());
        std::thread::sleep(Duration::from_millis(random_ms(&mut seed, 20, 120)));
        child.kill().unwrap();
        child.wait().unwrap();
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue_with("q", qopts(0, 0)).unwrap();
        let dlq = s.queue("DLQ").unwrap();
        let mut bodies: Vec<String> = q
            .browse(10 * N)
            .unwrap()
            .into_iter()
            .chain(dlq.browse(10 * N).unwrap())
            .map(|m| String::from_utf8(m.into_body()).unwrap())
            .collect();
        bodies.sort();
        let mut want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
        want.sort();
        assert_eq!(
            bodies, want,
            "cycle {cycle}: a dead letter was lost or doubled"
        );
    }
    eprintln!("replay kill -9: {n} cycles, {N} messages each time exactly once");
}

#[test]
fn redelivery_count_survives_kill9() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        s.queue_with("q", qopts(-1, 1))
            .unwrap()
            .send("poison")
            .unwrap();
    }
    let mut seed = 0xD1B5_4A32_D192_ED03u64;
    let mut last = 0u32;
    let n = cycles(15);
    for cycle in 0..n {
        let mut child = spawn("nack", dir.path());
        let out = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(|l| l.ok())
                .filter_map(|l| {
                    l.strip_prefix("nacked ")
                        .and_then(|c| c.parse::<u32>().ok())
                })
                .max()
        });
        std::thread::sleep(Duration::from_millis(random_ms(&mut seed, 30, 200)));
        child.kill().unwrap();
        child.wait().unwrap();
        let reported = reader.join().unwrap().unwrap_or(0);
        assert!(
            reported == 0 || reported > last,
            "cycle {cycle}: count went back from {last} to {reported}"
        );
        last = last.max(reported);
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue_with("q", qopts(-1, 0)).unwrap();
        let d = q
            .receive(Some(Duration::from_secs(5)))
            .unwrap()
            .expect("the message survives");
        assert!(
            d.delivery_count() > last,
            "cycle {cycle}: delivery count {} after a reported {last}",
            d.delivery_count()
        );
        // (On a loaded machine the child may be killed before its first delivery.)
        assert!(last == 0 || d.redelivered());
        last = d.delivery_count();
        d.nack("parent").unwrap();
    }
    eprintln!("redelivery kill -9: {n} cycles, final delivery count {last}");
}
