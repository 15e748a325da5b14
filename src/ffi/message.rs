//! `mqlite_message`: building messages to send, and reading received, browsed or dead letters.

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::{
    arg, arg_mut, bytes, guard, guard_value, out_ptr, utf8, write_out, Failure, FfiResult,
};
use super::error::{mqlite_error, mqlite_status};
use crate::message::{DeadLetterReason, Message, Value};

/// A message: body, properties and headers. Made by `mqlite_message_new` (caller frees it with
/// `mqlite_message_free`; sending copies it, so one message may be sent many times), or owned
/// by a delivery (`mqlite_delivery_message`, do not free). Not safe to mutate from two threads.
pub struct mqlite_message {
    pub(crate) msg: Message,
}

/// The type of a property value.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_value_kind {
    /// UTF-8 text in `data`/`len` (not NUL-terminated).
    MQLITE_VALUE_STRING = 0,
    /// `int_value`.
    MQLITE_VALUE_INT = 1,
    /// `float_value`.
    MQLITE_VALUE_FLOAT = 2,
    /// `bool_value`.
    MQLITE_VALUE_BOOL = 3,
    /// Raw bytes in `data`/`len`.
    MQLITE_VALUE_BYTES = 4,
}

/// A property value read from a message. `data` points into the message and is valid until
/// the message (or its delivery) is freed or the property is replaced.
#[repr(C)]
pub struct mqlite_value {
    /// Which field holds the value.
    pub kind: mqlite_value_kind,
    /// For `MQLITE_VALUE_INT`.
    pub int_value: i64,
    /// For `MQLITE_VALUE_FLOAT`.
    pub float_value: f64,
    /// For `MQLITE_VALUE_BOOL`.
    pub bool_value: bool,
    /// For `MQLITE_VALUE_STRING` and `MQLITE_VALUE_BYTES` (NULL for the others).
    pub data: *const u8,
    /// Length of `data` in bytes.
    pub len: usize,
}

/// Why a message was dead-lettered.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_dead_letter_reason {
    /// It failed more than `max_redeliveries` times.
    MQLITE_DEAD_LETTER_MAX_REDELIVERIES = 0,
    /// A consumer rejected it as poison.
    MQLITE_DEAD_LETTER_REJECTED = 1,
    /// Its time to live ran out before it was delivered.
    MQLITE_DEAD_LETTER_EXPIRED = 2,
    /// It was the oldest message of a full queue with the drop-oldest overflow policy.
    MQLITE_DEAD_LETTER_OVERFLOW = 3,
    /// A message of a group parked (group failure policy `park`) after an earlier one failed.
    MQLITE_DEAD_LETTER_GROUP_PARKED = 4,
}

/// What a dead letter says about why it died. The strings point into the message
/// (not NUL-terminated) and are valid while it is.
#[repr(C)]
pub struct mqlite_dead_letter_info {
    /// The queue it was sent to.
    pub original_queue: *const c_char,
    /// Length of `original_queue`.
    pub original_queue_len: usize,
    /// Its id in that queue.
    pub original_id: u64,
    /// Why it was dead-lettered.
    pub reason: mqlite_dead_letter_reason,
    /// The last failure text given to nack or reject (may be empty).
    pub last_failure: *const c_char,
    /// Length of `last_failure`.
    pub last_failure_len: usize,
    /// How many times it had been delivered.
    pub delivery_count: u32,
    /// When it first failed (ms since the epoch; 0 if it never failed).
    pub first_failure_ms: u64,
    /// When it last failed or was dead-lettered (ms since the epoch).
    pub last_failure_ms: u64,
}

pub(crate) fn boxed(msg: Message) -> *mut mqlite_message {
    Box::into_raw(Box::new(mqlite_message { msg }))
}

/// Makes a message with a copy of `body` (`body_len` bytes; NULL with 0 is an empty body) and
/// default headers (priority 4, no TTL, no delay). On success `*message_out` owns a new message
/// that the caller frees with `mqlite_message_free`.
#[no_mangle]
pub extern "C" fn mqlite_message_new(
    body: *const u8,
    body_len: usize,
    message_out: *mut *mut mqlite_message,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        out_ptr(message_out, "message_out")?;
        let b = unsafe { bytes(body, body_len, "body") }?;
        unsafe { write_out(message_out, boxed(Message::new(b))) };
        Ok(())
    })
}

/// Frees a message made by `mqlite_message_new` or returned by `mqlite_queue_browse`. NULL is a
/// no-op. Never free the message of a delivery.
#[no_mangle]
pub extern "C" fn mqlite_message_free(message: *mut mqlite_message) {
    guard_value((), || {
        if !message.is_null() {
            // SAFETY: made by `boxed`, freed once.
            drop(unsafe { Box::from_raw(message) });
        }
        Some(())
    })
}

