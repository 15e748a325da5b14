//! Several processes, one store: a client of an owner in another process; a client's death
//! (SIGKILL) returns its deliveries; the owner's death makes a client take over; the owner's
//! socket under attack (garbage, huge lengths, another protocol version).
//!
//! The test binary re-executes itself as the other process (`mp_child`, active only when
//! `MQLITE_MP_CHILD` is set); the child reports over its stdout pipe.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mqlite::*;

const NOW: Option<Duration> = Some(Duration::ZERO);

/// The other process: `owner` (opens as owner, serves until stdin closes or it is killed) or
/// `client` (opens as client, takes 3 deliveries of `q` without settling them, opens a
/// transaction that acks one, then waits to be killed).
#[test]
fn mp_child() {
    let Ok(arg) = std::env::var("MQLITE_MP_CHILD") else {
        return;
    };
    let (what, dir) = arg.split_once(',').expect("what,dir");
    let mut out = std::io::stdout().lock();
    let mut say = |line: &str| {
        // "@@": libtest may print "test mp_child ... " on the same line first.
        out.write_all(format!("@@{line}\n").as_bytes()).unwrap();
        out.flush().unwrap();
    };
    match what {
        "owner" => {
            let s = Store::open(
                dir,
                StoreOptions {
                    open_as: OpenAs::Owner,
                    ..Default::default()
                },
            )
            .unwrap();
            say("R");
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            s.close().unwrap();
        }
        "owner-nodelay" | "owner-syncq" => {
            // An owner whose failed deliveries come back at once; "owner-syncq" also declares
            // queue "sq" with ack durability sync (so its clients learn it from the owner).
            let s = Store::open(
                dir,
                StoreOptions {
                    open_as: OpenAs::Owner,
                    redelivery: common::durable::no_delay_policy(),
                    ..Default::default()
                },
            )
            .unwrap();
            if what == "owner-syncq" {
                s.queue_with(
                    "sq",
                    QueueOptions {
                        ack_durability: Some(AckDurability::Sync),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
            say("R");
            let mut rest = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut rest);
            s.close().unwrap();
        }
        "client" => {
            let s = Store::open(
                dir,
                StoreOptions {
                    open_as: OpenAs::Client,
                    ..Default::default()
                },
            )
            .unwrap();
            assert_eq!(s.role(), Role::Client);
            let q = s.queue("q").unwrap();
            let held = q.receive_batch(3, NOW).unwrap();
            assert_eq!(held.len(), 3);
            let mut t = s.transaction();
            t.send(&q, "never committed").unwrap();
            say("R");
            std::thread::sleep(Duration::from_secs(600));
            drop((held, t));
        }
        "subscriber" => {
            let s = Store::open(dir, client_opts()).unwrap();
            assert_eq!(s.role(), Role::Client);
            let nd = s
                .subscribe(
                    "ev.>",
                    SubscriptionOptions {
                        name: Some("nd".into()),
                        ..Default::default()
                    },
                )
                .unwrap();
            let dur = s.subscribe("ev.>", durable_dur()).unwrap();
            // One delivery of each held unsettled when it dies.
            let wait = Some(Duration::from_secs(30));
            let held = (nd.receive(wait).unwrap(), dur.receive(wait).unwrap());
            assert!(held.0.is_some() && held.1.is_some());
            say("R");
            std::thread::sleep(Duration::from_secs(600));
            drop((held, nd, dur));
        }
        "stranger" => {
            // Run as another uid: opening as a client must be refused by the owner.
            let e = Store::open(
                dir,
                StoreOptions {
                    open_as: OpenAs::Client,
                    connect_timeout: Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .unwrap_err();
            say(&format!("E {:?} {}", e.kind(), e.message()));
            say("R");
        }
        "receive-once" => {
            // A client that, at a line on stdin, takes one message with a zero timeout (as
            // `mqlite receive` without --wait) and says whether it got one.
            let s = Store::open(dir, client_opts()).unwrap();
            let q = s.queue("q").unwrap();
            say("R");
            let mut go = String::new();
            std::io::stdin().read_line(&mut go).unwrap();
            let got = q.receive(NOW).unwrap();
            say(&format!("G {}", u8::from(got.is_some())));
            if let Some(d) = got {
                d.ack_sync().unwrap();
            }
            s.close().unwrap();
        }
        "borrower" => {
            // A client consumer that borrows the owner's prefetch (a plain receive of one), on
            // command lines from stdin: `hold` takes one message and keeps it unsettled (`H
            // body count`, or `H -` if none came within 10 s); `ack` takes one and acks it
            // (`A body`, or `A -`); `flush` makes its notices and acks reach the owner (`F`);
            // `close` closes the store (`C`). It ends at `close`, or when killed.
            let s = Store::open(dir, client_opts()).unwrap();
            assert_eq!(s.role(), Role::Client);
            let q = s.queue("q").unwrap();
            say("R");
            let mut held = Vec::new();
            let wait = Some(Duration::from_secs(10));
            let name = |d: &Delivery| String::from_utf8(d.body().to_vec()).unwrap();
            for line in std::io::stdin().lock().lines() {
                match line.unwrap().trim() {
                    "hold" => match q.receive(wait).unwrap() {
                        Some(d) => {
                            say(&format!("H {} {}", name(&d), d.delivery_count()));
                            held.push(d);
                        }
                        None => say("H -"),
                    },
                    "ack" => match q.receive(wait).unwrap() {
                        Some(d) => {
                            say(&format!("A {}", name(&d)));
                            d.ack().unwrap();
                        }
                        None => say("A -"),
                    },
                    "flush" => {
                        s.flush().unwrap();
                        say("F");
                    }
                    "close" => {
                        for d in held.drain(..) {
                            d.ack().unwrap();
                        }
                        s.close().unwrap();
                        say("C");
                        return;
                    }
                    other => panic!("unknown command {other}"),
                }
            }
        }
        _ => panic!("unknown child {what}"),
    }
}

// The child is returned to the caller, which kills and waits for it (`kill`).
#[allow(clippy::zombie_processes)]
fn spawn(what: &str, dir: &std::path::Path) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "mp_child", "--nocapture", "--test-threads=1"])
        .env("MQLITE_MP_CHILD", format!("{what},{}", dir.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "the child died early"
        );
        if line.trim_end().ends_with("@@R") {
            return (child, out);
        }
    }
}

/// Stops child `pid` (SIGSTOP) and returns once it is stopped: `kill` returns when the signal
/// is sent, and a thread of the child could still answer a request in between.
fn stop(pid: libc::pid_t) {
    // SAFETY: signals to and waits for our own child; `status` is a valid out-pointer.
    unsafe {
        assert_eq!(libc::kill(pid, libc::SIGSTOP), 0);
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, libc::WUNTRACED), pid);
        assert!(
            libc::WIFSTOPPED(status),
            "child {pid} not stopped: {status:#x}"
        );
    }
}

