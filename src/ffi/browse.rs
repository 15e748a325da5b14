//! Browsing: what a queue holds, every state or only the ready messages, and each browsed
//! message's state and delivery count.

use super::boundary::{guard, guard_value, out_ptr, write_out, Failure};
use super::error::{mqlite_error, mqlite_status};
use super::message::{boxed, mqlite_message};
use super::queue::mqlite_queue;
use crate::inspect::MessageState;
use crate::queue::Queue;

/// Where a browsed message was in its queue.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum mqlite_browse_state {
    /// Not a browsed message (a new, received or dead-letter message, or NULL).
    MQLITE_STATE_NONE = 0,
    /// Deliverable now.
    MQLITE_STATE_READY = 1,
    /// Waiting for its delivery time (sent with a delay or deliver-at, or a scheduled repeat).
    MQLITE_STATE_DELAYED = 2,
    /// Handed to a consumer and not yet settled.
    MQLITE_STATE_IN_FLIGHT = 3,
    /// Waiting out a redelivery delay after a failed delivery (ActiveMQ's RedeliveryPolicy).
    MQLITE_STATE_REDELIVERY_WAIT = 4,
    /// In a consumer's prefetch buffer, not handed out yet (the queue's `prefetched` stat).
    MQLITE_STATE_PREFETCHED = 5,
}

/// Browses `q` into the caller's array (see `mqlite_queue_browse`).
///
/// # Safety
/// `messages_out` has room for `max` pointers when `max > 0`; `count_out` is writable.
pub(super) unsafe fn browse_into(
    q: &Queue,
    max: usize,
    messages_out: *mut *mut mqlite_message,
    count_out: *mut usize,
    ready_only: bool,
) -> Result<(), Failure> {
    if max > isize::MAX as usize / std::mem::size_of::<usize>() {
        return Err(Failure::invalid(format!(
            "max {max} is not a usable array capacity"
        )));
    }
    if max > 0 {
        out_ptr(messages_out, "messages_out")?;
    }
    out_ptr(count_out, "count_out")?;
    let ms = if ready_only {
        q.browse_ready(max)?
    } else {
        q.browse(max)?
    };
    let n = ms.len();
    for (i, m) in ms.into_iter().enumerate() {
        // SAFETY: room for `max` ≥ n pointers.
        unsafe { messages_out.add(i).write(boxed(m)) };
    }
    unsafe { write_out(count_out, n) };
    Ok(())
}

/// Copies up to `max` ready messages (deliverable now), in the order a receive would take
/// them, into the caller's array `messages_out` without consuming them; `*count_out` is how
/// many. As `mqlite_queue_browse`, which lists every message the queue holds.
#[no_mangle]
pub extern "C" fn mqlite_queue_browse_ready(
    queue: *const mqlite_queue,
    max: usize,
    messages_out: *mut *mut mqlite_message,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { super::queue::queue(queue) }?;
        unsafe { browse_into(q, max, messages_out, count_out, true) }
    })
}

/// The state of a message returned by `mqlite_queue_browse`; `MQLITE_STATE_NONE` for any
/// other message and for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_state(message: *const mqlite_message) -> mqlite_browse_state {
    use mqlite_browse_state::*;
    guard_value(MQLITE_STATE_NONE, || {
        let m = unsafe { message.as_ref() }?;
        Some(match m.msg.state()? {
            MessageState::Ready => MQLITE_STATE_READY,
            MessageState::Delayed => MQLITE_STATE_DELAYED,
            MessageState::InFlight => MQLITE_STATE_IN_FLIGHT,
            MessageState::RedeliveryWait => MQLITE_STATE_REDELIVERY_WAIT,
            MessageState::Prefetched => MQLITE_STATE_PREFETCHED,
        })
    })
}

/// How many times a message returned by `mqlite_queue_browse` has been delivered (the
/// delivery in progress included while it is in flight); 0 for a message never delivered, for
/// any other message and for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_delivery_count(message: *const mqlite_message) -> u32 {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.delivery_count())
    })
}
