//! `mqlite_delivery` (one hand-over of a message, to be settled) and `mqlite_consumer`.

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::{
    arg, arg_mut, guard, guard_value, out_ptr, timeout, utf8, write_out, Failure, FfiResult,
};
use super::error::{mqlite_error, mqlite_status};
use super::message::mqlite_message;
use crate::delivery::{Consumer, Delivery};

/// One delivery of a message. Made by a receive; freed exactly once by `mqlite_delivery_free`.
/// Settle it first with ack, nack, reject or release: freeing an unsettled delivery counts as a
/// failed delivery (the redelivery policy applies). After settling, the handle and its message
/// stay readable until freed. Use from one thread at a time.
pub struct mqlite_delivery {
    pub(crate) message: mqlite_message,
    pub(crate) delivery: Option<Delivery>,
    id: u64,
    count: u32,
    /// Owned by an `mqlite_delivery_batch`: `mqlite_delivery_free` leaves it alone.
    pub(crate) in_batch: bool,
}

impl mqlite_delivery {
    /// The C handle of a delivery (`auto_acked`: it arrived settled).
    pub(crate) fn new(mut d: Delivery, auto_acked: bool) -> mqlite_delivery {
        let (id, count) = (d.id().0, d.delivery_count());
        let message = mqlite_message {
            msg: d.take_message(),
        };
        mqlite_delivery {
            message,
            delivery: (!auto_acked).then_some(d),
            id,
            count,
            in_batch: false,
        }
    }

    pub(crate) fn boxed(d: Delivery, auto_acked: bool) -> *mut mqlite_delivery {
        Box::into_raw(Box::new(mqlite_delivery::new(d, auto_acked)))
    }

    /// Puts a delivery taken for a settle back when the settle was refused before anything
    /// changed (`InvalidArgument`: a dead letter's reject, a reason over 32 KiB): it is still
    /// held and settleable through this handle, whichever settle was refused (review r5 #11).
    pub(crate) fn keep_if_refused<T>(&mut self, held: Delivery, out: &crate::Result<T>) {
        if matches!(out, Err(e) if e.kind() == crate::ErrorKind::InvalidArgument) {
            self.delivery = Some(held);
        }
    }

    pub(crate) fn take(&mut self) -> FfiResult<Delivery> {
        self.delivery.take().ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_ALREADY_SETTLED,
                format!("ID:{} is already settled", self.id),
            )
        })
    }
}

/// A consumer of one queue with its own ack mode (`mqlite_queue_consumer`). Freeing it returns
/// its unsettled deliveries to the queue as failed deliveries. Use from one thread at a time.
pub struct mqlite_consumer {
    pub(crate) consumer: Consumer,
    /// Auto-ack consumers hand over deliveries that are already settled.
    pub(crate) auto_ack: bool,
}

/// The delivered message, owned by the delivery: valid until `mqlite_delivery_free`, also after
/// settling. NULL if `delivery` is NULL. Do not free it.
#[no_mangle]
pub extern "C" fn mqlite_delivery_message(
    delivery: *const mqlite_delivery,
) -> *const mqlite_message {
    guard_value(std::ptr::null(), || {
        unsafe { delivery.as_ref() }.map(|d| &d.message as *const _)
    })
}

/// The message id; 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_delivery_id(delivery: *const mqlite_delivery) -> u64 {
    guard_value(0, || unsafe { delivery.as_ref() }.map(|d| d.id))
}

/// How many times this message has been delivered, this delivery included; 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_delivery_count(delivery: *const mqlite_delivery) -> u32 {
    guard_value(0, || unsafe { delivery.as_ref() }.map(|d| d.count))
}

/// Whether it was delivered before (count > 1); false for NULL.
#[no_mangle]
pub extern "C" fn mqlite_delivery_redelivered(delivery: *const mqlite_delivery) -> bool {
    guard_value(false, || unsafe { delivery.as_ref() }.map(|d| d.count > 1))
}

/// Whether the delivery has been settled: through this handle, by a cumulative ack of a later
/// delivery, by a transaction, or because it timed out or its consumer was freed (settling it
/// then fails with `MQLITE_ALREADY_SETTLED`); false for NULL.
#[no_mangle]
pub extern "C" fn mqlite_delivery_settled(delivery: *const mqlite_delivery) -> bool {
    guard_value(false, || {
        unsafe { delivery.as_ref() }.map(|d| d.delivery.as_ref().is_none_or(|x| x.is_settled()))
    })
}

