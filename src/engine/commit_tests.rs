//! Group commit across threads, made deterministic: the store's file layer holds every
//! fdatasync at a gate the test opens, and a leader's wait for callers to join its batch is
//! bounded by a long test bound instead of a fraction of an fsync (so that who joins which
//! batch does not depend on how fast the machine runs the threads).

use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::io::{RealFs, VFile, Vfs};
use crate::{Store, StoreOptions};

/// Generous bound for a wait that must end (a failure bound, not a timing).
const BOUND: Duration = Duration::from_secs(20);

/// Holds fdatasyncs while closed; counts the callers it holds.
#[derive(Default)]
struct Gate {
    st: Mutex<(bool, usize)>,
    cv: Condvar,
}

impl Gate {
    fn set_closed(&self, closed: bool) {
        self.st.lock().unwrap().0 = closed;
        self.cv.notify_all();
    }

    fn pass(&self) {
        let mut st = self.st.lock().unwrap();
        if st.0 {
            st.1 += 1;
            self.cv.notify_all();
            while st.0 {
                st = self.cv.wait(st).unwrap();
            }
            st.1 -= 1;
        }
    }

    /// Waits (bounded) until `n` fdatasyncs are held.
    fn until_held(&self, n: usize) {
        let end = Instant::now() + BOUND;
        let mut st = self.st.lock().unwrap();
        while st.1 < n {
            assert!(Instant::now() < end, "no fdatasync reached the gate");
            st = self.cv.wait_timeout(st, BOUND).unwrap().0;
        }
    }
}

/// The real file system, with every file's fdatasync passing through the gate.
struct GatedFs(Arc<Gate>);
struct GatedFile(Arc<dyn VFile>, Arc<Gate>);

impl VFile for GatedFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.0.read_at(buf, offset)
    }
    fn write_at(&self, buf: &[u8], offset: u64) -> std::io::Result<()> {
        self.0.write_at(buf, offset)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.1.pass();
        self.0.sync_data()
    }
    fn allocate(&self, len: u64) -> std::io::Result<()> {
        self.0.allocate(len)
    }
    fn len(&self) -> std::io::Result<u64> {
        self.0.len()
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.0.set_len(len)
    }
}

impl Vfs for GatedFs {
    fn create(&self, path: &std::path::Path) -> std::io::Result<Arc<dyn VFile>> {
        Ok(Arc::new(GatedFile(RealFs.create(path)?, self.0.clone())))
    }
    fn open(&self, path: &std::path::Path) -> std::io::Result<Arc<dyn VFile>> {
        Ok(Arc::new(GatedFile(RealFs.open(path)?, self.0.clone())))
    }
    fn remove(&self, path: &std::path::Path) -> std::io::Result<()> {
        RealFs.remove(path)
    }
    fn rename(&self, from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        RealFs.rename(from, to)
    }
    fn list(&self, dir: &std::path::Path) -> std::io::Result<Vec<String>> {
        RealFs.list(dir)
    }
    fn sync_dir(&self, dir: &std::path::Path) -> std::io::Result<()> {
        RealFs.sync_dir(dir)
    }
}

/// Waits (bounded) until `n` callers wait for a commit.
fn until_waiters(s: &Store, n: usize) {
    let end = Instant::now() + BOUND;
    while super::wake_tests::engine(s).shared.lock().progress.waiters < n {
        assert!(Instant::now() < end, "the callers never started to wait");
        std::thread::yield_now();
    }
}

/// One producer's fsync is held while three others send; then every fsync passes, and the
/// first producer, released, is slow to send again (it waits for the test). The next leader
/// must wait for it: it expects the three that joined meanwhile *and* the one the last commit
/// released, so one fsync carries all four, and so does the next (3 fsyncs for 9 sends).
/// Expecting only as many callers as shared the last fsync (1, an earlier version) committed
/// the three without the fourth, who then needed an fsync of its own: the callers split into
/// groups that take turns (W5: 8 threads, about 3 per fsync).
#[test]
fn one_fsync_releases_every_waiting_thread_and_the_released_rejoin_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(Gate::default());
    let s = Store::open(
        dir.path(),
        StoreOptions {
            vfs: Arc::new(GatedFs(gate.clone())),
            ..Default::default()
        },
    )
    .unwrap();
    let engine = super::wake_tests::engine(&s);
    engine
        .test_hooks()
        .gather_max_ms
        .store(BOUND.as_millis() as u64, Ordering::SeqCst);
    let q = s.queue("q").unwrap();
    q.send("warm-up").unwrap();
    let before = s.commit_stats().unwrap();

    gate.set_closed(true);
    let (sent_tx, sent_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let first = {
        let q = q.clone();
        std::thread::spawn(move || -> crate::Result<()> {
            q.send("first 1")?;
            sent_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            q.send("first 2")?;
            q.send("first 3").map(|_| ())
        })
    };
    gate.until_held(1); // its batch is being written: the others fill the next one
    let others: Vec<_> = (0..3)
        .map(|_| {
            let q = q.clone();
            std::thread::spawn(move || (0..2).try_for_each(|_| q.send("other").map(|_| ())))
        })
        .collect();
    until_waiters(&s, 4);
    gate.set_closed(false);
    sent_rx.recv_timeout(BOUND).unwrap();
    // The next batch's leader either waits for the released producer (gathering) or has
    // committed without it.
    let end = Instant::now() + BOUND;
    loop {
        let g = engine.shared.lock();
        if g.progress.gathering || g.progress.counters.syncs >= before.syncs + 2 {
            break;
        }
        drop(g);
        assert!(
            Instant::now() < end,
            "the next batch was neither gathered nor committed"
        );
        std::thread::yield_now();
    }
    go_tx.send(()).unwrap();
    first.join().unwrap().unwrap();
    for t in others {
        t.join().unwrap().unwrap();
    }

    let after = s.commit_stats().unwrap();
    assert_eq!(q.stats().unwrap().messages, 10);
    assert_eq!(
        (
            after.syncs - before.syncs,
            after.sync_callers - before.sync_callers
        ),
        (3, 9),
        "fsyncs and the sync sends they released: the first alone, then all four twice"
    );
}