fn kill(mut c: Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

fn client_opts() -> StoreOptions {
    StoreOptions {
        open_as: OpenAs::Client,
        connect_timeout: Duration::from_secs(10),
        ..Default::default()
    }
}

/// Review r1 #5: parallel `mqlite receive` processes said "no message" while the queue held
/// hundreds. A receive that takes a prefetch moves the messages out of the queue, then reads
/// them and makes their delivery record durable with the lock released; a competing receive
/// with a zero timeout found nothing ready and no buffer to take from, and answered "empty".
/// Here several clients receive at the same moment from a full queue: every one gets a message.
#[test]
fn competing_zero_timeout_receives_never_see_a_prefetch_as_an_empty_queue() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    q.send_batch((0..2000).map(|i| format!("m{i}"))).unwrap();
    for round in 0..3 {
        let mut kids: Vec<_> = (0..6).map(|_| spawn("receive-once", dir.path())).collect();
        for (c, _) in &mut kids {
            c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
        }
        let mut empty = 0;
        for (mut c, mut out) in kids {
            let mut line = String::new();
            let got = loop {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0, "a child died");
                if let Some(i) = line.find("@@G ") {
                    break line[i + 4..].trim_end() == "1";
                }
            };
            empty += usize::from(!got);
            assert!(c.wait().unwrap().success());
        }
        assert_eq!(empty, 0, "round {round}: {empty} of 6 receives said empty");
        // A client's clean close returns what it prefetched before it returns (it waits for
        // the owner to hand back its buffer), so right after the six ended the queue holds
        // everything they did not take.
        let st = q.stats().unwrap();
        assert_eq!(
            (st.depth, st.prefetched, st.in_flight),
            (2000 - 6 * (round + 1), 0, 0),
            "round {round}"
        );
    }
}

#[test]
fn a_client_of_an_owner_in_another_process_has_the_whole_api() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let s = Store::open(dir.path(), client_opts()).unwrap();
    assert_eq!(s.role(), Role::Client);
    assert_eq!(s.owner_pid(), owner.id());
    // Refusing to be a client: `Locked` naming the owner.
    let e = Store::open(
        dir.path(),
        StoreOptions {
            open_as: OpenAs::Owner,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Locked);
    assert!(e.message().contains(&owner.id().to_string()), "{e}");

    let q = s
        .queue_with(
            "q",
            QueueOptions {
                redelivery: Some(RedeliveryPolicy {
                    initial_redelivery_delay: Duration::ZERO,
                    redelivery_delay: Duration::ZERO,
                    max_redeliveries: 1,
                    ..Default::default()
                }),
                // No prefetch: a nacked message is redelivered before those a buffer holds.
                prefetch: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
    let a = q.send("a").unwrap();
    let ids = q.send_batch(["b", "c", "d"].map(Message::from)).unwrap();
    assert_eq!(ids.len(), 3);
    let (tx, rx) = std::sync::mpsc::channel();
    q.send_async("e", move |r| tx.send(r.map(|id| id.0)).unwrap())
        .unwrap();
    let e_id = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert!(e_id > ids[2].0);
    assert!(
        rx.recv_timeout(Duration::from_millis(100)).is_err(),
        "callback fired twice"
    );
    assert_eq!(q.stats().unwrap().depth, 5);

    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!((d.id(), d.body()), (a, &b"a"[..]));
    d.ack().unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    d.nack("try again").unwrap();
    let d = q.receive(Some(Duration::from_secs(5))).unwrap().unwrap();
    assert_eq!(d.body(), b"b");
    assert_eq!(d.delivery_count(), 2, "its second delivery");
    d.nack("again").unwrap(); // the second failure: dead-lettered (max_redeliveries 1)
    let d = q.receive(NOW).unwrap().unwrap();
    d.reject("poison").unwrap();
    let dlq = s.queue("DLQ").unwrap();
    assert_eq!(dlq.stats().unwrap().depth, 2);
    assert_eq!(q.browse(10).unwrap().len(), 2);

    // A transaction from the client: a send and an ack, atomically.
    let d = q.receive(NOW).unwrap().unwrap();
    let mut t = s.transaction();
    t.ack(d).unwrap();
    t.send(&q, "f").unwrap();
    t.commit().unwrap();
    let rest: Vec<_> = q.receive_batch(10, NOW).unwrap();
    let bodies: Vec<_> = rest.iter().map(|d| d.body().to_vec()).collect();
    assert_eq!(bodies, vec![b"e".to_vec(), b"f".to_vec()]);
    q.ack_batch(rest).unwrap();
    assert_eq!(q.stats().unwrap().depth, 0);

    // A receive waiting in the client is woken by a send of another process (here: another
    // client of the same owner), not by polling.
    let q2 = q.clone();
    let t = std::thread::spawn(move || q2.receive(Some(Duration::from_secs(30))).unwrap());
    std::thread::sleep(Duration::from_millis(50)); // let it block (not a timer wait)
    let other = Store::open(dir.path(), client_opts()).unwrap();
    other.queue("q").unwrap().send("wake").unwrap();
    let d = t.join().unwrap().unwrap();
    assert_eq!(d.body(), b"wake");
    d.ack().unwrap();
    drop(other);
    s.close().unwrap();
    kill(owner);
}

#[test]
fn a_killed_client_returns_its_deliveries_as_failed_and_its_transaction_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        dir.path(),
        StoreOptions {
            redelivery: common::durable::no_delay_policy(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.role(), Role::Owner);
    let q = s.queue("q").unwrap();
    q.send_batch(["1", "2", "3", "4"].map(Message::from))
        .unwrap();
    let (client, _out) = spawn("client", dir.path());
    let st = q.stats().unwrap();
    // The client's receive prefetched the fourth message (its buffer is kept by the owner).
    assert_eq!((st.depth, st.in_flight, st.prefetched), (0, 3, 1), "{st:?}");
    kill(client);
    // The owner notices the closed connection and returns the 3 deliveries, each counted as
    // a failed delivery (delivered now for the second time), and the prefetched one uncounted;
    // the transaction's send was never stored.
    let mut back = Vec::new();
    for _ in 0..100 {
        back.extend(
            q.receive_batch(10, Some(Duration::from_millis(100)))
                .unwrap(),
        );
        if back.len() == 4 {
            break;
        }
    }
    let mut counts: Vec<_> = back
        .iter()
        .map(|d| (d.body().to_vec(), d.delivery_count()))
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        vec![
            (b"1".to_vec(), 2),
            (b"2".to_vec(), 2),
            (b"3".to_vec(), 2),
            (b"4".to_vec(), 1)
        ]
    );
    q.ack_batch(back).unwrap();
    assert_eq!(q.stats().unwrap().in_flight, 0);
}

#[test]
fn when_the_owner_is_killed_a_client_takes_over_and_nothing_is_lost_or_doubled() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let s = Store::open(
        dir.path(),
        StoreOptions {
            connect_timeout: Duration::from_secs(10),
            // Used once this process owns the store: recovery's failed deliveries come back
            // at once.
            redelivery: common::durable::no_delay_policy(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.role(), Role::Client);
    let q = s.queue("q").unwrap();
    for i in 0..20 {
        q.send(format!("m{i}")).unwrap();
    }
    let held = q.receive(NOW).unwrap().unwrap();
    assert_eq!(held.body(), b"m0");
    kill(owner);
    // The next call finds the owner gone: this process takes the lock, recovers and serves.
    for i in 20..40 {
        q.send(format!("m{i}")).unwrap();
    }
    assert_eq!(s.role(), Role::Owner);
    // The delivery handed out by the dead owner can no longer be settled ...
    assert_eq!(held.ack().unwrap_err().kind(), ErrorKind::DeliveryLost);
    // ... and comes back through recovery, its delivery count incremented.
    let all = q.receive_batch(100, NOW).unwrap();
    let bodies: Vec<String> = all
        .iter()
        .map(|d| String::from_utf8(d.body().to_vec()).unwrap())
        .collect();
    let want: Vec<String> = (0..40).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies, want, "a send was lost or doubled");
    assert_eq!(
        all[0].delivery_count(),
        2,
        "the old owner's delivery counted as failed"
    );
    q.ack_batch(all).unwrap();
    // A client of the new owner (this process) works.
    let c = Store::open(dir.path(), client_opts()).unwrap();
    assert_eq!(c.owner_pid(), std::process::id());
    c.queue("q").unwrap().send("after").unwrap();
    assert_eq!(q.receive(NOW).unwrap().unwrap().body(), b"after");
}

/// Connects to the owner's socket by hand.
fn raw(dir: &std::path::Path) -> UnixStream {
    UnixStream::connect(dir.join("owner.sock")).unwrap()
}

fn hello(dir: &std::path::Path, protocol: u32) -> Vec<u8> {
    common::raw::hello(dir, protocol)
}

/// The durable subscription `dur` of the subscriber child.
fn durable_dur() -> SubscriptionOptions {
    SubscriptionOptions {
        name: Some("dur".into()),
        durable: true,
        ..Default::default()
    }
}

/// Polls `f` until it holds (another process's death is noticed by the owner asynchronously).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("never: {what}");
}

