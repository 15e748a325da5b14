//! Option builders: `mqlite_store_options`, `mqlite_queue_options`, `mqlite_redelivery_policy`.
//!
//! Opaque builders with one setter per field rather than C structs, so fields can be added
//! without breaking the ABI. Each is made by `_new` with the core's defaults and freed by `_free`.

use std::ffi::c_char;
use std::time::Duration;

use super::boundary::{arg, arg_mut, guard, guard_value, utf8, Failure, FfiResult};
use super::error::{mqlite_error, mqlite_status};
use crate::options::{
    AckDurability, AckMode, DeadLetterStrategy, Durability, GroupFailurePolicy, OverflowPolicy,
    QueueOptions, StoreOptions,
};
use crate::policy::RedeliveryPolicy;

/// Durability modes (the durability contract at the top of this header), for `mqlite_store_options_set_durability` and
/// `mqlite_queue_options_set_durability`.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_durability {
    /// Returns (or fires its callback) only after the record is fdatasync'd. The default.
    MQLITE_DURABILITY_SYNC = 0,
    /// Returns after write(2); fsync at most `max_delay_ms` later (the other faces' default is
    /// `MQLITE_DEFAULT_BATCHED_MAX_DELAY_MS`). A power failure may lose the last `max_delay_ms`;
    /// a process crash loses nothing.
    MQLITE_DURABILITY_BATCHED = 1,
    /// Not persisted (JMS NON_PERSISTENT): gone on restart.
    MQLITE_DURABILITY_MEMORY = 2,
}

/// Dead-letter strategies, for `..._set_dead_letter`.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_dead_letter_strategy {
    /// One queue for the store; `name` is its name (default `"DLQ"`).
    MQLITE_DEAD_LETTER_SHARED = 0,
    /// `name` is a prefix put before each queue's name (default `"DLQ."`).
    MQLITE_DEAD_LETTER_INDIVIDUAL = 1,
    /// Dead letters are dropped (and counted in stats); `name` is ignored.
    MQLITE_DEAD_LETTER_DISCARD = 2,
}

/// What a send does when its queue is at its backlog limit.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_overflow {
    /// Fail at once with `MQLITE_QUEUE_FULL`. The default.
    MQLITE_OVERFLOW_REJECT = 0,
    /// Wait up to a timeout for room (the other faces' default is `MQLITE_DEFAULT_BLOCK_TIMEOUT_MS`),
    /// then fail with `MQLITE_QUEUE_FULL`.
    MQLITE_OVERFLOW_BLOCK = 1,
    /// Dead-letter the oldest message (reason `overflow`) to make room.
    MQLITE_OVERFLOW_DROP_OLDEST = 2,
}

/// What happens to a message group when one of its messages fails.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_group_failure {
    /// Retry the failed message in place; the group waits. The default.
    MQLITE_GROUP_FAILURE_BLOCK = 0,
    /// Dead-letter the failed message and go on with the group.
    MQLITE_GROUP_FAILURE_SKIP = 1,
    /// Dead-letter the failed message and the rest of its group until replayed.
    MQLITE_GROUP_FAILURE_PARK = 2,
}

/// When `mqlite_delivery_ack` is durable (queue option).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_ack_durability {
    /// The ack returns once queued for the next group commit (within about a millisecond); a
    /// crash before it redelivers the message, never loses it. The default.
    MQLITE_ACK_DURABILITY_LAZY = 0,
    /// The ack returns once fdatasync'd (as `mqlite_delivery_ack_sync`).
    MQLITE_ACK_DURABILITY_SYNC = 1,
}

/// Acknowledgement modes of a consumer.
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_ack_mode {
    /// Each delivery is settled on its own. The default.
    MQLITE_ACK_EXPLICIT = 0,
    /// Acking a delivery acks everything this consumer received before it.
    MQLITE_ACK_CUMULATIVE = 1,
    /// Acked on hand-over: at-most-once.
    MQLITE_ACK_AUTO = 2,
}

