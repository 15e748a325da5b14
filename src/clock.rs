//! The one injectable clock. Every timer in mqlite (TTL, delays, redelivery backoff, ack
//! timeouts, dedup windows) reads time from a [`Clock`], so tests advance a [`ManualClock`]
//! instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// A source of wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Called by the store so that a clock that jumps (a [`ManualClock`]) can wake waiting
    /// receivers; real clocks ignore it.
    fn subscribe(&self, _waker: Weak<dyn Fn() + Send + Sync>) {}
    /// How far [`now_ms`](Clock::now_ms) may lag the true time, in ms (a clock that truncates
    /// to whole ms lags by up to 1). Due times computed from `now_ms` add it, so that nothing is
    /// delivered before it is due. Default 0 (a clock whose ms are exact, as [`ManualClock`]).
    fn slack_ms(&self) -> u64 {
        0
    }
    /// Whether this is the real clock ([`SystemClock`]). Default false. A process that opens
    /// a store as a client uses its owner's clock, so such an open given any other clock is
    /// refused (review r5 #16: a test's [`ManualClock`] used to be ignored silently).
    fn is_system(&self) -> bool {
        false
    }
}

/// `d` in whole milliseconds, rounded up (a due time is never earlier than asked) and saturating
/// at `u64::MAX` (a duration too long for the clock means "never" rather than a wrap).
pub fn ms_ceil(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `d` in whole milliseconds, rounded down and saturating at `u64::MAX` (for reporting a
/// duration, e.g. a remaining timeout; `as_millis() as u64` would wrap above 2^64 ms).
pub fn ms_floor(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `secs` seconds (a caller's `f64`: Python, the command line) as a `Duration`. NaN or a
/// negative number is `InvalidArgument` naming `what`; `+inf` or a number too large for a
/// `Duration` (`sys.maxsize`, `1e300`) saturates at `Duration::MAX`, which every timer treats
/// as "never". (`Duration::from_secs_f64` panics on all of these.) A positive number below
/// 1 ns (`1e-12`) is 1 ns, not zero: zero means something else to some options (a TTL of 0 is
/// "never expires", as in JMS), and every timer rounds 1 ns up to its tick. Every conversion
/// of a caller's seconds goes through here.
pub fn secs_to_duration(secs: f64, what: &str) -> Result<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return Err(Error::invalid(format!(
            "{what} must be a number of seconds >= 0, not {secs}"
        )));
    }
    let d = Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX);
    Ok(match d.is_zero() && secs > 0.0 {
        true => Duration::from_nanos(1),
        false => d,
    })
}

/// The `Instant` `d` from now, or `None` ("never") when it is past what an `Instant` can hold
/// (`Instant + Duration` panics there). Every deadline built from a caller's duration (receive
/// and block timeouts, connect timeouts) goes through here.
pub fn deadline_after(d: Duration) -> Option<Instant> {
    Instant::now().checked_add(d)
}

/// Time left until `deadline` (`None`: never, `Duration::MAX`), zero once it passed.
pub fn time_left(deadline: Option<Instant>) -> Duration {
    deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    })
}

/// The clock time `after_ms` past `now_ms`, or `None` when it does not fit the clock
/// (`u64::MAX` ms is the clock's saturation point, which a saturating [`ManualClock`] reaches):
/// a deadline past the clock's range is "never", not a wrapped or saturated value that a
/// clock standing at its maximum would take as already passed.
pub fn due_after(now_ms: u64, after_ms: u64) -> Option<u64> {
    now_ms.checked_add(after_ms).filter(|&t| t < u64::MAX)
}

/// The system's real-time clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(ms_floor)
            .unwrap_or(0)
    }
    fn slack_ms(&self) -> u64 {
        // now_ms truncates the sub-millisecond part.
        1
    }
    fn is_system(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to: for tests and simulations.
#[derive(Default)]
pub struct ManualClock {
    now: AtomicU64,
    /// Nanoseconds below a millisecond that `advance` steps added up so far (the clock reads
    /// whole ms): ten 100 µs steps make 1 ms, not 10 (review r12 #9).
    sub_ms_ns: AtomicU64,
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

    /// Moves the clock forward by `ms` (saturating at `u64::MAX` ms, never wrapping) and wakes
    /// every store waiting on it.
    pub fn advance_ms(&self, ms: u64) {
        let _ = self
            .now
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(ms))
            });
        self.wake();
    }

    /// Moves the clock forward by `d` (saturating). The clock reads whole milliseconds: the
    /// parts of a millisecond of successive steps add up (ten steps of 100 µs move it 1 ms), so
    /// it never stands ahead of the time the steps asked for. (It rounded each step up to a
    /// whole ms: a test stepping through a 50.7 ms delay in 0.1 ms steps saw the message on
    /// time at 50.6 ms; review r12 #9.)
    pub fn advance(&self, d: Duration) {
        let whole = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let part = u64::from(d.subsec_nanos() % 1_000_000);
        let mut carry = 0;
        let _ = self
            .sub_ms_ns
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                carry = (r + part) / 1_000_000;
                Some((r + part) % 1_000_000)
            });
        self.advance_ms(whole.saturating_add(carry));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Review r12 #9: each step was rounded up to a whole ms, so ten 100 µs steps moved the
    /// clock 10 ms. Parts of a millisecond add up now, and the clock never runs ahead.
    #[test]
    fn sub_millisecond_steps_add_up_and_never_run_ahead() {
        let c = ManualClock::new(1_000);
        c.advance(Duration::from_micros(600));
        assert_eq!(c.now_ms(), 1_000, "0.6 ms is not a whole ms yet");
        c.advance(Duration::from_micros(600));
        assert_eq!(c.now_ms(), 1_001, "1.2 ms: one whole ms, 0.2 carried");
        for _ in 0..10 {
            c.advance(Duration::from_micros(100));
        }
        assert_eq!(c.now_ms(), 1_002, "2.2 ms in all");
        c.advance(Duration::from_micros(50_700));
        assert_eq!(c.now_ms(), 1_052, "52.9 ms in all");
        c.advance(Duration::MAX);
        assert_eq!(c.now_ms(), u64::MAX, "saturates");
    }
}
