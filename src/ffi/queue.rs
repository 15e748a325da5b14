//! `mqlite_queue`: sending (sync, async, batch), receiving, browsing, stats, consumers.

use std::ffi::{c_char, c_void};

use super::boundary::{arg, bytes, guard, guard_value, out_ptr, timeout, utf8, write_out, Failure};
use super::delivery::{check_array, mqlite_consumer, mqlite_delivery, no_message, write_batch};
use super::error::{mqlite_error, mqlite_status};
use super::message::mqlite_message;
use super::options::ack_mode;
use crate::delivery::Consumer;
use crate::engine::{Callback, PlainCallback};
use crate::message::Message;
use crate::options::{AckMode, ConsumerOptions};
use crate::queue::Queue;

/// A handle to one queue. Made by `mqlite_store_queue`, freed exactly once by
/// `mqlite_queue_free` (which does not delete the queue). Thread-safe. After the store is
/// closed or freed, calls fail with `MQLITE_CLOSED`.
pub struct mqlite_queue {
    pub(crate) queue: Queue,
    /// The subscriber's handle when this is a subscription (`mqlite_store_subscribe`): freeing
    /// the handle detaches it. Held only for that (its `Drop`), never read.
    #[allow(dead_code)]
    pub(crate) sub: Option<crate::Subscription>,
}

impl mqlite_queue {
    /// A boxed handle to a plain queue.
    pub(crate) fn boxed(queue: Queue) -> *mut mqlite_queue {
        Box::into_raw(Box::new(mqlite_queue { queue, sub: None }))
    }
}

/// The completion of an async send or publish: calls `callback` with the outcome, then
/// `free_user_data`. Plain data (two function pointers and `user_data` as words), not a boxed
/// closure: an async send from C allocates nothing for its completion.
pub(crate) fn completion(
    callback: mqlite_send_callback,
    user_data: *mut c_void,
    free_user_data: mqlite_free_fn,
) -> Callback {
    // An `Option<extern "C" fn>` is one pointer wide, `None` being 0 (Rust's null-pointer
    // optimisation, guaranteed for function pointers).
    let cb: usize = callback.map_or(0, |f| f as usize);
    let free: usize = free_user_data.map_or(0, |f| f as usize);
    Callback::Plain(PlainCallback {
        run: run_completion,
        data: [cb, user_data as usize, free],
    })
}

/// Runs a completion made by [`completion`].
fn run_completion(data: [usize; 3], r: crate::Result<crate::MessageId>) {
    let [cb, ud, free] = data;
    // SAFETY: the words were made by `completion` from these very types (see there).
    let callback = unsafe { std::mem::transmute::<usize, mqlite_send_callback>(cb) };
    let free_user_data = unsafe { std::mem::transmute::<usize, mqlite_free_fn>(free) };
    let ud = ud as *mut c_void;
    if let Some(cb) = callback {
        match r {
            // SAFETY: the C callback's contract is in its doc comment.
            Ok(id) => unsafe { cb(ud, mqlite_status::MQLITE_OK, id.0, std::ptr::null()) },
            Err(e) => {
                let status = mqlite_status::from_kind(e.kind());
                let ce = mqlite_error::new(status, e.message().to_string());
                unsafe { cb(ud, status, 0, &ce) }
            }
        }
    }
    if let Some(free) = free_user_data {
        unsafe { free(ud) }
    }
}

