//! Completion callbacks of async sends: queued by group commit, run by the callback thread
//! outside every lock, each exactly once.

use std::cell::Cell;
use std::collections::VecDeque;

use super::batch::Batch;
use super::Shared;
use crate::error::{Error, Result};
use crate::message::MessageId;

/// A completion callback of an async send.
pub(crate) enum Callback {
    /// A Rust closure (one allocation per send, unless it captures nothing).
    Boxed(Box<dyn FnOnce(Result<MessageId>) + Send + 'static>),
    /// A plain function and three words of data: the C face's callback, its `user_data` and
    /// its free function travel as they are, so an async send from C allocates nothing for
    /// its completion. Built only by the C face (feature `capi`; the Python extension has none).
    #[cfg_attr(not(feature = "capi"), allow(dead_code))]
    Plain(PlainCallback),
}

/// A completion without an allocation: `run(data, outcome)`. The words are whatever the
/// maker of the callback put there (the C face: two function pointers and a `void *`); `run`
/// alone knows what they are.
pub(crate) struct PlainCallback {
    pub run: fn([usize; 3], Result<MessageId>),
    pub data: [usize; 3],
}

impl Callback {
    /// A callback from a closure.
    pub(crate) fn boxed(f: impl FnOnce(Result<MessageId>) + Send + 'static) -> Callback {
        Callback::Boxed(Box::new(f))
    }

    /// Runs the callback with the outcome of its send (exactly once: it is consumed).
    pub(crate) fn call(self, r: Result<MessageId>) {
        match self {
            Callback::Boxed(f) => f(r),
            Callback::Plain(p) => (p.run)(p.data, r),
        }
    }
}

/// Callbacks whose outcome is known, waiting for the callback thread.
#[derive(Default)]
pub(crate) struct CallbackQueue {
    pub items: VecDeque<(Callback, Result<MessageId>)>,
    /// The callback thread is running a batch of them.
    pub running: bool,
    /// No more will come: the thread ends once `items` is empty.
    pub stop: bool,
}

thread_local! {
    static LIBRARY_THREAD: Cell<bool> = const { Cell::new(false) };
    /// Set only on the threads that run send callbacks (a store's or a client's
    /// `mqlite-callbacks`): the one place where waiting for a send's completion waits for
    /// itself. Listener, commit and connection threads may wait (review r10 #3).
    static CALLBACK_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is one that runs send callbacks (see [`mark_callback_thread`]).
pub(crate) fn on_callback_thread() -> bool {
    CALLBACK_THREAD.with(|c| c.get())
}

/// Marks the current thread as one of mqlite's own that runs send callbacks: a wait there for a
/// send's completion would wait for good, so [`crate::Queue::send_future`] refuses it.
pub(crate) fn mark_callback_thread() {
    mark_library_thread();
    CALLBACK_THREAD.with(|c| c.set(true));
}

/// Whether the current thread is one of mqlite's own (commit, callback or listener thread).
pub(crate) fn on_library_thread() -> bool {
    LIBRARY_THREAD.with(|c| c.get())
}

/// Marks the current thread as one of mqlite's own (so that closing a store from it fails with
/// `WouldDeadlock` instead of waiting for itself).
pub(crate) fn mark_library_thread() {
    LIBRARY_THREAD.with(|c| c.set(true));
}

impl Shared {
    /// Hands completed callbacks to the callback thread.
    pub(super) fn push_callbacks(&self, items: Vec<(Callback, Result<MessageId>)>) {
        if items.is_empty() {
            return; // most commits (sync sends, settles) complete no callback
        }
        let mut cq = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        cq.items.extend(items);
        self.callbacks_cv.notify_one();
    }

    /// Hands one completed callback to the callback thread.
    pub(super) fn push_callback(&self, cb: Callback, r: Result<MessageId>) {
        let mut cq = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        cq.items.push_back((cb, r));
        self.callbacks_cv.notify_one();
    }

    /// Completes every callback of `b` with `e`: its batch will never be durable.
    pub(super) fn fail_callbacks(&self, b: &mut Batch, e: &Error) {
        let items: Vec<_> = b
            .callbacks
            .drain(..)
            .map(|(cb, _)| (cb, Err(e.clone())))
            .collect();
        self.push_callbacks(items);
    }

    /// The callback thread: runs callbacks in order until the commit thread says stop. A
    /// panicking callback is caught (it must neither take the library down nor skip the others);
    /// if this loop itself panics, the callbacks it had taken go back to the front of the queue
    /// (see [`Taken`]) for the restarted loop.
    pub(crate) fn run_callbacks(&self) {
        let mut taken = Taken(self, VecDeque::new());
        loop {
            {
                let mut cq = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
                cq.running = false;
                while cq.items.is_empty() && !cq.stop {
                    cq = self
                        .callbacks_cv
                        .wait(cq)
                        .unwrap_or_else(|e| e.into_inner());
                }
                if cq.items.is_empty() && cq.stop {
                    return;
                }
                taken.1.extend(cq.items.drain(..));
                cq.running = true;
            }
            #[cfg(test)]
            self.test_hooks.maybe_panic_in_callback_loop();
            while let Some((cb, r)) = taken.1.pop_front() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cb.call(r)));
            }
        }
    }

    /// Tells the callback thread that no more callbacks will come.
    pub(crate) fn stop_callbacks(&self) {
        let mut cq = self.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        cq.stop = true;
        self.callbacks_cv.notify_all();
    }
}

/// Callbacks the callback thread took from the queue and has not run yet. Dropped while
/// unwinding from a panic of the loop, it puts them back in front, in order: none is lost.
struct Taken<'a>(&'a Shared, VecDeque<(Callback, Result<MessageId>)>);

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        if self.1.is_empty() {
            return;
        }
        let mut cq = self.0.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(item) = self.1.pop_back() {
            cq.items.push_front(item);
        }
    }
}