pub(crate) fn durability(mode: u32, max_delay_ms: u64) -> FfiResult<Durability> {
    Ok(match mode {
        x if x == mqlite_durability::MQLITE_DURABILITY_SYNC as u32 => Durability::Sync,
        x if x == mqlite_durability::MQLITE_DURABILITY_BATCHED as u32 => Durability::Batched {
            max_delay: Duration::from_millis(max_delay_ms),
        },
        x if x == mqlite_durability::MQLITE_DURABILITY_MEMORY as u32 => Durability::Memory,
        _ => {
            return Err(Failure::invalid(format!(
                "{mode} is not an mqlite_durability"
            )))
        }
    })
}

pub(crate) fn ack_mode(mode: u32) -> FfiResult<AckMode> {
    Ok(match mode {
        x if x == mqlite_ack_mode::MQLITE_ACK_EXPLICIT as u32 => AckMode::Explicit,
        x if x == mqlite_ack_mode::MQLITE_ACK_CUMULATIVE as u32 => AckMode::Cumulative,
        x if x == mqlite_ack_mode::MQLITE_ACK_AUTO as u32 => AckMode::Auto,
        _ => {
            return Err(Failure::invalid(format!(
                "{mode} is not an mqlite_ack_mode"
            )))
        }
    })
}

unsafe fn dead_letter(
    strategy: u32,
    name: *const c_char,
    name_len: usize,
) -> FfiResult<DeadLetterStrategy> {
    let given = unsafe { utf8(name, name_len, "name") }?;
    let strategy = match strategy {
        x if x == mqlite_dead_letter_strategy::MQLITE_DEAD_LETTER_SHARED as u32 => match given {
            "" => DeadLetterStrategy::shared(),
            name => DeadLetterStrategy::Shared { name: name.into() },
        },
        x if x == mqlite_dead_letter_strategy::MQLITE_DEAD_LETTER_INDIVIDUAL as u32 => {
            match given {
                "" => DeadLetterStrategy::individual(),
                prefix => DeadLetterStrategy::Individual {
                    prefix: prefix.into(),
                },
            }
        }
        x if x == mqlite_dead_letter_strategy::MQLITE_DEAD_LETTER_DISCARD as u32 => {
            DeadLetterStrategy::Discard
        }
        _ => {
            return Err(Failure::invalid(format!(
                "{strategy} is not an mqlite_dead_letter_strategy"
            )))
        }
    };
    strategy.validate()?;
    Ok(strategy)
}

/// Options for `mqlite_store_open`. Not thread-safe; may be freed right after the open.
pub struct mqlite_store_options {
    pub(crate) opts: StoreOptions,
}

/// Options for `mqlite_store_queue_with`. Not thread-safe; may be freed right after use.
pub struct mqlite_queue_options {
    pub(crate) opts: QueueOptions,
}

/// A redelivery policy with ActiveMQ's defaults: 6 redeliveries, 1 s apart, no backoff.
/// Set into store or queue options (which copy it); free it with `mqlite_redelivery_policy_free`.
pub struct mqlite_redelivery_policy {
    pub(crate) policy: RedeliveryPolicy,
}

// ---------------------------------------------------------------- store options

/// New store options with the defaults (sync durability, default redelivery policy, shared
/// `DLQ`, 16 MiB body limit, …). Free with `mqlite_store_options_free`. Returns NULL only if
/// allocation failed.
#[no_mangle]
pub extern "C" fn mqlite_store_options_new() -> *mut mqlite_store_options {
    guard_value(std::ptr::null_mut(), || {
        Some(Box::into_raw(Box::new(mqlite_store_options {
            opts: StoreOptions::default(),
        })))
    })
}

/// Frees store options. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_store_options_free(options: *mut mqlite_store_options) {
    guard_value((), || {
        if !options.is_null() {
            // SAFETY: made by `mqlite_store_options_new`, freed once.
            drop(unsafe { Box::from_raw(options) });
        }
        Some(())
    })
}