/// Acknowledges. (Cumulative consumers: also acks everything received before it.) Lazy by
/// default (as RabbitMQ consumer acks or JMS `DUPS_OK_ACKNOWLEDGE`): it returns once the ack is
/// queued for the next group commit, which follows within about a millisecond; a crash before
/// it delivers the message again with `redelivered` true, never loses it. The ack is durable
/// once `mqlite_delivery_ack_sync` or a later durable call of the store (a sync send, a
/// transaction commit, `mqlite_store_flush`) returned or the store was closed; with the queue
/// option `MQLITE_ACK_DURABILITY_SYNC` this is `mqlite_delivery_ack_sync`. A second settle of
/// the same delivery: `MQLITE_ALREADY_SETTLED`. The delivery is settled even if the call fails
/// (e.g. `MQLITE_CLOSED`); the message then comes back after a reopen.
///
/// From a client process (a store another process owns) the lazy ack of a plain receive's or
/// an explicit-mode consumer's delivery goes one way, without waiting for the owner: an error
/// the owner finds then (the delivery timed out, say) is reported once, as
/// `MQLITE_DELIVERY_LOST` ("n lazy acks failed: first: ..."), by the client's next
/// `mqlite_delivery_ack_sync`, `mqlite_queue_ack_batch_sync`, `mqlite_store_flush`, transaction
/// commit or `mqlite_store_close`.
#[no_mangle]
pub extern "C" fn mqlite_delivery_ack(
    delivery: *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        Ok(unsafe { arg_mut(delivery, "delivery") }?.take()?.ack()?)
    })
}

/// Acknowledges like `mqlite_delivery_ack`, but returns OK only once the ack is durable
/// (fdatasync'd): the message is never delivered again, even after a crash or power loss.
#[no_mangle]
pub extern "C" fn mqlite_delivery_ack_sync(
    delivery: *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        Ok(unsafe { arg_mut(delivery, "delivery") }?
            .take()?
            .ack_sync()?)
    })
}

/// A failed delivery: the redelivery policy decides when it comes back or whether it goes to
/// the dead-letter queue. `reason` (UTF-8, may be NULL with length 0) is kept as the last
/// failure text: at most 32 KiB (32768 bytes), a longer one is
/// `MQLITE_INVALID_ARGUMENT` and the delivery stays held and unsettled, to be settled again.
#[no_mangle]
pub extern "C" fn mqlite_delivery_nack(
    delivery: *mut mqlite_delivery,
    reason: *const c_char,
    reason_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let d = unsafe { arg_mut(delivery, "delivery") }?;
        let r = unsafe { utf8(reason, reason_len, "reason") }?;
        let mut held = d.take()?;
        let out = held.try_nack(r);
        d.keep_if_refused(held, &out);
        Ok(out?)
    })
}

/// Like `mqlite_delivery_nack`, but redelivered after `delay_ms` instead of the policy's delay
/// (the policy still decides when to dead-letter).
#[no_mangle]
pub extern "C" fn mqlite_delivery_nack_with_delay(
    delivery: *mut mqlite_delivery,
    reason: *const c_char,
    reason_len: usize,
    delay_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let d = unsafe { arg_mut(delivery, "delivery") }?;
        let r = unsafe { utf8(reason, reason_len, "reason") }?;
        let mut held = d.take()?;
        let out = held.try_nack_with_delay(r, Duration::from_millis(delay_ms));
        d.keep_if_refused(held, &out);
        Ok(out?)
    })
}

/// Rejects the message as poison: straight to the dead-letter queue (reason `rejected`) with
/// `reason` (UTF-8) as its failure text. A message of a dead-letter queue is a dead letter
/// already: `MQLITE_INVALID_ARGUMENT` ("a dead letter cannot be dead-lettered again": ack it to
/// delete it, or replay it), and the delivery stays held, to be acked or released.
#[no_mangle]
pub extern "C" fn mqlite_delivery_reject(
    delivery: *mut mqlite_delivery,
    reason: *const c_char,
    reason_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let d = unsafe { arg_mut(delivery, "delivery") }?;
        let r = unsafe { utf8(reason, reason_len, "reason") }?;
        let mut held = d.take()?;
        let out = held.try_reject(r);
        d.keep_if_refused(held, &out);
        Ok(out?)
    })
}