fn set(
    message: *mut mqlite_message,
    err: *mut *mut mqlite_error,
    f: impl FnOnce(&mut Message) -> FfiResult,
) -> mqlite_status {
    guard(err, || f(&mut unsafe { arg_mut(message, "message") }?.msg))
}

/// Rebuilds the message through one of the core's builder methods (they take it by value).
fn rebuild(m: &mut Message, f: impl FnOnce(Message) -> Message) {
    *m = f(std::mem::replace(m, Message::new(Vec::new())));
}

/// Sets a UTF-8 string property (replacing one of the same key). Key and value are copied.
#[no_mangle]
pub extern "C" fn mqlite_message_set_property_string(
    message: *mut mqlite_message,
    key: *const c_char,
    key_len: usize,
    value: *const c_char,
    value_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        let k = unsafe { utf8(key, key_len, "key") }?;
        let v = unsafe { utf8(value, value_len, "value") }?;
        m.set_property(k, v);
        Ok(())
    })
}

/// Sets an integer property (replacing one of the same key).
#[no_mangle]
pub extern "C" fn mqlite_message_set_property_int(
    message: *mut mqlite_message,
    key: *const c_char,
    key_len: usize,
    value: i64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        m.set_property(unsafe { utf8(key, key_len, "key") }?, value);
        Ok(())
    })
}

/// Sets a floating-point property (replacing one of the same key).
#[no_mangle]
pub extern "C" fn mqlite_message_set_property_float(
    message: *mut mqlite_message,
    key: *const c_char,
    key_len: usize,
    value: f64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        m.set_property(unsafe { utf8(key, key_len, "key") }?, value);
        Ok(())
    })
}

/// Sets a boolean property (replacing one of the same key).
#[no_mangle]
pub extern "C" fn mqlite_message_set_property_bool(
    message: *mut mqlite_message,
    key: *const c_char,
    key_len: usize,
    value: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        m.set_property(unsafe { utf8(key, key_len, "key") }?, value);
        Ok(())
    })
}

/// Sets a bytes property (replacing one of the same key). The bytes are copied.
#[no_mangle]
pub extern "C" fn mqlite_message_set_property_bytes(
    message: *mut mqlite_message,
    key: *const c_char,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        let k = unsafe { utf8(key, key_len, "key") }?;
        let v = unsafe { bytes(value, value_len, "value") }?;
        m.set_property(k, v);
        Ok(())
    })
}

/// Sets the priority, 0–9 (higher first). Above 9 is `MQLITE_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn mqlite_message_set_priority(
    message: *mut mqlite_message,
    priority: u8,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        crate::options::check_priority(priority)?;
        rebuild(m, |x| x.priority(priority));
        Ok(())
    })
}

/// Sets the time to live in ms: a message not delivered in time expires and is never delivered
/// (it is dead-lettered as expired). 0 means it never expires (JMS's time to live of 0) and
/// clears an earlier time to live.
#[no_mangle]
pub extern "C" fn mqlite_message_set_ttl_ms(
    message: *mut mqlite_message,
    ttl_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        rebuild(m, |x| x.ttl(Duration::from_millis(ttl_ms)));
        Ok(())
    })
}

/// Sets the delivery delay in ms: the message becomes available that long after its send.
#[no_mangle]
pub extern "C" fn mqlite_message_set_delay_ms(
    message: *mut mqlite_message,
    delay_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        rebuild(m, |x| x.delay(Duration::from_millis(delay_ms)));
        Ok(())
    })
}

/// Sets the deliver-at time in ms since the epoch (by the store's clock).
#[no_mangle]
pub extern "C" fn mqlite_message_set_deliver_at_ms(
    message: *mut mqlite_message,
    at_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        rebuild(m, |x| x.deliver_at_ms(at_ms));
        Ok(())
    })
}

/// Sets the group key (JMSXGroupID, UTF-8): same-key messages are delivered in order, one at a time.
#[no_mangle]
pub extern "C" fn mqlite_message_set_group(
    message: *mut mqlite_message,
    group: *const c_char,
    group_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        let g = unsafe { utf8(group, group_len, "group") }?;
        rebuild(m, |x| x.group(g));
        Ok(())
    })
}

/// Sets the dedup key (UTF-8): a second send with the same key within the queue's dedup window
/// stores nothing and returns the first message's id.
#[no_mangle]
pub extern "C" fn mqlite_message_set_dedup_key(
    message: *mut mqlite_message,
    dedup_key: *const c_char,
    dedup_key_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        let k = unsafe { utf8(dedup_key, dedup_key_len, "dedup_key") }?;
        rebuild(m, |x| x.dedup_key(k));
        Ok(())
    })
}

