//! T14 (file-system safety) and T9 (concurrency) (the test catalogue: `mqlite::docs::tests`).

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::durable::*;
use mqlite::*;

/// Every path under `root`, relative.
fn tree(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.insert(p.strip_prefix(root).unwrap().to_string_lossy().into_owned());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().mode() & 0o777
}

#[test]
fn t14_queue_names_are_never_paths() {
    let _serial = serial();
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("store");
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let long_ok = "q".repeat(255);
    let valid = [
        "../x",
        "/abs",
        "a/b",
        "..",
        ".",
        "LOCK",
        "0000000000000001.seg",
        "../../../../etc/passwd",
        "a\\b",
        "é ü 😀",
        &long_ok,
    ];
    for name in valid {
        let q = s
            .queue(name)
            .unwrap_or_else(|e| panic!("{name:?} is a valid name: {e}"));
        q.send(format!("to {name}")).unwrap();
        let d = q.receive(Some(Duration::ZERO)).unwrap().expect("delivered");
        assert_eq!(d.body(), format!("to {name}").as_bytes());
        d.ack().unwrap();
    }
    let nul = "a\0b".to_string();
    let big = "x".repeat(4096);
    let over = "x".repeat(256);
    let invalid = [
        String::new(),
        nul,
        big,
        over,
        "a\nb".into(),
        "tab\t".into(),
        "\x1b[31m".into(),
        "del\x7f".into(),
        "c1\u{85}".into(),
    ];
    for name in &invalid {
        let e = s.queue(name).expect_err(name);
        assert_eq!(e.kind(), ErrorKind::InvalidName, "{name:?}: {e}");
    }
    s.close().unwrap();
    // Only the store directory, its lock, its identity, its index checkpoint and its segments
    // exist.
    let files = tree(parent.path());
    for f in &files {
        assert!(
            f == "store"
                || f == "store/LOCK"
                || f == "store/STORE_ID"
                || f == "store/CHECKPOINT"
                || (f.starts_with("store/") && f.ends_with(".seg")),
            "unexpected file {f:?} in {files:?}"
        );
    }
    // The names survive a reopen.
    let s = Store::open(&dir, StoreOptions::default()).unwrap();
    let names: BTreeSet<String> = s.queue_names().into_iter().collect();
    for name in valid {
        assert!(names.contains(name), "{name:?} lost");
    }
    s.close().unwrap();
    eprintln!(
        "T14 names: {} odd but valid names (../x, /abs, a/b, .., LOCK, a segment's name, 255 bytes, ...) worked and created no file \
         outside the store ({} entries under the parent: the store, LOCK, segments); {} invalid names (empty, NUL, 4 KiB, 256 B, \
         control characters C0/DEL/C1) refused with InvalidName",
        valid.len(),
        files.len(),
        invalid.len()
    );
}

