//! `mqlite_store`: open, close, free, queues, flush.

use std::ffi::c_char;
use std::os::unix::ffi::OsStrExt;

use super::boundary::{arg, bytes, guard, guard_value, name, out_ptr, write_out, Failure};
use super::error::{mqlite_error, mqlite_status};
use super::options::{mqlite_queue_options, mqlite_store_options};
use super::queue::mqlite_queue;
use crate::options::StoreOptions;
use crate::store::Store;

/// An open store. Made by `mqlite_store_open`, freed exactly once by `mqlite_store_free`.
/// `mqlite_store_close` closes it but keeps the handle valid: every later call through it (or
/// through its queues, consumers and deliveries) fails with `MQLITE_CLOSED`. Thread-safe.
pub struct mqlite_store {
    pub(crate) store: Store,
}

/// What recovery found when the store was opened.
#[repr(C)]
pub struct mqlite_recovery_report {
    /// Journal segments read.
    pub segments: u64,
    /// Records replayed.
    pub records: u64,
    /// Bytes of journal read.
    pub bytes: u64,
    /// Whether a torn tail (a partial last record, e.g. after a crash) was cut off.
    pub torn_tail: bool,
    /// Damaged ranges quarantined by a repair open (a damaged segment header and a stray file
    /// named like a segment count here too: the bytes are kept in a quarantine file).
    pub quarantined: u64,
    /// Segment files a repair open found missing (deleted: first, middle or last) or cut short
    /// before their last frames (the last segment too, when the `CHECKPOINT` of the last clean
    /// close proves those frames had been durable), and replaced by an empty segment or
    /// bridged. Without repair such damage fails the open with `MQLITE_CORRUPT` naming the file.
    pub missing: u64,
    /// Queues whose declaration a repair cut out while messages of theirs survived: the
    /// messages are kept in a queue named `__lost_queue_<id>`.
    pub lost_queues: u64,
    /// Whether the state came from the index checkpoint (`CHECKPOINT`, written by the last
    /// clean close) instead of a replay of every record: the segments it covers were checked
    /// against their CRC32C, and `records` is 0.
    pub checkpoint_used: bool,
    /// Why a checkpoint that was present was ignored (stale, torn, another format version, a
    /// covered segment changed or missing, a CRC mismatch, an open with repair), as UTF-8 text
    /// of `checkpoint_ignored_len` bytes, not NUL-terminated; the open then replayed the whole
    /// journal. NULL (and 0) when none was ignored. Points into the store handle: valid until
    /// `mqlite_store_free`.
    pub checkpoint_ignored: *const c_char,
    /// Length in bytes of `checkpoint_ignored`.
    pub checkpoint_ignored_len: usize,
}

/// Opens (and, by default, creates) the store in directory `path` (`path_len` bytes, no NUL
/// needed; any bytes but NUL) and recovers its durable state. `options` may be NULL for the
/// defaults; it is only read during the call. On success `*store_out` owns the new store.
/// If another process owns the store, this one becomes its client (same API, see
/// `mqlite_store_role`), unless `mqlite_store_options_set_open_as` forbids it: then
/// `MQLITE_LOCKED` naming the owner's pid. `MQLITE_CORRUPT` names the file and offset of damage
/// that is not a torn tail.
#[no_mangle]
pub extern "C" fn mqlite_store_open(
    path: *const c_char,
    path_len: usize,
    options: *const mqlite_store_options,
    store_out: *mut *mut mqlite_store,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        out_ptr(store_out, "store_out")?;
        if path.is_null() {
            return Err(Failure::null("path"));
        }
        let p = unsafe { bytes(path.cast(), path_len, "path") }?;
        if p.is_empty() || p.contains(&0) {
            return Err(Failure::invalid("the store path is empty or contains NUL"));
        }
        // SAFETY: options, when given, is a live options object.
        let opts = match unsafe { options.as_ref() } {
            Some(o) => o.opts.clone(),
            None => StoreOptions::default(),
        };
        let store = Store::open(std::ffi::OsStr::from_bytes(p), opts)?;
        unsafe { write_out(store_out, Box::into_raw(Box::new(mqlite_store { store }))) };
        Ok(())
    })
}

