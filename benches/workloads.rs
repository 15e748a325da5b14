//! mqlite workload benchmarks (the workloads W1–W11 and their targets are in `benches/README.md`).
//!
//! Every workload runs mqlite and its SQLite baseline (rusqlite, bundled SQLite, WAL,
//! `synchronous=FULL`) side by side in the same process and the same run, interleaved run by
//! run, on the same disk, so the ratios hold even when the absolute figures drift.
//!
//! ```text
//! cargo bench -p mqlite-bench                        # everything, full sizes (~10 min)
//! cargo bench -p mqlite-bench -- W1 W3                # only some workloads
//! MQLITE_BENCH_QUICK=1 cargo bench -p mqlite-bench    # smoke run, small sizes
//! ```

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqlite::{Message, Store, StoreOptions};
use rusqlite::Connection;

mod cface;

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
    /// W9: producer processes and messages per process.
    w9_procs: usize,
    w9_per: usize,
    /// W7: journal size to build, and the body sizes of its messages (one store per size).
    w7_bytes: u64,
    w7_bodies: Vec<usize>,
    /// W8: messages queued.
    w8_n: usize,
    /// W6: delayed messages waiting in the workload's queue.
    w6_delayed: usize,
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
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
        let w7_gib: f64 =
            env_num("MQLITE_BENCH_W7_GIB").unwrap_or(if quick { 0.0625 } else { 1.0 });
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
            w9_procs: 4,
            w9_per: q(10_000, 1_000),
            w7_bytes: (w7_gib * GIB) as u64,
            w7_bodies: env_num("MQLITE_BENCH_W7_BODY")
                .map(|b| vec![b])
                .unwrap_or_else(|| vec![100, 1024]),
            w8_n: env_num("MQLITE_BENCH_W8_N").unwrap_or(q(10_000_000, 200_000)),
            w6_delayed: env_num("MQLITE_BENCH_W6_DELAYED").unwrap_or(q(1_000_000, 100_000)),
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
    format!(
        "{}/s ({}–{})",
        thousands(s.med),
        thousands(s.min),
        thousands(s.max)
    )
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
            let kb: u64 = rest
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .unwrap_or(0);
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
    for e in std::fs::read_dir(dir)
        .expect("listing")
        .filter_map(|e| e.ok())
    {
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
    fn add(
        &mut self,
        id: &'static str,
        what: impl Into<String>,
        cells: [String; 3],
        target: &str,
        result: String,
    ) {
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
// Interleaving: every side of a comparison advances chunk by chunk, in turn
// ---------------------------------------------------------------------------------------------

/// Runs `k` more operations of one side's workload and returns the time they took. Set-up
/// (opening, filling a backlog) happens when the step is made, outside the timing.
type Step<'a> = Box<dyn FnMut(usize) -> Duration + 'a>;

/// One side of a comparison: `n` operations per run, and how to set up a fresh run of it.
struct Side<'a> {
    n: usize,
    make: Box<dyn Fn() -> Step<'a> + 'a>,
}

fn side<'a>(n: usize, make: impl Fn() -> Step<'a> + 'a) -> Side<'a> {
    Side {
        n,
        make: Box::new(make),
    }
}

/// Runs every side `cfg.runs` times. Within a run the sides take turns, `rounds` chunks each
/// (the side that starts rotates), so a burst of load on the shared machine hits all sides
/// alike. Returns, per side, the rate of each run (operations per second of its own time).
fn interleave(cfg: &Cfg, rounds: usize, sides: &[Side]) -> Vec<Vec<f64>> {
    let mut rates = vec![Vec::new(); sides.len()];
    for _ in 0..cfg.runs {
        let mut steps: Vec<Step> = sides.iter().map(|s| (s.make)()).collect();
        let mut took = vec![Duration::ZERO; sides.len()];
        for r in 0..rounds {
            for j in 0..sides.len() {
                let s = (r + j) % sides.len();
                let (n, k0) = (sides[s].n, sides[s].n / rounds);
                let k = if r + 1 == rounds {
                    n - k0 * (rounds - 1)
                } else {
                    k0
                };
                if k > 0 {
                    took[s] += (steps[s])(k);
                }
            }
        }
        drop(steps);
        for (s, t) in took.iter().enumerate() {
            rates[s].push(sides[s].n as f64 / t.as_secs_f64());
        }
    }
    rates
}

/// Latencies of each run of a side (one `Vec` per run).
type Lat = std::cell::RefCell<Vec<Vec<Duration>>>;

fn record(lat: Option<&Lat>, d: Duration) {
    if let Some(l) = lat {
        if let Some(v) = l.borrow_mut().last_mut() {
            v.push(d);
        }
    }
}

fn new_run(lat: Option<&Lat>) {
    if let Some(l) = lat {
        l.borrow_mut().push(Vec::new());
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
    c.pragma_update(None, "synchronous", "FULL")
        .expect("synchronous");
    let sync: i64 = c
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .expect("synchronous");
    assert_eq!(sync, 2, "synchronous=FULL");
    c.busy_timeout(Duration::from_secs(120))
        .expect("busy_timeout");
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

/// A SQLite database in a fresh directory (the directory goes when the value is dropped), or a
/// connection to one another process made (W9's producer processes: no directory).
struct Db {
    c: Connection,
    _dir: Option<tempfile::TempDir>,
}

fn sqlite_fresh(cfg: &Cfg) -> Db {
    let dir = cfg.tempdir("sqlite");
    Db {
        c: sqlite_open(&dir.path().join("q.db")),
        _dir: Some(dir),
    }
}

/// Inserts `n` rows in transactions of `per_tx`.
fn sqlite_insert_batched(c: &mut Connection, n: usize, per_tx: usize, b: &[u8]) {
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
}

/// W1 baseline: one INSERT per transaction (autocommit) into `db` (W9: one of the producer
/// processes' connections).
fn sqlite_w1<'a>(db: Db, lat: Option<&'a Lat>) -> Step<'a> {
    let b = body(100);
    db.c.execute(SQL_INSERT, rusqlite::params![b, now_ms()])
        .expect("warm-up insert");
    new_run(lat);
    Box::new(move |k| {
        let db = &db; // capture the whole value (connection and directory)
        let mut st = db.c.prepare_cached(SQL_INSERT).expect("prepare");
        let t0 = Instant::now();
        for _ in 0..k {
            let t = Instant::now();
            st.execute(rusqlite::params![b, now_ms()]).expect("insert");
            record(lat, t.elapsed());
        }
        t0.elapsed()
    })
}

/// W2/W4 baseline: 1,000 INSERTs per transaction.
fn sqlite_w2<'a>(cfg: &Cfg, len: usize) -> Step<'a> {
    let mut db = sqlite_fresh(cfg);
    let b = body(len);
    sqlite_insert_batched(&mut db.c, 1_000, 1_000, &b); // warm-up
    Box::new(move |k| {
        let db = &mut db; // capture the whole value (connection and directory)
        let t0 = Instant::now();
        sqlite_insert_batched(&mut db.c, k, 1_000, &b);
        t0.elapsed()
    })
}

/// W3 baseline: a backlog of `n` rows (untimed), drained by select-and-delete in transactions
/// of 100 (one DELETE per message, as a consumer acking each would).
fn sqlite_w3<'a>(cfg: &Cfg, n: usize) -> Step<'a> {
    let mut db = sqlite_fresh(cfg);
    sqlite_insert_batched(&mut db.c, n, 1_000, &body(100));
    Box::new(move |k| {
        let db = &mut db; // capture the whole value (connection and directory)
        let t0 = Instant::now();
        let mut got = 0;
        while got < k {
            let tx = db.c.transaction().expect("begin");
            let rows: Vec<(i64, Vec<u8>)> = {
                let mut sel = tx
                    .prepare_cached(
                        "SELECT id, body FROM queue WHERE state = 0 ORDER BY id LIMIT ?1",
                    )
                    .expect("prepare");
                let it = sel
                    .query_map([(k - got).min(100) as i64], |r| Ok((r.get(0)?, r.get(1)?)))
                    .expect("select");
                it.collect::<rusqlite::Result<_>>().expect("rows")
            };
            assert!(!rows.is_empty(), "the SQLite backlog ran dry");
            {
                let mut del = tx
                    .prepare_cached("DELETE FROM queue WHERE id = ?1")
                    .expect("prepare");
                for (id, b) in &rows {
                    assert_eq!(b.len(), 100);
                    del.execute([id]).expect("delete");
                }
            }
            tx.commit().expect("commit");
            got += rows.len();
        }
        t0.elapsed()
    })
}

/// W3s baseline: the idiomatic consumer on SQLite, one transaction per consumed message
/// (SELECT the oldest, DELETE it, COMMIT).
fn sqlite_w3s<'a>(cfg: &Cfg, n: usize) -> Step<'a> {
    let mut db = sqlite_fresh(cfg);
    sqlite_insert_batched(&mut db.c, n, 1_000, &body(100));
    Box::new(move |k| {
        let db = &mut db; // capture the whole value (connection and directory)
        let t0 = Instant::now();
        for _ in 0..k {
            let tx = db.c.transaction().expect("begin");
            let (id, b): (i64, Vec<u8>) = tx
                .prepare_cached("SELECT id, body FROM queue WHERE state = 0 ORDER BY id LIMIT 1")
                .expect("prepare")
                .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("the SQLite backlog ran dry");
            assert_eq!(b.len(), 100);
            tx.prepare_cached("DELETE FROM queue WHERE id = ?1")
                .expect("prepare")
                .execute([id])
                .expect("delete");
            tx.commit().expect("commit");
        }
        t0.elapsed()
    })
}

/// W5 baseline: `threads` connections, each one INSERT per transaction.
fn sqlite_w5<'a>(cfg: &Cfg, threads: usize) -> Step<'a> {
    let db = sqlite_fresh(cfg);
    let path = db.c.path().map(PathBuf::from).expect("db path");
    let mut conns: Vec<Connection> = (0..threads).map(|_| sqlite_open(&path)).collect();
    let b = body(100);
    Box::new(move |k| {
        let _keep = &db; // keeps the directory until the step goes
        let barrier = Barrier::new(threads + 1);
        let per = k / threads;
        std::thread::scope(|s| {
            for c in conns.iter_mut() {
                let (b, barrier) = (&b, &barrier);
                s.spawn(move || {
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
        .elapsed()
    })
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

/// A file in a fresh directory, created `size` bytes big as `mode` says.
fn raw_file(cfg: &Cfg, size: u64, mode: RawMode) -> (File, tempfile::TempDir) {
    let dir = cfg.tempdir("raw");
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.path().join("raw.bin"))
        .expect("open");
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
    File::open(dir.path())
        .and_then(|d| d.sync_all())
        .expect("dir fsync");
    (f, dir)
}

/// The disk's own rate: write 100 B at the next offset + fdatasync, per operation.
fn raw_sync<'a>(cfg: &Cfg, n: usize, mode: RawMode, lat: Option<&'a Lat>) -> Step<'a> {
    let (f, dir) = raw_file(cfg, ((n + 1) * 100).next_multiple_of(1 << 20) as u64, mode);
    let rec = body(100);
    let mut off = 0u64;
    new_run(lat);
    Box::new(move |k| {
        let _keep = &dir;
        let t0 = Instant::now();
        for _ in 0..k {
            let t = Instant::now();
            f.write_all_at(&rec, off).expect("write");
            f.sync_data().expect("fdatasync");
            off += 100;
            record(lat, t.elapsed());
        }
        t0.elapsed()
    })
}

/// Sequential write bandwidth: 1 MiB writes into a fallocate'd file, fdatasync per MiB (k = MiB).
fn raw_seq<'a>(cfg: &Cfg, mib: usize) -> Step<'a> {
    let (f, dir) = raw_file(cfg, (mib as u64) << 20, RawMode::Fallocated);
    let chunk = body(1 << 20);
    let mut off = 0u64;
    Box::new(move |k| {
        let _keep = &dir;
        let t0 = Instant::now();
        for _ in 0..k {
            f.write_all_at(&chunk, off).expect("write");
            f.sync_data().expect("fdatasync");
            off += 1 << 20;
        }
        t0.elapsed()
    })
}

// ---------------------------------------------------------------------------------------------
// mqlite
// ---------------------------------------------------------------------------------------------

fn open_store(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("Store::open")
}

/// The store a step runs on, with an empty queue: by default queue "q" of a store in a fresh
/// directory of its own. Fields drop in order: queue, store (closing it), directory.
struct Fresh {
    q: mqlite::Queue,
    store: Store,
    _dir: Option<tempfile::TempDir>,
}

/// W10: numbers the queues of the client runs (`Fresh::client`), which share one store.
static CLIENT_QUEUES: AtomicUsize = AtomicUsize::new(0);

impl Fresh {
    fn new(cfg: &Cfg) -> Fresh {
        let dir = cfg.tempdir("mqlite");
        let store = open_store(dir.path());
        Fresh::warmed(store, "q", Some(dir))
    }

    /// W10: a client of the owner process serving `dir`, on a new queue of that store (so it
    /// starts empty, as a fresh store's queue does, whatever the runs before left in theirs).
    fn client(dir: &Path) -> Fresh {
        let store = Store::open(
            dir,
            StoreOptions {
                open_as: mqlite::OpenAs::Client,
                ..StoreOptions::default()
            },
        )
        .expect("opening as a client");
        assert_eq!(store.role(), mqlite::Role::Client);
        let name = format!("c{}", CLIENT_QUEUES.fetch_add(1, Ordering::Relaxed));
        Fresh::warmed(store, &name, None)
    }

    /// Queue `name` of `store`, declared and warmed up: the queue's declaration record and the
    /// first segment's warm-up are not timed.
    fn warmed(store: Store, name: &str, dir: Option<tempfile::TempDir>) -> Fresh {
        let q = store.queue(name).expect("queue");
        q.send(Message::new(&b"warm-up"[..])).expect("warm-up send");
        let d = q
            .receive(Some(Duration::ZERO))
            .expect("receive")
            .expect("warm-up message");
        d.ack().expect("ack");
        Fresh {
            q,
            store,
            _dir: dir,
        }
    }

    /// A fresh store whose queue "q" holds `delayed` messages due in a day (W6), sent with
    /// `send_batch` of 1,000 and flushed, untimed. With `delayed == 0` it is `Fresh::new`.
    fn with_delayed(cfg: &Cfg, delayed: usize) -> Fresh {
        let s = Fresh::new(cfg);
        if delayed > 0 {
            send_delayed(&s.q, delayed, &body(100));
            s.store.flush().expect("flush");
            assert_eq!(s.q.stats().expect("stats").delayed as usize, delayed);
        }
        s
    }
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

fn send_batches(q: &mqlite::Queue, n: usize, b: &[u8]) {
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let ids = q
            .send_batch((0..k).map(|_| Message::new(b)))
            .expect("send_batch");
        assert_eq!(ids.len(), k);
        left -= k;
    }
}

/// `n` messages with a delivery delay of a day (W6), in `send_batch` calls of 1,000.
fn send_delayed(q: &mqlite::Queue, n: usize, b: &[u8]) {
    let mut left = n;
    while left > 0 {
        let k = left.min(1_000);
        let ids = q
            .send_batch((0..k).map(|_| Message::new(b).delay(W6_DELAY)))
            .expect("send_batch");
        assert_eq!(ids.len(), k);
        left -= k;
    }
}

/// W6: how long the delayed messages wait (far beyond any run).
const W6_DELAY: Duration = Duration::from_secs(86_400);

/// W1: sync durable `send`, one at a time, on `s` (W6: a queue where delayed messages wait;
/// W9: a producer process's store; W10: a client's).
fn ours_w1<'a>(s: Fresh, lat: Option<&'a Lat>) -> Step<'a> {
    let b = body(100);
    new_run(lat);
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let t0 = Instant::now();
        for _ in 0..k {
            let t = Instant::now();
            s.q.send(Message::new(b.as_slice())).expect("send");
            record(lat, t.elapsed());
        }
        t0.elapsed()
    })
}

