//! mqlite workload benchmarks (see `/work/shared/BENCHMARKS.md` and `benches/README.md`).
//!
//! Every workload runs mqlite and its SQLite baseline (rusqlite, bundled SQLite, WAL,
//! `synchronous=FULL`) side by side in the same process and the same run, interleaved run by
//! run, on the same disk, so the ratios hold even when the absolute figures drift.
//!
//! ```text
//! cargo bench --bench workloads                     # everything, full sizes (~10 min)
//! cargo bench --bench workloads -- W1 W3            # only some workloads
//! MQLITE_BENCH_QUICK=1 cargo bench --bench workloads  # smoke run, small sizes
//! ```

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqlite::{Message, Store, StoreOptions};
use rusqlite::Connection;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

const GIB: f64 = (1u64 << 30) as f64;
const MIB: f64 = (1u64 << 20) as f64;

struct Cfg {
    quick: bool,
    runs: usize,
    root: PathBuf,
    /// W1 (and the raw-disk loops beside it): messages per run.
    w1_n: usize,
    /// W2: messages per run.
    w2_n: usize,
    /// W3: backlog drained per run, and the receive/ack batch size.
    w3_n: usize,
    w3_batch: usize,
    /// W3 ack-each variant (one fdatasync per ack): messages per run.
    w3_each_n: usize,
    /// W4: messages per run (1 KiB bodies), and the size of the sequential-bandwidth probe.
    w4_n: usize,
    seq_mib: usize,
    /// W5: threads and messages per thread.
    w5_threads: usize,
    w5_per: usize,
    /// W7: journal size to build, and the body sizes of its messages (one store per size).
    w7_bytes: u64,
    w7_bodies: Vec<usize>,
    /// W8: messages queued.
    w8_n: usize,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.replace('_', "").parse().ok())
}

impl Cfg {
    fn from_env() -> Cfg {
        let quick = std::env::var("MQLITE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
        let q = |full: usize, small: usize| if quick { small } else { full };
        let root = std::env::var_os("MQLITE_BENCH_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                option_env!("CARGO_TARGET_TMPDIR")
                    .map(|d| Path::new(d).join("mqlite-bench"))
                    .unwrap_or_else(|| std::env::temp_dir().join("mqlite-bench"))
            });
        let w7_gib: f64 = env_num("MQLITE_BENCH_W7_GIB").unwrap_or(if quick { 0.0625 } else { 1.0 });
        Cfg {
            quick,
            runs: env_num("MQLITE_BENCH_RUNS").unwrap_or(3).max(1),
            root,
            w1_n: q(10_000, 1_000),
            w2_n: q(200_000, 20_000),
            w3_n: q(200_000, 20_000),
            w3_batch: env_num("MQLITE_BENCH_W3_BATCH").unwrap_or(1_000).max(1),
            w3_each_n: q(20_000, 1_000),
            w4_n: q(200_000, 20_000),
            seq_mib: q(256, 32),
            w5_threads: 8,
            w5_per: q(10_000, 500),
            w7_bytes: (w7_gib * GIB) as u64,
            w7_bodies: env_num("MQLITE_BENCH_W7_BODY")
                .map(|b| vec![b])
                .unwrap_or_else(|| vec![100, 1024]),
            w8_n: env_num("MQLITE_BENCH_W8_N").unwrap_or(q(10_000_000, 200_000)),
        }
    }

    fn tempdir(&self, prefix: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&self.root)
            .expect("creating a bench directory")
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers: statistics, formatting, bodies, /proc
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct Stat {
    med: f64,
    min: f64,
    max: f64,
}

fn stat(v: &[f64]) -> Stat {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    let med = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    Stat {
        med,
        min: s[0],
        max: s[n - 1],
    }
}

/// Index of the run whose figure is the median (for latency percentiles of that run).
fn median_index(v: &[f64]) -> usize {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    idx[(v.len() - 1) / 2]
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn rate_str(s: Stat) -> String {
    format!("{}/s ({}–{})", thousands(s.med), thousands(s.min), thousands(s.max))
}

fn us(d: Duration) -> String {
    let u = d.as_secs_f64() * 1e6;
    if u < 10.0 {
        format!("{u:.1} µs")
    } else {
        format!("{u:.0} µs")
    }
}

fn percentiles(lat: &mut [Duration]) -> (Duration, Duration) {
    lat.sort_unstable();
    let n = lat.len();
    (lat[n / 2], lat[(n * 99 / 100).min(n - 1)])
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A field of /proc/self/status in bytes (VmRSS, VmHWM).
fn proc_status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
            let kb: u64 = rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            return kb * 1024;
        }
    }
    0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "PASS"
    } else {
        "MISS"
    }
}