/// Gives the message back without counting a failure (e.g. on graceful shutdown).
#[no_mangle]
pub extern "C" fn mqlite_delivery_release(
    delivery: *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        Ok(unsafe { arg_mut(delivery, "delivery") }?
            .take()?
            .release()?)
    })
}

/// Frees a delivery. If it was not settled (explicit ack mode), this counts as a failed
/// delivery. NULL is a no-op, and so is a delivery owned by an `mqlite_delivery_batch` (the
/// batch frees it).
#[no_mangle]
pub extern "C" fn mqlite_delivery_free(delivery: *mut mqlite_delivery) {
    guard_value((), || {
        // SAFETY: a live delivery (its own box, or an element of a live batch).
        if !delivery.is_null() && !unsafe { &*delivery }.in_batch {
            // SAFETY: made by `mqlite_delivery::boxed`, freed once.
            drop(unsafe { Box::from_raw(delivery) });
        }
        Some(())
    })
}

/// Receives one message through the consumer, waiting up to `timeout_ms` (negative: forever;
/// 0: no wait). On success `*delivery_out` owns a new delivery. `MQLITE_TIMEOUT` if none came.
#[no_mangle]
pub extern "C" fn mqlite_consumer_receive(
    consumer: *const mqlite_consumer,
    timeout_ms: i64,
    delivery_out: *mut *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let c = unsafe { arg(consumer, "consumer") }?;
        out_ptr(delivery_out, "delivery_out")?;
        let d = c
            .consumer
            .receive(timeout(timeout_ms))?
            .ok_or_else(no_message)?;
        unsafe { write_out(delivery_out, mqlite_delivery::boxed(d, c.auto_ack)) };
        Ok(())
    })
}

pub(crate) fn no_message() -> Failure {
    Failure::new(
        mqlite_status::MQLITE_TIMEOUT,
        "no message arrived within the timeout",
    )
}

pub(crate) fn check_array(p: *mut *mut mqlite_delivery, max: usize) -> FfiResult {
    // `max` 0 is refused by the core (as in every face); here only what C alone can get wrong.
    if max > isize::MAX as usize / std::mem::size_of::<usize>() {
        return Err(Failure::invalid(format!(
            "max {max} is not a usable array capacity"
        )));
    }
    out_ptr(p, "deliveries_out")
}

pub(crate) fn write_batch(
    ds: Vec<Delivery>,
    auto_acked: bool,
    deliveries_out: *mut *mut mqlite_delivery,
    count_out: *mut usize,
) -> FfiResult {
    if ds.is_empty() {
        return Err(no_message());
    }
    let n = ds.len();
    for (i, d) in ds.into_iter().enumerate() {
        // SAFETY: `deliveries_out` has room for `max` ≥ n pointers (checked non-NULL).
        unsafe {
            deliveries_out
                .add(i)
                .write(mqlite_delivery::boxed(d, auto_acked))
        };
    }
    unsafe { write_out(count_out, n) };
    Ok(())
}

/// Receives up to `max` messages into the caller's array `deliveries_out` (room for `max`
/// pointers), waiting up to `timeout_ms` for the first; `*count_out` is how many were written,
/// each a new delivery the caller frees. `MQLITE_TIMEOUT` if none came.
#[no_mangle]
pub extern "C" fn mqlite_consumer_receive_batch(
    consumer: *const mqlite_consumer,
    max: usize,
    timeout_ms: i64,
    deliveries_out: *mut *mut mqlite_delivery,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let c = unsafe { arg(consumer, "consumer") }?;
        check_array(deliveries_out, max)?;
        out_ptr(count_out, "count_out")?;
        write_batch(
            c.consumer.receive_batch(max, timeout(timeout_ms))?,
            c.auto_ack,
            deliveries_out,
            count_out,
        )
    })
}

/// Frees a consumer; its unsettled deliveries return to the queue as failed deliveries
/// (their handles stay valid; settling them then fails). NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_consumer_free(consumer: *mut mqlite_consumer) {
    guard_value((), || {
        if !consumer.is_null() {
            // SAFETY: made by `mqlite_queue_consumer`, freed once.
            drop(unsafe { Box::from_raw(consumer) });
        }
        Some(())
    })
}