/// Copies `messages[0..count]` (none NULL) for a batch send or publish.
pub(crate) fn batch_of(
    messages: *const *const mqlite_message,
    count: usize,
) -> Result<Vec<Message>, Failure> {
    if count > isize::MAX as usize / std::mem::size_of::<usize>() {
        return Err(Failure::invalid(format!(
            "count {count} is larger than any array"
        )));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    if messages.is_null() {
        return Err(Failure::null("messages"));
    }
    // SAFETY: the caller promises `count` readable pointers.
    let ms = unsafe { std::slice::from_raw_parts(messages, count) };
    let mut batch = Vec::with_capacity(count);
    for (i, &m) in ms.iter().enumerate() {
        // SAFETY: each non-NULL entry is a live message.
        let m = unsafe { m.as_ref() }.ok_or_else(|| Failure::null(&format!("messages[{i}]")))?;
        batch.push(m.msg.clone());
    }
    Ok(batch)
}

/// Writes the ids of a batch to `ids_out` (may be NULL; room for all of them).
pub(crate) fn write_ids(ids: &[crate::MessageId], ids_out: *mut u64) {
    if !ids_out.is_null() {
        for (i, id) in ids.iter().enumerate() {
            // SAFETY: the caller gave room for `count` ids.
            unsafe { ids_out.add(i).write(id.0) };
        }
    }
}

/// Completion callback of `mqlite_queue_send_async`, run exactly once on a library thread:
/// `status` is `MQLITE_OK` with the message's `id` once it is durable, or the failure with
/// `id` 0 and `error` describing it (borrowed: valid only during the call; NULL on success).
/// It runs without any mqlite lock held; it may call mqlite (send, receive, ack …), but
/// `mqlite_store_close` from inside it returns `MQLITE_WOULD_DEADLOCK`. It must not unwind
/// (C++ exceptions, longjmp) out of the call.
pub type mqlite_send_callback = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        status: mqlite_status,
        id: u64,
        error: *const mqlite_error,
    ),
>;

/// Frees a callback's `user_data`; run once, after the last call of the callback.
pub type mqlite_free_fn = Option<unsafe extern "C" fn(user_data: *mut c_void)>;

/// Counters and gauges of one queue.
#[repr(C)]
pub struct mqlite_stats {
    /// Messages ready for delivery now.
    pub depth: u64,
    /// Messages handed out to a consumer and not yet settled.
    pub in_flight: u64,
    /// Messages waiting for a delivery time or a redelivery delay.
    pub delayed: u64,
    /// All messages held (ready + in flight + delayed).
    pub messages: u64,
    /// Bytes of the records held.
    pub bytes: u64,
    /// Messages stored since the store was opened: sends, publishes and dead letters moved in;
    /// not replays (`replayed`). `enqueued + replayed - (acked + dead_lettered + expired +
    /// discarded + replayed_out)` is the change of `messages` since the open.
    pub enqueued: u64,
    /// Messages acknowledged since the store was opened.
    pub acked: u64,
    /// Deliveries that were redeliveries.
    pub redelivered: u64,
    /// Messages moved to a dead-letter queue (or discarded by the discard strategy).
    pub dead_lettered: u64,
    /// Messages that expired.
    pub expired: u64,
    /// Messages dropped by purge, and the oldest dead letters dropped to make room in a full
    /// dead-letter queue (`drop_oldest`). (A dead letter whose redeliveries run out in its
    /// dead-letter queue stays there.)
    pub discarded: u64,
    /// Messages replayed into this queue (not also counted in `enqueued`).
    pub replayed: u64,
    /// Messages taken by consumers' prefetch and not yet handed out.
    pub prefetched: u64,
    /// Messages moved out of this queue to another: dead letters replayed (review r5 #14), and
    /// messages moved out by a move (`mqlite move`; review r12 #12).
    /// Appended last, so the earlier fields keep their offsets.
    pub replayed_out: u64,
}

pub(super) unsafe fn queue<'a>(q: *const mqlite_queue) -> Result<&'a Queue, Failure> {
    Ok(&unsafe { arg(q, "queue") }?.queue)
}

/// Frees a queue handle. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_queue_free(queue: *mut mqlite_queue) {
    guard_value((), || {
        if !queue.is_null() {
            // SAFETY: made by `mqlite_store_queue[_with]`, freed once.
            drop(unsafe { Box::from_raw(queue) });
        }
        Some(())
    })
}

/// The queue's name: `*name_out` points into the handle (valid until it is freed; not
/// NUL-terminated), `*len_out` is its length.
#[no_mangle]
pub extern "C" fn mqlite_queue_name(
    queue: *const mqlite_queue,
    name_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let q = unsafe { self::queue(queue) }?;
        out_ptr(name_out, "name_out")?;
        out_ptr(len_out, "len_out")?;
        unsafe {
            write_out(name_out, q.name().as_ptr().cast());
            write_out(len_out, q.name().len());
        }
        Ok(())
    })
}

