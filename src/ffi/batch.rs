//! `mqlite_delivery_batch`: deliveries received into a reusable object the caller owns, so that
//! a batch receive makes no heap handle per delivery (`mqlite_queue_receive_batch` makes one
//! `mqlite_delivery` per message, each freed by the caller).
//!
//! The batch keeps its array between receives: after the first receive of a given size, a
//! receive into it allocates only what the Rust API does (the messages' bodies). Each delivery
//! in it is an ordinary `mqlite_delivery` that the batch owns: settle it with the usual calls,
//! never free it.

use super::boundary::{arg, arg_mut, guard, guard_value, out_ptr, timeout, write_out, Failure};
use super::delivery::{mqlite_consumer, mqlite_delivery, no_message};
use super::error::{mqlite_error, mqlite_status};
use crate::delivery::Delivery;

/// Deliveries received together, owned by the batch. Made by `mqlite_delivery_batch_new`,
/// filled by `mqlite_queue_receive_into` / `mqlite_consumer_receive_into`, freed exactly once by
/// `mqlite_delivery_batch_free`. The deliveries in it (`mqlite_delivery_batch_get`) belong to
/// the batch: settle them with `mqlite_delivery_ack` & co. or all at once with
/// `mqlite_delivery_batch_ack` (`mqlite_delivery_free` leaves them alone). They stay valid
/// until the next receive into the batch, `mqlite_delivery_batch_clear` or
/// `mqlite_delivery_batch_free`. Use from one thread at a time.
pub struct mqlite_delivery_batch {
    items: Vec<mqlite_delivery>,
}

impl mqlite_delivery_batch {
    /// Whether a delivery in it is still unsettled (so that a new receive would drop it).
    fn unsettled(&self) -> Option<usize> {
        self.items
            .iter()
            .position(|d| d.delivery.as_ref().is_some_and(|x| !x.is_settled()))
    }

    /// Replaces the (all settled) contents with `ds`.
    fn fill(
        &mut self,
        ds: Vec<Delivery>,
        auto_acked: bool,
        count_out: *mut usize,
    ) -> Result<(), Failure> {
        if ds.is_empty() {
            return Err(no_message());
        }
        self.items.clear();
        self.items.extend(ds.into_iter().map(|d| {
            let mut d = mqlite_delivery::new(d, auto_acked);
            d.in_batch = true;
            d
        }));
        unsafe { write_out(count_out, self.items.len()) };
        Ok(())
    }
}

/// Checks a receive's arguments and that the batch holds nothing unsettled.
unsafe fn prepare<'a>(
    batch: *mut mqlite_delivery_batch,
    max: usize,
    count_out: *mut usize,
) -> Result<&'a mut mqlite_delivery_batch, Failure> {
    let b = unsafe { arg_mut(batch, "batch") }?;
    out_ptr(count_out, "count_out")?;
    if max == 0 {
        return Err(Failure::invalid(format!(
            "max must be an integer from 1 to {}, not 0",
            usize::MAX
        )));
    }
    if let Some(i) = b.unsettled() {
        return Err(Failure::invalid(format!(
            "delivery {i} of the batch is not settled: settle it (or call \
             mqlite_delivery_batch_clear, which counts it as a failed delivery) before \
             receiving into the batch again"
        )));
    }
    Ok(b)
}

/// A new, empty delivery batch (never NULL). Free it with `mqlite_delivery_batch_free`.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_new() -> *mut mqlite_delivery_batch {
    Box::into_raw(Box::new(mqlite_delivery_batch { items: Vec::new() }))
}

/// Frees a batch and the deliveries in it; an unsettled one counts as a failed delivery (as
/// `mqlite_delivery_free`). NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_free(batch: *mut mqlite_delivery_batch) {
    guard_value((), || {
        if !batch.is_null() {
            // SAFETY: made by `mqlite_delivery_batch_new`, freed once.
            drop(unsafe { Box::from_raw(batch) });
        }
        Some(())
    })
}

/// Drops the deliveries in the batch (an unsettled one counts as a failed delivery, as
/// `mqlite_delivery_free`) and keeps its memory for the next receive. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_clear(batch: *mut mqlite_delivery_batch) {
    guard_value((), || {
        // SAFETY: a live batch, used by this thread only.
        unsafe { batch.as_mut() }.map(|b| b.items.clear())
    })
}