#[test]
fn a_killed_clients_non_durable_subscription_ends_and_its_durable_one_keeps_collecting() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        dir.path(),
        StoreOptions {
            redelivery: common::durable::no_delay_policy(),
            ..Default::default()
        },
    )
    .unwrap();
    let t = s.topic("ev.a").unwrap();
    // The child subscribes, then waits for one message in each subscription (published here
    // once both exist) and holds them unsettled.
    let (child, _out) = std::thread::scope(|sc| {
        sc.spawn(|| {
            eventually("the child's two subscriptions", || {
                s.subscriptions()
                    .iter()
                    .filter(|i| i.subscribers == 1)
                    .count()
                    == 2
            });
            t.publish("m0").unwrap();
        });
        spawn("subscriber", dir.path())
    });
    let subs = s.subscriptions();
    assert_eq!(subs.len(), 2, "{subs:?}");
    kill(child);
    // The owner notices the dead connection: the non-durable subscription ends with its only
    // subscriber; the durable one stays, detached, and its unsettled delivery comes back.
    eventually("the non-durable subscription ended", || {
        let v = s.subscriptions();
        v.len() == 1 && v[0].name == "dur" && v[0].subscribers == 0
    });
    t.publish("m1").unwrap();
    let dur = s.subscribe("ev.>", durable_dur()).unwrap();
    let got: Vec<(Vec<u8>, u32)> = dur
        .receive_batch(10, NOW)
        .unwrap()
        .into_iter()
        .map(|d| {
            let r = (d.body().to_vec(), d.delivery_count());
            d.ack().unwrap();
            r
        })
        .collect();
    assert_eq!(got, vec![(b"m0".to_vec(), 2), (b"m1".to_vec(), 1)]);
}

#[test]
fn a_hung_owner_gives_clients_a_timeout_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let opts = || StoreOptions {
        open_as: OpenAs::Client,
        connect_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    let c = Store::open(dir.path(), opts()).unwrap();
    let q = c.queue("q").unwrap();
    q.send("before").unwrap();
    let pid = owner.id() as libc::pid_t;
    stop(pid);
    // A connected client: its call is not answered, nor its ping.
    let e = q.send("while stopped").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("hung or stopped"), "{e}");
    // A new client: connected by the kernel, never welcomed.
    let e = Store::open(dir.path(), opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains(&format!("pid {pid}")), "{e}");
    // SAFETY: signals to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // Awake again, it answers.
    assert_eq!(
        q.receive(Some(Duration::from_secs(5)))
            .unwrap()
            .unwrap()
            .body(),
        b"before"
    );
    drop(c);
    kill(owner);
}

/// Review r4 #3: a call to a stopped owner failed with `Timeout`, but the client's close then
/// hung until the owner was resumed (its reader thread sat in `recv` on the owner's socket).
/// Close is bounded whatever the owner does: about `connect_timeout` per step; an async send
/// the stopped owner never answered completes with `Timeout` (outcome unknown), not `Closed`.
#[test]
fn closing_a_client_of_a_stopped_owner_returns_within_about_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let timeout = Duration::from_millis(500);
    let c = Store::open(
        dir.path(),
        StoreOptions {
            open_as: OpenAs::Client,
            connect_timeout: timeout,
            ..Default::default()
        },
    )
    .unwrap();
    let q = c.queue("q").unwrap();
    q.send("before").unwrap();
    let held = q.receive(NOW).unwrap().unwrap();
    let pid = owner.id() as libc::pid_t;
    stop(pid);
    let e = q.send("while stopped").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    let (tx, rx) = std::sync::mpsc::channel();
    q.send_async("async while stopped", move |r| {
        let _ = tx.send(r.map(|_| ()));
    })
    .unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let t0 = std::time::Instant::now();
    std::thread::spawn(move || {
        drop(held);
        let r = c.close();
        let _ = done_tx.send(r);
    });
    let closed = done_rx.recv_timeout(Duration::from_secs(20));
    let took = t0.elapsed();
    // SAFETY: signals to our own child (resumed before any assertion can fail, so it can be
    // killed).
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    kill(owner);
    assert!(
        matches!(closed, Ok(Ok(()))),
        "close did not return within 20 s of a stopped owner: {closed:?}"
    );
    // The async wait (a timeout and a ping), the owner's end (a timeout): a few timeouts
    // (with room for a loaded machine), not until the owner is resumed.
    assert!(took < timeout * 10, "close took {took:?}");
    let cb = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(cb.unwrap_err().kind(), ErrorKind::Timeout);
}

/// A receive given up on (its owner missed a ping) that the owner answers later: the client
/// releases the late delivery at once, instead of leaving it in flight until its consumer
/// closes or the ack timeout passes.
#[test]
fn a_late_answer_to_an_abandoned_receive_is_released_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let c = Store::open(
        dir.path(),
        StoreOptions {
            open_as: OpenAs::Client,
            connect_timeout: Duration::from_millis(500),
            ..Default::default()
        },
    )
    .unwrap();
    let q = c.queue("late").unwrap();
    let pid = owner.id() as libc::pid_t;
    stop(pid);
    // The owner takes the receive (queued in its socket) but cannot answer it, nor the ping.
    let e = q.receive(Some(Duration::from_secs(60))).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    // SAFETY: signals to our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGCONT) }, 0);
    // Awake, the owner hands this message to the receive still waiting there.
    q.send("late").unwrap();
    let d = q
        .receive(Some(Duration::from_secs(20)))
        .unwrap()
        .expect("the late delivery was not released back");
    assert_eq!(d.body(), b"late");
    d.ack().unwrap();
    assert_eq!(q.stats().unwrap().in_flight, 0);
    drop(c);
    kill(owner);
}