/// Sends a copy of `message` and waits until it is durable (per the queue's durability). On
/// success writes its id to `*id_out` (may be NULL); for a dedup hit, the first message's id.
#[no_mangle]
pub extern "C" fn mqlite_queue_send(
    queue: *const mqlite_queue,
    message: *const mqlite_message,
    id_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        let m = unsafe { arg(message, "message") }?;
        let id = q.send(m.msg.clone())?;
        unsafe { write_out(id_out, id.0) };
        Ok(())
    })
}

/// Sends a message with body `body` (`body_len` bytes, copied) and default headers, waiting
/// until it is durable; a shortcut for `mqlite_message_new` + `mqlite_queue_send`.
#[no_mangle]
pub extern "C" fn mqlite_queue_send_bytes(
    queue: *const mqlite_queue,
    body: *const u8,
    body_len: usize,
    id_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        let b = unsafe { bytes(body, body_len, "body") }?;
        let id = q.send(Message::new(b))?;
        unsafe { write_out(id_out, id.0) };
        Ok(())
    })
}

/// Sends a copy of `message` without waiting. If this returns `MQLITE_OK`, `callback` (may be
/// NULL) runs exactly once on a library thread once the message is durable or has failed, and
/// then `free_user_data` (may be NULL) runs once with `user_data`; closing the store completes
/// every pending callback first. If this returns an error, neither runs and `user_data` stays
/// the caller's. When the producer window is full it blocks or fails with `MQLITE_QUEUE_FULL`
/// (store option).
#[no_mangle]
pub extern "C" fn mqlite_queue_send_async(
    queue: *const mqlite_queue,
    message: *const mqlite_message,
    callback: mqlite_send_callback,
    user_data: *mut c_void,
    free_user_data: mqlite_free_fn,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        let m = unsafe { arg(message, "message") }?;
        q.send_async_with(
            m.msg.clone(),
            completion(callback, user_data, free_user_data),
        )?;
        Ok(())
    })
}

/// Sends copies of `count` messages (`messages[0..count]`, none NULL) with one lock, one journal
/// write and one wait: all are durable when it returns OK, and their ids are written to
/// `ids_out[0..count]` (may be NULL). If one is refused (a limit, an invalid message) the ones
/// before it are still sent and the error message names its index; `ids_out` is then not written.
#[no_mangle]
pub extern "C" fn mqlite_queue_send_batch(
    queue: *const mqlite_queue,
    messages: *const *const mqlite_message,
    count: usize,
    ids_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        let batch = batch_of(messages, count)?;
        if batch.is_empty() {
            return Ok(());
        }
        let ids = q.send_batch(batch)?;
        write_ids(&ids, ids_out);
        Ok(())
    })
}

/// Receives one message, waiting up to `timeout_ms` (negative: forever; 0: no wait). On
/// success `*delivery_out` owns a new delivery (settle it, then `mqlite_delivery_free`).
/// `MQLITE_TIMEOUT` if no message came in time.
#[no_mangle]
pub extern "C" fn mqlite_queue_receive(
    queue: *const mqlite_queue,
    timeout_ms: i64,
    delivery_out: *mut *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        out_ptr(delivery_out, "delivery_out")?;
        let d = q.receive(timeout(timeout_ms))?.ok_or_else(no_message)?;
        unsafe { write_out(delivery_out, mqlite_delivery::boxed(d, false)) };
        Ok(())
    })
}

/// Receives up to `max` messages into the caller's array `deliveries_out` (room for `max`
/// pointers), waiting up to `timeout_ms` for the first; their delivery counts are made durable
/// with one record. `*count_out` is how many were written, each a new delivery the caller
/// frees. `MQLITE_TIMEOUT` if none came; `max` 0 is `MQLITE_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn mqlite_queue_receive_batch(
    queue: *const mqlite_queue,
    max: usize,
    timeout_ms: i64,
    deliveries_out: *mut *mut mqlite_delivery,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        check_array(deliveries_out, max)?;
        out_ptr(count_out, "count_out")?;
        write_batch(
            q.receive_batch(max, timeout(timeout_ms))?,
            false,
            deliveries_out,
            count_out,
        )
    })
}