/// How many deliveries the batch holds (what the last receive into it wrote to `*count_out`);
/// 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_count(batch: *const mqlite_delivery_batch) -> usize {
    guard_value(0, || unsafe { batch.as_ref() }.map(|b| b.items.len()))
}

/// Delivery `index` (0-based) of the batch, owned by the batch (see `mqlite_delivery_batch`):
/// read and settle it with the `mqlite_delivery_*` calls; never free it. NULL if `batch` is
/// NULL or `index` is not below `mqlite_delivery_batch_count`.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_get(
    batch: *mut mqlite_delivery_batch,
    index: usize,
) -> *mut mqlite_delivery {
    guard_value(std::ptr::null_mut(), || {
        // SAFETY: a live batch, used by this thread only.
        let b = unsafe { batch.as_mut() }?;
        b.items.get_mut(index).map(|d| d as *mut mqlite_delivery)
    })
}

/// Receives up to `max` messages of `queue` into `batch`, waiting up to `timeout_ms` for the
/// first (negative: forever; 0: no wait); their delivery counts are made durable with one
/// record, as `mqlite_queue_receive_batch`, but the deliveries live in the batch (no handle per
/// delivery to free). `*count_out` is how many it holds now. The batch's previous deliveries are
/// dropped first; all of them must be settled, else `MQLITE_INVALID_ARGUMENT` and nothing is
/// received. `MQLITE_TIMEOUT` if no message came (the batch is then unchanged); `max` 0 is
/// `MQLITE_INVALID_ARGUMENT`; a huge `max` only bounds the count (the batch grows to what
/// arrives).
#[no_mangle]
pub extern "C" fn mqlite_queue_receive_into(
    queue: *const super::queue::mqlite_queue,
    max: usize,
    timeout_ms: i64,
    batch: *mut mqlite_delivery_batch,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { super::queue::queue(queue) }?;
        let b = unsafe { prepare(batch, max, count_out) }?;
        b.fill(q.receive_batch(max, timeout(timeout_ms))?, false, count_out)
    })
}

/// `mqlite_queue_receive_into` through a consumer (its ack mode: deliveries of an auto-ack
/// consumer arrive settled).
#[no_mangle]
pub extern "C" fn mqlite_consumer_receive_into(
    consumer: *const mqlite_consumer,
    max: usize,
    timeout_ms: i64,
    batch: *mut mqlite_delivery_batch,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let c = unsafe { arg(consumer, "consumer") }?;
        let b = unsafe { prepare(batch, max, count_out) }?;
        let ds = c.consumer.receive_batch(max, timeout(timeout_ms))?;
        b.fill(ds, c.auto_ack, count_out)
    })
}

/// Acks every delivery of the batch not yet settled through its handle, with one journal
/// record (as `mqlite_queue_ack_batch`: lazy, the next receive's delivery record shares its
/// commit). An empty batch is OK. A delivery that is no longer in flight under its tag (its
/// ack timeout passed) is not acked: the others are, and the call returns
/// `MQLITE_ALREADY_SETTLED` naming it. The deliveries stay in the batch, settled.
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_ack(
    batch: *mut mqlite_delivery_batch,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    ack_all(batch, false, err)
}

/// `mqlite_delivery_batch_ack` that returns OK only once the acks are durable (fdatasync'd).
#[no_mangle]
pub extern "C" fn mqlite_delivery_batch_ack_sync(
    batch: *mut mqlite_delivery_batch,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    ack_all(batch, true, err)
}

fn ack_all(
    batch: *mut mqlite_delivery_batch,
    sync: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let b = unsafe { arg_mut(batch, "batch") }?;
        let taken: Vec<Delivery> = b
            .items
            .iter_mut()
            .filter_map(|d| d.delivery.take())
            .collect();
        // Every delivery of a batch comes from one receive of one queue.
        let Some(q) = taken.first().map(|d| d.queue().clone()) else {
            return Ok(());
        };
        if sync {
            q.ack_batch_sync(taken)?;
        } else {
            q.ack_batch(taken)?;
        }
        Ok(())
    })
}
