//! Several processes, one store: the open role options and `mqlite_store_role`.

use std::time::Duration;

use super::boundary::{arg, arg_mut, guard, out_ptr, write_out, Failure};
use super::error::{mqlite_error, mqlite_status};
use super::options::mqlite_store_options;
use super::store::mqlite_store;
use crate::remote::{OpenAs, Role};

/// Which roles `mqlite_store_open` may take when another process has the store open
/// (`mqlite_store_options_set_open_as`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_open_as {
    /// Owner if no other process owns the store, else a client of the process that does (and
    /// its successor if that owner goes away). The default.
    MQLITE_OPEN_AS_ANY = 0,
    /// Only as owner: if another process owns the store, open fails with `MQLITE_LOCKED`
    /// naming its pid.
    MQLITE_OPEN_AS_OWNER = 1,
    /// Only as client: open waits up to the connect timeout for an owner to serve, and never
    /// takes the store over.
    MQLITE_OPEN_AS_CLIENT = 2,
}

/// The part this process plays for an open store (`mqlite_store_role`).
#[repr(u32)]
#[derive(Debug, Clone, Copy)]
pub enum mqlite_role {
    /// This process holds the store's lock, keeps its journal and serves the other processes.
    MQLITE_ROLE_OWNER = 1,
    /// Another process owns the store; this one is served by it over the store's socket
    /// (`owner.sock` in the store directory).
    MQLITE_ROLE_CLIENT = 2,
}

/// Sets which roles open may take (`MQLITE_OPEN_AS_*`; unknown values:
/// `MQLITE_INVALID_ARGUMENT`) and how long, in ms, a client waits for an owner to serve, at
/// open and while another process takes the store over (0: the default,
/// `MQLITE_DEFAULT_CONNECT_TIMEOUT_MS`; 1–9: `MQLITE_INVALID_ARGUMENT` at open, the least is
/// 10 ms).
#[no_mangle]
pub extern "C" fn mqlite_store_options_set_open_as(
    options: *mut mqlite_store_options,
    open_as: u32,
    connect_timeout_ms: u64,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let o = unsafe { arg_mut(options, "options") }?;
        use mqlite_open_as::*;
        o.opts.open_as = match open_as {
            n if n == MQLITE_OPEN_AS_ANY as u32 => OpenAs::Any,
            n if n == MQLITE_OPEN_AS_OWNER as u32 => OpenAs::Owner,
            n if n == MQLITE_OPEN_AS_CLIENT as u32 => OpenAs::Client,
            n => {
                return Err(Failure::invalid(format!(
                    "open_as {n} is not one of MQLITE_OPEN_AS_ANY (0), _OWNER (1), _CLIENT (2)"
                )))
            }
        };
        if connect_timeout_ms != 0 {
            o.opts.connect_timeout = Duration::from_millis(connect_timeout_ms);
        }
        Ok(())
    })
}

/// Writes this process's role for `store` (`MQLITE_ROLE_OWNER` or `MQLITE_ROLE_CLIENT`) to
/// `*role_out` and the owner's pid (this process's own for an owner) to `*owner_pid_out` (may
/// be NULL). A client that took the store over after its owner went away is an owner from then
/// on. `MQLITE_CLOSED` after close.
#[no_mangle]
pub extern "C" fn mqlite_store_role(
    store: *const mqlite_store,
    role_out: *mut u32,
    owner_pid_out: *mut u32,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let s = unsafe { arg(store, "store") }?;
        out_ptr(role_out, "role_out")?;
        s.store.check()?;
        let role = match s.store.role() {
            Role::Owner => mqlite_role::MQLITE_ROLE_OWNER,
            Role::Client => mqlite_role::MQLITE_ROLE_CLIENT,
        };
        unsafe { write_out(role_out, role as u32) };
        if !owner_pid_out.is_null() {
            unsafe { write_out(owner_pid_out, s.store.owner_pid()) };
        }
        Ok(())
    })
}