/// Sets the correlation id (UTF-8).
#[no_mangle]
pub extern "C" fn mqlite_message_set_correlation_id(
    message: *mut mqlite_message,
    correlation_id: *const c_char,
    correlation_id_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        let c = unsafe { utf8(correlation_id, correlation_id_len, "correlation_id") }?;
        rebuild(m, |x| x.correlation_id(c));
        Ok(())
    })
}

/// Scheduled repeats (ActiveMQ's AMQ_SCHEDULED_PERIOD / AMQ_SCHEDULED_REPEAT): after its first
/// delivery time the message is delivered `repeats` more times, `period_ms` apart (0 counts as
/// 1 ms), each occurrence a new message with its own id. `repeats` 0 clears it. The store's
/// timer makes each occurrence when the previous one is due, whether or not anyone receives;
/// an occurrence more than 1 s late (the store was closed) skips the missed slots (one late
/// occurrence, then the first slot after now: Quartz's "fire once now"). See the Rust
/// `Message::repeat` for the rule.
#[no_mangle]
pub extern "C" fn mqlite_message_set_repeat(
    message: *mut mqlite_message,
    period_ms: u64,
    repeats: u32,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    set(message, err, |m| {
        rebuild(m, |x| x.repeat(Duration::from_millis(period_ms), repeats));
        Ok(())
    })
}

/// The scheduled repeats left (period in ms, repeats), or `MQLITE_NOT_FOUND` if none.
#[no_mangle]
pub extern "C" fn mqlite_message_repeat(
    message: *const mqlite_message,
    period_ms_out: *mut u64,
    repeats_out: *mut u32,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        out_ptr(period_ms_out, "period_ms_out")?;
        out_ptr(repeats_out, "repeats_out")?;
        let (p, r) = m.get_repeat().ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_NOT_FOUND,
                "the message does not repeat",
            )
        })?;
        unsafe {
            write_out(period_ms_out, p);
            write_out(repeats_out, r);
        }
        Ok(())
    })
}

/// The body: `*data_out` points into the message (valid while it is; may be NULL when the
/// length is 0), `*len_out` is its length.
#[no_mangle]
pub extern "C" fn mqlite_message_body(
    message: *const mqlite_message,
    data_out: *mut *const u8,
    len_out: *mut usize,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        out_ptr(data_out, "data_out")?;
        out_ptr(len_out, "len_out")?;
        unsafe {
            write_out(data_out, m.body().as_ptr());
            write_out(len_out, m.body().len());
        }
        Ok(())
    })
}

/// The message id (on sent, delivered and browsed messages); 0 for a new message or NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_id(message: *const mqlite_message) -> u64 {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.id().map_or(0, |i| i.0))
    })
}

/// The priority (0–9); 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_priority(message: *const mqlite_message) -> u8 {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.get_priority())
    })
}

/// When it was sent (ms since the epoch); 0 before it is sent, or for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_timestamp_ms(message: *const mqlite_message) -> u64 {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.timestamp_ms())
    })
}

/// When it expires (ms since the epoch); 0 if never, or for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_expires_at_ms(message: *const mqlite_message) -> u64 {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.expires_at_ms())
    })
}

fn header(
    message: *const mqlite_message,
    data_out: *mut *const c_char,
    len_out: *mut usize,
    get: fn(&Message) -> Option<&str>,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        out_ptr(data_out, "data_out")?;
        out_ptr(len_out, "len_out")?;
        let s = get(m).ok_or_else(|| {
            Failure::new(mqlite_status::MQLITE_NOT_FOUND, "the header is not set")
        })?;
        unsafe {
            write_out(data_out, s.as_ptr().cast());
            write_out(len_out, s.len());
        }
        Ok(())
    })
}

/// The correlation id (pointer into the message, not NUL-terminated, + length), or
/// `MQLITE_NOT_FOUND` if unset.
#[no_mangle]
pub extern "C" fn mqlite_message_correlation_id(
    message: *const mqlite_message,
    data_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    header(message, data_out, len_out, Message::get_correlation_id)
}

/// The topic it was published to (as `mqlite_message_correlation_id`), on a message of a
/// subscription or a dead letter of one; `MQLITE_NOT_FOUND` for a message sent to a queue.
#[no_mangle]
pub extern "C" fn mqlite_message_topic(
    message: *const mqlite_message,
    data_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    header(message, data_out, len_out, Message::topic)
}

/// The group key (as `mqlite_message_correlation_id`), or `MQLITE_NOT_FOUND` if unset.
#[no_mangle]
pub extern "C" fn mqlite_message_group(
    message: *const mqlite_message,
    data_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    header(message, data_out, len_out, Message::get_group)
}

