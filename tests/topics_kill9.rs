//! T19 under kill -9: a child process publishes to a topic with three durable subscriptions and
//! acks in them, reporting each call before (`B`) and after (`D`) it; the parent SIGKILLs it at a
//! random moment, reopens the store and checks every subscription against the log: each
//! acknowledged publish is in every subscription that did not acknowledge it, no acknowledged
//! ack is undone, a publish in doubt is in all three subscriptions or in none. Acks are lazy
//! (`D L`) or `ack_sync` (`D A`) at random: a lazy ack counts as durable only once a later
//! publish (a sync operation of the same store) returned.
//!
//! CI: 40 cycles. `MQLITE_SOAK=1`: 400.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use common::durable::*;
use mqlite::*;

const SUBS: [&str; 3] = ["s0", "s1", "s2"];

fn opts() -> StoreOptions {
    StoreOptions {
        segment_bytes: 128 << 10,
        redelivery: no_delay_policy(),
        ..Default::default()
    }
}

fn durable(name: &str) -> SubscriptionOptions {
    SubscriptionOptions {
        name: Some(name.into()),
        durable: true,
        ..Default::default()
    }
}

/// The child: runs until killed.
#[test]
fn t19_child() {
    let Ok(arg) = std::env::var("MQLITE_T19_CHILD") else {
        return;
    };
    let (dir, rest) = arg.split_once(',').expect("dir,seed,prefix");
    let (seed, prefix) = rest.split_once(',').expect("seed,prefix");
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        out.write_all(format!("{line}\n").as_bytes()).unwrap();
        out.flush().unwrap();
    };
    let store = Store::open(dir, opts()).expect("recovery must succeed");
    let subs: Vec<Subscription> = SUBS
        .iter()
        .map(|n| store.subscribe("ev.>", durable(n)).unwrap())
        .collect();
    let t = store.topic("ev.x").unwrap();
    say("R".into());
    let mut rng = Rng::new(seed.parse().unwrap());
    let mut n = 0u64;
    loop {
        if rng.chance(0.55) {
            n += 1;
            let tag = format!("{prefix}{n}");
            say(format!("B P {tag}"));
            if rng.chance(0.2) {
                let tags = [tag.clone(), format!("{tag}b")];
                say(format!("B P {}", tags[1]));
                t.publish_batch(tags.iter().map(|x| body(x, 40))).unwrap();
                say(format!("D P {}", tags[1]));
            } else {
                t.publish(body(&tag, 20 + rng.below(2000) as usize))
                    .unwrap();
            }
            say(format!("D P {tag}"));
        } else {
            let si = rng.below(3) as usize;
            if let Some(d) = subs[si].receive(Some(Duration::ZERO)).unwrap() {
                let tag = tag_of(d.message().body()).expect("intact body");
                say(format!("B A {tag} {si}"));
                if rng.chance(0.5) {
                    d.ack_sync().unwrap();
                    say(format!("D A {tag} {si}"));
                } else {
                    d.ack().unwrap();
                    say(format!("D L {tag} {si}"));
                }
            }
        }
    }
}

/// What the log says of one published message.
#[derive(Default, Debug)]
struct Pub {
    done: bool,
    acked: BTreeSet<usize>,
    ack_doubt: BTreeSet<usize>,
}

#[test]
fn t19_topics_under_kill9() {
    let _serial = serial();
    let cycles = size(40, 400);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(0x7119);
    let mut log: BTreeMap<String, Pub> = BTreeMap::new();
    let mut checked = 0u64;
    for cycle in 0..cycles {
        let child = KillChild::spawn(
            "t19_child",
            "MQLITE_T19_CHILD",
            format!("{},{},c{cycle}-", dir.path().display(), rng.next_u64()),
        );
        let rx = &child.lines;
        let mut got = Vec::new();
        while let Ok(l) = rx.recv_timeout(Duration::from_secs(30)) {
            let ready = l == "R";
            got.push(l);
            if ready {
                break;
            }
        }
        assert!(
            got.iter().any(|l| l == "R"),
            "cycle {cycle}: the child never became ready"
        );
        let delay = Duration::from_micros(2_000 + rng.below(40_000));
        std::thread::sleep(delay); // the child works meanwhile; the kill lands at a random point
        child.kill(&mut got);
        // Lazy acks returned and not yet followed by a returned publish.
        let mut lazy: Vec<(String, usize)> = Vec::new();
        for line in &got {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["B", "P", tag] => {
                    log.entry(tag.to_string()).or_default();
                }
                ["D", "P", tag] => {
                    log.entry(tag.to_string()).or_default().done = true;
                    for (t, si) in lazy.drain(..) {
                        let p = log.entry(t).or_default();
                        p.ack_doubt.remove(&si);
                        p.acked.insert(si);
                    }
                }
                ["D", "L", tag, si] => lazy.push((tag.to_string(), si.parse().unwrap())),
                ["B", "A", tag, si] => {
                    let p = log.entry(tag.to_string()).or_default();
                    p.ack_doubt.insert(si.parse().unwrap());
                }
                ["D", "A", tag, si] => {
                    let p = log.entry(tag.to_string()).or_default();
                    let si: usize = si.parse().unwrap();
                    p.ack_doubt.remove(&si);
                    p.acked.insert(si);
                }
                ["R"] => {}
                _ => panic!("unexpected line from the child: {line:?}"),
            }
        }
        // Reopen and look at every subscription without consuming.
        let store =
            Store::open(dir.path(), opts()).unwrap_or_else(|e| panic!("cycle {cycle}: {e}"));
        let mut held: Vec<BTreeSet<String>> = Vec::new();
        for n in SUBS {
            let s = store.subscribe("ev.>", durable(n)).unwrap();
            let mut tags = BTreeSet::new();
            for m in s.browse(1_000_000).unwrap() {
                let tag = tag_of(m.body()).unwrap_or_else(|| panic!("cycle {cycle}: a torn body"));
                assert!(
                    tags.insert(tag.clone()),
                    "cycle {cycle}: {tag} twice in {n}"
                );
            }
            held.push(tags);
        }
        for (tag, p) in &log {
            let present: Vec<bool> = held.iter().map(|h| h.contains(tag)).collect();
            for (si, &here) in present.iter().enumerate() {
                if p.ack_doubt.contains(&si) {
                    continue;
                }
                if p.acked.contains(&si) {
                    assert!(!here, "cycle {cycle}: acked {tag} came back in s{si}");
                } else if p.done {
                    assert!(here, "cycle {cycle}: published {tag} lost in s{si}");
                    checked += 1;
                }
            }
            if !p.done && p.acked.is_empty() && p.ack_doubt.is_empty() {
                let n = present.iter().filter(|&&x| x).count();
                assert!(
                    n == 0 || n == 3,
                    "cycle {cycle}: publish {tag} in doubt is in {n} of 3"
                );
            }
        }
        // A publish in doubt that was stored is now known to be there: later cycles check it.
        for (tag, p) in log.iter_mut() {
            if !p.done && held.iter().any(|h| h.contains(tag)) {
                p.done = true;
            }
        }
        for h in &held {
            for tag in h {
                assert!(log.contains_key(tag), "cycle {cycle}: {tag} from nowhere");
            }
        }
    }
    assert!(
        checked > cycles,
        "the cycles held publishes to check: {checked}"
    );
}