/// Acks `count` deliveries of this queue with one journal record. The handles are checked first
/// (none NULL, none settled by its handle, all from this queue): if one fails, nothing is
/// settled. A delivery that is no longer in flight under its tag (its ack timeout passed, it was
/// redelivered) cannot be acked: the others are, and the call returns `MQLITE_ALREADY_SETTLED`
/// naming it. The handles stay the caller's to free. The acks are lazy like
/// `mqlite_delivery_ack` (the next receive's delivery record shares their commit: one fsync per
/// receive/ack cycle); `mqlite_queue_ack_batch_sync` returns once they are durable.
#[no_mangle]
pub extern "C" fn mqlite_queue_ack_batch(
    queue: *const mqlite_queue,
    deliveries: *const *mut mqlite_delivery,
    count: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    ack_batch(queue, deliveries, count, false, err)
}

/// `mqlite_queue_ack_batch` that returns OK only once the acks are durable (fdatasync'd).
#[no_mangle]
pub extern "C" fn mqlite_queue_ack_batch_sync(
    queue: *const mqlite_queue,
    deliveries: *const *mut mqlite_delivery,
    count: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    ack_batch(queue, deliveries, count, true, err)
}

fn ack_batch(
    queue: *const mqlite_queue,
    deliveries: *const *mut mqlite_delivery,
    count: usize,
    sync: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        if count > isize::MAX as usize / std::mem::size_of::<usize>() {
            return Err(Failure::invalid(format!(
                "count {count} is larger than any array"
            )));
        }
        if count == 0 {
            return Ok(());
        }
        if deliveries.is_null() {
            return Err(Failure::null("deliveries"));
        }
        // SAFETY: the caller promises `count` readable pointers.
        let ds = unsafe { std::slice::from_raw_parts(deliveries, count) };
        for (i, &d) in ds.iter().enumerate() {
            // SAFETY: each non-NULL entry is a live delivery, used by this thread only.
            let d =
                unsafe { d.as_ref() }.ok_or_else(|| Failure::null(&format!("deliveries[{i}]")))?;
            match &d.delivery {
                None => {
                    return Err(Failure::new(
                        mqlite_status::MQLITE_ALREADY_SETTLED,
                        format!("deliveries[{i}] is already settled"),
                    ))
                }
                Some(x) if !x.queue().same(q) => {
                    return Err(Failure::invalid(format!(
                        "deliveries[{i}] is not a delivery of queue {:?} of this store",
                        q.name()
                    )))
                }
                Some(_) => {}
            }
        }
        let mut taken = Vec::with_capacity(count);
        for &d in ds {
            // SAFETY: checked above.
            taken.extend(unsafe { &mut *d }.delivery.take());
        }
        if sync {
            q.ack_batch_sync(taken)?;
        } else {
            q.ack_batch(taken)?;
        }
        Ok(())
    })
}

/// Copies up to `max` messages the queue holds — every state: ready, delayed, redelivery
/// wait, in flight — into the caller's array `messages_out` without consuming them; ready ones
/// first in delivery order, then delayed and redelivery-waiting ones by due time, then those
/// in flight. `*count_out` is how many (0 for an empty queue), each a new message the caller
/// frees with `mqlite_message_free`; `mqlite_message_state` and
/// `mqlite_message_delivery_count` tell each one's state and delivery count.
/// `mqlite_queue_browse_ready` lists only the ready ones.
#[no_mangle]
pub extern "C" fn mqlite_queue_browse(
    queue: *const mqlite_queue,
    max: usize,
    messages_out: *mut *mut mqlite_message,
    count_out: *mut usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        unsafe { super::browse::browse_into(q, max, messages_out, count_out, false) }
    })
}