/// T17: a peer of another uid is refused by SO_PEERCRED even when the file modes would let it
/// connect (here loosened on purpose: the directory 0755, the socket 0666). Needs root, to run
/// the client as `nobody` with `setpriv` (util-linux); CI runs as root.
#[test]
fn a_client_of_another_uid_is_refused() {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        eprintln!("a_client_of_another_uid_is_refused: needs root (to switch uid); not run");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = dir.path().join(remote::SOCKET_NAME);
    assert_eq!(
        std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
    // The test binary, where `nobody` may run it.
    let bin_dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = bin_dir.path().join("multiproc-test");
    std::fs::copy(std::env::current_exe().unwrap(), &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&bin)
        .args(["--exact", "mp_child", "--nocapture", "--test-threads=1"])
        .env(
            "MQLITE_MP_CHILD",
            format!("stranger,{}", dir.path().display()),
        )
        .output()
        .expect("running setpriv (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.split("@@E ").nth(1))
        .unwrap_or_else(|| {
            panic!(
                "no answer from the client run as nobody: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(line.starts_with("Locked"), "{line}");
    assert!(
        line.contains("serves only its own user, not uid 65534"),
        "{line}"
    );
    // The owner goes on.
    q.send("still served").unwrap();
    assert_eq!(q.receive(NOW).unwrap().unwrap().body(), b"still served");
}

#[test]
fn the_owner_survives_garbage_huge_lengths_and_other_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue("q").unwrap();
    let c = Store::open(dir.path(), client_opts()).unwrap();
    let cq = c.queue("q").unwrap();

    // Not mqlite at all: refused with a welcome that says so, then closed.
    let mut g = raw(dir.path());
    g.write_all(&[0xAB; 64]).unwrap();
    let w = remote::protocol::Welcome::read(&mut g).unwrap();
    assert!(w.refusal.is_some());
    // Another protocol version: a clear error naming both.
    let mut v = raw(dir.path());
    v.write_all(&hello(dir.path(), 999)).unwrap();
    let w = remote::protocol::Welcome::read(&mut v).unwrap();
    let (_, text) = w.refusal.unwrap();
    assert!(text.contains("999"), "{text}");
    // A frame announcing 4 GiB, then nothing: the connection is dropped, nothing allocated.
    let mut h = raw(dir.path());
    h.write_all(&hello(dir.path(), remote::protocol::PROTOCOL_VERSION))
        .unwrap();
    assert!(remote::protocol::Welcome::read(&mut h)
        .unwrap()
        .refusal
        .is_none());
    h.write_all(&u32::MAX.to_le_bytes()).unwrap();
    let mut rest = Vec::new();
    let _ = h.read_to_end(&mut rest);
    // A well-framed payload that does not decode: dropped.
    let mut b = raw(dir.path());
    b.write_all(&hello(dir.path(), remote::protocol::PROTOCOL_VERSION))
        .unwrap();
    remote::protocol::Welcome::read(&mut b).unwrap();
    b.write_all(&8u32.to_le_bytes()).unwrap();
    b.write_all(&[0xFF; 8]).unwrap();
    let _ = b.read_to_end(&mut rest);
    // A client that sends and never reads: its window bounds what the owner holds for it.
    let mut lazy = raw(dir.path());
    lazy.write_all(&hello(dir.path(), remote::protocol::PROTOCOL_VERSION))
        .unwrap();
    remote::protocol::Welcome::read(&mut lazy).unwrap();
    lazy.set_nonblocking(true).unwrap();
    let mut frame = Vec::new();
    remote::protocol::put_frame(&mut frame, &(1u64, remote::protocol::Request::QueueNames))
        .unwrap();
    let mut written = 0usize;
    for _ in 0..200_000 {
        match lazy.write(&frame) {
            Ok(n) => written += n,
            Err(_) => break,
        }
    }
    assert!(
        written < 200_000 * frame.len(),
        "the owner kept reading from a client that never reads its answers"
    );

    // The others keep working.
    cq.send("still here").unwrap();
    assert_eq!(q.receive(NOW).unwrap().unwrap().body(), b"still here");
    drop(lazy);
}

/// T17 in `cargo test`: the protocol decoders on the committed fuzz seeds
/// (`tests/fuzz/corpus/protocol/`), on mutations of valid frames of every kind of request and
/// reply (bit flips, truncation, junk, extreme lengths), and on random bytes; they never panic.
/// `MQLITE_FUZZ_ITERS` sets the number of mutations (default 30,000: seconds); the real fuzzing
/// is the cargo-fuzz target `protocol` (`tests/fuzz/run.sh SECONDS`).
#[test]
fn protocol_decoder_fuzz_short() {
    let mut rng = common::fault::Rng::new(7);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/protocol");
    let mut seeds = remote::protocol::fuzz_seeds();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    seeds.extend(files.iter().map(|p| std::fs::read(p).unwrap()));
    // Valid frames decode (else the mutations below would test nothing deep).
    for s in &seeds {
        assert!(
            remote::protocol::fuzz_decode(s) > 0,
            "a seed does not decode: {s:?}"
        );
    }
    let iters: usize = std::env::var("MQLITE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);
    let mut buf = vec![0u8; 512];
    for i in 0..iters {
        if i % 4 == 0 {
            let n = (rng.below(512) as usize).max(1);
            rng.fill(&mut buf[..n]);
            if i % 8 == 0 {
                let len = rng.below(600) as u32;
                buf[..4].copy_from_slice(&len.to_le_bytes());
            }
            remote::protocol::fuzz_decode(&buf[..n]);
            continue;
        }
        let mut v = seeds[rng.below(seeds.len() as u64) as usize].clone();
        for _ in 0..1 + rng.below(3) {
            if v.is_empty() {
                break;
            }
            let at = rng.below(v.len() as u64) as usize;
            match rng.below(4) {
                0 => v[at] ^= 1 << rng.below(8),
                1 => v.truncate(at),
                2 => v[at] = rng.below(256) as u8,
                _ => {
                    let end = (at + 4).min(v.len());
                    v[at..end].fill([0u8, 0xff][rng.below(2) as usize]);
                }
            }
        }
        remote::protocol::fuzz_decode(&v);
    }
}

/// Writes the seeds of the cargo-fuzz target `protocol` (run by hand after a protocol change):
/// `cargo test --release --test multiproc -- --ignored make_protocol_seeds`.
#[test]
#[ignore]
fn make_protocol_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus/protocol");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in remote::protocol::fuzz_seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
}

/// A client's send as the client library writes it: with its automatic resend key `key`,
/// on a fresh connection (as after a reconnection) to queue `q` declared with `options`.
fn raw_send(dir: &std::path::Path, options: &QueueOptions, key: &str, body: &str) -> MessageId {
    use remote::protocol::{Request, Response};
    let mut c = common::raw::client(dir);
    let q = match common::raw::call(
        &mut c,
        1,
        Request::Declare {
            name: "q".into(),
            options: Some(options.clone()),
        },
    ) {
        Response::Declared { queue: q, .. } => q,
        r => panic!("{r:?}"),
    };
    let message = Message::new(body).dedup_key(key);
    match common::raw::call(&mut c, 2, Request::Send { queue: q, message }) {
        Response::Id(id) => id,
        r => panic!("{r:?}"),
    }
}

/// F11: a client's automatic resend keys live in a window of the engine's own, not in the
/// queue's dedup window. The queue here remembers no key of the program's (window 0), yet a
/// client's send whose answer was lost with its owner, resent to the next owner (the key is
/// rebuilt from the journal at recovery), is stored once; and a program's key equal in text to
/// an automatic one is not taken for it.
#[test]
fn a_resend_to_the_next_owner_is_stored_once_whatever_the_queues_dedup_window() {
    let dir = tempfile::tempdir().unwrap();
    let no_dedup = QueueOptions {
        dedup_window: Some(Duration::ZERO),
        ..Default::default()
    };
    let key = "\u{1}mq5eed.1";
    let first = {
        let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
        let q = s.queue_with("q", no_dedup.clone()).unwrap();
        // The queue's own window is off: a program's key stores twice.
        q.send(Message::new("u").dedup_key("mine")).unwrap();
        q.send(Message::new("u").dedup_key("mine")).unwrap();
        let first = raw_send(dir.path(), &no_dedup, key, "once");
        // A resend to the same owner.
        assert_eq!(raw_send(dir.path(), &no_dedup, key, "once"), first);
        assert_eq!(q.stats().unwrap().depth, 3);
        s.close().unwrap();
        first
    };
    // The next owner recovers the key from the journal.
    let s = Store::open(dir.path(), StoreOptions::default()).unwrap();
    let q = s.queue_with("q", no_dedup.clone()).unwrap();
    assert_eq!(raw_send(dir.path(), &no_dedup, key, "once"), first);
    assert_eq!(q.stats().unwrap().depth, 3, "the resend was stored again");
    // A program's key of the same text is not the client's: stored, under a new id.
    let mine = q.send(Message::new("mine").dedup_key(key)).unwrap();
    assert_ne!(mine, first);
    assert_eq!(q.stats().unwrap().depth, 4);
    // Nor does it enter the engine's window: a client's resend of that key still finds its own.
    assert_eq!(raw_send(dir.path(), &no_dedup, key, "once"), first);
    let bodies: Vec<Vec<u8>> = q
        .receive_batch(10, NOW)
        .unwrap()
        .iter()
        .map(|d| d.body().to_vec())
        .collect();
    assert_eq!(bodies, [&b"u"[..], b"u", b"once", b"mine"]);
}

/// F10 (SPEC §10: "a normal close() of the owner hands over without any error in the
/// clients"): the owner process closes cleanly while this client holds deliveries of a plain
/// receive and of a consumer; this process takes the store over, and the client settles them
/// through the new owner: no error, no failed delivery counted, nothing delivered again.
#[test]
fn a_clean_close_of_the_owner_hands_the_clients_deliveries_over() {
    let dir = tempfile::tempdir().unwrap();
    let (mut owner, _out) = spawn("owner", dir.path());
    let s = Store::open(
        dir.path(),
        StoreOptions {
            connect_timeout: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(s.role(), Role::Client);
    let q = s.queue("q").unwrap();
    for i in 0..10 {
        q.send(format!("m{i}")).unwrap();
    }
    let mut held = q.receive_batch(3, NOW).unwrap();
    let c = q.consumer(ConsumerOptions::default());
    let by_consumer = c.receive(NOW).unwrap().unwrap();
    let mut want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
    want.retain(|b| {
        b.as_bytes() != by_consumer.body() && held.iter().all(|d| d.body() != b.as_bytes())
    });
    want.push("after".into());
    // The consumer borrowed the rest of its prefetch into this process (issue 10, W10 W3s):
    // the owner's clean close takes it back uncounted below.
    assert_eq!(q.stats().unwrap().prefetched, 6);
    // The owner closes normally (its stdin ends).
    drop(owner.stdin.take());
    assert!(owner.wait().unwrap().success());
    // The next call finds the owner gone: this process takes the store over.
    q.send("after").unwrap();
    assert_eq!(s.role(), Role::Owner);
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.in_flight), (7, 4), "{st:?}");
    // Every way of settling works on a delivery handed over.
    let last = held.pop().unwrap();
    held.remove(0).ack().unwrap();
    held.remove(0).ack_sync().unwrap();
    q.ack_batch(vec![last]).unwrap();
    by_consumer.ack().unwrap();
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.redelivered),
        (7, 0, 0),
        "{st:?}"
    );
    // Nothing comes again, and what comes was never counted as failed.
    let rest = q.receive_batch(100, NOW).unwrap();
    let bodies: Vec<String> = rest
        .iter()
        .map(|d| String::from_utf8(d.body().to_vec()).unwrap())
        .collect();
    assert_eq!(bodies, want);
    assert!(rest.iter().all(|d| d.delivery_count() == 1));
    q.ack_batch(rest).unwrap();
    assert_eq!(q.stats().unwrap().depth, 0);
    drop(c);
}

/// F10, the other half: a handed-over delivery its client drops unsettled, or nacks, counts
/// as a failed delivery, as any; and after the owner's crash (SIGKILL) nothing is handed over:
/// the settle fails with `DeliveryLost` and the message comes back counted.
#[test]
fn after_an_owners_crash_nothing_is_handed_over() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let s = Store::open(
        dir.path(),
        StoreOptions {
            connect_timeout: Duration::from_secs(10),
            redelivery: common::durable::no_delay_policy(),
            ..Default::default()
        },
    )
    .unwrap();
    let q = s.queue("q").unwrap();
    q.send("a").unwrap();
    let held = q.receive(NOW).unwrap().unwrap();
    kill(owner);
    q.send("b").unwrap();
    assert_eq!(s.role(), Role::Owner);
    let e = held.ack().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::DeliveryLost, "{e}");
    let again = q.receive(NOW).unwrap().unwrap();
    assert_eq!((again.body(), again.delivery_count()), (&b"a"[..], 2));
    again.ack().unwrap();
    assert!(!dir.path().join("HANDOVER").exists());
}

