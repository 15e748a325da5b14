//! `mqlite_manual_clock`: the injectable clock, so C tests can move time instead of
//! sleeping through redelivery delays, TTLs and delivery delays.

use std::sync::Arc;

use super::boundary::{arg, arg_mut, guard, guard_value};
use super::error::{mqlite_error, mqlite_status};
use super::options::mqlite_store_options;
use crate::clock::ManualClock;

/// A clock that moves only when told to (for tests and simulations). Thread-safe. Freed by
/// `mqlite_manual_clock_free`; stores using it keep their own reference, so it may be freed
/// while they run (it then cannot be moved any more).
pub struct mqlite_manual_clock {
    clock: Arc<ManualClock>,
}

/// A manual clock standing at `start_ms` milliseconds since the epoch. Returns NULL only if
/// allocation failed.
#[no_mangle]
pub extern "C" fn mqlite_manual_clock_new(start_ms: u64) -> *mut mqlite_manual_clock {
    guard_value(std::ptr::null_mut(), || {
        Some(Box::into_raw(Box::new(mqlite_manual_clock {
            clock: ManualClock::new(start_ms),
        })))
    })
}

/// Frees a manual clock handle. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_manual_clock_free(clock: *mut mqlite_manual_clock) {
    guard_value((), || {
        if !clock.is_null() {
            // SAFETY: made by `mqlite_manual_clock_new`, freed once.
            drop(unsafe { Box::from_raw(clock) });
        }
        Some(())
    })
}

/// Moves the clock forward by `ms` and wakes every store waiting on it (due timers fire).
#[no_mangle]
pub extern "C" fn mqlite_manual_clock_advance(
    clock: *const mqlite_manual_clock,
    ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        unsafe { arg(clock, "clock") }?.clock.advance_ms(ms);
        Ok(())
    })
}

/// Sets the clock to `ms` since the epoch (it may go backwards, to test clock steps).
#[no_mangle]
pub extern "C" fn mqlite_manual_clock_set(
    clock: *const mqlite_manual_clock,
    ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        unsafe { arg(clock, "clock") }?.clock.set_ms(ms);
        Ok(())
    })
}

/// The clock's time in ms since the epoch; 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_manual_clock_now(clock: *const mqlite_manual_clock) -> u64 {
    use crate::clock::Clock;
    guard_value(0, || unsafe { clock.as_ref() }.map(|c| c.clock.now_ms()))
}

/// Makes every timer of the store (TTL, delays, redelivery backoff, ack timeouts, dedup
/// windows) read `clock` instead of the system clock.
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_manual_clock(
    options: *mut mqlite_store_options,
    clock: *const mqlite_manual_clock,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.clock = unsafe { arg(clock, "clock") }?.clock.clone();
        Ok(())
    })
}
