//! The one boundary guard every export goes through (modelled on rustls-ffi's `ffi_panic_boundary!`).
//!
//! A C caller cannot see Rust's `unsafe`, so each export checks what it can (NULL pointers,
//! lengths that cannot be a real buffer, UTF-8) and turns every failure — including a panic,
//! which must never unwind into C — into an `mqlite_status` plus an optional `mqlite_error`.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::error::{mqlite_error, mqlite_status};
use crate::error::Error;

/// A failure on its way to C: the status code and the message for the optional `mqlite_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: mqlite_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: mqlite_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }

    pub fn null(name: &str) -> Self {
        Failure::new(
            mqlite_status::MQLITE_NULL_ARGUMENT,
            format!("argument `{name}` is NULL"),
        )
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Failure::new(mqlite_status::MQLITE_INVALID_ARGUMENT, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure {
            status: mqlite_status::from_kind(e.kind()),
            message: e.message().to_string(),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    let what = p
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into());
    format!("a bug inside mqlite (caught panic: {what}); please report it")
}

/// Runs `f`; converts its error or panic into a status, writing a new `mqlite_error` to `*err`
/// when `err` is not NULL. `*err` is written only on failure.
pub(crate) fn guard(err: *mut *mut mqlite_error, f: impl FnOnce() -> FfiResult) -> mqlite_status {
    let result = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|p| {
        Err(Failure::new(
            mqlite_status::MQLITE_INTERNAL,
            panic_message(&*p),
        ))
    });
    match result {
        Ok(()) => mqlite_status::MQLITE_OK,
        Err(fail) => {
            if !err.is_null() {
                let e = Box::into_raw(Box::new(mqlite_error::new(fail.status, fail.message)));
                // SAFETY: the caller passed a writable `mqlite_error **` (documented in the header).
                unsafe { *err = e };
            }
            fail.status
        }
    }
}

/// For the few exports that return a value instead of a status (getters, frees): a NULL argument
/// or a panic yields `fallback`.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> Option<T>) -> T {
    catch_unwind(AssertUnwindSafe(f))
        .ok()
        .flatten()
        .unwrap_or(fallback)
}

/// `&T` from a pointer, or `NULL_ARGUMENT` naming the parameter.
pub(crate) unsafe fn arg<'a, T>(p: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: non-NULL pointers from C are trusted to point at a live object of the right type.
    unsafe { p.as_ref() }.ok_or_else(|| Failure::null(name))
}

/// `&mut T` from a pointer, or `NULL_ARGUMENT` naming the parameter.
pub(crate) unsafe fn arg_mut<'a, T>(p: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: as for `arg`; the header says the caller gives exclusive access for the call.
    unsafe { p.as_mut() }.ok_or_else(|| Failure::null(name))
}

/// Checks that an output pointer is not NULL (before any work is done, so that a send is never
/// performed and then unreportable).
pub(crate) fn out_ptr<T>(p: *mut T, name: &str) -> FfiResult<()> {
    if p.is_null() {
        Err(Failure::null(name))
    } else {
        Ok(())
    }
}

/// Writes an output (the pointer was checked with [`out_ptr`] or may be NULL to mean "not wanted").
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T) {
    if !p.is_null() {
        // SAFETY: the caller passed a writable pointer.
        unsafe { p.write(v) };
    }
}

/// A byte buffer given as pointer + length. `(NULL, 0)` is the empty buffer; a length above
/// `isize::MAX` (such as `SIZE_MAX`) cannot describe real memory and is `INVALID_ARGUMENT`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if len > isize::MAX as usize {
        return Err(Failure::invalid(format!(
            "length of `{name}` ({len}) is larger than any buffer"
        )));
    }
    if p.is_null() {
        return if len == 0 {
            Ok(&[])
        } else {
            Err(Failure::null(name))
        };
    }
    // SAFETY: the caller promises `len` readable bytes at `p` (documented in the header).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// A UTF-8 string given as pointer + length (no NUL terminator needed); bad UTF-8 is
/// `INVALID_UTF8`.
pub(crate) unsafe fn utf8<'a>(p: *const c_char, len: usize, name: &str) -> FfiResult<&'a str> {
    let b = unsafe { bytes(p.cast(), len, name) }?;
    std::str::from_utf8(b).map_err(|e| {
        Failure::new(
            mqlite_status::MQLITE_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8: {e}"),
        )
    })
}

/// A queue name: like [`utf8`], but bad UTF-8 is `INVALID_NAME` (anything that is not
/// 1–255 bytes of clean UTF-8 is an invalid name); the rest of the name rules are the core's.
pub(crate) unsafe fn name<'a>(p: *const c_char, len: usize) -> FfiResult<&'a str> {
    unsafe { utf8(p, len, "name") }.map_err(|f| match f.status {
        mqlite_status::MQLITE_INVALID_UTF8 => {
            Failure::new(mqlite_status::MQLITE_INVALID_NAME, f.message)
        }
        _ => f,
    })
}

/// A timeout in milliseconds: negative waits forever.
pub(crate) fn timeout(ms: i64) -> Option<std::time::Duration> {
    (ms >= 0).then(|| std::time::Duration::from_millis(ms as u64))
}

/// A `void *user_data` that C promised may be used from a library thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub *mut std::ffi::c_void);
// SAFETY: the header's threading rules require user_data to be usable from any thread.
unsafe impl Send for UserData {}
unsafe impl Sync for UserData {}

impl UserData {
    /// The pointer. (A method, so closures capture the whole `Send` wrapper, not the field.)
    pub fn get(self) -> *mut std::ffi::c_void {
        self.0
    }
}