#[test]
fn t14_symlinks_locks_and_modes() {
    let _serial = serial();
    let parent = tempfile::tempdir().unwrap();
    // A symlinked store directory works and the files land in the real directory.
    let real = parent.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = parent.path().join("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let s = Store::open(&link, StoreOptions::default()).unwrap();
    s.queue("a").unwrap().send("via link").unwrap();
    assert!(real.join("LOCK").exists() && real.join("0000000000000001.seg").exists());
    // Modes: the user's directory keeps its mode (0755, it is theirs); files 0600.
    assert_eq!(
        mode(&real),
        0o755,
        "an existing directory's mode is left alone"
    );
    assert_eq!(mode(&real.join("LOCK")), 0o600, "LOCK mode");
    assert_eq!(mode(&real.join("STORE_ID")), 0o600, "STORE_ID mode");
    assert_eq!(
        mode(&real.join("0000000000000001.seg")),
        0o600,
        "segment mode"
    );
    // The owner's socket: 0600 in the 0700 directory.
    assert_eq!(mode(&real.join("owner.sock")), 0o600, "owner.sock mode");
    // A second opener that refuses to be a client, in this process, by the real path or the
    // link: Locked, naming our pid.
    let pid = std::process::id().to_string();
    let owner_only = || StoreOptions {
        open_as: OpenAs::Owner,
        ..Default::default()
    };
    for p in [&real, &link] {
        let e = Store::open(p, owner_only()).expect_err("second opener");
        assert_eq!(e.kind(), ErrorKind::Locked, "{e}");
        assert!(e.message().contains(&pid), "{e} must name pid {pid}");
    }
    // By the link, a default opener becomes a client of the owner (the same directory).
    let c = Store::open(&link, StoreOptions::default()).unwrap();
    assert_eq!(c.role(), Role::Client);
    drop(c);
    // A second opener in another process that refuses to be a client.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_opens_store",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MQLITE_CHILD_OPEN", &real)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.find("@@").map(|i| &l[i..]))
        .unwrap_or_else(|| panic!("child said nothing: {stdout}"));
    assert!(
        line.starts_with("@@ locked ") && line.contains(&pid),
        "child: {line}"
    );
    s.close().unwrap();
    // Once closed, it opens again.
    Store::open(&real, StoreOptions::default())
        .unwrap()
        .close()
        .unwrap();

    // Planted symlinks are not followed: a segment name or the LOCK pointing outside.
    let outside = parent.path().join("outside");
    std::fs::write(&outside, b"precious").unwrap();
    for planted in [
        "0000000000000001.seg",
        "LOCK",
        "STORE_ID",
        "STORE_ID.tmp",
        "CHECKPOINT",
        "CHECKPOINT.tmp",
    ] {
        let d = parent.path().join(format!("planted-{planted}"));
        std::fs::create_dir(&d).unwrap();
        std::os::unix::fs::symlink(&outside, d.join(planted)).unwrap();
        let r = Store::open(&d, StoreOptions::default());
        if let Ok(s) = &r {
            s.queue("a").unwrap().send("x").unwrap();
        }
        drop(r);
        assert_eq!(
            std::fs::read(&outside).unwrap(),
            b"precious",
            "{planted}: a symlink was followed"
        );
        assert_eq!(mode(&outside) & 0o777, mode(&outside));
    }
    eprintln!(
        "T14 store dir: a symlinked store directory works (files in the target); second openers (same process by both \
         paths, another process) got Locked naming pid {pid}; modes: existing dir kept, LOCK 0600, segments 0600; planted symlinks \
         (segment, LOCK, STORE_ID, CHECKPOINT and their temporaries) pointing outside were not followed"
    );
}

/// Child half of the two-process lock test (runs only when re-executed with the variable set).
#[test]
fn child_opens_store() {
    let Ok(dir) = std::env::var("MQLITE_CHILD_OPEN") else {
        return;
    };
    let owner_only = StoreOptions {
        open_as: OpenAs::Owner,
        ..Default::default()
    };
    match Store::open(&dir, owner_only) {
        Ok(_) => println!("@@ opened"),
        Err(e) => println!("@@ {} {}", e.kind(), e.message()),
    }
}

#[test]
fn t14_quarantine_file_mode() {
    let _serial = serial();
    use mqlite::journal::format::*;
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(
            dir.path(),
            StoreOptions {
                segment_bytes: 64 << 10,
                ..Default::default()
            },
        )
        .unwrap();
        let q = s.queue("a").unwrap();
        for i in 0..5 {
            q.send(format!("m{i}")).unwrap();
        }
        s.close().unwrap();
    }
    let p = dir.path().join("0000000000000001.seg");
    let mut b = std::fs::read(&p).unwrap();
    let h = check_frame(&b[SEGMENT_HEADER..]).unwrap();
    b[SEGMENT_HEADER + FRAME_HEADER + h.len + 40] ^= 1; // the second frame
    std::fs::write(&p, &b).unwrap();
    let s = Store::open(
        dir.path(),
        StoreOptions {
            repair: true,
            ..Default::default()
        },
    )
    .unwrap();
    let q = &s.recovery_report().quarantined[0];
    assert_eq!(mode(&dir.path().join(&q.saved_as)), 0o600);
    s.close().unwrap();
}

#[test]
fn t9_concurrency() {
    let _serial = serial();
    let panics0 = count_panics();
    within(240, "T9 concurrency", t9_body);
    assert_eq!(panics(), panics0);
}