/// W2/W4 with a callback per message: `send_async` each, timed until every callback fired.
fn ours_async<'a>(s: Fresh, len: usize) -> Step<'a> {
    let b = body(len);
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let done = Completions::new(k);
        let t0 = Instant::now();
        for _ in 0..k {
            let d = done.clone();
            s.q.send_async(Message::new(b.as_slice()), move |r| d.hit(r.is_ok()))
                .expect("send_async");
        }
        done.wait();
        t0.elapsed()
    })
}

/// W2/W4 with `send_batch` of 1,000 (each call returns once its 1,000 are durable), on `s`
/// (W10: a client's).
fn ours_batch<'a>(s: Fresh, len: usize) -> Step<'a> {
    let b = body(len);
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let t0 = Instant::now();
        send_batches(&s.q, k, &b);
        t0.elapsed()
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Ack {
    Batch,
    Each,
}

/// W3: a flushed backlog of `n` (untimed) in `s`, drained with `receive_batch(batch)` and acks
/// (W6: delayed messages were sent to the same queue before the backlog).
fn ours_w3<'a>(s: Fresh, n: usize, batch: usize, ack: Ack) -> Step<'a> {
    send_batches(&s.q, n, &body(100));
    s.store.flush().expect("flush");
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let t0 = Instant::now();
        let mut got = 0;
        while got < k {
            let ds =
                s.q.receive_batch(batch.min(k - got), Some(Duration::ZERO))
                    .expect("receive_batch");
            assert!(!ds.is_empty(), "the backlog ran dry");
            got += ds.len();
            assert!(ds.iter().all(|d| d.body().len() == 100));
            match ack {
                Ack::Batch => s.q.ack_batch(ds).expect("ack_batch"),
                Ack::Each => {
                    for d in ds {
                        d.ack().expect("ack");
                    }
                }
            }
        }
        t0.elapsed()
    })
}