/// F6: what the owner takes in one call a client takes in one call too, however large:
/// requests and replies over one frame's limit (64 MiB) go as several frames, each within the
/// limit, joined by the other side.
#[test]
fn requests_and_replies_over_64_mib_go_as_several_frames() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(
        dir.path(),
        StoreOptions {
            max_body_bytes: 96 << 20,
            ..Default::default()
        },
    )
    .unwrap();
    let q = s.queue("big").unwrap();
    let c = Store::open(dir.path(), client_opts()).unwrap();
    assert_eq!(c.role(), Role::Client);
    let cq = c.queue("big").unwrap();
    let body = |i: u8, n: usize| vec![i; n];
    // A batch of 80 MiB: one call, all of it or nothing.
    let ids = cq
        .send_batch((0..5u8).map(|i| Message::new(body(i, 16 << 20))))
        .unwrap();
    assert_eq!(ids.len(), 5);
    // One body over a frame's limit, each way.
    let huge = cq.send(Message::new(body(9, 80 << 20))).unwrap();
    assert_eq!(q.stats().unwrap().depth, 6);
    let browsed = cq.browse(10).unwrap();
    assert_eq!(browsed.len(), 6);
    assert_eq!(browsed[5].body().len(), 80 << 20);
    // A reply of 160 MiB.
    let got = cq.receive_batch(10, NOW).unwrap();
    assert_eq!(got.len(), 6);
    for (i, d) in got.iter().take(5).enumerate() {
        assert_eq!((d.id(), d.body()), (ids[i], &body(i as u8, 16 << 20)[..]));
    }
    assert_eq!((got[5].id(), got[5].body().len()), (huge, 80 << 20));
    assert!(got[5].body().iter().all(|&b| b == 9));
    cq.ack_batch(got).unwrap();
    assert_eq!(q.stats().unwrap().depth, 0);
    // Pieces that do not make a payload are refused: the connection is dropped, nothing else.
    use remote::protocol::{MAX_FRAME, MORE_FRAMES};
    let more = |n: u32| (n | MORE_FRAMES).to_le_bytes();
    let attacks: [Vec<u8>; 4] = [
        // A piece, then a length over the frame limit.
        [&more(8)[..], &[0; 8], &(MAX_FRAME as u32 + 1).to_le_bytes()].concat(),
        // A piece, then the end of the stream.
        [&more(8)[..], &[1; 8]].concat(),
        // An empty piece said to be followed by more.
        more(0).to_vec(),
        // Pieces joining into garbage.
        [&more(4)[..], &[0xFF; 4], &4u32.to_le_bytes(), &[0xFF; 4]].concat(),
    ];
    for a in attacks {
        let mut g = common::raw::client(dir.path());
        g.write_all(&a).unwrap();
        g.shutdown(std::net::Shutdown::Write).unwrap();
        let mut rest = Vec::new();
        let _ = g.read_to_end(&mut rest);
        assert!(rest.is_empty(), "the owner answered garbage: {rest:?}");
    }
    cq.send("still here").unwrap();
    assert_eq!(cq.receive(NOW).unwrap().unwrap().body(), b"still here");
}

