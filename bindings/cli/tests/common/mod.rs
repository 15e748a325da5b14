//! Helpers of the command-line tests: run the built `mqlite` binary on stores the tests make.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::cargo::cargo_bin_cmd;
use mqlite::{MessageId, Store, StoreOptions, StoredMessage, Value};
use serde_json::Value as J;

/// Serializes the tests of this file, so that one test's commands and stores do not disturb
/// another's. (The store lock is a POSIX record lock: a child forked by a parallel test does
/// not hold it, so a command started right after a close finds the store unlocked.)
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// One test's store directory, with the tests serialized (see [`serial`]).
pub struct Case {
    _serial: std::sync::MutexGuard<'static, ()>,
    tmp: tempfile::TempDir,
}

impl Case {
    pub fn new() -> Case {
        Case {
            _serial: serial(),
            tmp: tempfile::tempdir().expect("temp dir"),
        }
    }
    pub fn path(&self) -> &Path {
        self.tmp.path()
    }
    pub fn dir(&self) -> &str {
        s(self.tmp.path())
    }
}

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub raw_stdout: Vec<u8>,
}

/// Runs `mqlite args…` with `stdin` piped in (never a terminal: no prompt, no progress bar).
pub fn run_with(args: &[&str], stdin: &[u8]) -> Run {
    let out = cargo_bin_cmd!("mqlite")
        .args(args)
        .write_stdin(stdin.to_vec())
        .output()
        .expect("run mqlite");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        raw_stdout: out.stdout,
    }
}

pub fn run(args: &[&str]) -> Run {
    run_with(args, b"")
}

/// Runs and expects exit status 0 and a quiet stderr; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let r = run(args);
    assert_eq!(r.code, 0, "mqlite {args:?} failed: {}", r.stderr);
    assert_eq!(r.stderr, "", "mqlite {args:?} wrote to stderr");
    r.stdout
}

/// Runs with `--json` and parses stdout.
pub fn ok_json(args: &[&str]) -> J {
    let mut a = args.to_vec();
    a.push("--json");
    let out = ok(&a);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("mqlite {a:?}: not JSON ({e}): {out}"))
}

/// Runs, expects exit status `code` and exactly one line on stderr; returns that line.
pub fn fails(args: &[&str], code: i32) -> String {
    fails_with(args, b"", code)
}

pub fn fails_with(args: &[&str], stdin: &[u8], code: i32) -> String {
    let r = run_with(args, stdin);
    assert_eq!(
        r.code, code,
        "mqlite {args:?}: expected exit {code}, got {} (stderr: {})",
        r.code, r.stderr
    );
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "mqlite {args:?}: stderr is not one line: {:?}",
        r.stderr
    );
    lines[0].to_string()
}

pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

pub fn open(dir: &Path) -> Store {
    Store::open(dir, StoreOptions::default()).expect("open store")
}

/// Sends `bodies` to `queue` (one send each).
pub fn fill(dir: &Path, queue: &str, bodies: impl IntoIterator<Item = String>) {
    let store = open(dir);
    let q = store.queue(queue).expect("queue");
    for b in bodies {
        q.send(b).expect("send");
    }
}

/// Every stored message of every queue, in queue then id order.
pub fn stored(dir: &Path) -> Vec<(String, StoredMessage)> {
    let store = open(dir);
    let mut out = Vec::new();
    for name in store.queue_names() {
        let q = store.queue(&name).expect("queue");
        for m in q.browse_stored(MessageId(0), usize::MAX).expect("browse") {
            out.push((name.clone(), m));
        }
    }
    out
}

/// The exported lines of a store, parsed, with ids removed (import gives new ids).
pub fn export_without_ids(dir: &Path) -> Vec<J> {
    let out = ok(&["export", s(dir)]);
    out.lines()
        .map(|l| {
            let mut v: J = serde_json::from_str(l).expect("export line is JSON");
            v.as_object_mut().expect("object").remove("id");
            v
        })
        .collect()
}

/// The journal files of a store and their bytes (the LOCK file, rewritten with the opener's
/// pid by every open, and the owner's socket are left out): to prove that a command changed
/// nothing.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("list store")
        .map(|e| e.expect("entry"))
        .filter(|e| e.file_name() != "LOCK" && e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).expect("read"))
        })
        .collect();
    v.sort();
    v
}

/// A property value with floats compared by their bits (NaN payloads included).
pub fn exact(v: &Value) -> String {
    match v {
        Value::Float(f) => format!("float:{:016x}", f.to_bits()),
        other => format!("{other:?}"),
    }
}

/// Everything of a stored message except its id, exactly.
pub fn fingerprint(queue: &str, m: &StoredMessage) -> String {
    let msg = &m.message;
    let props: Vec<String> = msg
        .properties()
        .iter()
        .map(|(k, v)| format!("{k}={}", exact(v)))
        .collect();
    format!(
        "{queue}|{:?}|{}|{}|{}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}",
        m.state,
        msg.timestamp_ms(),
        msg.expires_at_ms(),
        m.deliver_at_ms,
        msg.get_priority(),
        msg.get_correlation_id(),
        msg.get_group(),
        msg.get_dedup_key(),
        msg.get_repeat(),
        msg.dead_letter_info(),
        props,
        msg.body()
    )
}

pub const SECOND: Duration = Duration::from_secs(1);

/// The durable subscription "billing" to `orders.>` (with `selector`, if any) that the tests of
/// subscriptions share.
pub fn billing(store: &Store, selector: Option<&str>) -> mqlite::Subscription {
    store
        .subscribe(
            "orders.>",
            mqlite::SubscriptionOptions {
                name: Some("billing".into()),
                durable: true,
                selector: selector.map(Into::into),
                ..Default::default()
            },
        )
        .expect("durable subscription \"billing\"")
}