/// W3s: the idiomatic consumer with default options (prefetch, lazy acks): `receive` one
/// message with a timeout, ack it, repeat, over a flushed backlog of `n` (untimed) in `s`
/// (W10: a client's).
fn ours_w3s<'a>(s: Fresh, n: usize) -> Step<'a> {
    send_batches(&s.q, n, &body(100));
    s.store.flush().expect("flush");
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let t0 = Instant::now();
        for _ in 0..k {
            let d =
                s.q.receive(Some(Duration::from_secs(1)))
                    .expect("receive")
                    .expect("the backlog ran dry");
            assert_eq!(d.body().len(), 100);
            d.ack().expect("ack");
        }
        t0.elapsed()
    })
}

/// W5's fdatasyncs and the sync senders they released, summed over every timed chunk (from
/// `Store::commit_stats`): their ratio is how many of the threads shared an fsync.
static W5_SYNCS: AtomicU64 = AtomicU64::new(0);
static W5_RELEASED: AtomicU64 = AtomicU64::new(0);

/// W5: `threads` producers, each doing sync sends on its own clone of the queue handle.
fn ours_w5<'a>(s: Fresh, threads: usize) -> Step<'a> {
    let b = body(100);
    Box::new(move |k| {
        let s = &s; // capture the whole store (not just the queue field), so it stays open
        let before = s
            .store
            .commit_stats()
            .expect("the store's own process commits");
        let took = w5_chunk(s, threads, k, &b);
        let after = s
            .store
            .commit_stats()
            .expect("the store's own process commits");
        W5_SYNCS.fetch_add(after.syncs - before.syncs, Ordering::Relaxed);
        W5_RELEASED.fetch_add(after.sync_callers - before.sync_callers, Ordering::Relaxed);
        took
    })
}