/// Review r5 #16: an open that became a client silently ignored a `ManualClock` (its timers ran
/// on the owner's real clock) and `repair=true` (no repair ran). Both are refused with
/// `InvalidArgument` naming the option and the owner's pid; without them the same open is a
/// client, and the owner is unaffected.
#[test]
fn a_client_open_refuses_options_only_an_owner_can_apply() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Store::open(
        dir.path(),
        StoreOptions {
            open_as: OpenAs::Owner,
            ..Default::default()
        },
    )
    .unwrap();
    let pid = format!("pid {}", std::process::id());
    let client = || StoreOptions {
        open_as: OpenAs::Client,
        ..Default::default()
    };
    for (what, o) in [
        (
            "clock",
            StoreOptions {
                clock: ManualClock::new(1_000),
                ..client()
            },
        ),
        (
            "repair",
            StoreOptions {
                repair: true,
                ..client()
            },
        ),
    ] {
        let e = Store::open(dir.path(), o).expect_err(what);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{what}: {e}");
        assert!(
            e.message().contains(what) && e.message().contains(&pid),
            "{what}: {e}"
        );
    }
    let c = Store::open(dir.path(), client()).unwrap();
    assert_eq!(c.role(), Role::Client);
    c.queue("q").unwrap().send("x").unwrap();
    c.close().unwrap();
    assert_eq!(owner.queue("q").unwrap().stats().unwrap().messages, 1);
    owner.close().unwrap();
}

/// A client of an owner in another process that never takes the store over, giving up on a
/// dead owner after 2 s.
fn client_only() -> StoreOptions {
    StoreOptions {
        open_as: OpenAs::Client,
        connect_timeout: Duration::from_secs(2),
        ..Default::default()
    }
}

/// What a fresh owner process finds in queue `name` of `dir` (through a client of it): each
/// message with its redelivered flag, settled with `ack_sync`.
fn left_in(dir: &std::path::Path, name: &str) -> Vec<(String, bool)> {
    let (owner, _out) = spawn("owner-nodelay", dir);
    let c = Store::open(dir, client_only()).unwrap();
    let q = c.queue(name).unwrap();
    let ds = q.receive_batch(100, NOW).unwrap();
    let got = ds
        .iter()
        .map(|d| {
            (
                String::from_utf8(d.body().to_vec()).unwrap(),
                d.redelivered(),
            )
        })
        .collect();
    q.ack_batch_sync(ds).unwrap();
    c.close().unwrap();
    kill(owner);
    got
}

/// Issue 10 / W10 (design §6 test 1): a client's acks on a lazy queue go one way, in batches
/// (`Settles`), so that a client receiving and acking one at a time shares the owner's group
/// commits like a consumer of the owner: 2,000 receive+ack cost the owner at most 300
/// fdatasyncs (about 1,000 before: each ack a round trip and about 2 acks per commit).
#[test]
fn a_clients_lazy_acks_go_one_way_and_share_the_owners_commits() {
    let dir = tempfile::tempdir().unwrap();
    let owner = Store::open(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(owner.role(), Role::Owner);
    let c = Store::open(dir.path(), client_opts()).unwrap();
    let q = c.queue("q").unwrap();
    const N: usize = 2_000;
    q.send_batch((0..N).map(|i| Message::from(format!("m{i}"))))
        .unwrap();
    let before = owner.commit_stats().unwrap().syncs;
    for i in 0..N {
        let d = q
            .receive(Some(Duration::from_secs(10)))
            .unwrap()
            .expect("the backlog ran dry");
        assert_eq!(d.body(), format!("m{i}").as_bytes());
        d.ack().unwrap();
    }
    // The acks' failures, if any, are reported here; and the flush makes them durable.
    c.flush().unwrap();
    let syncs = owner.commit_stats().unwrap().syncs - before;
    assert!(syncs <= 300, "{syncs} fdatasyncs for {N} receive+acks");
    let st = owner.queue("q").unwrap().stats().unwrap();
    assert_eq!((st.messages, st.in_flight), (0, 0), "{st:?}");
    c.close().unwrap();
    owner.close().unwrap();
}

/// Design §6 test 3 (guard): on a queue another process declared `ack_durability = sync`, a
/// client's plain `ack()` is durable when it returns (the client learns the queue's ack
/// durability from the owner, not from its own declaration): SIGKILLed right after, the owner
/// leaves the message acked.
#[test]
fn a_clients_ack_on_a_queue_declared_sync_elsewhere_is_durable_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner-syncq", dir.path());
    let c = Store::open(dir.path(), client_only()).unwrap();
    let q = c.queue("sq").unwrap();
    q.send_batch(["acked", "kept"].map(Message::from)).unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"acked");
    d.ack().unwrap();
    kill(owner);
    let _ = c.close();
    // ("kept" was in the owner's prefetch buffer for the client: counted as failed.)
    let left = left_in(dir.path(), "sq");
    let bodies: Vec<&str> = left.iter().map(|(b, _)| b.as_str()).collect();
    assert_eq!(bodies, ["kept"], "the sync ack was lost with its owner");
}