/// Closes the store: flushes pending sends, completes every async-send callback, stops its
/// threads and releases the directory lock. The handle stays valid (free it with
/// `mqlite_store_free`); later calls fail with `MQLITE_CLOSED`. Closing twice is OK.
/// Called from inside one of the store's callbacks it returns `MQLITE_WOULD_DEADLOCK`.
/// Returns `MQLITE_POISONED` if an earlier write or fsync had failed: the store is closed all
/// the same (the message says so) and a second close returns `MQLITE_OK`.
#[no_mangle]
pub extern "C" fn mqlite_store_close(
    store: *const mqlite_store,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || Ok(unsafe { arg(store, "store") }?.store.close()?))
}

/// Closes the store (as `mqlite_store_close`, ignoring errors) and frees the handle. NULL is a
/// no-op. Queue, consumer and delivery handles made from it stay valid until freed, and fail
/// with `MQLITE_CLOSED`. From inside one of the store's callbacks it does not wait for the
/// library threads (they stop by themselves).
#[no_mangle]
pub extern "C" fn mqlite_store_free(store: *mut mqlite_store) {
    guard_value((), || {
        if !store.is_null() {
            // SAFETY: made by `mqlite_store_open`, freed once. Dropping a Store closes it.
            drop(unsafe { Box::from_raw(store) });
        }
        Some(())
    })
}

/// A handle to queue `name` (`name_len` bytes of UTF-8, 1–255 bytes, no control characters),
/// creating the queue if new, with the store's default options. On success `*queue_out` owns a
/// new handle, freed with `mqlite_queue_free` (freeing it does not delete the queue).
#[no_mangle]
pub extern "C" fn mqlite_store_queue(
    store: *const mqlite_store,
    queue_name: *const c_char,
    name_len: usize,
    queue_out: *mut *mut mqlite_queue,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(queue_out, "queue_out")?;
        if queue_name.is_null() {
            return Err(Failure::null("name"));
        }
        let n = unsafe { name(queue_name, name_len) }?;
        let queue = s.store.queue(n)?;
        unsafe { write_out(queue_out, mqlite_queue::boxed(queue)) };
        Ok(())
    })
}

/// Like `mqlite_store_queue`, with `options` (copied; which replace the queue's options for
/// this open of the store).
#[no_mangle]
pub extern "C" fn mqlite_store_queue_with(
    store: *const mqlite_store,
    queue_name: *const c_char,
    name_len: usize,
    options: *const mqlite_queue_options,
    queue_out: *mut *mut mqlite_queue,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        let o = unsafe { arg(options, "options") }?;
        out_ptr(queue_out, "queue_out")?;
        if queue_name.is_null() {
            return Err(Failure::null("name"));
        }
        let n = unsafe { name(queue_name, name_len) }?;
        let queue = s.store.queue_with(n, o.opts.clone())?;
        unsafe { write_out(queue_out, mqlite_queue::boxed(queue)) };
        Ok(())
    })
}

/// Waits until everything sent so far (including async sends and batched-durability writes)
/// is durable. In a client process, also `MQLITE_DELIVERY_LOST` ("n lazy acks failed: first:
/// ...") once for lazy `mqlite_delivery_ack` calls the owner could not apply since they were
/// last reported (the flush itself was done).
#[no_mangle]
pub extern "C" fn mqlite_store_flush(
    store: *const mqlite_store,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        s.store.check()?;
        Ok(s.store.flush()?)
    })
}

/// Disk bytes used by the journal, written to `*bytes_out`. `MQLITE_CLOSED` after close.
#[no_mangle]
pub extern "C" fn mqlite_store_disk_bytes(
    store: *const mqlite_store,
    bytes_out: *mut u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(bytes_out, "bytes_out")?;
        s.store.check()?;
        unsafe { write_out(bytes_out, s.store.disk_bytes()) };
        Ok(())
    })
}