/// One timed chunk of W5: `k` sync sends spread over `threads` threads.
fn w5_chunk(s: &Fresh, threads: usize, k: usize, b: &[u8]) -> Duration {
    let barrier = Barrier::new(threads + 1);
    let per = k / threads;
    std::thread::scope(|sc| {
        for _ in 0..threads {
            let q = s.q.clone();
            let barrier = &barrier;
            sc.spawn(move || {
                barrier.wait();
                for _ in 0..per {
                    q.send(Message::new(b)).expect("send");
                }
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed()
}

// ---------------------------------------------------------------------------------------------
// The workloads, each printing its block and adding summary rows
// ---------------------------------------------------------------------------------------------

fn line(name: &str, s: Stat) {
    println!("  {name:<64} {}", rate_str(s));
}

/// Prints each side's rate (`names[i]`: side i of `rates`) with the p50/p99 latency of its
/// median run, and returns those percentiles.
fn lat_lines(names: &[&str], rates: &[Vec<f64>], lats: &[Lat]) -> Vec<(Duration, Duration)> {
    let mut pct = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let run = median_index(&rates[i]);
        let (p50, p99) = percentiles(&mut lats[i].borrow_mut()[run]);
        println!(
            "  {name:<64} {:<30} p50 {:>7}  p99 {:>7}",
            rate_str(stat(&rates[i])),
            us(p50),
            us(p99)
        );
        pct.push((p50, p99));
    }
    pct
}

fn run_w1(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w1_n;
    println!(
        "\n== W1: one producer, sync durable send(), 100 B bodies, {} msgs/run, {} runs, interleaved in chunks of {}",
        thousands(n as f64),
        cfg.runs,
        thousands((n / 10) as f64)
    );
    let lats: Vec<Lat> = (0..5).map(|_| Lat::default()).collect();
    let l = |i: usize| Some(&lats[i]);
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_w1(Fresh::new(cfg), l(0))),
            side(n, || sqlite_w1(sqlite_fresh(cfg), l(1))),
            side(n, || raw_sync(cfg, n, RawMode::Fallocated, l(2))),
            side(n, || raw_sync(cfg, n, RawMode::Grow, l(3))),
            side(n, || raw_sync(cfg, n, RawMode::Prewritten, l(4))),
        ],
    );
    let pct = lat_lines(
        &[
            "mqlite send()",
            "SQLite: WAL, synchronous=FULL, 1 INSERT/transaction",
            "disk: pwrite 100 B + fdatasync, fallocate'd file (reference)",
            "disk: append 100 B + fdatasync, growing file (info)",
            "disk: pwrite 100 B + fdatasync, pre-written file (info)",
        ],
        &rates,
        &lats,
    );
    let (o, s, d) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    let (rs, rd) = (o.med / s.med, o.med / d.med);
    rep.add(
        "W1",
        "sync send, 1 producer",
        [
            format!("{}, p50 {} p99 {}", rate_str(o), us(pct[0].0), us(pct[0].1)),
            format!(
                "SQLite {}/s; disk (fallocate'd) {}/s, p50 {}",
                thousands(s.med),
                thousands(d.med),
                us(pct[2].0)
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
}

/// The C face against the Rust API in the same run (target: within 10 %).
fn c_vs_rust(rep: &mut Report, id: &'static str, what: &str, c: Stat, rust: Stat) {
    let r = c.med / rust.med;
    rep.add(
        id,
        what,
        [
            rate_str(c),
            format!("Rust {}/s", thousands(rust.med)),
            format!("{r:.2}× Rust"),
        ],
        "C within 10 % of Rust",
        verdict(r >= 0.9).to_string(),
    );
}

fn run_w2(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w2_n;
    println!(
        "\n== W2: one producer, async durable sends, 100 B bodies, {} msgs/run, {} runs, interleaved in chunks of {}",
        thousands(n as f64),
        cfg.runs,
        thousands((n / 10) as f64)
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_async(Fresh::new(cfg), 100)),
            side(n, || ours_batch(Fresh::new(cfg), 100)),
            side(n, || sqlite_w2(cfg, 100)),
            side(n, || cface::c_async(cfg)),
        ],
    );
    let (c, b, s) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    let cf = stat(&rates[3]);
    line("mqlite send_async() + callback per message", c);
    line("C face: mqlite_queue_send_async + callback (same run)", cf);
    c_vs_rust(rep, "W2", "C face async send + callback", cf, c);
    line("mqlite send_batch() of 1,000", b);
    line(
        "SQLite: WAL, synchronous=FULL, 1,000 INSERTs/transaction",
        s,
    );
    let t = "≥ 2,000,000/s and ≥ 2× SQLite";
    for (what, x) in [
        ("async send, callback per msg", c),
        ("send_batch of 1,000 (info)", b),
    ] {
        let r = x.med / s.med;
        rep.add(
            "W2",
            what,
            [
                rate_str(x),
                format!("{}/s", thousands(s.med)),
                format!("{r:.2}×"),
            ],
            t,
            format!(
                "{} (2 M/s {}, 2× {})",
                verdict(x.med >= 2e6 && r >= 2.0),
                verdict(x.med >= 2e6),
                verdict(r >= 2.0)
            ),
        );
    }
}

fn run_w3(cfg: &Cfg, rep: &mut Report) {
    let (n, batch, each) = (cfg.w3_n, cfg.w3_batch, cfg.w3_each_n);
    println!(
        "\n== W3: drain a backlog of {} persisted 100 B msgs, one consumer, {} runs, interleaved in chunks of {} (fill untimed)",
        thousands(n as f64),
        cfg.runs,
        thousands((n / 10) as f64)
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_w3(Fresh::new(cfg), n, batch, Ack::Batch)),
            side(n, || ours_w3(Fresh::new(cfg), n, 100, Ack::Batch)),
            side(each, || ours_w3(Fresh::new(cfg), each, batch, Ack::Each)),
            side(n, || sqlite_w3(cfg, n)),
            side(n, || cface::c_w3(cfg, n, batch)),
        ],
    );
    let (b, b100, e, s) = (
        stat(&rates[0]),
        stat(&rates[1]),
        stat(&rates[2]),
        stat(&rates[3]),
    );
    let cf = stat(&rates[4]);
    line(&format!("mqlite receive_batch({batch}) + ack_batch"), b);
    line(
        &format!("C face: mqlite_queue_receive_into({batch}) + batch ack (same run)"),
        cf,
    );
    c_vs_rust(rep, "W3", "C face receive_into + batch ack", cf, b);
    line("mqlite receive_batch(100) + ack_batch (info)", b100);
    line(
        &format!(
            "mqlite receive_batch({batch}) + d.ack() each, {} msgs (info)",
            thousands(each as f64)
        ),
        e,
    );
    line("SQLite: SELECT 100 + DELETE each, 100/transaction", s);
    let t = "≥ 2,500,000/s and ≥ 5× SQLite";
    for (what, x, judged) in [
        (format!("receive_batch({batch}) + ack_batch"), b, true),
        (
            "receive_batch(100) + ack_batch (info)".to_string(),
            b100,
            true,
        ),
        (
            format!("d.ack() each, {} msgs (info)", thousands(each as f64)),
            e,
            false,
        ),
    ] {
        let r = x.med / s.med;
        rep.add(
            "W3",
            what,
            [
                rate_str(x),
                format!("{}/s", thousands(s.med)),
                format!("{r:.2}×"),
            ],
            if judged { t } else { "—" },
            if judged {
                format!(
                    "{} (2.5 M/s {}, 5× {})",
                    verdict(x.med >= 2.5e6 && r >= 5.0),
                    verdict(x.med >= 2.5e6),
                    verdict(r >= 5.0)
                )
            } else {
                "info".into()
            },
        );
    }
}