/// Removes every waiting message (and those prefetched by a consumer, not handed out; not
/// those in flight); writes how many to `*count_out` (may be NULL).
#[no_mangle]
pub extern "C" fn mqlite_queue_purge(
    queue: *const mqlite_queue,
    count_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let n = unsafe { self::queue(queue) }?.purge()?;
        unsafe { write_out(count_out, n) };
        Ok(())
    })
}

/// What `mqlite_queue_purge_filtered` did.
#[repr(C)]
pub struct mqlite_purge_report {
    /// Messages that passed the filter: waiting ones and those prefetched by a consumer (not
    /// handed out), with ids up to the bound; a dry run's count.
    pub matched: u64,
    /// Messages removed (0 on a dry run).
    pub purged: u64,
    /// The highest id that passed the filter; 0 when none did (ids start at 1).
    pub last: u64,
}

/// Removes the waiting messages (and those prefetched by a consumer, not handed out; never
/// those in flight) with ids up to `through` (0: every one), or with `dry_run` only counts
/// them, changing nothing. An operator's tool counts with a dry run, asks, then passes the
/// dry run's `last` as `through`, so that messages sent while it asked are kept (the Rust
/// `Queue::purge_filtered`). Writes what it did to `*report_out` (may be NULL).
/// Errors: `MQLITE_CLOSED`, `MQLITE_POISONED`, `MQLITE_NO_SPACE` (nothing removed),
/// `MQLITE_READ_ONLY` (a store opened read-only: only a dry run works).
#[no_mangle]
pub extern "C" fn mqlite_queue_purge_filtered(
    queue: *const mqlite_queue,
    through: u64,
    dry_run: bool,
    report_out: *mut mqlite_purge_report,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let filter = crate::PurgeFilter {
            through: (through != 0).then_some(crate::message::MessageId(through)),
            dry_run,
        };
        let r = unsafe { self::queue(queue) }?.purge_filtered(&filter)?;
        let out = mqlite_purge_report {
            matched: r.matched,
            purged: r.purged,
            last: r.last.map_or(0, |id| id.0),
        };
        unsafe { write_out(report_out, out) };
        Ok(())
    })
}

/// The queue's statistics, written to `*stats_out`.
#[no_mangle]
pub extern "C" fn mqlite_queue_stats(
    queue: *const mqlite_queue,
    stats_out: *mut mqlite_stats,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        out_ptr(stats_out, "stats_out")?;
        let s = q.stats()?;
        let out = mqlite_stats {
            depth: s.depth,
            in_flight: s.in_flight,
            delayed: s.delayed,
            messages: s.messages,
            bytes: s.bytes,
            enqueued: s.enqueued,
            acked: s.acked,
            redelivered: s.redelivered,
            dead_lettered: s.dead_lettered,
            expired: s.expired,
            discarded: s.discarded,
            replayed: s.replayed,
            prefetched: s.prefetched,
            replayed_out: s.replayed_out,
        };
        unsafe { write_out(stats_out, out) };
        Ok(())
    })
}

/// A consumer of this queue with ack mode `mode` (`MQLITE_ACK_*`) and the queue's prefetch. On
/// success `*consumer_out` owns it (free with `mqlite_consumer_free`).
#[no_mangle]
pub extern "C" fn mqlite_queue_consumer(
    queue: *const mqlite_queue,
    mode: u32,
    consumer_out: *mut *mut mqlite_consumer,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    mqlite_queue_consumer_prefetch(queue, mode, 0, consumer_out, err)
}

/// `mqlite_queue_consumer` with its own prefetch: up to `prefetch` messages are taken at once
/// with one durable delivery-count record and handed out one by one (0 = the queue's prefetch,
/// 1 = none; at most `MQLITE_MAX_PREFETCH`, else `MQLITE_INVALID_ARGUMENT`). Prefetched messages
/// not yet handed out go back uncounted when the consumer is freed; after a crash each counts
/// one failed delivery.
#[no_mangle]
pub extern "C" fn mqlite_queue_consumer_prefetch(
    queue: *const mqlite_queue,
    mode: u32,
    prefetch: u32,
    consumer_out: *mut *mut mqlite_consumer,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        out_ptr(consumer_out, "consumer_out")?;
        let ack_mode = ack_mode(mode)?;
        q.engine.check()?;
        let options = ConsumerOptions {
            ack_mode,
            prefetch: (prefetch != 0).then_some(prefetch),
        };
        options.validate()?;
        let consumer = q.consumer(options);
        unsafe { hand_out(consumer, ack_mode, consumer_out) };
        Ok(())
    })
}

