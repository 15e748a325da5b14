//! Status codes and error objects.

use std::ffi::{c_char, CString};

use super::boundary::guard_value;
use crate::error::ErrorKind;

/// The result of every fallible call. `MQLITE_OK` (0) is success; codes 1–17 are the core's
/// error kinds with the core's numbers (the same kinds as Rust's `ErrorKind` and Python's
/// exception classes); codes from 100 are argument errors only C can make.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum mqlite_status {
    /// Success.
    MQLITE_OK = 0,
    /// An argument is out of range or malformed (a body over the limit, a length of `SIZE_MAX`, …).
    MQLITE_INVALID_ARGUMENT = 1,
    /// A queue name is empty, longer than 255 bytes, not UTF-8, or holds NUL or control characters.
    MQLITE_INVALID_NAME = 2,
    /// The queue, message, property or delivery does not exist (any more).
    MQLITE_NOT_FOUND = 3,
    /// Another opener holds the store's lock; the error message names its pid.
    MQLITE_LOCKED = 4,
    /// A limit was reached: the queue's backlog limit or the producer window.
    MQLITE_QUEUE_FULL = 5,
    /// The disk is full; stored messages stay readable and acks keep working.
    MQLITE_NO_SPACE = 6,
    /// An I/O error other than a full disk.
    MQLITE_IO = 7,
    /// A checksum or length failure inside the journal (not at its tail).
    MQLITE_CORRUPT = 8,
    /// An earlier write or fsync failed; reopen the store to recover its durable state.
    MQLITE_POISONED = 9,
    /// The store is closed (the handle stays valid until freed, but does nothing).
    MQLITE_CLOSED = 10,
    /// A blocking call ran out of time (for `receive`: no message arrived in time).
    MQLITE_TIMEOUT = 11,
    /// The delivery was already settled (acked, nacked, rejected or released).
    MQLITE_ALREADY_SETTLED = 12,
    /// The call would deadlock (e.g. closing the store from inside one of its callbacks).
    MQLITE_WOULD_DEADLOCK = 13,
    /// A bug inside mqlite (a caught panic). Please report it.
    MQLITE_INTERNAL = 14,
    /// The delivery was handed out by a store owner process that has since died or closed: it
    /// can no longer be settled; the message comes back with its delivery count incremented.
    MQLITE_DELIVERY_LOST = 15,
    /// A client lost its store's owner and no owner served again within the connect timeout, or
    /// the call's outcome is unknown because the owner died during it.
    MQLITE_OWNER_LOST = 16,
    /// The store was opened read-only: the call would change it.
    MQLITE_READ_ONLY = 17,
    /// A required pointer argument is NULL.
    MQLITE_NULL_ARGUMENT = 100,
    /// A string argument is not valid UTF-8.
    MQLITE_INVALID_UTF8 = 101,
}

impl mqlite_status {
    /// The status of a core kind. (cbindgen needs the enum spelled out above; the unit test
    /// below holds its codes and names equal to the core's table.)
    pub(crate) fn from_kind(kind: ErrorKind) -> Self {
        use mqlite_status::*;
        match kind {
            ErrorKind::InvalidArgument => MQLITE_INVALID_ARGUMENT,
            ErrorKind::InvalidName => MQLITE_INVALID_NAME,
            ErrorKind::NotFound => MQLITE_NOT_FOUND,
            ErrorKind::Locked => MQLITE_LOCKED,
            ErrorKind::QueueFull => MQLITE_QUEUE_FULL,
            ErrorKind::NoSpace => MQLITE_NO_SPACE,
            ErrorKind::Io => MQLITE_IO,
            ErrorKind::Corrupt => MQLITE_CORRUPT,
            ErrorKind::Poisoned => MQLITE_POISONED,
            ErrorKind::Closed => MQLITE_CLOSED,
            ErrorKind::Timeout => MQLITE_TIMEOUT,
            ErrorKind::AlreadySettled => MQLITE_ALREADY_SETTLED,
            ErrorKind::WouldDeadlock => MQLITE_WOULD_DEADLOCK,
            ErrorKind::Internal => MQLITE_INTERNAL,
            ErrorKind::DeliveryLost => MQLITE_DELIVERY_LOST,
            ErrorKind::OwnerLost => MQLITE_OWNER_LOST,
            ErrorKind::ReadOnly => MQLITE_READ_ONLY,
        }
    }

    /// The static NUL-terminated name of a status code: the core kind's name for codes 1–17.
    fn as_cstr(code: u32) -> &'static str {
        match code {
            0 => "ok\0",
            100 => "null_argument\0",
            101 => "invalid_utf8\0",
            _ => ErrorKind::from_code(code).map_or("unknown_status\0", ErrorKind::as_c_str),
        }
    }
}

/// Details of a failed call: its status and a message naming the file, queue, id or argument
/// concerned. Created by the library, owned by the caller, freed with `mqlite_error_free`.
pub struct mqlite_error {
    status: mqlite_status,
    message: CString,
}

impl mqlite_error {
    pub(crate) fn new(status: mqlite_status, message: String) -> Self {
        let message = CString::new(message.replace('\0', "\\0")).unwrap_or_default();
        mqlite_error { status, message }
    }
}

/// A static, NUL-terminated name for a status code (`"ok"`, `"queue_full"`, …);
/// `"unknown_status"` for a value that is not a status. Never NULL; never free it.
#[no_mangle]
pub extern "C" fn mqlite_status_str(status: u32) -> *const c_char {
    mqlite_status::as_cstr(status).as_ptr().cast()
}

/// The status of an error. Returns `MQLITE_NULL_ARGUMENT` if `error` is NULL.
#[no_mangle]
pub extern "C" fn mqlite_error_status(error: *const mqlite_error) -> mqlite_status {
    guard_value(mqlite_status::MQLITE_NULL_ARGUMENT, || {
        // SAFETY: a non-NULL error comes from this library and is not freed yet.
        unsafe { error.as_ref() }.map(|e| e.status)
    })
}

/// The error's message, NUL-terminated UTF-8, owned by `error` (valid until it is freed).
/// Returns `""` (a static string) if `error` is NULL. Never returns NULL.
#[no_mangle]
pub extern "C" fn mqlite_error_message(error: *const mqlite_error) -> *const c_char {
    guard_value(c"".as_ptr(), || {
        // SAFETY: as above.
        unsafe { error.as_ref() }.map(|e| e.message.as_ptr())
    })
}

/// Frees an error returned through an `mqlite_error **err` argument. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_error_free(error: *mut mqlite_error) {
    guard_value((), || {
        if !error.is_null() {
            // SAFETY: the error was made by `Box::into_raw` in the boundary guard and is freed once.
            drop(unsafe { Box::from_raw(error) });
        }
        Some(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_core_kinds() {
        for &k in ErrorKind::ALL {
            let s = mqlite_status::from_kind(k);
            assert_eq!(s as u32, k.code(), "{k:?}");
            let name = unsafe { std::ffi::CStr::from_ptr(mqlite_status_str(s as u32)) };
            assert_eq!(name.to_str().unwrap(), k.as_str());
            assert_eq!(
                format!("{s:?}"),
                format!("MQLITE_{}", k.as_str().to_uppercase())
            );
        }
    }
}
