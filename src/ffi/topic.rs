//! `mqlite_topic` (publish) and subscriptions (`mqlite_store_subscribe`: an `mqlite_queue` with
//! the whole receiving API).

use std::ffi::{c_char, c_void};

use super::boundary::{arg, guard, guard_value, name, out_ptr, utf8, write_out, Failure};
use super::error::{mqlite_error, mqlite_status};
use super::message::mqlite_message;
use super::options::mqlite_queue_options;
use super::queue::{
    batch_of, completion, mqlite_free_fn, mqlite_queue, mqlite_send_callback, write_ids,
};
use super::store::mqlite_store;
use crate::topic::{SubscriptionOptions, Topic};

/// A handle to one topic. Made by `mqlite_store_topic`, freed exactly once by
/// `mqlite_topic_free`. Thread-safe. A topic is no stored object: the handle is its checked
/// name.
pub struct mqlite_topic {
    topic: Topic,
}

/// A topic's counters since the store was opened.
#[repr(C)]
pub struct mqlite_topic_stats {
    /// Messages published that reached at least one subscription.
    pub published: u64,
    /// Messages published while no subscription matched: stored nowhere.
    pub unrouted: u64,
    /// Subscriptions whose pattern matches the topic now.
    pub subscriptions: u64,
}

/// The bits of `mqlite_store_subscribe`'s `flags` (OR them together; 0: non-durable, unshared).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_subscribe_flag {
    /// Durable: keeps collecting while no subscriber is attached and across restarts, until
    /// `mqlite_store_unsubscribe`.
    MQLITE_SUBSCRIBE_DURABLE = 1,
    /// Shared: several handles consume it as competing consumers (JMS 2.0).
    MQLITE_SUBSCRIBE_SHARED = 2,
}

const DURABLE: u32 = mqlite_subscribe_flag::MQLITE_SUBSCRIBE_DURABLE as u32;
const SHARED: u32 = mqlite_subscribe_flag::MQLITE_SUBSCRIBE_SHARED as u32;

unsafe fn topic<'a>(t: *const mqlite_topic) -> Result<&'a Topic, Failure> {
    Ok(&unsafe { arg(t, "topic") }?.topic)
}

/// A handle to topic `topic_name` (`name_len` bytes of UTF-8: dot-separated segments, no
/// wildcards, e.g. `orders.eu.created`). `MQLITE_INVALID_NAME` names the rule broken.
#[no_mangle]
pub extern "C" fn mqlite_store_topic(
    store: *const mqlite_store,
    topic_name: *const c_char,
    name_len: usize,
    topic_out: *mut *mut mqlite_topic,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(topic_out, "topic_out")?;
        if topic_name.is_null() {
            return Err(Failure::null("name"));
        }
        let n = unsafe { name(topic_name, name_len) }?;
        s.store.check()?;
        let topic = s.store.topic(n)?;
        unsafe { write_out(topic_out, Box::into_raw(Box::new(mqlite_topic { topic }))) };
        Ok(())
    })
}

/// Frees a topic handle. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_topic_free(topic: *mut mqlite_topic) {
    guard_value((), || {
        if !topic.is_null() {
            // SAFETY: made by `mqlite_store_topic`, freed once.
            drop(unsafe { Box::from_raw(topic) });
        }
        Some(())
    })
}

/// Publishes a copy of `message` to every subscription whose pattern and selector match (the
/// body stored once, one reference per subscription, in one journal record) and waits until it
/// is durable. Writes its id (the same in every subscription) to `*id_out` (may be NULL). When
/// nothing matches, nothing is stored and the topic's `unrouted` counter counts it.
/// `MQLITE_INVALID_ARGUMENT` for a message with a dedup key or repeats; `MQLITE_QUEUE_FULL`
/// naming a subscription at its limit whose overflow policy is reject, or whose block wait
/// timed out (nothing is stored); a drop-oldest subscription makes room as a queue does.
#[no_mangle]
pub extern "C" fn mqlite_topic_publish(
    topic: *const mqlite_topic,
    message: *const mqlite_message,
    id_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { self::topic(topic) }?;
        let m = unsafe { arg(message, "message") }?;
        let id = t.publish(m.msg.clone())?;
        unsafe { write_out(id_out, id.0) };
        Ok(())
    })
}

/// Publishes a copy of `message` without waiting; `callback` and `free_user_data` follow the
/// rules of `mqlite_queue_send_async`.
#[no_mangle]
pub extern "C" fn mqlite_topic_publish_async(
    topic: *const mqlite_topic,
    message: *const mqlite_message,
    callback: mqlite_send_callback,
    user_data: *mut c_void,
    free_user_data: mqlite_free_fn,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { self::topic(topic) }?;
        let m = unsafe { arg(message, "message") }?;
        t.publish_async_with(
            m.msg.clone(),
            completion(callback, user_data, free_user_data),
        )?;
        Ok(())
    })
}