/// Sets the default durability of every queue: one of `MQLITE_DURABILITY_*`; `max_delay_ms`
/// is used by `MQLITE_DURABILITY_BATCHED` only. Unknown modes: `MQLITE_INVALID_ARGUMENT`.
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_durability(
    options: *mut mqlite_store_options,
    durability_mode: u32,
    max_delay_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.durability = durability(durability_mode, max_delay_ms)?;
        Ok(())
    })
}

/// Sets the store's default redelivery policy (copied; `policy` stays the caller's).
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_redelivery(
    options: *mut mqlite_store_options,
    policy: *const mqlite_redelivery_policy,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.redelivery = unsafe { arg(policy, "policy") }?.policy.clone();
        Ok(())
    })
}

/// Sets the store's default dead-letter strategy (`MQLITE_DEAD_LETTER_*`). `name`/`name_len`
/// (UTF-8) is the shared queue's name or the individual prefix; an empty name means the
/// default (`MQLITE_DEFAULT_DEAD_LETTER_QUEUE` / `MQLITE_DEFAULT_DEAD_LETTER_PREFIX`).
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_dead_letter(
    options: *mut mqlite_store_options,
    strategy: u32,
    name: *const c_char,
    name_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.dead_letter = unsafe { dead_letter(strategy, name, name_len) }?;
        Ok(())
    })
}

/// Sets limits: the largest body accepted (default `MQLITE_DEFAULT_MAX_BODY_BYTES`, 16 MiB, at
/// most `MQLITE_MAX_BODY_BYTES`) and the journal segment size (default
/// `MQLITE_DEFAULT_SEGMENT_BYTES`, 64 MiB; `MQLITE_MIN_SEGMENT_BYTES` to
/// `MQLITE_MAX_SEGMENT_BYTES`). 0 keeps the current value. A value out of range is
/// `MQLITE_INVALID_ARGUMENT` and changes nothing.
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_limits(
    options: *mut mqlite_store_options,
    max_body_bytes: usize,
    segment_bytes: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        let mut next = o.opts.clone();
        if max_body_bytes != 0 {
            next.max_body_bytes = max_body_bytes;
        }
        if segment_bytes != 0 {
            next.segment_bytes = segment_bytes;
        }
        next.validate()?;
        o.opts = next;
        Ok(())
    })
}

/// Sets the producer window of async sends: at most `max_bytes` bytes and `max_messages`
/// messages outstanding (0 keeps the current value); when full, `send_async` blocks
/// (`block` true, the default) or fails with `MQLITE_QUEUE_FULL`.
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_producer_window(
    options: *mut mqlite_store_options,
    max_bytes: usize,
    max_messages: usize,
    block: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        if max_bytes != 0 {
            o.opts.max_pending_bytes = max_bytes;
        }
        if max_messages != 0 {
            o.opts.max_pending_messages = max_messages;
        }
        o.opts.block_when_window_full = block;
        Ok(())
    })
}

/// Sets whether open creates a missing directory (default true) and whether it repairs a
/// damaged journal by quarantining damaged ranges instead of failing with `MQLITE_CORRUPT`
/// (default false).
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_open_flags(
    options: *mut mqlite_store_options,
    create: bool,
    repair: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.create = create;
        o.opts.repair = repair;
        Ok(())
    })
}

/// Sets whether open only reads the store (default false; the Rust `StoreOptions::read_only`):
/// for a store this process cannot or must not write — a read-only file system, a snapshot,
/// another user's directory. Such an open takes no lock, joins no owner and writes nothing in
/// the directory (recovery runs in memory); every call that would change the store (send,
/// receive, settle, purge other than a dry run, replay, compact, subscribe, declaring a queue
/// the store lacks) fails with `MQLITE_READ_ONLY`. The open fails with
/// `MQLITE_INVALID_ARGUMENT` together with repair (a repair writes) or with
/// `MQLITE_OPEN_AS_CLIENT` (a client reads through an owner, which may write). What it shows
/// is the durable state as read at open; a live owner may since have changed it.
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_read_only(
    options: *mut mqlite_store_options,
    read_only: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.read_only = read_only;
        Ok(())
    })
}