fn run_w3s(cfg: &Cfg, rep: &mut Report) {
    let (n, sn, fs_n) = (cfg.w3_n, cfg.w3_each_n, cfg.w1_n);
    println!(
        "\n== W3s: the idiomatic consumer (receive one with a timeout, ack it; default options: prefetch 1000, lazy acks), \
         backlog of {} 100 B msgs, {} runs, interleaved (fill untimed)",
        thousands(n as f64),
        cfg.runs
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_w3s(Fresh::new(cfg), n)),
            side(sn, || sqlite_w3s(cfg, sn)),
            side(fs_n, || raw_sync(cfg, fs_n, RawMode::Fallocated, None)),
        ],
    );
    let (o, s, f) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    line("mqlite q.receive(timeout) + d.ack() per message", o);
    line(
        &format!(
            "SQLite: SELECT 1 + DELETE + COMMIT per message, {} msgs",
            thousands(sn as f64)
        ),
        s,
    );
    line("disk: pwrite 100 B + fdatasync into a fallocate'd file", f);
    let r = o.med / s.med;
    rep.add(
        "W3s",
        "receive(timeout) + ack() per message",
        [
            rate_str(o),
            format!("{}/s", thousands(s.med)),
            format!("{r:.1}× ({:.1}× the fsync rate)", o.med / f.med),
        ],
        "≥ 300,000/s and ≥ 30× SQLite",
        format!(
            "{} (300 k/s {}, 30× {})",
            verdict(o.med >= 3e5 && r >= 30.0),
            verdict(o.med >= 3e5),
            verdict(r >= 30.0)
        ),
    );
}

fn run_w4(cfg: &Cfg, rep: &mut Report) {
    let n = cfg.w4_n;
    println!(
        "\n== W4: W2 with 1 KiB bodies, {} msgs/run, {} runs, interleaved in chunks of {} (MB = 10^6 body bytes)",
        thousands(n as f64),
        cfg.runs,
        thousands((n / 10) as f64)
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(n, || ours_async(Fresh::new(cfg), 1024)),
            side(n, || ours_batch(Fresh::new(cfg), 1024)),
            side(n, || sqlite_w2(cfg, 1024)),
            side(cfg.seq_mib, || raw_seq(cfg, cfg.seq_mib)),
        ],
    );
    let mb = |s: Stat| s.med * 1024.0 / 1e6;
    let (c, b, s, w) = (
        stat(&rates[0]),
        stat(&rates[1]),
        stat(&rates[2]),
        stat(&rates[3]),
    );
    let disk_mb = w.med * MIB / 1e6;
    println!(
        "  {:<64} {}  = {:.0} MB/s",
        "mqlite send_async() + callback per message",
        rate_str(c),
        mb(c)
    );
    println!(
        "  {:<64} {}  = {:.0} MB/s",
        "mqlite send_batch() of 1,000",
        rate_str(b),
        mb(b)
    );
    println!(
        "  {:<64} {}  = {:.0} MB/s",
        "SQLite: WAL, synchronous=FULL, 1,000 INSERTs/transaction",
        rate_str(s),
        mb(s)
    );
    println!(
        "  {:<64} {:.0} MiB/s ({:.0}–{:.0}) = {:.0} MB/s",
        format!(
            "disk: 1 MiB writes + fdatasync per MiB, {} MiB, fallocate'd",
            cfg.seq_mib
        ),
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
                format!(
                    "{:.2}× SQLite, {:.0} % of disk",
                    x.med / s.med,
                    frac * 100.0
                ),
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

fn run_w5(cfg: &Cfg, rep: &mut Report) {
    let (t, per) = (cfg.w5_threads, cfg.w5_per);
    println!(
        "\n== W5: {t} producer threads, sync durable send(), {} msgs each, {} runs, interleaved with W1 and SQLite in 10 chunks",
        thousands(per as f64),
        cfg.runs
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(t * per, || ours_w5(Fresh::new(cfg), t)),
            side(cfg.w1_n, || ours_w1(Fresh::new(cfg), None)),
            side(t * per, || sqlite_w5(cfg, t)),
        ],
    );
    let (o, w1, s) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    line(&format!("mqlite, {t} threads"), o);
    line("mqlite, 1 thread (W1, same run)", w1);
    line(&format!("SQLite: {t} connections, 1 INSERT/transaction"), s);
    let (syncs, released) = (
        W5_SYNCS.load(Ordering::Relaxed),
        W5_RELEASED.load(Ordering::Relaxed),
    );
    println!(
        "  group commit: {syncs} fdatasyncs released {released} sync sends: {:.2} of {t} threads per fsync",
        released as f64 / syncs.max(1) as f64
    );
    let r = o.med / w1.med;
    rep.add(
        "W5",
        format!("{t} threads sync send"),
        [
            rate_str(o),
            format!(
                "mqlite W1 {}/s; SQLite {t} conns {}/s",
                thousands(w1.med),
                thousands(s.med)
            ),
            format!("{r:.2}× W1, {:.2}× SQLite", o.med / s.med),
        ],
        "≥ 6× W1",
        verdict(r >= 6.0).to_string(),
    );
}

