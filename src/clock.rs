//! The one injectable clock. Every timer in mqlite (TTL, delays, redelivery backoff, ack
//! timeouts, dedup windows) reads time from a [`Clock`], so tests advance a [`ManualClock`]
//! instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Called by the store so that a clock that jumps (a [`ManualClock`]) can wake waiting
    /// receivers; real clocks ignore it.
    fn subscribe(&self, _waker: Weak<dyn Fn() + Send + Sync>) {}
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to: for tests and simulations.
#[derive(Default)]
pub struct ManualClock {
    now: AtomicU64,
    wakers: Mutex<Vec<Weak<dyn Fn() + Send + Sync>>>,
    _cv: Condvar,
}

impl ManualClock {
    /// A clock standing at `start_ms` milliseconds since the epoch.
    pub fn new(start_ms: u64) -> Arc<Self> {
        Arc::new(ManualClock {
            now: AtomicU64::new(start_ms),
            ..Default::default()
        })
    }

    /// Moves the clock forward by `ms` and wakes every store waiting on it.
    pub fn advance_ms(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
        self.wake();
    }

    /// Moves the clock forward by `d`.
    pub fn advance(&self, d: std::time::Duration) {
        self.advance_ms(d.as_millis() as u64);
    }

    /// Sets the clock to `ms` (may go backwards, to test clock steps).
    pub fn set_ms(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
        self.wake();
    }

    fn wake(&self) {
        let wakers: Vec<_> = {
            let mut w = self.wakers.lock().unwrap_or_else(|e| e.into_inner());
            w.retain(|x| x.strong_count() > 0);
            w.clone()
        };
        for w in wakers {
            if let Some(f) = w.upgrade() {
                f();
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn subscribe(&self, waker: Weak<dyn Fn() + Send + Sync>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
    }
}