/// What recovery found when the store was opened (available after close too); for a client,
/// what its owner's recovery found.
#[no_mangle]
pub extern "C" fn mqlite_store_recovery_report(
    store: *const mqlite_store,
    report_out: *mut mqlite_recovery_report,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(report_out, "report_out")?;
        let r = s.store.recovery_report();
        let out = mqlite_recovery_report {
            segments: r.segments as u64,
            records: r.records,
            bytes: r.bytes,
            torn_tail: r.torn_tail.is_some(),
            quarantined: r.quarantined.len() as u64,
            missing: r.missing.len() as u64,
            lost_queues: r.lost_queues.len() as u64,
            checkpoint_used: r.checkpoint_used,
            checkpoint_ignored: r
                .checkpoint_ignored
                .as_deref()
                .map_or(std::ptr::null(), |why| why.as_ptr().cast()),
            checkpoint_ignored_len: r.checkpoint_ignored.as_deref().map_or(0, str::len),
        };
        unsafe { write_out(report_out, out) };
        Ok(())
    })
}

/// The store's directory (canonical, as opened): `*path_out` points into the store handle
/// (valid until it is freed; not NUL-terminated), `*len_out` is its length.
#[no_mangle]
pub extern "C" fn mqlite_store_path(
    store: *const mqlite_store,
    path_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(path_out, "path_out")?;
        out_ptr(len_out, "len_out")?;
        let p = s.store.path().as_os_str().as_bytes();
        unsafe {
            write_out(path_out, p.as_ptr().cast());
            write_out(len_out, p.len());
        }
        Ok(())
    })
}

/// A list of names (`mqlite_store_queue_names`), freed with `mqlite_name_list_free`.
pub struct mqlite_name_list {
    names: Vec<String>,
}

/// The names of all queues, in creation order. On success `*names_out` owns a new list.
#[no_mangle]
pub extern "C" fn mqlite_store_queue_names(
    store: *const mqlite_store,
    names_out: *mut *mut mqlite_name_list,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(names_out, "names_out")?;
        s.store.check()?;
        let list = mqlite_name_list {
            names: s.store.queue_names(),
        };
        unsafe { write_out(names_out, Box::into_raw(Box::new(list))) };
        Ok(())
    })
}

/// The number of names in the list; 0 for NULL.
#[no_mangle]
pub extern "C" fn mqlite_name_list_count(list: *const mqlite_name_list) -> usize {
    guard_value(0, || unsafe { list.as_ref() }.map(|l| l.names.len()))
}

/// The `index`-th name: `*name_out` points into the list (valid until it is freed; not
/// NUL-terminated), `*len_out` is its length. `MQLITE_NOT_FOUND` if `index` is out of range.
#[no_mangle]
pub extern "C" fn mqlite_name_list_get(
    list: *const mqlite_name_list,
    index: usize,
    name_out: *mut *const c_char,
    len_out: *mut usize,
) -> mqlite_status {
    guard(std::ptr::null_mut(), || {
        let l = unsafe { arg(list, "list") }?;
        out_ptr(name_out, "name_out")?;
        out_ptr(len_out, "len_out")?;
        let n = l.names.get(index).ok_or_else(|| {
            Failure::new(
                mqlite_status::MQLITE_NOT_FOUND,
                format!("no name at index {index}"),
            )
        })?;
        unsafe {
            write_out(name_out, n.as_ptr().cast());
            write_out(len_out, n.len());
        }
        Ok(())
    })
}

/// Frees a name list. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_name_list_free(list: *mut mqlite_name_list) {
    guard_value((), || {
        if !list.is_null() {
            // SAFETY: made by `mqlite_store_queue_names`, freed once.
            drop(unsafe { Box::from_raw(list) });
        }
        Some(())
    })
}