/// Design §6 test 6: a client's lazy ack is one way — it returns even while the owner is
/// stopped — and one lost to the owner's SIGKILL before its commit comes back redelivered,
/// never lost. After the client's `ack_sync` (of another delivery) or a later sync send
/// returned, the lazy acks before them are durable: never redelivered (SPEC §1).
#[test]
fn a_clients_lazy_ack_lost_with_its_owner_is_redelivered_and_never_after_a_sync_call() {
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner-nodelay", dir.path());
    let c = Store::open(dir.path(), client_only()).unwrap();
    let q = c.queue("q").unwrap();
    q.send_batch(["lost", "a", "b", "c", "kept"].map(Message::from))
        .unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!(d.body(), b"lost");
    stop(owner.id() as libc::pid_t);
    let t = std::time::Instant::now();
    d.ack().unwrap();
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "a lazy ack waited for a stopped owner: {:?}",
        t.elapsed()
    );
    kill(owner);
    let _ = c.close();

    // The lost ack's message is back, redelivered; lazy acks followed by an ack_sync, and by a
    // sync send, are durable once those returned.
    let (owner, _out) = spawn("owner-nodelay", dir.path());
    let c = Store::open(dir.path(), client_only()).unwrap();
    let q = c.queue("q").unwrap();
    let d = q.receive(NOW).unwrap().unwrap();
    assert_eq!((d.body(), d.redelivered()), (&b"lost"[..], true));
    d.ack().unwrap();
    q.receive(NOW).unwrap().unwrap().ack_sync().unwrap(); // "a"
    q.receive(NOW).unwrap().unwrap().ack().unwrap(); // "b"
    q.send("sent").unwrap();
    q.receive(NOW).unwrap().unwrap().ack().unwrap(); // "c": lazy, nothing after it
    stop(owner.id() as libc::pid_t);
    kill(owner);
    let _ = c.close();
    let left = left_in(dir.path(), "q");
    let bodies: Vec<&str> = left.iter().map(|(b, _)| b.as_str()).collect();
    assert!(
        !bodies.contains(&"lost") && !bodies.contains(&"a") && !bodies.contains(&"b"),
        "an ack durable by a later sync call came back: {left:?}"
    );
    assert!(
        bodies.contains(&"kept") && bodies.contains(&"sent"),
        "{left:?}"
    );
}

/// Review r10 #2: a client whose owner is killed while thousands of its async sends are
/// unanswered took the store over and hung for good: its reader thread resent them all with
/// the client's locks held, and stopped reading the answers meanwhile; the new owner, blocked
/// writing those answers, stopped reading. Every callback must run (each send stored once),
/// `role()` must answer, and new sends work.
///
/// Issue 15 #7: the test was never seen failing without its fix. The owner answered as fast as
/// the sends came (a few thousand unanswered at most), and the sender stopped at a fixed count,
/// so the take-over resent too few requests for their answers to outgrow the sockets' buffers
/// (about 2 × 208 KiB): the reverted client did not hang. Now the owner is killed once its
/// journal holds some 50,000 sends (its recovery takes a while) and the sender goes on while
/// the client takes over, so the take-over resends many thousands at once; every wait is
/// bounded, and with the fix reverted (the resend written inline by the reader, locks held)
/// the test fails naming the stuck sender instead of hanging. The store is leaked so that a
/// failure's unwinding does not wait on a hung client's close.
#[test]
fn a_client_with_thousands_of_async_sends_pending_takes_over_when_its_owner_is_killed() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    const UNANSWERED: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let (owner, _out) = spawn("owner", dir.path());
    let s: &'static Store = Box::leak(Box::new(
        Store::open(
            dir.path(),
            StoreOptions {
                connect_timeout: Duration::from_secs(10),
                ..Default::default()
            },
        )
        .unwrap(),
    ));
    assert_eq!(s.role(), Role::Client);
    let q = s.queue("q").unwrap();
    let (sent, done, stop) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let (tx, rx) = std::sync::mpsc::channel::<Result<MessageId>>();
    let (ended_tx, ended) = std::sync::mpsc::channel::<()>();
    let sender = {
        let (q, sent, done, stop) = (q.clone(), sent.clone(), done.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Acquire) && i < 2_000_000 {
                let (tx, done) = (tx.clone(), done.clone());
                let mut body = format!("m{i:06}").into_bytes();
                body.resize(2000, b'x');
                q.send_async(body, move |r| {
                    done.fetch_add(1, Ordering::AcqRel);
                    let _ = tx.send(r);
                })
                .unwrap();
                sent.fetch_add(1, Ordering::AcqRel);
                i += 1;
            }
            let _ = ended_tx.send(());
        })
    };
    // Kill the owner once its journal is large (or many sends are unanswered, or after 30 s),
    // then let the sender queue sends while the client takes over: they are resent with the
    // unanswered ones when the take-over installs its connection.
    let t0 = std::time::Instant::now();
    let mut most = 0;
    loop {
        let n = sent.load(Ordering::Acquire);
        let pending = n - done.load(Ordering::Acquire);
        most = most.max(pending);
        if pending >= UNANSWERED || n >= 50_000 || t0.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::yield_now();
    }
    kill(owner);
    let killed_at = sent.load(Ordering::Acquire);
    let t1 = std::time::Instant::now();
    while sent.load(Ordering::Acquire) < killed_at + UNANSWERED
        && t1.elapsed() < Duration::from_secs(60)
    {
        std::thread::yield_now();
    }
    stop.store(true, Ordering::Release);
    // Bounded: a hung client blocks the sender inside `send_async` for good.
    ended
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
            "the sender is stuck in send_async 60 s after the take-over ({} sent, {} answered, \
             {most} unanswered at most before the kill): the client hung",
            sent.load(Ordering::Acquire),
            done.load(Ordering::Acquire)
        )
        });
    sender.join().unwrap();
    let n = sent.load(Ordering::Acquire);
    let mut ids = std::collections::BTreeSet::new();
    for k in 0..n {
        let r = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("{} of {n} callbacks never ran", n - k));
        // A send the dead owner may or may not have stored says so; none may be doubled.
        if let Ok(id) = r {
            assert!(ids.insert(id), "{id} reported twice");
        }
    }
    eprintln!("{most} sends unanswered at most before the kill at {killed_at}, {n} sent in all");
    assert_eq!(s.role(), Role::Owner);
    q.send("after").unwrap();
    let st = q.stats().unwrap();
    assert!(st.messages as usize > ids.len(), "{st:?}, {} ok", ids.len());
    drop(q);
    s.close().unwrap();
}

/// A child's next report line (`@@` stripped).
fn next_report(out: &mut BufReader<std::process::ChildStdout>) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "a child died");
        if let Some(i) = line.find("@@") {
            return line[i + 2..].trim_end().to_string();
        }
    }
}

/// Tells a `borrower` child one command and returns its report.
fn tell(kid: &mut (Child, BufReader<std::process::ChildStdout>), cmd: &str) -> String {
    let stdin = kid.0.stdin.as_mut().unwrap();
    stdin.write_all(format!("{cmd}\n").as_bytes()).unwrap();
    stdin.flush().unwrap();
    next_report(&mut kid.1)
}

