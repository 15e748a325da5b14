//! `mqlite_transaction` (sends and acks across queues, one journal record) and DLQ replay.

use std::ffi::c_char;

use super::boundary::{
    arg, arg_mut, guard, guard_value, out_ptr, utf8, write_out, Failure, FfiResult,
};
use super::delivery::mqlite_delivery;
use super::error::{mqlite_error, mqlite_status};
use super::message::{mqlite_dead_letter_reason, mqlite_message};
use super::queue::mqlite_queue;
use super::store::mqlite_store;
use crate::message::{DeadLetterReason, MessageId};
use crate::queue::ReplayFilter;
use crate::txn::Transaction;

/// A transaction (`mqlite_store_transaction`): sends and acks across queues of one store that
/// take effect together at commit — one journal record, durable when commit returns OK — or not
/// at all. Freed exactly once by `mqlite_transaction_free`, which rolls back an unfinished one.
/// Use from one thread at a time.
pub struct mqlite_transaction {
    txn: Option<Transaction>,
}

impl mqlite_transaction {
    fn get(&mut self) -> FfiResult<&mut Transaction> {
        self.txn.as_mut().ok_or_else(finished)
    }
}

fn finished() -> Failure {
    Failure::new(
        mqlite_status::MQLITE_ALREADY_SETTLED,
        "the transaction was already committed or rolled back",
    )
}

/// Which dead letters `mqlite_queue_replay` moves, and where. Made by
/// `mqlite_replay_filter_new` (matching every dead letter), freed by `mqlite_replay_filter_free`.
pub struct mqlite_replay_filter {
    filter: ReplayFilter,
}

/// Begins a transaction. On success `*transaction_out` owns it. `MQLITE_CLOSED` after close.
#[no_mangle]
pub extern "C" fn mqlite_store_transaction(
    store: *const mqlite_store,
    transaction_out: *mut *mut mqlite_transaction,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(transaction_out, "transaction_out")?;
        s.store.check()?;
        let t = mqlite_transaction {
            txn: Some(s.store.transaction()),
        };
        unsafe { write_out(transaction_out, Box::into_raw(Box::new(t))) };
        Ok(())
    })
}

/// Adds a send of a copy of `message` to `queue` (of the same store; else
/// `MQLITE_INVALID_ARGUMENT`); it is stored at commit.
#[no_mangle]
pub extern "C" fn mqlite_transaction_send(
    transaction: *mut mqlite_transaction,
    queue: *const mqlite_queue,
    message: *const mqlite_message,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { arg_mut(transaction, "transaction") }?;
        let q = unsafe { arg(queue, "queue") }?;
        let m = unsafe { arg(message, "message") }?;
        Ok(t.get()?.send(&q.queue, m.msg.clone())?)
    })
}

/// Adds an ack of `delivery`: from now on the delivery counts as settled for its handle (its
/// message stays readable); it is acked at commit, or fails (redelivery policy) at rollback.
#[no_mangle]
pub extern "C" fn mqlite_transaction_ack(
    transaction: *mut mqlite_transaction,
    delivery: *mut mqlite_delivery,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { arg_mut(transaction, "transaction") }?;
        let d = unsafe { arg_mut(delivery, "delivery") }?;
        // Checked before the delivery is taken from its handle: the core would drop (and so
        // fail) a delivery of another store.
        if let Some(x) = &d.delivery {
            if !t.get()?.same_store(x.queue()) {
                return Err(Failure::invalid("the delivery belongs to another store"));
            }
        }
        t.get()?;
        let delivery = d.take()?;
        Ok(t.get()?.ack(delivery)?)
    })
}

/// Commits: every send and ack takes effect, as one durable journal record. The ids of the sent
/// messages, in the order added, are written to `ids_out` (room for as many ids as sends were
/// added; may be NULL). On error nothing took effect and the acked deliveries fail as in a
/// rollback. Either way the transaction is finished (later calls: `MQLITE_ALREADY_SETTLED`).
#[no_mangle]
pub extern "C" fn mqlite_transaction_commit(
    transaction: *mut mqlite_transaction,
    ids_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { arg_mut(transaction, "transaction") }?;
        let txn = t.txn.take().ok_or_else(finished)?;
        let ids = txn.commit()?;
        if !ids_out.is_null() {
            for (i, id) in ids.iter().enumerate() {
                // SAFETY: the caller gave room for one id per send.
                unsafe { ids_out.add(i).write(id.0) };
            }
        }
        Ok(())
    })
}

/// Rolls back: the sends are discarded and the acked deliveries fail (they count as failed
/// deliveries under the redelivery policy). The transaction is finished.
#[no_mangle]
pub extern "C" fn mqlite_transaction_rollback(
    transaction: *mut mqlite_transaction,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let t = unsafe { arg_mut(transaction, "transaction") }?;
        Ok(t.txn.take().ok_or_else(finished)?.rollback()?)
    })
}

/// Frees a transaction, rolling it back if it was neither committed nor rolled back. NULL is a
/// no-op.
#[no_mangle]
pub extern "C" fn mqlite_transaction_free(transaction: *mut mqlite_transaction) {
    guard_value((), || {
        if !transaction.is_null() {
            // SAFETY: made by `mqlite_store_transaction`, freed once.
            drop(unsafe { Box::from_raw(transaction) });
        }
        Some(())
    })
}

// ---------------------------------------------------------------- replay

