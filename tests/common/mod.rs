#![allow(dead_code)]

/// The durability suites' helpers (model, workload) and fault-injecting file layer.
pub mod durable;
pub mod fault;

use mqlite::*;
use std::sync::Arc;
use std::time::Duration;

pub const T0: u64 = 1_700_000_000_000;
pub const NOW: Option<Duration> = Some(Duration::ZERO);

pub struct Env {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
}

impl Env {
    pub fn new() -> Env {
        Env {
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
        Store::open(self.dir.path(), self.opts()).unwrap()
    }
    pub fn open_with(&self, f: impl FnOnce(&mut StoreOptions)) -> Store {
        let mut o = self.opts();
        f(&mut o);
        Store::open(self.dir.path(), o).unwrap()
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