fn run_w6(cfg: &Cfg, rep: &mut Report) {
    let (d, n1, n3, batch) = (cfg.w6_delayed, cfg.w1_n, cfg.w3_n, cfg.w3_batch);
    println!(
        "\n== W6: W1 ({} sync sends) and W3 (drain {} with receive_batch({batch}) + ack_batch) with {} delayed msgs \
         (100 B, delay {} s, send_batch of 1,000, same queue, sent before; fill untimed) vs a store without them, \
         {} runs, each pair interleaved in chunks of {} / {}",
        thousands(n1 as f64),
        thousands(n3 as f64),
        thousands(d as f64),
        thousands(W6_DELAY.as_secs() as f64),
        cfg.runs,
        thousands((n1 / 10) as f64),
        thousands((n3 / 10) as f64)
    );
    let lats: Vec<Lat> = (0..2).map(|_| Lat::default()).collect();
    // One interleaving per workload, two sides each: with a cyclic rotation every side always
    // follows the same other side, so with all four in one rotation a W3 side would always come
    // right after a W1 side's 1,000 fdatasyncs and the other W3 side never would.
    let mut rates = interleave(
        cfg,
        10,
        &[
            side(n1, || ours_w1(Fresh::new(cfg), Some(&lats[0]))),
            side(n1, || ours_w1(Fresh::with_delayed(cfg, d), Some(&lats[1]))),
        ],
    );
    rates.extend(interleave(
        cfg,
        10,
        &[
            side(n3, || ours_w3(Fresh::new(cfg), n3, batch, Ack::Batch)),
            side(n3, || {
                ours_w3(Fresh::with_delayed(cfg, d), n3, batch, Ack::Batch)
            }),
        ],
    ));
    let st: Vec<Stat> = rates.iter().map(|r| stat(r)).collect();
    let mut pct = Vec::new();
    for (i, l) in lats.iter().enumerate() {
        let run = median_index(&rates[i]);
        pct.push(percentiles(&mut l.borrow_mut()[run]));
    }
    let dn = thousands(d as f64);
    println!(
        "  {:<64} {:<30} p50 {:>7}  p99 {:>7}",
        "mqlite W1 send(), no delayed msgs",
        rate_str(st[0]),
        us(pct[0].0),
        us(pct[0].1)
    );
    println!(
        "  {:<64} {:<30} p50 {:>7}  p99 {:>7}",
        format!("mqlite W1 send(), {dn} delayed msgs waiting"),
        rate_str(st[1]),
        us(pct[1].0),
        us(pct[1].1)
    );
    line(
        &format!("mqlite W3 receive_batch({batch}) + ack_batch, no delayed msgs"),
        st[2],
    );
    line(
        &format!("mqlite W3 receive_batch({batch}) + ack_batch, {dn} delayed"),
        st[3],
    );
    let t = "≤ 10 % slowdown";
    for (what, without, with) in [
        (format!("W1 sync send with {dn} delayed msgs"), 0, 1),
        (
            format!("W3 receive_batch({batch}) + ack_batch with {dn} delayed msgs"),
            2,
            3,
        ),
    ] {
        let (a, b) = (st[without], st[with]);
        let slow = (1.0 - b.med / a.med) * 100.0;
        // Per run (the sides of one run shared the machine's load): for information.
        let per_run: Vec<String> = rates[without]
            .iter()
            .zip(&rates[with])
            .map(|(x, y)| format!("{:+.1} %", (1.0 - y / x) * 100.0))
            .collect();
        println!(
            "  {:<64} {slow:+.1} % (per run: {})",
            format!("slowdown, {}", &what[..2]),
            per_run.join(", ")
        );
        rep.add(
            "W6",
            what,
            [
                rate_str(b),
                format!("without delayed msgs {}/s", thousands(a.med)),
                format!("{slow:+.1} % slowdown"),
            ],
            t,
            verdict(slow <= 10.0).to_string(),
        );
    }
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
    // a 32-byte frame header per group commit (the format: src/journal/format.rs).
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
    // Each run opens twice: without the index checkpoint (removed first: a full replay, as
    // after a crash) and with it (the one the previous close wrote).
    let mut secs = vec![];
    let mut replay_secs = vec![];
    for _ in 0..cfg.runs {
        for full in [true, false] {
            if full {
                let _ = std::fs::remove_file(dir.path().join("CHECKPOINT"));
            }
            let t = Instant::now();
            let store = open_store(dir.path());
            let el = t.elapsed().as_secs_f64();
            let used = store.recovery_report().checkpoint_used;
            assert_eq!(used, !full, "{:?}", store.recovery_report());
            let n = store
                .queue("q")
                .expect("queue")
                .stats()
                .expect("stats")
                .messages;
            assert_eq!(n as usize, sent, "messages after reopen");
            let t = Instant::now();
            store.close().expect("close");
            println!(
                "  open {:.3} s {} (close {:.3} s, writes the checkpoint), {} messages recovered",
                el,
                if full {
                    "by full replay  "
                } else {
                    "from checkpoint "
                },
                t.elapsed().as_secs_f64(),
                thousands(n as f64)
            );
            if full {
                replay_secs.push(el);
            } else {
                secs.push(el);
            }
        }
    }
    let s = stat(&secs);
    let r = stat(&replay_secs);
    let per_gib = s.med / (bytes as f64 / GIB);
    let replay_per_gib = r.med / (bytes as f64 / GIB);
    rep.add(
        "W7",
        format!(
            "open {:.2} GiB journal ({} × {len} B msgs)",
            bytes as f64 / GIB,
            thousands(sent as f64)
        ),
        [
            format!(
                "{:.2} s ({:.2}–{:.2}) = {:.2} s/GiB from checkpoint",
                s.med, s.min, s.max, per_gib
            ),
            format!(
                "full replay {:.2} s ({:.2}–{:.2}) = {:.2} s/GiB",
                r.med, r.min, r.max, replay_per_gib
            ),
            "—".into(),
        ],
        "≤ 0.5 s per GiB",
        verdict(per_gib <= 0.5).to_string(),
    );
}

/// This program again, as a child process running one step (`MQLITE_BENCH_CHILD`, see
/// `child_main`) on `path` (a store directory; W9's SQLite producers: the database file) with
/// the number `n` (W8: messages; W9: which producer it is).
fn child_command(step: &str, path: &Path, n: usize) -> Command {
    let mut c = Command::new(std::env::current_exe().expect("current_exe"));
    c.env("MQLITE_BENCH_CHILD", step)
        .env("MQLITE_BENCH_CHILD_DIR", path)
        .env("MQLITE_BENCH_CHILD_N", n.to_string())
        .stderr(Stdio::inherit());
    c
}