/// A selective consumer of this queue (JMS `Session.createConsumer(queue, messageSelector)`)
/// with ack mode `mode` (`MQLITE_ACK_*`): it receives only the messages that `selector`
/// selects, wherever they sit in the queue, in delivery order among themselves; the messages it
/// does not select stay in the queue, in their order, for other consumers. On success
/// `*consumer_out` owns it (free with `mqlite_consumer_free`); it has the whole consumer API.
///
/// `selector` is `selector_len` bytes of UTF-8 (no NUL terminator needed) in the JMS message
/// selector language (the JMS 2.0 specification, section 3.8.1: SQL-92 conditional expressions
/// over message properties and the `JMSPriority`, `JMSTimestamp`, `JMSCorrelationID`,
/// `JMSMessageID`, `JMSDeliveryMode` and `JMSRedelivered` headers, with three-valued logic),
/// the same language as `mqlite_store_subscribe`'s selector. NULL (any length) or an empty
/// selector selects every message: the consumer is then a plain one, as from
/// `mqlite_queue_consumer`.
///
/// A selective consumer never prefetches (it takes only what it selects, holding nothing other
/// consumers could take), and it takes matching messages out of other consumers' prefetch
/// buffers too. Each receive reads the waiting messages ahead of its matches (their properties
/// are on disk): to pick one kind of message out of a large backlog often, subscribe to a
/// topic with that selector instead (evaluated once, at publish).
///
/// Errors (nothing is created and the queue is untouched): `MQLITE_NULL_ARGUMENT` for a NULL
/// `queue` or `consumer_out`; `MQLITE_INVALID_UTF8` when `selector` is not UTF-8;
/// `MQLITE_INVALID_ARGUMENT` for a selector that does not parse (the error message names the
/// 1-based character position and what was expected there: `invalid selector at character 8:
/// expected ...`) or is longer than 64 KiB, a `selector_len` above `PTRDIFF_MAX` (such as
/// `SIZE_MAX`), or an unknown `mode`; `MQLITE_CLOSED` after the store is closed.
#[no_mangle]
pub extern "C" fn mqlite_queue_consumer_selector(
    queue: *const mqlite_queue,
    selector: *const c_char,
    selector_len: usize,
    mode: u32,
    consumer_out: *mut *mut mqlite_consumer,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { self::queue(queue) }?;
        out_ptr(consumer_out, "consumer_out")?;
        let selector = match selector.is_null() {
            true => "",
            false => unsafe { utf8(selector, selector_len, "selector") }?,
        };
        let ack_mode = ack_mode(mode)?;
        q.engine.check()?;
        let options = ConsumerOptions {
            ack_mode,
            prefetch: None,
        };
        let consumer = q.consumer_with_selector(options, selector)?;
        unsafe { hand_out(consumer, ack_mode, consumer_out) };
        Ok(())
    })
}

/// Gives `consumer` to the caller through `out` (checked non-NULL by the caller), to be freed
/// with `mqlite_consumer_free`. Auto-ack consumers settle what they hand out themselves.
unsafe fn hand_out(consumer: Consumer, ack_mode: AckMode, out: *mut *mut mqlite_consumer) {
    let auto_ack = ack_mode == AckMode::Auto;
    let c = mqlite_consumer { consumer, auto_ack };
    unsafe { write_out(out, Box::into_raw(Box::new(c))) };
}

/// Whether this queue keeps its messages only in memory (`MQLITE_DURABILITY_MEMORY`); false for
/// NULL.
#[no_mangle]
pub extern "C" fn mqlite_queue_is_memory(queue: *const mqlite_queue) -> bool {
    guard_value(false, || {
        unsafe { queue.as_ref() }.map(|q| q.queue.is_memory())
    })
}