// ---------------------------------------------------------------- redelivery policy

/// A new redelivery policy with the defaults. Free with `mqlite_redelivery_policy_free`.
/// Returns NULL only if allocation failed.
#[no_mangle]
pub extern "C" fn mqlite_redelivery_policy_new() -> *mut mqlite_redelivery_policy {
    guard_value(std::ptr::null_mut(), || {
        Some(Box::into_raw(Box::new(mqlite_redelivery_policy {
            policy: RedeliveryPolicy::default(),
        })))
    })
}

/// Frees a redelivery policy. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_redelivery_policy_free(policy: *mut mqlite_redelivery_policy) {
    guard_value((), || {
        if !policy.is_null() {
            // SAFETY: made by `mqlite_redelivery_policy_new`, freed once.
            drop(unsafe { Box::from_raw(policy) });
        }
        Some(())
    })
}

/// Sets the formula: `max_redeliveries` (−1 unlimited, 0 = the first failure dead-letters;
/// default `MQLITE_DEFAULT_MAX_REDELIVERIES`), the delay before the first redelivery and the
/// delay before later ones (milliseconds; default `MQLITE_DEFAULT_REDELIVERY_DELAY_MS`). With
/// exponential backoff, a zero delay is followed by `delay_ms` and then multiplied (as
/// ActiveMQ: initial 0, delay 1000, multiplier 2 give 0, 1000, 2000, 4000 ms). Values below −1
/// are `MQLITE_INVALID_ARGUMENT` and change nothing.
#[no_mangle]
pub extern "C" fn mqlite_redelivery_policy_set(
    policy: *mut mqlite_redelivery_policy,
    max_redeliveries: i32,
    initial_delay_ms: u64,
    delay_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let p = unsafe { arg_mut(policy, "policy") }?;
        let next = RedeliveryPolicy {
            max_redeliveries,
            initial_redelivery_delay: Duration::from_millis(initial_delay_ms),
            redelivery_delay: Duration::from_millis(delay_ms),
            ..p.policy.clone()
        };
        next.validate()?;
        p.policy = next;
        Ok(())
    })
}

/// Sets exponential backoff (each later delay = previous × `multiplier`; default
/// `MQLITE_DEFAULT_BACKOFF_MULTIPLIER`), the cap on any delay (`max_delay_ms`, 0 = none) and
/// ±15 % jitter (`collision_avoidance`). A multiplier that is not finite or below 1 is
/// `MQLITE_INVALID_ARGUMENT` and changes nothing.
#[no_mangle]
pub extern "C" fn mqlite_redelivery_policy_set_backoff(
    policy: *mut mqlite_redelivery_policy,
    exponential: bool,
    multiplier: f64,
    max_delay_ms: u64,
    collision_avoidance: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let p = unsafe { arg_mut(policy, "policy") }?;
        let next = RedeliveryPolicy {
            use_exponential_backoff: exponential,
            backoff_multiplier: multiplier,
            maximum_redelivery_delay: (max_delay_ms != 0)
                .then(|| Duration::from_millis(max_delay_ms)),
            use_collision_avoidance: collision_avoidance,
            ..p.policy.clone()
        };
        next.validate()?;
        p.policy = next;
        Ok(())
    })
}

/// Replaces the formula with an explicit list of delays (NATS-style): the n-th redelivery waits
/// `delays_ms[n-1]`, or the last entry past the end. `count` 0 (with `delays_ms` NULL allowed)
/// goes back to the formula. The array is copied.
#[no_mangle]
pub extern "C" fn mqlite_redelivery_policy_set_delays(
    policy: *mut mqlite_redelivery_policy,
    delays_ms: *const u64,
    count: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let p = unsafe { arg_mut(policy, "policy") }?;
        if count > isize::MAX as usize / 8 {
            return Err(Failure::invalid(format!(
                "count {count} is larger than any array"
            )));
        }
        let list: &[u64] = if count == 0 {
            &[]
        } else if delays_ms.is_null() {
            return Err(Failure::null("delays_ms"));
        } else {
            // SAFETY: the caller promises `count` readable values.
            unsafe { std::slice::from_raw_parts(delays_ms, count) }
        };
        p.policy.backoff = list.iter().map(|&ms| Duration::from_millis(ms)).collect();
        Ok(())
    })
}