/// Runs this program again as a child for one W8 step (so its VmRSS is not polluted by the
/// other workloads) and parses its `key=value` lines.
fn child(step: &str, dir: &Path, n: usize) -> std::collections::HashMap<String, f64> {
    let out = child_command(step, dir, n)
        .output()
        .expect("running the W8 child");
    assert!(out.status.success(), "W8 child {step} failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .filter_map(|(k, v)| Some((k.trim().to_string(), v.trim().parse().ok()?)))
        .collect()
}

/// A child process working on command (W9's producers, W10's owner; `serve` is its side): it
/// prints `ready` once set up, then answers each line written to its stdin with one line, and
/// closes its store and exits when its stdin closes (when the `Proc` is dropped).
struct Proc {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Proc {
    /// Starts `step` (see `child_command`) and waits until it is ready.
    fn start(step: &str, path: &Path, n: usize) -> Proc {
        let mut child = child_command(step, path, n)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting a child process");
        let out = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut p = Proc { child, out };
        let ready = p.answer();
        assert_eq!(ready, "ready", "child {step} {n} did not start");
        p
    }

    fn tell(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("child stdin");
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .expect("writing to a child process");
    }

    /// The child's next line, trimmed ("" once it exited).
    fn answer(&mut self) -> String {
        let mut l = String::new();
        self.out
            .read_line(&mut l)
            .expect("reading from a child process");
        l.trim().to_string()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// A `Proc`'s side: prints `ready`, then runs `step` for the count on each line of stdin and
/// answers `done`, until stdin closes.
fn serve(mut step: Step) {
    let say = |l: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{l}")
            .and_then(|_| out.flush())
            .expect("writing to the parent");
    };
    say("ready");
    for l in std::io::stdin().lock().lines() {
        step(l.expect("reading stdin").parse().expect("a count"));
        say("done");
    }
}

/// W9: `procs` producer processes doing W1 together on one store or database (`step`
/// "w9-mqlite" on a store directory, "w9-sqlite" on a database file), started one after the
/// other (the first opens the store, so it owns it). Each chunk tells every process its share
/// of `k` at once (each waits for its line: a barrier) and is timed until the last one is done,
/// so only the concurrent part counts. `keep` (the directory) outlives the processes.
fn procs_w1<'a>(step: &str, path: &Path, procs: usize, keep: impl Sized + 'a) -> Step<'a> {
    /// Drops the processes last started first (the owner, started first, goes last: a client
    /// would take the store over from an owner that left before it).
    struct Procs<T>(Vec<Proc>, T);
    impl<T> Drop for Procs<T> {
        fn drop(&mut self) {
            while let Some(p) = self.0.pop() {
                drop(p);
            }
        }
    }
    let mut ps = Procs(
        (0..procs).map(|i| Proc::start(step, path, i)).collect(),
        keep,
    );
    Box::new(move |k| {
        let ps = &mut ps; // capture the whole value (processes, then directory)
        let t0 = Instant::now();
        for (i, p) in ps.0.iter_mut().enumerate() {
            p.tell(&(k / procs + usize::from(i < k % procs)).to_string());
        }
        for p in &mut ps.0 {
            assert_eq!(p.answer(), "done", "a W9 producer process failed");
        }
        t0.elapsed()
    })
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
        "w9-mqlite" => {
            // W9's producer `n`: started one after the other, so the first opened the store
            // (its owner) and the others are its clients.
            let s = Fresh::warmed(open_store(&dir), "q", None);
            let role = if n == 0 {
                mqlite::Role::Owner
            } else {
                mqlite::Role::Client
            };
            assert_eq!(s.store.role(), role, "W9 producer {n}");
            serve(ours_w1(s, None));
        }
        "w9-sqlite" => serve(sqlite_w1(
            Db {
                c: sqlite_open(&dir),
                _dir: None,
            },
            None,
        )),
        "w10-owner" => {
            // W10's owner: serves the benchmark's clients until its stdin closes.
            let store = open_store(&dir);
            serve(Box::new(|_| Duration::ZERO));
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
    // First without the index checkpoint (a full replay, as after a crash), then with the one
    // that open's close wrote.
    let _ = std::fs::remove_file(dir.path().join("CHECKPOINT"));
    let mut peaks = vec![];
    let mut open = Default::default();
    for how in ["by full replay", "from checkpoint"] {
        open = child("w8-open", dir.path(), n);
        let per_open = (open["after"] - open["before"]) / n as f64;
        let peak = (open["hwm"] - open["before"]) / n as f64;
        println!(
            "  reopen {how} (new process): VmRSS {:.1} MiB → {:.1} MiB = {:.1} B/msg, peak VmHWM {:.1} MiB = {:.1} B/msg, open took {:.2} s",
            open["before"] / MIB,
            open["after"] / MIB,
            per_open,
            open["hwm"] / MIB,
            peak,
            open["secs"]
        );
        peaks.push(peak);
    }
    let open: std::collections::HashMap<String, f64> = open;
    let per_open = (open["after"] - open["before"]) / n as f64;
    let peak = peaks[1];
    rep.add(
        "W8",
        format!("RAM per queued msg, N = {}", thousands(n as f64)),
        [
            format!(
                "{per:.1} B/msg after fill; {per_open:.1} B/msg after reopen, peak {peak:.1} B/msg"
            ),
            format!("peak {:.1} B/msg by full replay", peaks[0]),
            "—".into(),
        ],
        "≤ 64 B/msg",
        format!(
            "{} (fill {}, reopen {}, reopen peak {})",
            verdict(per <= 64.0 && per_open <= 64.0 && peak <= 64.0),
            verdict(per <= 64.0),
            verdict(per_open <= 64.0),
            verdict(peak <= 64.0)
        ),
    );
}

/// W9: `procs` producer processes, each doing W1 (sync durable `send`, 100 B) on one store, the
/// first its owner and the others its clients; beside it SQLite with as many processes (W1's
/// baseline in each) and mqlite's own W1 in one process, all interleaved.
fn run_w9(cfg: &Cfg, rep: &mut Report) {
    let (p, per) = (cfg.w9_procs, cfg.w9_per);
    println!(
        "\n== W9: {p} producer processes, sync durable send() of 100 B to one store (the first process owns it, \
         the others are its clients), {} msgs each, {} runs, interleaved with SQLite ({p} processes) and W1 \
         (1 process) in 10 chunks, each chunk started in all processes at once",
        thousands(per as f64),
        cfg.runs
    );
    let rates = interleave(
        cfg,
        10,
        &[
            side(p * per, || {
                let dir = cfg.tempdir("w9");
                let path = dir.path().to_path_buf();
                procs_w1("w9-mqlite", &path, p, dir)
            }),
            side(p * per, || {
                let db = sqlite_fresh(cfg);
                let path = db.c.path().map(PathBuf::from).expect("db path");
                procs_w1("w9-sqlite", &path, p, db)
            }),
            side(cfg.w1_n, || ours_w1(Fresh::new(cfg), None)),
        ],
    );
    let (o, s, w1) = (stat(&rates[0]), stat(&rates[1]), stat(&rates[2]));
    line(
        &format!("mqlite, {p} processes (1 owner + {} clients)", p - 1),
        o,
    );
    line(
        &format!("SQLite: {p} processes, 1 INSERT/transaction each"),
        s,
    );
    line("mqlite, 1 process (W1, same run)", w1);
    let (rs, rw) = (o.med / s.med, o.med / w1.med);
    rep.add(
        "W9",
        format!("{p} processes sync send"),
        [
            rate_str(o),
            format!(
                "SQLite {p} processes {}/s; mqlite W1 {}/s",
                thousands(s.med),
                thousands(w1.med)
            ),
            format!("{rs:.2}× SQLite, {rw:.2}× W1"),
        ],
        &format!("≥ 4× SQLite ({p} processes) and ≥ 3× W1"),
        format!(
            "{} (SQLite {}, W1 {})",
            verdict(rs >= 4.0 && rw >= 3.0),
            verdict(rs >= 4.0),
            verdict(rw >= 3.0)
        ),
    );
}

/// W10: one workload run from a client of the owner process serving `dir` and in the owner (a
/// fresh store of this process), interleaved; `make(store, side)` builds the step on the store
/// (side 0: the client's, 1: the owner's). Returns the rates as `interleave` does.
fn client_vs_owner<'a>(
    cfg: &Cfg,
    dir: &Path,
    n: usize,
    make: impl Fn(Fresh, usize) -> Step<'a>,
) -> Vec<Vec<f64>> {
    interleave(
        cfg,
        10,
        &[
            side(n, || make(Fresh::client(dir), 0)),
            side(n, || make(Fresh::new(cfg), 1)),
        ],
    )
}

/// W10: W1 (sync send), W2 (`send_batch` of 1,000) and W3s (receive + ack one at a time) from a
/// client process, each against the same workload in the owner, interleaved pair by pair (as
/// W6); the owner of the clients' store is a child process of this benchmark.
fn run_w10(cfg: &Cfg, rep: &mut Report) {
    let (n1, n2, n3) = (cfg.w1_n, cfg.w2_n, cfg.w3_n);
    println!(
        "\n== W10: from a client process vs in the owner, 100 B bodies: W1 sync send() ({} msgs/run), W2 send_batch() \
         of 1,000 ({} msgs/run), W3s receive(timeout) + ack() per message (backlog of {}, fill untimed); {} runs, \
         each pair interleaved in 10 chunks",
        thousands(n1 as f64),
        thousands(n2 as f64),
        thousands(n3 as f64),
        cfg.runs
    );
    let dir = cfg.tempdir("w10");
    let owner = Proc::start("w10-owner", dir.path(), 0);
    let lats: Vec<Lat> = (0..2).map(|_| Lat::default()).collect();
    let w1 = client_vs_owner(cfg, dir.path(), n1, |s, i| ours_w1(s, Some(&lats[i])));
    let w2 = client_vs_owner(cfg, dir.path(), n2, |s, _| ours_batch(s, 100));
    let w3s = client_vs_owner(cfg, dir.path(), n3, |s, _| ours_w3s(s, n3));
    drop(owner);
    let pct = lat_lines(
        &[
            "mqlite send() from a client process",
            "mqlite send() in the owner process",
        ],
        &w1,
        &lats,
    );
    let st = |r: &[Vec<f64>]| (stat(&r[0]), stat(&r[1]));
    let ((c1, o1), (c2, o2), (c3, o3)) = (st(&w1), st(&w2), st(&w3s));
    line("mqlite send_batch() of 1,000 from a client process", c2);
    line("mqlite send_batch() of 1,000 in the owner process", o2);
    line("mqlite receive(timeout) + ack() from a client process", c3);
    line("mqlite receive(timeout) + ack() in the owner process", o3);
    let no_lat = || [String::new(), String::new()];
    for (what, c, o, lat, target, ok) in [
        (
            "client sync send vs owner's (W1 from a client)",
            c1,
            o1,
            [
                format!(", p50 {} p99 {}", us(pct[0].0), us(pct[0].1)),
                format!(", p50 {}", us(pct[1].0)),
            ],
            "≥ 0.85× the owner's W1",
            c1.med / o1.med >= 0.85,
        ),
        (
            "client send_batch of 1,000 (W2 from a client)",
            c2,
            o2,
            no_lat(),
            "≥ 1,000,000/s",
            c2.med >= 1e6,
        ),
        (
            "client receive(timeout) + ack() per message (W3s from a client)",
            c3,
            o3,
            no_lat(),
            "≥ 0.5× the owner's W3s",
            c3.med / o3.med >= 0.5,
        ),
    ] {
        rep.add(
            "W10",
            what,
            [
                format!("{}{}", rate_str(c), lat[0]),
                format!("owner {}/s{}", thousands(o.med), lat[1]),
                format!("{:.2}× the owner", c.med / o.med),
            ],
            target,
            verdict(ok).to_string(),
        );
    }
}

// ---------------------------------------------------------------------------------------------

mod w11;

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
    const KNOWN: [&str; 12] = [
        "W1", "W2", "W3", "W3s", "W4", "W5", "W6", "W7", "W8", "W9", "W10", "W11",
    ];
    for w in &want {
        if !KNOWN.iter().any(|k| k.eq_ignore_ascii_case(w)) {
            eprintln!("unknown workload {w:?} (known: {})", KNOWN.join(" "));
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
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
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
    if sel("W1") {
        run_w1(&cfg, &mut rep);
    }
    if sel("W2") {
        run_w2(&cfg, &mut rep);
    }
    if sel("W3") {
        run_w3(&cfg, &mut rep);
    }
    if sel("W3S") {
        run_w3s(&cfg, &mut rep);
    }
    if sel("W4") {
        run_w4(&cfg, &mut rep);
    }
    if sel("W5") {
        run_w5(&cfg, &mut rep);
    }
    if sel("W6") {
        run_w6(&cfg, &mut rep);
    }
    if sel("W7") {
        for &len in &cfg.w7_bodies {
            run_w7(&cfg, &mut rep, len);
        }
    }
    if sel("W8") {
        run_w8(&cfg, &mut rep);
    }
    if sel("W9") {
        run_w9(&cfg, &mut rep);
    }
    if sel("W10") {
        run_w10(&cfg, &mut rep);
    }
    if sel("W11") {
        w11::run_w11(&cfg, &mut rep);
    }
    rep.print();
    println!(
        "\ntotal {:.0} s{}",
        started.elapsed().as_secs_f64(),
        if cfg.quick {
            " (quick mode: not a result)"
        } else {
            ""
        }
    );
}
