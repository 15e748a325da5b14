//! T5 (I/O errors at every k), T6 (fsync failure), T7 (disk full) (the test catalogue: `mqlite::docs::tests`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::durable::*;
use mqlite::*;

/// Calls of the short workload (every k of its file operations is a case).
fn short() -> u64 {
    size(100, 300)
}

fn short_run(
    dir: &Path,
    fs: &FaultFs,
    clock: &Arc<ManualClock>,
    m: &mut Model,
) -> (bool, Vec<ErrorKind>) {
    let mut kinds = Vec::new();
    // Two sessions, so that recovery's file operations are among the k as well.
    for (session, seed) in [(0, 42), (1, 43)] {
        if !kinds.is_empty() {
            break; // the fault fired in the first session; the scan takes over from here
        }
        let store = match open(dir, fs, clock) {
            Ok(s) => s,
            Err(e) => {
                kinds.push(e.kind());
                return (session > 0, kinds);
            }
        };
        {
            // Declaring the queues fails too once the store is poisoned (an earlier write of
            // the commit thread hit the fault).
            let mut w = match Workload::new(&store, seed, &format!("k{session}-")) {
                Ok(w) => w,
                Err(e) => {
                    kinds.push(e.kind());
                    continue;
                }
            };
            w.max_body = 6000; // bigger bodies: segment rolls within the short run
                               // Go on after an error: later calls must fail cleanly (poisoned) or work (refused send).
            for _ in 0..short() / 2 {
                if let Err(e) = w.step(m, &store) {
                    kinds.push(e.kind());
                    if kinds.len() > 5 {
                        break;
                    }
                }
            }
        }
        if let Err(e) = store.close() {
            kinds.push(e.kind());
        }
    }
    (true, kinds)
}

/// The integrity scan: reopen, check the model, receive everything and check every body.
fn scan(dir: &Path, fs: &FaultFs, clock: &Arc<ManualClock>, m: &mut Model) -> Result<u64, String> {
    let s = open(dir, fs, clock).map_err(|e| format!("reopen: {e}"))?;
    m.verify(&s, &QUEUES)?;
    let mut n = 0;
    for q in QUEUES.iter().chain(["DLQ"].iter()) {
        let q = s.queue(q).map_err(|e| e.to_string())?;
        // Everything at once (released ones would come back first).
        let ds = q
            .receive_batch(1 << 20, Some(Duration::ZERO))
            .map_err(|e| format!("receive: {e}"))?;
        for d in ds {
            tag_of(d.body()).ok_or_else(|| format!("corrupted body of {}", d.id()))?;
            n += 1;
            d.release().map_err(|e| e.to_string())?;
        }
    }
    s.close().map_err(|e| format!("close: {e}"))?;
    Ok(n)
}