// ---------------------------------------------------------------- queue options

/// New queue options: every field unset (the store's defaults apply). Free with
/// `mqlite_queue_options_free`. Returns NULL only if allocation failed.
#[no_mangle]
pub extern "C" fn mqlite_queue_options_new() -> *mut mqlite_queue_options {
    guard_value(std::ptr::null_mut(), || {
        Some(Box::into_raw(Box::new(mqlite_queue_options {
            opts: QueueOptions::default(),
        })))
    })
}

/// Frees queue options. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_queue_options_free(options: *mut mqlite_queue_options) {
    guard_value((), || {
        if !options.is_null() {
            // SAFETY: made by `mqlite_queue_options_new`, freed once.
            drop(unsafe { Box::from_raw(options) });
        }
        Some(())
    })
}

/// Overrides the store's durability for this queue (`MQLITE_DURABILITY_*`).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_durability(
    options: *mut mqlite_queue_options,
    durability_mode: u32,
    max_delay_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.durability = Some(durability(durability_mode, max_delay_ms)?);
        Ok(())
    })
}

/// Sets the backlog limits (0 = unbounded) and what a send does at the limit
/// (`MQLITE_OVERFLOW_*`; `block_timeout_ms` is used by `MQLITE_OVERFLOW_BLOCK` only).
/// `max_bytes` counts the larger of the held messages' bodies plus sender-set headers (as
/// stored: each header's bytes plus a few bytes of length and type tags) and
/// `MQLITE_MIN_COUNTED_BYTES` (1) per message, so empty messages are bounded too.
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_limits(
    options: *mut mqlite_queue_options,
    max_messages: u64,
    max_bytes: u64,
    overflow: u32,
    block_timeout_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        let policy = match overflow {
            x if x == mqlite_overflow::MQLITE_OVERFLOW_REJECT as u32 => OverflowPolicy::Reject,
            x if x == mqlite_overflow::MQLITE_OVERFLOW_BLOCK as u32 => OverflowPolicy::Block {
                timeout: Duration::from_millis(block_timeout_ms),
            },
            x if x == mqlite_overflow::MQLITE_OVERFLOW_DROP_OLDEST as u32 => {
                OverflowPolicy::DropOldest
            }
            _ => {
                return Err(Failure::invalid(format!(
                    "{overflow} is not an mqlite_overflow"
                )))
            }
        };
        o.opts.max_messages = (max_messages != 0).then_some(max_messages);
        o.opts.max_bytes = (max_bytes != 0).then_some(max_bytes);
        o.opts.overflow = Some(policy);
        Ok(())
    })
}

/// Overrides the store's redelivery policy for this queue (copied).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_redelivery(
    options: *mut mqlite_queue_options,
    policy: *const mqlite_redelivery_policy,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.redelivery = Some(unsafe { arg(policy, "policy") }?.policy.clone());
        Ok(())
    })
}

/// Overrides the store's dead-letter strategy for this queue (as
/// `mqlite_store_options_set_dead_letter`).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_dead_letter(
    options: *mut mqlite_queue_options,
    strategy: u32,
    name: *const c_char,
    name_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.dead_letter = Some(unsafe { dead_letter(strategy, name, name_len) }?);
        Ok(())
    })
}