/// Publishes copies of `count` messages with one lock, one journal write and one wait; ids go
/// to `ids_out[0..count]` (may be NULL). If one is refused the ones before it are published and
/// the error names its index; `ids_out` is then not written.
#[no_mangle]
pub extern "C" fn mqlite_topic_publish_batch(
    topic: *const mqlite_topic,
    messages: *const *const mqlite_message,
    count: usize,
    ids_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { self::topic(topic) }?;
        let batch = batch_of(messages, count)?;
        if batch.is_empty() {
            return Ok(());
        }
        let ids = t.publish_batch(batch)?;
        write_ids(&ids, ids_out);
        Ok(())
    })
}

/// The topic's counters (see `mqlite_topic_stats`).
#[no_mangle]
pub extern "C" fn mqlite_topic_stats_get(
    topic: *const mqlite_topic,
    stats_out: *mut mqlite_topic_stats,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { self::topic(topic) }?;
        out_ptr(stats_out, "stats_out")?;
        let s = t.stats()?;
        let out = mqlite_topic_stats {
            published: s.published,
            unrouted: s.unrouted,
            subscriptions: s.subscriptions,
        };
        unsafe { write_out(stats_out, out) };
        Ok(())
    })
}

/// Subscribes to the topics matching `pattern` (`*` one segment, `>` all remaining ones, as
/// ActiveMQ and NATS) and writes the subscription to `*queue_out`: an `mqlite_queue` with the
/// whole receiving API (receive, consumers, listeners, browse, stats, settling); freeing it
/// detaches the subscriber (a non-durable subscription ends with its last one).
/// `sub_name` (`sub_name_len` bytes) may be NULL for a non-durable unshared subscription;
/// `flags` is a bitwise OR of `MQLITE_SUBSCRIBE_DURABLE` and `MQLITE_SUBSCRIBE_SHARED`;
/// `selector` (`selector_len` bytes; NULL: every message) is a JMS message selector evaluated
/// at publish time; `options` (may be NULL) are the subscription queue's own (redelivery
/// policy, dead-letter strategy, limits, prefetch and ack durability:
/// `mqlite_queue_options_set_consuming`). Subscribing again under a name with another pattern
/// or selector replaces the subscription and drops what it held (JMS).
/// Errors: `MQLITE_INVALID_NAME` (pattern, name), `MQLITE_INVALID_ARGUMENT` (a selector that
/// does not parse, naming the character position; a durable or shared subscription without a
/// name; unknown flags; a subscription in use by another subscriber).
// Eleven parameters: the C shape of one call with optional strings (pointer + length each).
#[allow(clippy::too_many_arguments)]
#[no_mangle]
pub extern "C" fn mqlite_store_subscribe(
    store: *const mqlite_store,
    pattern: *const c_char,
    pattern_len: usize,
    sub_name: *const c_char,
    sub_name_len: usize,
    flags: u32,
    selector: *const c_char,
    selector_len: usize,
    options: *const mqlite_queue_options,
    queue_out: *mut *mut mqlite_queue,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(queue_out, "queue_out")?;
        if pattern.is_null() {
            return Err(Failure::null("pattern"));
        }
        if flags & !(DURABLE | SHARED) != 0 {
            return Err(Failure::invalid(format!(
                "unknown subscribe flags {flags:#x}: use MQLITE_SUBSCRIBE_DURABLE and MQLITE_SUBSCRIBE_SHARED"
            )));
        }
        let pattern = unsafe { name(pattern, pattern_len) }?;
        let sub_name = match sub_name.is_null() {
            true => None,
            false => Some(unsafe { name(sub_name, sub_name_len) }?.to_string()),
        };
        let selector = match selector.is_null() {
            true => None,
            false => Some(unsafe { utf8(selector, selector_len, "selector") }?.to_string()),
        };
        let queue = match options.is_null() {
            true => Default::default(),
            false => unsafe { arg(options, "options") }?.opts.clone(),
        };
        let o = SubscriptionOptions {
            name: sub_name,
            durable: flags & DURABLE != 0,
            shared: flags & SHARED != 0,
            selector,
            queue,
        };
        let sub = s.store.subscribe(pattern, o)?;
        let h = mqlite_queue {
            queue: sub.queue().clone(),
            sub: Some(sub),
        };
        unsafe { write_out(queue_out, Box::into_raw(Box::new(h))) };
        Ok(())
    })
}

/// Ends subscription `sub_name` and drops every message it holds (JMS `unsubscribe`).
/// `MQLITE_NOT_FOUND` if there is none; `MQLITE_INVALID_ARGUMENT` while a subscriber handle is
/// open on it.
#[no_mangle]
pub extern "C" fn mqlite_store_unsubscribe(
    store: *const mqlite_store,
    sub_name: *const c_char,
    sub_name_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        if sub_name.is_null() {
            return Err(Failure::null("name"));
        }
        let n = unsafe { name(sub_name, sub_name_len) }?;
        s.store.unsubscribe(n)?;
        Ok(())
    })
}