/// A filter matching every dead letter, moving each back to its original queue. Returns NULL
/// only if allocation failed.
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_new() -> *mut mqlite_replay_filter {
    guard_value(std::ptr::null_mut(), || {
        Some(Box::into_raw(Box::new(mqlite_replay_filter {
            filter: ReplayFilter::default(),
        })))
    })
}

/// Frees a replay filter. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_free(filter: *mut mqlite_replay_filter) {
    guard_value((), || {
        if !filter.is_null() {
            // SAFETY: made by `mqlite_replay_filter_new`, freed once.
            drop(unsafe { Box::from_raw(filter) });
        }
        Some(())
    })
}

/// Only dead letters with this reason (`MQLITE_DEAD_LETTER_*`).
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_reason(
    filter: *mut mqlite_replay_filter,
    reason: u32,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        use mqlite_dead_letter_reason::*;
        f.filter.reason = Some(match reason {
            x if x == MQLITE_DEAD_LETTER_MAX_REDELIVERIES as u32 => {
                DeadLetterReason::MaxRedeliveries
            }
            x if x == MQLITE_DEAD_LETTER_REJECTED as u32 => DeadLetterReason::Rejected,
            x if x == MQLITE_DEAD_LETTER_EXPIRED as u32 => DeadLetterReason::Expired,
            x if x == MQLITE_DEAD_LETTER_OVERFLOW as u32 => DeadLetterReason::Overflow,
            x if x == MQLITE_DEAD_LETTER_GROUP_PARKED as u32 => DeadLetterReason::GroupParked,
            _ => {
                return Err(Failure::invalid(format!(
                    "{reason} is not an mqlite_dead_letter_reason"
                )))
            }
        });
        Ok(())
    })
}

/// Only dead letters from queue `name` (UTF-8).
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_original_queue(
    filter: *mut mqlite_replay_filter,
    name: *const c_char,
    name_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        f.filter.original_queue = Some(unsafe { utf8(name, name_len, "name") }?.to_string());
        Ok(())
    })
}

/// Only dead letters whose last failure is in [`since_ms`, `until_ms`) (ms since the epoch;
/// 0 = unbounded on that side).
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_time_range(
    filter: *mut mqlite_replay_filter,
    since_ms: u64,
    until_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        f.filter.since_ms = (since_ms != 0).then_some(since_ms);
        f.filter.until_ms = (until_ms != 0).then_some(until_ms);
        Ok(())
    })
}

/// Only these messages (`count` ids, dead-letter ids or original ids; copied).
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_ids(
    filter: *mut mqlite_replay_filter,
    ids: *const u64,
    count: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        if count > isize::MAX as usize / 8 {
            return Err(Failure::invalid(format!(
                "count {count} is larger than any array"
            )));
        }
        let list: &[u64] = if count == 0 {
            &[]
        } else if ids.is_null() {
            return Err(Failure::null("ids"));
        } else {
            // SAFETY: the caller promises `count` readable ids.
            unsafe { std::slice::from_raw_parts(ids, count) }
        };
        f.filter.ids = Some(list.iter().map(|&i| MessageId(i)).collect());
        Ok(())
    })
}

/// Moves them to queue `name` (UTF-8) instead of their original queue.
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_target(
    filter: *mut mqlite_replay_filter,
    name: *const c_char,
    name_len: usize,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        f.filter.to = Some(unsafe { utf8(name, name_len, "name") }?.to_string());
        Ok(())
    })
}

/// At most `limit` messages (0 = no limit); with `dry_run`, only counts what would move.
#[no_mangle]
pub extern "C" fn mqlite_replay_filter_set_limit(
    filter: *mut mqlite_replay_filter,
    limit: usize,
    dry_run: bool,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let f = unsafe { arg_mut(filter, "filter") }?;
        f.filter.limit = (limit != 0).then_some(limit);
        f.filter.dry_run = dry_run;
        Ok(())
    })
}

/// Moves dead letters of this dead-letter queue back to their original queue (or the filter's
/// target), with delivery counts reset; `filter` may be NULL to move all. Writes how many
/// matched to `*count_out` (may be NULL). Each move is one journal record: a crash in the
/// middle loses and doubles nothing. Dead letters a consumer prefetched and has not handed out
/// are taken back (uncounted) and replayed with the waiting ones; those in flight stay, not
/// counted. A target that is a dead-letter queue (this one, one a dead-letter strategy names,
/// or a default name `DLQ`, `DLQ.<queue>`) is refused with `MQLITE_INVALID_ARGUMENT`: a replay
/// strips the dead-letter information.
#[no_mangle]
pub extern "C" fn mqlite_queue_replay(
    queue: *const mqlite_queue,
    filter: *const mqlite_replay_filter,
    count_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = unsafe { arg(queue, "queue") }?;
        let all = ReplayFilter::default();
        // SAFETY: a non-NULL filter is a live filter object.
        let f = unsafe { filter.as_ref() }.map_or(&all, |f| &f.filter);
        let n = q.queue.replay(f)?;
        unsafe { write_out(count_out, n) };
        Ok(())
    })
}

/// The number of sends and acks added so far; 0 for NULL or a finished transaction.
#[no_mangle]
pub extern "C" fn mqlite_transaction_len(transaction: *const mqlite_transaction) -> usize {
    guard_value(0, || {
        unsafe { transaction.as_ref() }.map(|t| t.txn.as_ref().map_or(0, |x| x.len()))
    })
}
