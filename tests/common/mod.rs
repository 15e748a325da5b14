#![allow(dead_code)]

/// The durability suites' helpers (model, workload) and fault-injecting file layer.
pub mod durable;
pub mod fault;
/// A hand-made connection to an owner's socket.
pub mod raw;

use mqlite::*;
use std::sync::Arc;
use std::time::Duration;

pub const T0: u64 = 1_700_000_000_000;
pub const NOW: Option<Duration> = Some(Duration::ZERO);

/// Whether this test binary runs the semantics suites through a client process's API: the
/// conformance harness `tests/conformance_client.rs` (or `MQLITE_TEST_ROLE=client`). Then
/// [`Env::open`] opens the store's owner in this process (with the test's options and manual
/// clock) and hands the test a *client* of it, connected over the store's socket: every call the
/// test makes goes through the wire protocol and the owner's server, as from another process.
pub fn client_role() -> bool {
    std::env::var("MQLITE_TEST_ROLE").is_ok_and(|r| r == "client")
        || std::env::args()
            .next()
            .is_some_and(|a| a.contains("conformance_client"))
}

pub struct Env {
    /// The owner behind the test's client (client role only); replaced on each open, so that
    /// the test's store options (which are the owner's) take effect.
    owner: std::sync::Mutex<Option<Store>>,
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
}

impl Env {
    pub fn new() -> Env {
        Env {
            owner: std::sync::Mutex::new(None),
            dir: tempfile::tempdir().unwrap(),
            clock: ManualClock::new(T0),
        }
    }
    pub fn opts(&self) -> StoreOptions {
        StoreOptions {
            clock: self.clock.clone(),
            ..Default::default()
        }
    }
    pub fn open(&self) -> Store {
        self.open_with(|_| {})
    }
    pub fn open_with(&self, f: impl FnOnce(&mut StoreOptions)) -> Store {
        let mut o = self.opts();
        f(&mut o);
        if !client_role() {
            return Store::open(self.dir.path(), o).unwrap();
        }
        let mut owner = self.owner.lock().unwrap();
        // A reopen: the previous owner closes (as a process would exit) and a new one recovers.
        if let Some(old) = owner.take() {
            old.close().unwrap();
        }
        let new = Store::open(
            self.dir.path(),
            StoreOptions {
                open_as: OpenAs::Owner,
                ..o.clone()
            },
        )
        .unwrap();
        assert_eq!(new.role(), Role::Owner);
        *owner = Some(new);
        let c = Store::open(
            self.dir.path(),
            StoreOptions {
                open_as: OpenAs::Client,
                // A client runs on its owner's clock (and refuses another: review r5 #16).
                clock: Arc::new(SystemClock),
                repair: false,
                ..o
            },
        )
        .unwrap();
        assert_eq!(c.role(), Role::Client);
        c
    }
}

pub fn body(d: &Delivery) -> String {
    String::from_utf8(d.body().to_vec()).unwrap()
}

pub fn drain(q: &Queue) -> Vec<String> {
    let ds = q.receive_batch(100_000, NOW).unwrap();
    let v = ds.iter().map(body).collect();
    q.ack_batch(ds).unwrap();
    v
}

/// Owners of the stores the suites open with [`open_store`] in the client role, by directory.
static OWNERS: std::sync::Mutex<Vec<(std::path::PathBuf, Store)>> =
    std::sync::Mutex::new(Vec::new());

/// `Store::open`, except in the client role (see [`client_role`]): there it opens the store's
/// owner in this process with `options` (closing the previous owner of `dir` first, as a
/// restarted process would) and returns a client of it, so the suite's calls go through the
/// wire protocol. The owner stays open until the next open of `dir` (or the test's end).
pub fn open_store(dir: &std::path::Path, options: StoreOptions) -> Result<Store> {
    if !client_role() {
        return Store::open(dir, options);
    }
    let key = dir.to_path_buf();
    let mut owners = OWNERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(i) = owners.iter().position(|(d, _)| *d == key) {
        let (_, old) = owners.swap_remove(i);
        old.close()?;
    }
    let owner = Store::open(
        dir,
        StoreOptions {
            open_as: OpenAs::Owner,
            ..options.clone()
        },
    )?;
    assert_eq!(owner.role(), Role::Owner);
    owners.push((key, owner));
    drop(owners);
    let c = Store::open(
        dir,
        StoreOptions {
            open_as: OpenAs::Client,
            // A client runs on its owner's clock (and refuses another: review r5 #16).
            clock: Arc::new(SystemClock),
            repair: false,
            ..options
        },
    )?;
    assert_eq!(c.role(), Role::Client);
    Ok(c)
}