fn t9_body() {
    let dir = tempfile::tempdir().unwrap();
    let fs = FaultFs::new();
    let clock = ManualClock::new(1_700_000_000_000);
    let o = opts(&fs, &clock);
    let store = Arc::new(Store::open(dir.path(), o.clone()).unwrap());
    let producers = 4;
    let per = size(400, 5000);
    let consumers = 4;
    let sent = Arc::new(Mutex::new(HashSet::new()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let holders: Arc<Mutex<HashMap<u64, usize>>> = Arc::new(Mutex::new(HashMap::new()));
    let doubles = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let stats = Arc::new(Mutex::new(HashMap::<&'static str, u64>::new()));
    let mut threads = Vec::new();
    for p in 0..producers {
        let (store, sent) = (store.clone(), sent.clone());
        threads.push(std::thread::spawn(move || {
            let q = store.queue(if p % 2 == 0 { "a" } else { "b" }).unwrap();
            let mut rng = Rng::new(p as u64);
            let (tx, rx) = std::sync::mpsc::channel();
            let mut asyncs = 0;
            let mut i = 0;
            while i < per {
                match rng.below(3) {
                    0 => {
                        sent.lock()
                            .unwrap()
                            .insert(q.send(format!("p{p}-{i}")).unwrap().0);
                        i += 1;
                    }
                    1 => {
                        let tx = tx.clone();
                        q.send_async(format!("p{p}-{i}"), move |r| tx.send(r.unwrap().0).unwrap())
                            .unwrap();
                        asyncs += 1;
                        i += 1;
                    }
                    _ => {
                        let n = (per - i).min(5);
                        for id in q
                            .send_batch((0..n).map(|j| format!("p{p}-{}", i + j)))
                            .unwrap()
                        {
                            sent.lock().unwrap().insert(id.0);
                        }
                        i += n;
                    }
                }
            }
            for _ in 0..asyncs {
                let id = rx
                    .recv_timeout(Duration::from_secs(60))
                    .expect("every async callback fires");
                sent.lock().unwrap().insert(id);
            }
        }));
    }
    let total = producers as u64 * per;
    for c in 0..consumers {
        let (store, acked, holders, doubles, stop, stats) = (
            store.clone(),
            acked.clone(),
            holders.clone(),
            doubles.clone(),
            stop.clone(),
            stats.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(100 + c as u64);
            let mut round = 0u64;
            while !stop.load(Ordering::Acquire) {
                // Each round a new consumer; some rounds end by closing it with deliveries unsettled.
                round += 1;
                let q = store
                    .queue(if (c + round as usize) % 2 == 0 {
                        "a"
                    } else {
                        "b"
                    })
                    .unwrap();
                let consumer = q.consumer(ConsumerOptions::default());
                let mut held: Vec<Delivery> = Vec::new();
                for _ in 0..20 {
                    let ds = consumer
                        .receive_batch(1 + rng.below(4) as usize, Some(Duration::from_millis(5)))
                        .unwrap();
                    for d in ds {
                        if holders.lock().unwrap().insert(d.id().0, c).is_some() {
                            doubles.fetch_add(1, Ordering::SeqCst);
                        }
                        held.push(d);
                    }
                    while held.len() > 2 {
                        let d = held.swap_remove(rng.below(held.len() as u64) as usize);
                        let id = d.id().0;
                        holders.lock().unwrap().remove(&id);
                        let op = match rng.below(20) {
                            0..=13 => {
                                d.ack().unwrap();
                                if !acked.lock().unwrap().insert(id) {
                                    doubles.fetch_add(1, Ordering::SeqCst);
                                }
                                "ack"
                            }
                            14..=16 => {
                                d.nack("t9").unwrap();
                                "nack"
                            }
                            17 => {
                                d.release().unwrap();
                                "release"
                            }
                            _ => {
                                drop(d);
                                "drop"
                            }
                        };
                        *stats.lock().unwrap().entry(op).or_default() += 1;
                    }
                }
                for d in &held {
                    holders.lock().unwrap().remove(&d.id().0);
                }
                if rng.chance(0.3) {
                    // Close the consumer first: its unsettled deliveries return to the queue.
                    drop(consumer);
                    *stats
                        .lock()
                        .unwrap()
                        .entry("consumer closed unsettled")
                        .or_default() += held.len() as u64;
                    drop(held);
                } else {
                    let ids: Vec<u64> = held.iter().map(|d| d.id().0).collect();
                    q.ack_batch(held).unwrap();
                    let mut a = acked.lock().unwrap();
                    for id in ids {
                        if !a.insert(id) {
                            doubles.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            }
        }));
    }
    // Wait until every message was acked.
    let deadline = std::time::Instant::now() + Duration::from_secs(200);
    while acked.lock().unwrap().len() < total as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} of {total} acked",
            acked.lock().unwrap().len()
        );
        std::thread::yield_now();
        std::thread::sleep(Duration::from_millis(2)); // polling a counter, not waiting for a timer
    }
    stop.store(true, Ordering::Release);
    for t in threads {
        t.join().unwrap();
    }
    let sent = sent.lock().unwrap().clone();
    let acked = acked.lock().unwrap().clone();
    assert_eq!(sent.len() as u64, total, "every send returned an id");
    assert_eq!(acked, sent, "every sent message acked exactly once");
    assert_eq!(doubles.load(Ordering::SeqCst), 0, "double deliveries");
    for q in ["a", "b"] {
        assert_eq!(store.queue(q).unwrap().stats().unwrap().messages, 0);
    }

    // Closing while every thread is busy: calls fail with Closed, every callback fires, no hang.
    let busy_sent = Arc::new(Mutex::new(Vec::new()));
    let callbacks = Arc::new(AtomicU64::new(0));
    let accepted = Arc::new(AtomicU64::new(0));
    let progress = Arc::new(AtomicU64::new(0));
    let busy_acked = Arc::new(Mutex::new(HashSet::new()));
    let mut threads = Vec::new();
    for t in 0..6u64 {
        let (store, busy_sent, callbacks, accepted, progress, busy_acked) = (
            store.clone(),
            busy_sent.clone(),
            callbacks.clone(),
            accepted.clone(),
            progress.clone(),
            busy_acked.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let q = match store.queue("c") {
                Ok(q) => q,
                Err(_) => return,
            };
            let mut held = Vec::new();
            loop {
                progress.fetch_add(1, Ordering::SeqCst);
                let r = match t % 3 {
                    0 => q
                        .send("busy")
                        .map(|id| busy_sent.lock().unwrap().push(id.0)),
                    1 => {
                        let cb = callbacks.clone();
                        q.send_async("busy-async", move |_| {
                            cb.fetch_add(1, Ordering::SeqCst);
                        })
                        .map(|()| {
                            accepted.fetch_add(1, Ordering::SeqCst);
                        })
                    }
                    _ => q.receive(Some(Duration::from_millis(2))).and_then(|d| {
                        if let Some(d) = d {
                            held.push(d);
                        }
                        if held.len() > 3 {
                            let d: Delivery = held.remove(0);
                            let id = d.id().0;
                            d.ack()?;
                            busy_acked.lock().unwrap().insert(id);
                        }
                        Ok(())
                    }),
                };
                if let Err(e) = r {
                    assert!(
                        matches!(e.kind(), ErrorKind::Closed | ErrorKind::AlreadySettled),
                        "{e}"
                    );
                    if e.kind() == ErrorKind::Closed {
                        return;
                    }
                }
            }
        }));
    }
    while progress.load(Ordering::SeqCst) < 300 {
        std::thread::yield_now();
    }
    store.close().unwrap();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        callbacks.load(Ordering::SeqCst),
        accepted.load(Ordering::SeqCst),
        "every accepted async send completed"
    );
    drop(store);
    let s = Store::open(dir.path(), o).unwrap();
    let present: HashSet<u64> = s
        .queue("c")
        .unwrap()
        .browse(usize::MAX)
        .unwrap()
        .iter()
        .map(|m| m.id().unwrap().0)
        .collect();
    let busy_acked = busy_acked.lock().unwrap();
    for id in busy_sent.lock().unwrap().iter() {
        assert!(
            present.contains(id) || busy_acked.contains(id),
            "durably sent ID:{id} lost in the close race"
        );
    }
    for id in busy_acked.iter() {
        assert!(
            !present.contains(id),
            "acked ID:{id} came back after the close race"
        );
    }
    for q in ["a", "b"] {
        assert_eq!(
            s.queue(q).unwrap().stats().unwrap().messages,
            0,
            "acked messages came back in {q}"
        );
    }
    s.close().unwrap();
    eprintln!(
        "T9 concurrency: {producers} producers × {per} (send / send_async / send_batch) and {consumers} consumers (new consumer \
         per round, {:?}); {total} sent, {total} acked exactly once, 0 double deliveries to live consumers; then 6 threads \
         busy while close(): {} sync sends, {} async sends all completed ({} callbacks), every thread saw Closed, no deadlock",
        stats.lock().unwrap(),
        busy_sent.lock().unwrap().len(),
        accepted.load(Ordering::SeqCst),
        callbacks.load(Ordering::SeqCst)
    );
}