fn no_delay_owner(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        StoreOptions {
            redelivery: common::durable::no_delay_policy(),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Issue 10 (W10 W3s): a client's receive of one borrows the rest of its consumer's prefetch
/// from the owner; the owner's stats count the borrowed messages `prefetched` and the one
/// handed out `in_flight`; a client killed with borrowed messages has each come back once
/// counted (its count was durable at the prefetch, as a crashed prefetching consumer's), none
/// lost.
#[test]
fn a_killed_client_borrowing_the_prefetch_gives_every_message_back_counted_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = no_delay_owner(dir.path());
    let q = s.queue("q").unwrap();
    q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    let mut kid = spawn("borrower", dir.path());
    assert_eq!(tell(&mut kid, "hold"), "H m0 1");
    assert_eq!(tell(&mut kid, "flush"), "F");
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.in_flight, st.prefetched), (0, 1, 9), "{st:?}");
    // Handed out in the client without a round trip: in flight once the owner is told.
    assert_eq!(tell(&mut kid, "hold"), "H m1 1");
    assert_eq!(tell(&mut kid, "flush"), "F");
    let st = q.stats().unwrap();
    assert_eq!((st.depth, st.in_flight, st.prefetched), (0, 2, 8), "{st:?}");
    kill(kid.0);
    let mut back = Vec::new();
    for _ in 0..100 {
        back.extend(
            q.receive_batch(10, Some(Duration::from_millis(100)))
                .unwrap(),
        );
        if back.len() == 10 {
            break;
        }
    }
    let mut got: Vec<_> = back
        .iter()
        .map(|d| {
            (
                String::from_utf8(d.body().to_vec()).unwrap(),
                d.delivery_count(),
            )
        })
        .collect();
    got.sort();
    let want: Vec<_> = (0..10).map(|i| (format!("m{i}"), 2)).collect();
    assert_eq!(got, want);
    q.ack_batch(back).unwrap();
    let st = q.stats().unwrap();
    assert_eq!(
        (st.messages, st.in_flight, st.prefetched),
        (0, 0, 0),
        "{st:?}"
    );
}

/// Issue 14 #1 across processes: four client consumers of one queue, each borrowing its
/// prefetch in turn. The first borrows everything; each next one, finding the queue empty,
/// has the owner recall what another client borrowed and gets a message at once (without
/// the recall it waited its whole 10 s and got none). Their clean closes give back the rest
/// uncounted.
#[test]
fn four_competing_client_consumers_are_never_starved_by_a_borrowed_prefetch() {
    let dir = tempfile::tempdir().unwrap();
    let s = no_delay_owner(dir.path());
    let q = s.queue("q").unwrap();
    q.send_batch((0..400).map(|i| format!("m{i:03}"))).unwrap();
    let mut kids: Vec<_> = (0..4).map(|_| spawn("borrower", dir.path())).collect();
    let mut seen = std::collections::BTreeSet::new();
    for round in 0..3 {
        for (i, kid) in kids.iter_mut().enumerate() {
            let r = tell(kid, "ack");
            assert!(
                r.starts_with("A m"),
                "round {round}: consumer {i} starved: {r}"
            );
            assert!(seen.insert(r), "delivered twice");
        }
    }
    for kid in &mut kids {
        assert_eq!(tell(kid, "close"), "C");
    }
    for mut kid in kids {
        assert!(kid.0.wait().unwrap().success());
    }
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.prefetched, st.redelivered),
        (400 - 12, 0, 0, 0),
        "{st:?}"
    );
}

/// A purge from another process than the client that borrowed a consumer's prefetch takes
/// the borrowed messages not handed out (the owner recalls them first), not the one the
/// client handed out.
#[test]
fn a_purge_takes_what_a_client_borrowed_and_did_not_hand_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = no_delay_owner(dir.path());
    let q = s.queue("q").unwrap();
    q.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    let mut kid = spawn("borrower", dir.path());
    assert_eq!(tell(&mut kid, "hold"), "H m0 1");
    assert_eq!(tell(&mut kid, "flush"), "F");
    assert_eq!(q.stats().unwrap().prefetched, 9);
    assert_eq!(q.purge().unwrap(), 9);
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.prefetched, st.messages),
        (0, 1, 0, 1),
        "{st:?}"
    );
    // The client borrows nothing more: its next receive finds the queue empty.
    assert_eq!(tell(&mut kid, "close"), "C");
    assert!(kid.0.wait().unwrap().success());
    assert_eq!(q.stats().unwrap().messages, 0);
}

/// Review r14 #15: the deliveries an owner's clean close hands over are held for their clients
/// for a minute — but each next owner restarted that minute, and handed them over again at its
/// own close. A store opened afterwards only by short-lived processes (CLI commands, cron jobs)
/// held a dead client's deliveries for good. The hold runs from the close that made it now.
#[test]
fn a_handover_hold_runs_from_the_close_that_made_it_not_from_each_open() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_000_000);
    let open = || {
        Store::open(
            dir.path(),
            StoreOptions {
                clock: clock.clone(),
                redelivery: common::durable::no_delay_policy(),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let s = open();
    s.queue("q").unwrap().send("a").unwrap();
    let mut kid = spawn("borrower", dir.path());
    assert_eq!(tell(&mut kid, "hold"), "H a 1");
    assert_eq!(tell(&mut kid, "flush"), "F");
    s.close().unwrap(); // hands "a" over to its client, held a minute
                        // The client dies: nobody will settle it.
    kill(kid.0);
    // Short-lived owners, 40 s apart: the first is within the hold, the second past it.
    clock.advance(Duration::from_secs(40));
    let s = open();
    let q = s.queue("q").unwrap();
    assert!(
        q.receive(NOW).unwrap().is_none(),
        "still held for its client"
    );
    assert_eq!(q.stats().unwrap().in_flight, 1);
    s.close().unwrap();
    clock.advance(Duration::from_secs(40));
    let s = open();
    let q = s.queue("q").unwrap();
    let d = q
        .receive(NOW)
        .unwrap()
        .expect("back once the first close's hold ended");
    assert_eq!((d.body(), d.delivery_count()), (&b"a"[..], 2));
    d.ack_sync().unwrap();
    s.close().unwrap();
}

/// Review r14 #13: a replay from another process than the client that borrowed a DLQ
/// consumer's prefetch takes the borrowed dead letters not handed out (the owner recalls them
/// first, as for a purge), not the one the client handed out. (The client reads queue `q`:
/// here `q` is the dead-letter queue of `x`.)
#[test]
fn a_replay_takes_dead_letters_a_client_borrowed_and_did_not_hand_out() {
    let dir = tempfile::tempdir().unwrap();
    let s = no_delay_owner(dir.path());
    let x = s
        .queue_with(
            "x",
            QueueOptions {
                dead_letter: Some(DeadLetterStrategy::Shared { name: "q".into() }),
                ..Default::default()
            },
        )
        .unwrap();
    x.send_batch((0..10).map(|i| format!("m{i}"))).unwrap();
    for d in x.receive_batch(10, None).unwrap() {
        d.reject("bad").unwrap();
    }
    let q = s.queue("q").unwrap();
    assert_eq!(q.stats().unwrap().messages, 10);
    let mut kid = spawn("borrower", dir.path());
    assert_eq!(tell(&mut kid, "hold"), "H m0 1");
    assert_eq!(tell(&mut kid, "flush"), "F");
    assert_eq!(q.stats().unwrap().prefetched, 9);
    let dry = ReplayFilter {
        dry_run: true,
        ..Default::default()
    };
    assert_eq!(q.replay(&dry).unwrap(), 9, "dry run");
    assert_eq!(q.replay(&ReplayFilter::default()).unwrap(), 9);
    let st = q.stats().unwrap();
    assert_eq!(
        (st.depth, st.in_flight, st.prefetched, st.messages),
        (0, 1, 0, 1),
        "{st:?}"
    );
    assert_eq!(x.stats().unwrap().messages, 9);
    assert_eq!(tell(&mut kid, "close"), "C");
    assert!(kid.0.wait().unwrap().success());
}