#[test]
fn t5_every_kth_operation_fails() {
    let _serial = serial();
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    // A clean run counts each operation.
    let fs = FaultFs::new();
    let mut m = Model::default();
    let (opened, kinds) = short_run(dir.path(), &fs, &clock, &mut m);
    assert!(opened && kinds.is_empty(), "clean run failed: {kinds:?}");
    let counts: BTreeMap<Op, u64> = Op::ALL.iter().map(|&op| (op, fs.count(op))).collect();
    eprintln!(
        "T5 short workload: {} calls, file operations {counts:?}",
        short()
    );
    let mut cases = 0u64;
    let mut fired = 0u64;
    let mut surfaced = 0u64;
    let mut open_failed = 0u64;
    let mut by_kind: BTreeMap<String, u64> = BTreeMap::new();
    let mut silent: BTreeMap<String, u64> = BTreeMap::new();
    let started = std::time::Instant::now();
    for (&op, &n) in &counts {
        for errno in [libc::EIO, libc::ENOSPC] {
            for persistent in [false, true] {
                for k in 1..=n {
                    cases += 1;
                    let fs = FaultFs::new();
                    fs.add_fault(Fault {
                        op,
                        nth: k,
                        errno,
                        persistent,
                    });
                    let mut m = Model::default();
                    let (opened, kinds) = short_run(dir.path(), &fs, &clock, &mut m);
                    let what = format!("{op:?} #{k} errno {errno} persistent {persistent}");
                    if fs.injected().is_empty() {
                        continue;
                    }
                    fired += 1;
                    if !opened {
                        open_failed += 1;
                    }
                    if kinds.is_empty() {
                        *silent.entry(format!("{op:?}")).or_default() += 1;
                    } else {
                        surfaced += 1;
                    }
                    for kd in &kinds {
                        *by_kind.entry(format!("{kd:?}")).or_default() += 1;
                    }
                    // Restart on the same disk (the page cache survived), then lose power.
                    fs.clear_faults();
                    if let Err(e) = scan(dir.path(), &fs, &clock, &mut m) {
                        panic!(
                            "T5 {what}: after restart: {e} (errors seen: {kinds:?})\n{}",
                            dump(&fs)
                        );
                    }
                    let img = fs.crash_image(CrashMode::SyncedOnly, &mut Rng::new(k));
                    if let Err(e) = scan(dir.path(), &img, &clock, &mut m) {
                        panic!("T5 {what}: after power loss: {e} (errors seen: {kinds:?})");
                    }
                }
            }
        }
    }
    assert_eq!(panics(), panics0, "a thread panicked");
    eprintln!(
        "T5 I/O errors: {cases} cases (every k of every operation × EIO/ENOSPC × once/persistent), {fired} faults fired, \
         {surfaced} surfaced as an error ({open_failed} at open), error kinds {by_kind:?}; fired without an error \
         (a settle-only batch rewritten into the reserve, or a retried compaction) {silent:?}; 0 panics; every reopen + integrity scan passed ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn t6_fsync_failure_poisons_and_is_not_retried() {
    let _serial = serial();
    let panics0 = count_panics();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    for case in ["send", "ack"] {
        let fs = FaultFs::new();
        let store = open(dir.path(), &fs, &clock).unwrap();
        let q = store.queue("a").unwrap();
        let mut ids = Vec::new();
        for i in 0..10 {
            ids.push(q.send(body(&format!("m{i}"), 100)).unwrap());
        }
        let held = q.receive(Some(Duration::ZERO)).unwrap().unwrap();
        let syncs = fs.fsync_calls();
        fs.add_fault(Fault {
            op: Op::Sync,
            nth: syncs + 1,
            errno: libc::EIO,
            persistent: false,
        });
        let failed = match case {
            "send" => q.send(body("lost", 100)).map(|_| ()),
            _ => held.ack_sync(),
        };
        let e = failed.expect_err("the call whose fdatasync failed must fail");
        assert_eq!(fs.fsync_calls(), syncs + 1);
        // Poisoned: every later call fails with Poisoned, and nothing fsyncs again.
        let later: Vec<Result<(), Error>> = vec![
            q.send("after").map(|_| ()),
            q.receive(Some(Duration::ZERO)).map(|_| ()),
            q.browse(10).map(|_| ()),
            store.flush(),
            store.queue("other").map(|_| ()),
            store.transaction().commit().map(|_| ()),
        ];
        for r in &later {
            assert_eq!(
                r.as_ref().map_err(|e| e.kind()),
                Err(ErrorKind::Poisoned),
                "{case}: {r:?}"
            );
        }
        let close = store.close();
        assert_eq!(close.map_err(|e| e.kind()), Err(ErrorKind::Poisoned));
        drop(store);
        let after = fs.fsync_calls();
        assert_eq!(after, syncs + 1, "fdatasync was retried after it failed");
        // Reopening shows the last durable state: the 10 sends, the failed call not applied.
        let img = fs.crash_image(CrashMode::SyncedOnly, &mut Rng::new(1));
        let s = open(dir.path(), &img, &clock).unwrap();
        let q = s.queue("a").unwrap();
        let got: Vec<_> = q
            .browse(100)
            .unwrap()
            .iter()
            .map(|m| m.id().unwrap())
            .collect();
        assert_eq!(
            got, ids,
            "{case}: the durable state is the 10 sends (the ack never became durable)"
        );
        s.close().unwrap();
        // And restarting on the page cache (no power loss) opens too.
        fs.clear_faults();
        let s = open(dir.path(), &fs, &clock).unwrap();
        let n = s.queue("a").unwrap().stats().unwrap().messages;
        assert!(
            n == 10 || n == 11 || (case == "ack" && n == 9),
            "{case}: {n}"
        );
        s.close().unwrap();
        eprintln!(
            "T6 fsync failure during {case}: the call failed ({:?}), {} later calls failed with Poisoned, \
             fdatasync calls {syncs} before, {after} after (1 = the failed one, no retry); reopen shows the 10 durable sends",
            e.kind(),
            later.len()
        );
    }
    assert_eq!(panics(), panics0);
}

/// Mounts a tmpfs of `mb` MiB on `dir`; false if not permitted.
fn mount_tmpfs(dir: &Path, mb: u64) -> bool {
    std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={mb}m,mode=0700"),
            "tmpfs",
        ])
        .arg(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Unmount(std::path::PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn t7_disk_full() {
    let _serial = serial();
    let panics0 = count_panics();
    let mnt = tempfile::tempdir().unwrap();
    // MQLITE_T7_NO_MOUNT=1 exercises the fallback where mounting is not permitted.
    let tmpfs = std::env::var_os("MQLITE_T7_NO_MOUNT").is_none() && mount_tmpfs(mnt.path(), 8);
    let _unmount = tmpfs.then(|| Unmount(mnt.path().to_path_buf()));
    let fs = FaultFs::new();
    let store_dir = mnt.path().join("store");
    let ballast = mnt.path().join("ballast");
    let clock = ManualClock::new(1_700_000_000_000);
    let mut o = StoreOptions {
        clock: clock.clone(),
        segment_bytes: 1 << 20,
        redelivery: no_delay_policy(),
        ..Default::default()
    };
    if tmpfs {
        // 2 MiB of ballast, released later to "make space return".
        std::fs::write(&ballast, vec![1u8; 2 << 20]).unwrap();
    } else {
        std::fs::create_dir_all(&store_dir).unwrap();
        fs.set_capacity(Some(6 << 20));
        o.vfs = fs.vfs();
    }
    eprintln!(
        "T7 disk full runs on {}",
        if tmpfs {
            "a real 8 MiB tmpfs (mount -t tmpfs -o size=8m)"
        } else {
            "the fault layer's 6 MiB capacity (mount not permitted, or MQLITE_T7_NO_MOUNT set)"
        }
    );
    let s = Store::open(&store_dir, o.clone()).unwrap();
    let q = s.queue("a").unwrap();
    let mut stored = Vec::new();
    let first_err = loop {
        match q.send(body(&format!("m{}", stored.len()), 16 << 10)) {
            Ok(id) => stored.push(id),
            Err(e) => break e,
        }
        assert!(stored.len() < 10_000, "the disk never filled");
    };
    assert_eq!(first_err.kind(), ErrorKind::NoSpace, "{first_err}");
    // More sends fail the same way; the store is not poisoned.
    for _ in 0..5 {
        assert_eq!(
            q.send(body("x", 16 << 10)).map_err(|e| e.kind()),
            Err(ErrorKind::NoSpace)
        );
    }
    let (tx, rx) = std::sync::mpsc::channel();
    q.send_async(body("async", 16 << 10), move |r| {
        tx.send(r.map_err(|e| e.kind())).unwrap()
    })
    .unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err(ErrorKind::NoSpace)
    );
    assert_eq!(
        q.send_batch(vec![body("b1", 16 << 10), body("b2", 16 << 10)])
            .map_err(|e| e.kind()),
        Err(ErrorKind::NoSpace)
    );
    // Stored messages are readable and ackable; nack and reject (a dead-letter move) work too.
    let browsed = q.browse(usize::MAX).unwrap();
    assert_eq!(browsed.len(), stored.len());
    for m in &browsed {
        assert!(tag_of(m.body()).is_some());
    }
    // In order, but the nacked message may come back after the ones already prefetched.
    let mut acked = 0;
    let (mut nacked, mut last) = (None, MessageId(0));
    while acked < 40 {
        let d = q
            .receive(Some(Duration::ZERO))
            .unwrap()
            .expect("a stored message");
        assert!(stored.contains(&d.id()), "{} was never stored", d.id());
        if nacked.is_none() {
            nacked = Some(d.id());
            d.nack("full disk nack").unwrap();
            continue;
        }
        if Some(d.id()) != nacked {
            assert!(d.id() > last, "{} after {last}", d.id());
            last = d.id();
        }
        d.ack().unwrap();
        acked += 1;
    }
    let small_send_while_full = q.send(body("small", 10)).map_err(|e| e.kind());
    // Reopen while the disk is still full: recovery works, settling works. A send is refused
    // unless the settles emptied the first segment enough for compaction to reclaim it (its
    // copies go into a short segment when the disk has room for one: issue 15 §5), which
    // depends on how much the file system left free.
    s.close().unwrap();
    let s = Store::open(&store_dir, o.clone())
        .expect("a full disk does not stop the store from opening");
    let q = s.queue("a").unwrap();
    for _ in 0..5 {
        q.receive(Some(Duration::ZERO))
            .unwrap()
            .expect("a stored message")
            .ack()
            .unwrap();
        acked += 1;
    }
    let send_after_settles = q.send(body("still full", 16 << 10)).map_err(|e| e.kind());
    assert!(
        matches!(send_after_settles, Ok(_) | Err(ErrorKind::NoSpace)),
        "{send_after_settles:?}"
    );
    // Space returns (the ballast goes, or the capacity grows); sends work again.
    if tmpfs {
        std::fs::remove_file(&ballast).unwrap();
    } else {
        fs.set_capacity(Some(64 << 20));
    }
    let mut after = 0;
    for i in 0..20 {
        q.send(body(&format!("again{i}"), 16 << 10))
            .expect("sends work once space returns");
        after += 1;
    }
    let st = q.stats().unwrap();
    s.close().unwrap();
    let s = Store::open(&store_dir, o).unwrap();
    let q = s.queue("a").unwrap();
    let left = q.stats().unwrap().messages;
    assert_eq!(left, st.messages);
    assert_eq!(
        left as usize,
        stored.len() - acked
            + after
            + small_send_while_full.is_ok() as usize
            + send_after_settles.is_ok() as usize
    );
    s.close().unwrap();
    assert_eq!(panics(), panics0);
    eprintln!(
        "T7 disk full: {} sends stored before NoSpace; 5 sync + 1 async + 1 batch sends refused with NoSpace, store not poisoned; \
         {} stored messages browsed, {acked} received and acked (one nacked first) while full, across a reopen on the full disk; \
         a small send while full: {:?}; a send after the settles on the reopened store: {:?}; \
         {after} sends worked after space returned; reopen shows {left} messages",
        stored.len(),
        browsed.len(),
        small_send_while_full,
        send_after_settles
    );
}

#[test]
fn t5_read_error_in_receive_gives_the_message_back() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(1_700_000_000_000);
    let fs = FaultFs::new();
    let s = open(dir.path(), &fs, &clock).unwrap();
    let q = s.queue("a").unwrap();
    let ids: Vec<MessageId> = (0..3)
        .map(|i| q.send(body(&format!("r{i}"), 100)).unwrap())
        .collect();
    fs.add_fault(Fault {
        op: Op::Read,
        nth: fs.count(Op::Read) + 1,
        errno: libc::EIO,
        persistent: false,
    });
    let e = q.receive(Some(Duration::ZERO)).expect_err("the read fails");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    // The read error handed nothing over, so the message is still the next one to deliver.
    let d = q
        .receive(Some(Duration::ZERO))
        .unwrap()
        .expect("delivered after the read error");
    assert_eq!(
        d.id(),
        ids[0],
        "the message whose read failed was stranded in flight"
    );
    assert_eq!(
        d.delivery_count(),
        1,
        "a failed read is not a failed delivery"
    );
    d.ack().unwrap();
    let st = q.stats().unwrap();
    assert_eq!((st.messages, st.in_flight), (2, 0));
    s.close().unwrap();
    eprintln!(
        "T5 read error in receive: Io returned, the message delivered next with delivery count 1"
    );
}