/// The dedup key (as `mqlite_message_correlation_id`), or `MQLITE_NOT_FOUND` if unset.
#[no_mangle]
pub extern "C" fn mqlite_message_dedup_key(
    message: *const mqlite_message,
    data_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    header(message, data_out, len_out, Message::get_dedup_key)
}

/// The number of properties; 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_message_property_count(message: *const mqlite_message) -> usize {
    guard_value(0, || {
        unsafe { message.as_ref() }.map(|m| m.msg.properties().len())
    })
}

fn value_out(v: &Value) -> mqlite_value {
    let mut out = mqlite_value {
        kind: mqlite_value_kind::MQLITE_VALUE_INT,
        int_value: 0,
        float_value: 0.0,
        bool_value: false,
        data: std::ptr::null(),
        len: 0,
    };
    match v {
        Value::Str(s) => {
            (out.kind, out.data, out.len) =
                (mqlite_value_kind::MQLITE_VALUE_STRING, s.as_ptr(), s.len())
        }
        Value::Int(i) => out.int_value = *i,
        Value::Float(f) => {
            (out.kind, out.float_value) = (mqlite_value_kind::MQLITE_VALUE_FLOAT, *f)
        }
        Value::Bool(b) => (out.kind, out.bool_value) = (mqlite_value_kind::MQLITE_VALUE_BOOL, *b),
        Value::Bytes(b) => {
            (out.kind, out.data, out.len) =
                (mqlite_value_kind::MQLITE_VALUE_BYTES, b.as_ptr(), b.len())
        }
    }
    out
}

/// The `index`-th property (in the order set): its key (pointer into the message + length) and
/// value. `MQLITE_NOT_FOUND` if `index` is out of range.
#[no_mangle]
pub extern "C" fn mqlite_message_property_at(
    message: *const mqlite_message,
    index: usize,
    key_out: *mut *const c_char,
    key_len_out: *mut usize,
    value_out_: *mut mqlite_value,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        out_ptr(key_out, "key_out")?;
        out_ptr(key_len_out, "key_len_out")?;
        out_ptr(value_out_, "value_out")?;
        let (k, v) = m.properties().get(index).ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_NOT_FOUND,
                format!("no property at index {index}"),
            )
        })?;
        unsafe {
            write_out(key_out, k.as_ptr().cast());
            write_out(key_len_out, k.len());
            write_out(value_out_, value_out(v));
        }
        Ok(())
    })
}

/// The property named `key` (UTF-8), or `MQLITE_NOT_FOUND`.
#[no_mangle]
pub extern "C" fn mqlite_message_property(
    message: *const mqlite_message,
    key_ptr: *const c_char,
    key_len: usize,
    value_out_: *mut mqlite_value,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        let k = unsafe { utf8(key_ptr, key_len, "key") }?;
        out_ptr(value_out_, "value_out")?;
        let v = m.get_property(k).ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_NOT_FOUND,
                format!("no property {k:?}"),
            )
        })?;
        unsafe { write_out(value_out_, value_out(v)) };
        Ok(())
    })
}

/// Why this message died, on a message read from a dead-letter queue; `MQLITE_NOT_FOUND` for
/// a message that is not a dead letter.
#[no_mangle]
pub extern "C" fn mqlite_message_dead_letter_info(
    message: *const mqlite_message,
    info_out: *mut mqlite_dead_letter_info,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let m = &unsafe { arg(message, "message") }?.msg;
        out_ptr(info_out, "info_out")?;
        let d = m.dead_letter_info().ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_NOT_FOUND,
                "the message is not a dead letter",
            )
        })?;
        let reason = match d.reason {
            DeadLetterReason::MaxRedeliveries => {
                mqlite_dead_letter_reason::MQLITE_DEAD_LETTER_MAX_REDELIVERIES
            }
            DeadLetterReason::Rejected => mqlite_dead_letter_reason::MQLITE_DEAD_LETTER_REJECTED,
            DeadLetterReason::Expired => mqlite_dead_letter_reason::MQLITE_DEAD_LETTER_EXPIRED,
            DeadLetterReason::Overflow => mqlite_dead_letter_reason::MQLITE_DEAD_LETTER_OVERFLOW,
            DeadLetterReason::GroupParked => {
                mqlite_dead_letter_reason::MQLITE_DEAD_LETTER_GROUP_PARKED
            }
        };
        let info = mqlite_dead_letter_info {
            original_queue: d.original_queue.as_ptr().cast(),
            original_queue_len: d.original_queue.len(),
            original_id: d.original_id.0,
            reason,
            last_failure: d.last_failure.as_ptr().cast(),
            last_failure_len: d.last_failure.len(),
            delivery_count: d.delivery_count,
            first_failure_ms: d.first_failure_ms,
            last_failure_ms: d.last_failure_ms,
        };
        unsafe { write_out(info_out, info) };
        Ok(())
    })
}
