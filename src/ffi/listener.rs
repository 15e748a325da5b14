//! `mqlite_listener`: push delivery (JMS MessageListener) on a library thread.

use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use super::boundary::{arg, guard, guard_value, out_ptr, write_out, Failure, UserData};
use super::error::{mqlite_error, mqlite_status};
use super::message::mqlite_message;
use super::queue::{mqlite_free_fn, mqlite_queue};
use crate::delivery::Listener;

/// A listener's handler, run on the listener's library thread for each message, with no mqlite
/// lock held. `message` is borrowed for the call only. Return 0 to ack the message; any other
/// value nacks it (the redelivery policy applies; the failure text names the value). It may
/// call mqlite (even on the same queue); `mqlite_store_close` from inside it returns
/// `MQLITE_WOULD_DEADLOCK`. It must not unwind (C++ exceptions, longjmp) out of the call.
pub type mqlite_listener_fn = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        message: *const mqlite_message,
        delivery_count: u32,
    ) -> i32,
>;

/// A running listener (`mqlite_queue_listen`); `mqlite_listener_free` stops and frees it.
pub struct mqlite_listener {
    listener: Option<Listener>,
}

/// Who frees `user_data`: nobody while `mqlite_queue_listen` may still fail (the caller keeps
/// it then); once armed, whichever comes last of "the handler is dropped" and "armed".
#[derive(PartialEq)]
enum Ownership {
    Pending,
    Armed,
    Dropped,
}

struct FreeOnce {
    ud: UserData,
    free: mqlite_free_fn,
    state: Mutex<Ownership>,
}

impl FreeOnce {
    fn run(&self) {
        if let Some(f) = self.free {
            // SAFETY: the caller's free function, run once.
            unsafe { f(self.ud.get()) }
        }
    }

    fn arm(&self) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s == Ownership::Dropped {
            drop(s);
            self.run();
        } else {
            *s = Ownership::Armed;
        }
    }
}

/// Owns the C side of a listener; dropped when its thread ends.
struct Handler {
    cb: unsafe extern "C" fn(*mut c_void, *const mqlite_message, u32) -> i32,
    ud: UserData,
    owner: Arc<FreeOnce>,
}

impl Drop for Handler {
    fn drop(&mut self) {
        let mut s = self.owner.state.lock().unwrap_or_else(|e| e.into_inner());
        if *s == Ownership::Armed {
            drop(s);
            self.owner.run();
        } else {
            *s = Ownership::Dropped;
        }
    }
}

/// Starts a listener on `queue`: `handler` runs for each message on a library thread (see
/// `mqlite_listener_fn`). On success `*listener_out` owns it; `free_user_data` (may be NULL)
/// runs once after the handler's last call, when the listener stops. On error neither runs.
#[no_mangle]
pub extern "C" fn mqlite_queue_listen(
    queue: *const mqlite_queue,
    handler: mqlite_listener_fn,
    user_data: *mut c_void,
    free_user_data: mqlite_free_fn,
    listener_out: *mut *mut mqlite_listener,
    err: *mut *mut mqlite_error,
) -> mqlite_status {
    guard(err, || {
        let q = &unsafe { arg(queue, "queue") }?.queue;
        let cb = handler.ok_or_else(|| Failure::null("handler"))?;
        out_ptr(listener_out, "listener_out")?;
        let ud = UserData(user_data);
        let owner = Arc::new(FreeOnce {
            ud,
            free: free_user_data,
            state: Mutex::new(Ownership::Pending),
        });
        let h = Handler {
            cb,
            ud,
            owner: owner.clone(),
        };
        let listener = q.listen(move |d| {
            let h = &h;
            // The handler gets its own copy of the message: the core lends only `&Delivery`.
            let m = mqlite_message {
                msg: d.message().clone(),
            };
            // SAFETY: the handler's contract is in `mqlite_listener_fn`'s doc comment.
            match unsafe { (h.cb)(h.ud.get(), &m, d.delivery_count()) } {
                0 => Ok(()),
                rc => Err(format!("the listener handler returned {rc}")),
            }
        })?;
        // Only now does the library own user_data.
        owner.arm();
        unsafe {
            write_out(
                listener_out,
                Box::into_raw(Box::new(mqlite_listener {
                    listener: Some(listener),
                })),
            )
        };
        Ok(())
    })
}

/// Stops the listener (waiting for its thread to finish the current message, unless called
/// from inside its own handler), runs its `free_user_data`, and frees it. NULL is a no-op.
#[no_mangle]
pub extern "C" fn mqlite_listener_free(listener: *mut mqlite_listener) {
    guard_value((), || {
        if !listener.is_null() {
            // SAFETY: made by `mqlite_queue_listen`, freed once.
            let mut l = unsafe { Box::from_raw(listener) };
            if let Some(l) = l.listener.take() {
                l.stop();
            }
        }
        Some(())
    })
}