/// The file system type of `path` (to make sure we are not benchmarking tmpfs).
fn fs_type(path: &Path) -> String {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return "?".into();
    };
    // SAFETY: statfs writes into the zeroed struct we own; the path is NUL-terminated.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut s) } != 0 {
        return "?".into();
    }
    #[allow(clippy::unnecessary_cast)]
    let t = s.f_type as u64;
    match t {
        0xEF53 => "ext4".into(),
        0x0102_1994 => "tmpfs (!! not a real disk)".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        other => format!("0x{other:x}"),
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Reads every file of `dir` once, so a following open finds it in the page cache.
fn warm_cache(dir: &Path) {
    let mut buf = vec![0u8; 1 << 20];
    for e in std::fs::read_dir(dir).expect("listing").filter_map(|e| e.ok()) {
        if let Ok(mut f) = File::open(e.path()) {
            while f.read(&mut buf).map(|n| n > 0).unwrap_or(false) {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Result rows (the summary table)
// ---------------------------------------------------------------------------------------------

struct Row {
    id: &'static str,
    what: String,
    ours: String,
    base: String,
    ratio: String,
    target: String,
    result: String,
}

struct Report {
    rows: Vec<Row>,
}

impl Report {
    /// Adds a summary row; `cells` are mqlite's figure, the baseline's, and the ratio.
    fn add(&mut self, id: &'static str, what: impl Into<String>, cells: [String; 3], target: &str, result: String) {
        let [ours, base, ratio] = cells;
        let r = Row {
            id,
            what: what.into(),
            ours,
            base,
            ratio,
            target: target.into(),
            result,
        };
        println!(
            "  => {} {}: {} | baseline {} | {} | target {} | {}",
            r.id, r.what, r.ours, r.base, r.ratio, r.target, r.result
        );
        self.rows.push(r);
    }

    fn print(&self) {
        println!();
        println!(
            "| id | workload | mqlite (median, min–max) | baseline, same run (median) | ratio | target | result |"
        );
        println!("|---|---|---|---|---|---|---|");
        for r in &self.rows {
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.id, r.what, r.ours, r.base, r.ratio, r.target, r.result
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SQLite baseline
// ---------------------------------------------------------------------------------------------

const SQL_INSERT: &str = "INSERT INTO queue (body, state, created_at) VALUES (?1, 0, ?2)";

/// The queue table a user would build instead: WAL, synchronous=FULL.
fn sqlite_open(path: &Path) -> Connection {
    let c = Connection::open(path).expect("sqlite open");
    let mode: String = c
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .expect("journal_mode");
    assert_eq!(mode.to_ascii_lowercase(), "wal");
    c.pragma_update(None, "synchronous", "FULL").expect("synchronous");
    let sync: i64 = c
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    c.busy_timeout(Duration::from_secs(120)).expect("busy_timeout");
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS queue (
             id INTEGER PRIMARY KEY,
             body BLOB NOT NULL,
             state INTEGER NOT NULL DEFAULT 0,
             created_at INTEGER NOT NULL)",
    )
    .expect("create table");
    c
}

/// Inserts `n` rows in transactions of `per_tx`. Returns the elapsed time.
fn sqlite_insert_batched(c: &mut Connection, n: usize, per_tx: usize, b: &[u8]) -> Duration {
    let t0 = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(per_tx);
        let tx = c.transaction().expect("begin");
        {
            let mut st = tx.prepare_cached(SQL_INSERT).expect("prepare");
            for _ in 0..k {
                st.execute(rusqlite::params![b, now_ms()]).expect("insert");
            }
        }
        tx.commit().expect("commit");
        left -= k;
    }
    t0.elapsed()
}

/// W1 baseline: one INSERT per transaction (autocommit). Returns (msgs/s, latencies).
fn sqlite_w1(cfg: &Cfg, n: usize) -> (f64, Vec<Duration>) {
    let dir = cfg.tempdir("w1-sqlite");
    let c = sqlite_open(&dir.path().join("q.db"));
    let b = body(100);
    let mut st = c.prepare_cached(SQL_INSERT).expect("prepare");
    st.execute(rusqlite::params![b, now_ms()]).expect("warm-up insert");
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        st.execute(rusqlite::params![b, now_ms()]).expect("insert");
        lat.push(t.elapsed());
    }
    let el = t0.elapsed();
    (n as f64 / el.as_secs_f64(), lat)
}

/// W2/W4 baseline: 1,000 INSERTs per transaction.
fn sqlite_w2(cfg: &Cfg, n: usize, len: usize) -> f64 {
    let dir = cfg.tempdir("w2-sqlite");
    let mut c = sqlite_open(&dir.path().join("q.db"));
    let b = body(len);
    sqlite_insert_batched(&mut c, 1_000, 1_000, &b); // warm-up
    let el = sqlite_insert_batched(&mut c, n, 1_000, &b);
    n as f64 / el.as_secs_f64()
}

/// W3 baseline: select-and-delete in transactions of 100 (one DELETE per message).
fn sqlite_w3(cfg: &Cfg, n: usize) -> f64 {
    let dir = cfg.tempdir("w3-sqlite");
    let mut c = sqlite_open(&dir.path().join("q.db"));
    let b = body(100);
    sqlite_insert_batched(&mut c, n, 1_000, &b);
    let t0 = Instant::now();
    let (mut got, mut bytes) = (0usize, 0usize);
    loop {
        let tx = c.transaction().expect("begin");
        let rows: Vec<(i64, Vec<u8>)> = {
            let mut sel = tx
                .prepare_cached("SELECT id, body FROM queue WHERE state = 0 ORDER BY id LIMIT 100")
                .expect("prepare");
            let it = sel.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).expect("select");
            it.collect::<rusqlite::Result<_>>().expect("rows")
        };
        if rows.is_empty() {
            break;
        }
        {
            let mut del = tx.prepare_cached("DELETE FROM queue WHERE id = ?1").expect("prepare");
            for (id, b) in &rows {
                bytes += b.len();
                del.execute([id]).expect("delete");
            }
        }
        tx.commit().expect("commit");
        got += rows.len();
    }
    let el = t0.elapsed();
    assert_eq!(got, n);
    assert_eq!(bytes, n * 100);
    n as f64 / el.as_secs_f64()
}

/// W5 baseline: `threads` connections, each one INSERT per transaction.
fn sqlite_w5(cfg: &Cfg, threads: usize, per: usize) -> f64 {
    let dir = cfg.tempdir("w5-sqlite");
    let path = dir.path().join("q.db");
    drop(sqlite_open(&path));
    let barrier = Barrier::new(threads + 1);
    let b = body(100);
    let el = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let c = sqlite_open(&path);
                let mut st = c.prepare_cached(SQL_INSERT).expect("prepare");
                barrier.wait();
                for _ in 0..per {
                    st.execute(rusqlite::params![b, now_ms()]).expect("insert");
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    (threads * per) as f64 / el.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The disk's own limits
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum RawMode {
    /// Append to a file that grows (each fdatasync also commits the new size).
    Grow,
    /// pwrite into a fallocate'd file (like a preallocated journal segment).
    Fallocated,
    /// pwrite over blocks that were written (zeros) and synced before.
    Prewritten,
}

/// `n` × (write 100 B + fdatasync). Returns (ops/s, latencies).
fn raw_sync_loop(cfg: &Cfg, n: usize, mode: RawMode) -> (f64, Vec<Duration>) {
    let dir = cfg.tempdir("raw");
    let path = dir.path().join("raw.bin");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("open");
    let size = ((n + 1) * 100).next_multiple_of(1 << 20) as u64;
    match mode {
        RawMode::Grow => {}
        RawMode::Fallocated => {
            // SAFETY: plain syscall on a file descriptor we own.
            let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, size as libc::off_t) };
            assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
        }
        RawMode::Prewritten => {
            let zeros = vec![0u8; 1 << 20];
            for off in (0..size).step_by(1 << 20) {
                f.write_all_at(&zeros, off).expect("write");
            }
        }
    }
    f.sync_all().expect("fsync");
    let mut dirf = File::open(dir.path()).expect("dir");
    dirf.sync_all().expect("dir fsync");
    let _ = dirf.flush();
    let rec = body(100);
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        f.write_all_at(&rec, (i * 100) as u64).expect("write");
        f.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    let el = t0.elapsed();
    (n as f64 / el.as_secs_f64(), lat)
}

/// Sequential write bandwidth: 1 MiB writes into a fallocate'd file, fdatasync per MiB. MiB/s.
fn raw_seq_bandwidth(cfg: &Cfg, mib: usize) -> f64 {
    let dir = cfg.tempdir("seq");
    let f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("seq.bin"))
        .expect("open");
    // SAFETY: plain syscall on a file descriptor we own.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, (mib << 20) as libc::off_t) };
    assert_eq!(rc, 0, "fallocate");
    f.sync_all().expect("fsync");
    let chunk = body(1 << 20);
    let t0 = Instant::now();
    for i in 0..mib {
        f.write_all_at(&chunk, (i as u64) << 20).expect("write");
        f.sync_data().expect("fdatasync");
    }
    mib as f64 / t0.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// mqlite workloads
// ---------------------------------------------------------------------------------------------

fn open_store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("Store::open")
}

/// Counts completions of async sends; wakes the waiter when all have fired.
struct Completions {
    fired: AtomicUsize,
    errors: AtomicUsize,
    target: usize,
    all: Mutex<bool>,
    cv: Condvar,
}

impl Completions {
    fn new(target: usize) -> Arc<Self> {
        Arc::new(Completions {
            fired: AtomicUsize::new(0),
            errors: AtomicUsize::new(0),
            target,
            all: Mutex::new(false),
            cv: Condvar::new(),
        })
    }
    fn hit(&self, ok: bool) {
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if self.fired.fetch_add(1, Ordering::AcqRel) + 1 == self.target {
            *self.all.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }
    fn wait(&self) {
        let mut g = self.all.lock().unwrap();
        while !*g {
            g = self.cv.wait(g).unwrap();
        }
        assert_eq!(self.errors.load(Ordering::Relaxed), 0, "async sends failed");
    }
}

/// W1: sync durable `send`, one at a time. Returns (msgs/s, latencies).
fn ours_w1(cfg: &Cfg, n: usize) -> (f64, Vec<Duration>) {
    let dir = cfg.tempdir("w1");
    let store = open_store(dir.path());
    let q = store.queue("q").expect("queue");
    let b = body(100);
    q.send(Message::new(b.as_slice())).expect("warm-up send");
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        q.send(Message::new(b.as_slice())).expect("send");
        lat.push(t.elapsed());
    }
    let el = t0.elapsed();
    store.close().expect("close");
    (n as f64 / el.as_secs_f64(), lat)
}

/// W2/W4 with a callback per message: `send_async` each, time until every callback fired.
fn ours_async(cfg: &Cfg, n: usize, len: usize) -> f64 {
    let dir = cfg.tempdir("w2-async");
    let store = open_store(dir.path());
    let q = store.queue("q").expect("queue");
    let b = body(len);
    q.send(Message::new(b.as_slice())).expect("warm-up send");
    let done = Completions::new(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let d = done.clone();
        q.send_async(Message::new(b.as_slice()), move |r| d.hit(r.is_ok()))
            .expect("send_async");
    }
    done.wait();
    let el = t0.elapsed();
    store.close().expect("close");
    n as f64 / el.as_secs_f64()
}

/// W2/W4 with `send_batch` of 1,000 (each call returns once its 1,000 are durable).
fn ours_batch(cfg: &Cfg, n: usize, len: usize) -> f64 {
    let dir = cfg.tempdir("w2-batch");
    let store = open_store(dir.path());
    let q = store.queue("q").expect("queue");
    let b = body(len);
    q.send(Message::new(b.as_slice())).expect("warm-up send");
    let t0 = Instant::now();
    send_batches(&q, n, &b);
    let el = t0.elapsed();
    store.close().expect("close");
    n as f64 / el.as_secs_f64()
}

fn send_batches(q: &mqlite::Queue, n: usize, b: &[u8]) {
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let ids = q.send_batch((0..k).map(|_| Message::new(b))).expect("send_batch");
        assert_eq!(ids.len(), k);
        left -= k;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Ack {
    Batch,
    Each,
}

/// W3: fill a backlog (untimed), then drain it with `receive_batch(batch)` and acks.
fn ours_w3(cfg: &Cfg, n: usize, batch: usize, ack: Ack) -> f64 {
    let dir = cfg.tempdir("w3");
    let store = open_store(dir.path());
    let q = store.queue("q").expect("queue");
    let b = body(100);
    send_batches(&q, n, &b);
    store.flush().expect("flush");
    let t0 = Instant::now();
    let (mut got, mut bytes) = (0usize, 0usize);
    while got < n {
        let ds = q.receive_batch(batch, Some(Duration::ZERO)).expect("receive_batch");
        assert!(!ds.is_empty(), "backlog ran dry at {got} of {n}");
        got += ds.len();
        bytes += ds.iter().map(|d| d.body().len()).sum::<usize>();
        match ack {
            Ack::Batch => q.ack_batch(ds).expect("ack_batch"),
            Ack::Each => {
                for d in ds {
                    d.ack().expect("ack");
                }
            }
        }
    }
    let el = t0.elapsed();
    assert_eq!(bytes, n * 100);
    store.close().expect("close");
    n as f64 / el.as_secs_f64()
}

/// W5: `threads` producers, each `per` sync sends on its own clone of the queue handle.
fn ours_w5(cfg: &Cfg, threads: usize, per: usize) -> f64 {
    let dir = cfg.tempdir("w5");
    let store = open_store(dir.path());
    let q = store.queue("q").expect("queue");
    let b = body(100);
    q.send(Message::new(b.as_slice())).expect("warm-up send");
    let barrier = Barrier::new(threads + 1);
    let el = std::thread::scope(|s| {
        for _ in 0..threads {
            let q = q.clone();
            let (b, barrier) = (&b, &barrier);
            s.spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    q.send(Message::new(b.as_slice())).expect("send");
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    store.close().expect("close");
    (threads * per) as f64 / el.as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The workloads, each printing its block and adding summary rows
// ---------------------------------------------------------------------------------------------

fn run_w1(cfg: &Cfg, rep: &mut Report) -> f64 {
    let n = cfg.w1_n;
    println!(
        "\n== W1: one producer, sync durable send(), 100 B bodies, {} msgs/run, {} runs",
        thousands(n as f64),
        cfg.runs
    );
    let (mut ours, mut sql, mut fal, mut grow, mut pre) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut ours_lat, mut sql_lat, mut fal_lat, mut grow_lat, mut pre_lat) = (vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..cfg.runs {
        let (r, l) = ours_w1(cfg, n);
        ours.push(r);
        ours_lat.push(l);
        let (r, l) = sqlite_w1(cfg, n);
        sql.push(r);
        sql_lat.push(l);
        let (r, l) = raw_sync_loop(cfg, n, RawMode::Fallocated);
        fal.push(r);
        fal_lat.push(l);
        let (r, l) = raw_sync_loop(cfg, n, RawMode::Grow);
        grow.push(r);
        grow_lat.push(l);
        let (r, l) = raw_sync_loop(cfg, n, RawMode::Prewritten);
        pre.push(r);
        pre_lat.push(l);
    }
    let line = |name: &str, v: &[f64], lats: &mut [Vec<Duration>]| {
        let i = median_index(v);
        let (p50, p99) = percentiles(&mut lats[i]);
        println!(
            "  {name:<62} {:<28} p50 {:>7}  p99 {:>7}",
            rate_str(stat(v)),
            us(p50),
            us(p99)
        );
        (p50, p99)
    };
    let (p50, p99) = line("mqlite send()", &ours, &mut ours_lat);
    line(
        "SQLite: WAL, synchronous=FULL, 1 INSERT/transaction",
        &sql,
        &mut sql_lat,
    );
    line(
        "disk: pwrite 100 B + fdatasync, fallocate'd file (reference)",
        &fal,
        &mut fal_lat,
    );
    line(
        "disk: append 100 B + fdatasync, growing file (info)",
        &grow,
        &mut grow_lat,
    );
    line(
        "disk: pwrite 100 B + fdatasync, pre-written file (info)",
        &pre,
        &mut pre_lat,
    );
    let (o, s, d) = (stat(&ours), stat(&sql), stat(&fal));
    let (rs, rd) = (o.med / s.med, o.med / d.med);
    rep.add(
        "W1",
        "sync send, 1 producer",
        [
            format!("{}, p50 {} p99 {}", rate_str(o), us(p50), us(p99)),
            format!(
                "SQLite {}/s; disk (fallocate'd) {}/s",
                thousands(s.med),
                thousands(d.med)
            ),
            format!("{rs:.2}× SQLite, {rd:.2}× disk"),
        ],
        "≥ 1.1× SQLite and ≥ 0.9× disk",
        format!(
            "{} (SQLite {}, disk {})",
            verdict(rs >= 1.1 && rd >= 0.9),
            verdict(rs >= 1.1),
            verdict(rd >= 0.9)
        ),
    );
    o.med
}

fn run_w2(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w2_n;
    println!(
        "\n== W2: one producer, async durable sends, 100 B bodies, {} msgs/run, {} runs",
        thousands(n as f64),
        cfg.runs
    );
    let (mut cb, mut bt, mut sql) = (vec![], vec![], vec![]);
    for _ in 0..cfg.runs {
        cb.push(ours_async(cfg, n, 100));
        bt.push(ours_batch(cfg, n, 100));
        sql.push(sqlite_w2(cfg, n, 100));
    }
    let (c, b, s) = (stat(&cb), stat(&bt), stat(&sql));
    println!("  {:<62} {}", "mqlite send_async() + callback per message", rate_str(c));
    println!("  {:<62} {}", "mqlite send_batch() of 1,000", rate_str(b));
    println!(
        "  {:<62} {}",
        "SQLite: WAL, synchronous=FULL, 1,000 INSERTs/transaction",
        rate_str(s)
    );
    let t = "≥ 2,000,000/s and ≥ 2× SQLite";
    for (what, x) in [("async send, callback per msg", c), ("send_batch of 1,000 (info)", b)] {
        let r = x.med / s.med;
        rep.add(
            "W2",
            what,
            [rate_str(x), format!("{}/s", thousands(s.med)), format!("{r:.2}×")],
            t,
            verdict(x.med >= 2e6 && r >= 2.0).to_string(),
        );
    }
}

fn run_w3(cfg: &Cfg, rep: &mut Report) {
    let (n, batch) = (cfg.w3_n, cfg.w3_batch);
    println!(
        "\n== W3: drain a backlog of {} persisted 100 B msgs, one consumer, {} runs (fill untimed)",
        thousands(n as f64),
        cfg.runs
    );
    let (mut ob, mut o100, mut oe, mut sql) = (vec![], vec![], vec![], vec![]);
    for _ in 0..cfg.runs {
        ob.push(ours_w3(cfg, n, batch, Ack::Batch));
        o100.push(ours_w3(cfg, n, 100, Ack::Batch));
        oe.push(ours_w3(cfg, cfg.w3_each_n, batch, Ack::Each));
        sql.push(sqlite_w3(cfg, n));
    }
    let (b, b100, e, s) = (stat(&ob), stat(&o100), stat(&oe), stat(&sql));
    let name_b = format!("mqlite receive_batch({batch}) + ack_batch");
    println!("  {:<62} {}", name_b, rate_str(b));
    println!(
        "  {:<62} {}",
        "mqlite receive_batch(100) + ack_batch (info)",
        rate_str(b100)
    );
    let name_e = format!(
        "mqlite receive_batch({batch}) + d.ack() each, {} msgs (info)",
        thousands(cfg.w3_each_n as f64)
    );
    println!("  {:<62} {}", name_e, rate_str(e));
    println!(
        "  {:<62} {}",
        "SQLite: SELECT 100 + DELETE each, 100/transaction",
        rate_str(s)
    );
    let t = "≥ 2,000,000/s and ≥ 4× SQLite";
    for (what, x, judged) in [
        (format!("receive_batch({batch}) + ack_batch"), b, true),
        ("receive_batch(100) + ack_batch (info)".to_string(), b100, true),
        (
            format!("d.ack() each, {} msgs (info)", thousands(cfg.w3_each_n as f64)),
            e,
            false,
        ),
    ] {
        let r = x.med / s.med;
        rep.add(
            "W3",
            what,
            [rate_str(x), format!("{}/s", thousands(s.med)), format!("{r:.2}×")],
            if judged { t } else { "—" },
            if judged {
                verdict(x.med >= 2e6 && r >= 4.0).to_string()
            } else {
                "info".into()
            },
        );
    }
}

fn run_w4(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w4_n;
    println!(
        "\n== W4: W2 with 1 KiB bodies, {} msgs/run, {} runs (MB = 10^6 bytes of bodies)",
        thousands(n as f64),
        cfg.runs
    );
    let (mut cb, mut bt, mut sql, mut bw) = (vec![], vec![], vec![], vec![]);
    for _ in 0..cfg.runs {
        cb.push(ours_async(cfg, n, 1024));
        bt.push(ours_batch(cfg, n, 1024));
        sql.push(sqlite_w2(cfg, n, 1024));
        bw.push(raw_seq_bandwidth(cfg, cfg.seq_mib));
    }
    let mb = |s: Stat| s.med * 1024.0 / 1e6;
    let (c, b, s, w) = (stat(&cb), stat(&bt), stat(&sql), stat(&bw));
    let disk_mb = w.med * MIB / 1e6;
    println!(
        "  {:<62} {}  = {:.0} MB/s",
        "mqlite send_async() + callback per message",
        rate_str(c),
        mb(c)
    );
    println!(
        "  {:<62} {}  = {:.0} MB/s",
        "mqlite send_batch() of 1,000",
        rate_str(b),
        mb(b)
    );
    println!(
        "  {:<62} {}  = {:.0} MB/s",
        "SQLite: WAL, synchronous=FULL, 1,000 INSERTs/transaction",
        rate_str(s),
        mb(s)
    );
    println!(
        "  {:<62} {:.0} MiB/s ({:.0}–{:.0}) = {:.0} MB/s",
        format!("disk: 1 MiB writes + fdatasync per MiB, {} MiB", cfg.seq_mib),
        w.med,
        w.min,
        w.max,
        disk_mb
    );
    for (what, x) in [
        ("async send 1 KiB, callback per msg", c),
        ("send_batch of 1,000 × 1 KiB (info)", b),
    ] {
        let m = mb(x);
        let frac = m / disk_mb;
        rep.add(
            "W4",
            what,
            [
                format!("{} = {:.0} MB/s", rate_str(x), m),
                format!(
                    "SQLite {}/s = {:.0} MB/s; disk {:.0} MB/s",
                    thousands(s.med),
                    mb(s),
                    disk_mb
                ),
                format!("{:.2}× SQLite, {:.0} % of disk", x.med / s.med, frac * 100.0),
            ],
            "≥ 300 MB/s (≥ 85 % of disk)",
            format!(
                "{} (300 MB/s {}, 85 % {})",
                verdict(m >= 300.0 && frac >= 0.85),
                verdict(m >= 300.0),
                verdict(frac >= 0.85)
            ),
        );
    }
}

fn run_w5(cfg: &Cfg, rep: &mut Report, w1: Option<f64>) {
    let (t, per) = (cfg.w5_threads, cfg.w5_per);
    println!(
        "\n== W5: {t} producer threads, sync durable send(), {} msgs each, {} runs",
        thousands(per as f64),
        cfg.runs
    );
    let w1 = w1.unwrap_or_else(|| {
        println!("  (W1 not selected: measuring mqlite W1 for the ratio)");
        stat(&(0..cfg.runs).map(|_| ours_w1(cfg, cfg.w1_n).0).collect::<Vec<_>>()).med
    });
    let (mut ours, mut sql) = (vec![], vec![]);
    for _ in 0..cfg.runs {
        ours.push(ours_w5(cfg, t, per));
        sql.push(sqlite_w5(cfg, t, per));
    }
    let (o, s) = (stat(&ours), stat(&sql));
    println!("  {:<62} {}", format!("mqlite, {t} threads"), rate_str(o));
    println!(
        "  {:<62} {}",
        format!("SQLite: {t} connections, 1 INSERT/transaction"),
        rate_str(s)
    );
    println!("  {:<62} {}/s", "mqlite W1 (same run)", thousands(w1));
    let r = o.med / w1;
    rep.add(
        "W5",
        format!("{t} threads sync send"),
        [
            rate_str(o),
            format!("SQLite {}/s; mqlite W1 {}/s", thousands(s.med), thousands(w1)),
            format!("{r:.2}× W1, {:.2}× SQLite", o.med / s.med),
        ],
        "≥ 5× W1",
        verdict(r >= 5.0).to_string(),
    );
}

fn run_w7(cfg: &Cfg, rep: &mut Report, len: usize) {
    let target = cfg.w7_bytes;
    println!(
        "\n== W7: reopen a store holding a {:.2} GiB journal of {len} B messages (send_batch of 1,000), warm cache, {} reopens",
        target as f64 / GIB,
        cfg.runs
    );
    let dir = cfg.tempdir("w7");
    let b = body(len);
    // Journal content: per SEND record 4 (len) + 1 (kind) + 48 (send header) + body bytes, plus
    // a 32-byte frame header per group commit (SPEC format, journal/format.rs).
    let content = |sent: usize| (sent * (53 + len) + sent.div_ceil(1_000) * 32) as u64;
    let t0 = Instant::now();
    let mut sent = 0usize;
    {
        let store = open_store(dir.path());
        let q = store.queue("q").expect("queue");
        while content(sent) < target {
            send_batches(&q, 64_000, &b);
            sent += 64_000;
        }
        store.close().expect("close");
    }
    let build = t0.elapsed();
    let bytes = content(sent);
    let files = dir_bytes(dir.path());
    println!(
        "  built: {} msgs = {:.3} GiB of records ({:.3} GiB of preallocated segment files) in {:.1} s ({}/s)",
        thousands(sent as f64),
        bytes as f64 / GIB,
        files as f64 / GIB,
        build.as_secs_f64(),
        thousands(sent as f64 / build.as_secs_f64())
    );
    warm_cache(dir.path());
    let mut secs = vec![];
    for _ in 0..cfg.runs {
        let t = Instant::now();
        let store = open_store(dir.path());
        let el = t.elapsed().as_secs_f64();
        let n = store.queue("q").expect("queue").stats().expect("stats").messages;
        assert_eq!(n as usize, sent, "messages after reopen");
        let t = Instant::now();
        store.close().expect("close");
        println!(
            "  open {:.3} s (close {:.3} s), {} messages recovered",
            el,
            t.elapsed().as_secs_f64(),
            thousands(n as f64)
        );
        secs.push(el);
    }
    let s = stat(&secs);
    let per_gib = s.med / (bytes as f64 / GIB);
    rep.add(
        "W7",
        format!(
            "open {:.2} GiB journal ({} × {len} B msgs)",
            bytes as f64 / GIB,
            thousands(sent as f64)
        ),
        [
            format!("{:.2} s ({:.2}–{:.2}) = {:.2} s/GiB", s.med, s.min, s.max, per_gib),
            "—".into(),
            "—".into(),
        ],
        "≤ 1 s per GiB",
        verdict(per_gib <= 1.0).to_string(),
    );
}

/// Runs this program again as a child for one W8 step (so its VmRSS is not polluted by the
/// other workloads) and parses its `key=value` lines.
fn child(step: &str, dir: &Path, n: usize) -> std::collections::HashMap<String, f64> {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .env("MQLITE_BENCH_CHILD", step)
        .env("MQLITE_BENCH_CHILD_DIR", dir)
        .env("MQLITE_BENCH_CHILD_N", n.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("running the W8 child");
    assert!(out.status.success(), "W8 child {step} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}

fn child_main(step: &str) {
    let dir = PathBuf::from(std::env::var_os("MQLITE_BENCH_CHILD_DIR").expect("dir"));
    let n: usize = env_num("MQLITE_BENCH_CHILD_N").expect("n");
    let b = body(100);
    match step {
        "w8-fill" => {
            let store = open_store(&dir);
            let q = store.queue("q").expect("queue");
            store.flush().expect("flush");
            let before = proc_status_bytes("VmRSS");
            let t0 = Instant::now();
            let mut left = n;
            while left > 0 {
                let k = left.min(10_000);
                send_batches(&q, k, &b);
                left -= k;
            }
            store.flush().expect("flush");
            let secs = t0.elapsed().as_secs_f64();
            let after = proc_status_bytes("VmRSS");
            assert_eq!(q.stats().expect("stats").messages as usize, n);
            println!(
                "before={before}\nafter={after}\nhwm={}\nsecs={secs}",
                proc_status_bytes("VmHWM")
            );
            store.close().expect("close");
        }
        "w8-open" => {
            let before = proc_status_bytes("VmRSS");
            let t0 = Instant::now();
            let store = open_store(&dir);
            let secs = t0.elapsed().as_secs_f64();
            let q = store.queue("q").expect("queue");
            assert_eq!(q.stats().expect("stats").messages as usize, n);
            let after = proc_status_bytes("VmRSS");
            println!(
                "before={before}\nafter={after}\nhwm={}\nsecs={secs}",
                proc_status_bytes("VmHWM")
            );
            store.close().expect("close");
        }
        other => panic!("unknown child step {other}"),
    }
}

fn run_w8(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w8_n;
    println!(
        "\n== W8: resident memory with N = {} queued 100 B messages (fresh child process; VmRSS after − before fill)",
        thousands(n as f64)
    );
    let dir = cfg.tempdir("w8");
    let fill = child("w8-fill", dir.path(), n);
    let per = (fill["after"] - fill["before"]) / n as f64;
    println!(
        "  fill: VmRSS {:.1} MiB → {:.1} MiB = {:.1} B/msg (peak VmHWM {:.1} MiB), filled in {:.1} s ({}/s), journal {:.2} GiB",
        fill["before"] / MIB,
        fill["after"] / MIB,
        per,
        fill["hwm"] / MIB,
        fill["secs"],
        thousands(n as f64 / fill["secs"]),
        dir_bytes(dir.path()) as f64 / GIB
    );
    let open = child("w8-open", dir.path(), n);
    let per_open = (open["after"] - open["before"]) / n as f64;
    println!(
        "  reopen (new process): VmRSS {:.1} MiB → {:.1} MiB = {:.1} B/msg, peak VmHWM {:.1} MiB = {:.1} B/msg, open took {:.2} s",
        open["before"] / MIB,
        open["after"] / MIB,
        per_open,
        open["hwm"] / MIB,
        (open["hwm"] - open["before"]) / n as f64,
        open["secs"]
    );
    rep.add(
        "W8",
        format!("RAM per queued msg, N = {}", thousands(n as f64)),
        [
            format!("{per:.1} B/msg after fill; {per_open:.1} B/msg after reopen"),
            "—".into(),
            "—".into(),
        ],
        "≤ 64 B/msg",
        format!(
            "{} (fill {}, reopen {})",
            verdict(per <= 64.0 && per_open <= 64.0),
            verdict(per <= 64.0),
            verdict(per_open <= 64.0)
        ),
    );
}

// ---------------------------------------------------------------------------------------------

fn main() {
    if let Ok(step) = std::env::var("MQLITE_BENCH_CHILD") {
        child_main(&step);
        return;
    }
    let cfg = Cfg::from_env();
    // cargo passes `--bench`; anything else is a workload id to select.
    let want: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .map(|a| a.to_ascii_uppercase())
        .collect();
    let sel = |id: &str| want.is_empty() || want.iter().any(|w| w == id);
    for w in &want {
        if !["W1", "W2", "W3", "W4", "W5", "W7", "W8"].contains(&w.as_str()) {
            eprintln!("unknown workload {w:?} (known: W1 W2 W3 W4 W5 W7 W8)");
            std::process::exit(2);
        }
    }
    std::fs::create_dir_all(&cfg.root).expect("creating the bench root");
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let rev = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!(
        "mqlite workloads benchmark{}",
        if cfg.quick {
            " — QUICK MODE (small sizes, smoke run only)"
        } else {
            ""
        }
    );
    println!(
        "  commit {rev}, {} CPUs, load {}",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "  store directories under {} ({}); {} runs per figure, median (min–max)",
        cfg.root.display(),
        fs_type(&cfg.root),
        cfg.runs
    );
    println!(
        "  SQLite {} (bundled), journal_mode=WAL, synchronous=FULL",
        rusqlite::version()
    );
    let started = Instant::now();
    let mut rep = Report { rows: Vec::new() };
    let w1 = sel("W1").then(|| run_w1(&cfg, &mut rep));
    if sel("W2") {
        run_w2(&cfg, &mut rep);
    }
    if sel("W3") {
        run_w3(&cfg, &mut rep);
    }
    if sel("W4") {
        run_w4(&cfg, &mut rep);
    }
    if sel("W5") {
        run_w5(&cfg, &mut rep, w1);
    }
    if sel("W7") {
        for &len in &cfg.w7_bodies {
            run_w7(&cfg, &mut rep, len);
        }
    }
    if sel("W8") {
        run_w8(&cfg, &mut rep);
    }
    rep.print();
    println!(
        "\ntotal {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if cfg.quick { " (quick mode: not a result)" } else { "" }
    );
}