/// Sets delivery behaviour: the ack (visibility) timeout in ms (0 = none), whether expired
/// messages are dead-lettered (`process_expired`, default true), and the group failure policy
/// (`MQLITE_GROUP_FAILURE_*`).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_delivery(
    options: *mut mqlite_queue_options,
    ack_timeout_ms: u64,
    process_expired: bool,
    group_failure: u32,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        let g = match group_failure {
            x if x == mqlite_group_failure::MQLITE_GROUP_FAILURE_BLOCK as u32 => {
                GroupFailurePolicy::Block
            }
            x if x == mqlite_group_failure::MQLITE_GROUP_FAILURE_SKIP as u32 => {
                GroupFailurePolicy::Skip
            }
            x if x == mqlite_group_failure::MQLITE_GROUP_FAILURE_PARK as u32 => {
                GroupFailurePolicy::Park
            }
            _ => {
                return Err(Failure::invalid(format!(
                    "{group_failure} is not an mqlite_group_failure"
                )))
            }
        };
        o.opts.ack_timeout = (ack_timeout_ms != 0).then(|| Duration::from_millis(ack_timeout_ms));
        o.opts.process_expired = Some(process_expired);
        o.opts.group_failure = Some(g);
        Ok(())
    })
}

/// Sets the dedup window: how long (ms) and how many dedup keys are remembered (0 keeps the
/// default of 10 minutes / 100,000 keys).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_dedup_window(
    options: *mut mqlite_queue_options,
    window_ms: u64,
    max_keys: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.dedup_window = (window_ms != 0).then(|| Duration::from_millis(window_ms));
        o.opts.dedup_window_count = (max_keys != 0).then_some(max_keys);
        Ok(())
    })
}

/// For a dead-letter queue: dead letters older than `max_age_ms` (milliseconds) are dropped,
/// counted `expired`, on time whether or not anyone receives (0 = kept, the default). A letter's
/// age counts from its dead-letter time (its dead-letter info's `last_failure_ms`), and the
/// retention applies to the letters the queue already holds: declaring the queue with it,
/// changing it, or declaring it again after a reopen (queue options are not stored) sets the
/// deadline of every letter held; messages sent to the queue itself keep their own TTL.
/// Retention by count: `mqlite_queue_options_set_limits` with
/// `MQLITE_OVERFLOW_DROP_OLDEST`.
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_retention(
    options: *mut mqlite_queue_options,
    max_age_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        o.opts.retention = (max_age_ms != 0).then(|| Duration::from_millis(max_age_ms));
        Ok(())
    })
}

/// Sets how this queue's consumers take messages: `prefetch` messages at once with one durable
/// delivery-count record, handed out one by one (JMS prefetch; 0 keeps the default of
/// `MQLITE_DEFAULT_PREFETCH`, 1 = none; at most `MQLITE_MAX_PREFETCH`), and when an ack is
/// durable (`MQLITE_ACK_DURABILITY_*`). Prefetched messages not yet handed out go back
/// uncounted when their consumer is freed or the store closes; after a crash each counts one
/// failed delivery. In a client process (the store owned by another process) a consumer
/// prefetches into its own process: the owner lends it the prefetched messages, handed out
/// there without a round trip, given back uncounted when it is freed, when the store closes
/// and when a competing consumer waits with nothing ready; a client killed holding them has
/// each count one failed delivery (SPEC §4, §10; the Rust `QueueOptions::prefetch`).
#[no_mangle]
pub extern "C" fn mqlite_queue_options_set_consuming(
    options: *mut mqlite_queue_options,
    prefetch: u32,
    ack_durability: u32,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        let d = match ack_durability {
            x if x == mqlite_ack_durability::MQLITE_ACK_DURABILITY_LAZY as u32 => {
                AckDurability::Lazy
            }
            x if x == mqlite_ack_durability::MQLITE_ACK_DURABILITY_SYNC as u32 => {
                AckDurability::Sync
            }
            _ => {
                return Err(Failure::invalid(format!(
                    "{ack_durability} is not an mqlite_ack_durability"
                )))
            }
        };
        let prefetch = (prefetch != 0).then_some(prefetch);
        let check = QueueOptions {
            prefetch,
            ..Default::default()
        };
        check.validate()?;
        o.opts.prefetch = prefetch;
        o.opts.ack_durability = Some(d);
        Ok(())
    })
}
