//! Completions of async sends, run on one library thread per store with the GIL taken once per
//! batch.
//!
//! The core runs each send's callback on its own callback thread, which never touches Python.
//! Our callback only pushes (what to complete, the result) here; this thread then takes the GIL
//! once for everything queued and completes the futures, calls the user callbacks, and hands
//! asyncio futures to their loop with one `call_soon_threadsafe` per loop per batch. Taking the
//! GIL per message instead would cost a GIL hand-over (up to the 5 ms switch interval while a
//! producer thread runs Python) for every send.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{JoinHandle, ThreadId};

use mqlite::MessageId;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};

use crate::errors::to_py;

/// What to complete when a send finishes.
pub(crate) enum Done {
    /// A `SendFuture`, and the user's callback (called with the future) if any.
    Future {
        fut: Py<PyAny>,
        callback: Option<Py<PyAny>>,
    },
    /// An asyncio future, completed inside its loop.
    Aio {
        event_loop: Py<PyAny>,
        fut: Py<PyAny>,
    },
}

/// An async send's or publish's completion, handed to the core as its callback: pushes the
/// outcome to the store's completer thread.
pub(crate) struct Completion {
    completer: Arc<Completer>,
    done: Done,
}

impl Completion {
    /// Queues `done` to be completed with `r` (called once, on the core's callback thread).
    pub(crate) fn complete(self, r: mqlite::Result<MessageId>) {
        self.completer.push(self.done, r)
    }
}

/// The asyncio form of an async send or publish (`Queue.send_async_aio`,
/// `Topic.publish_async_aio`): makes a future of the running event loop and calls `start` with
/// the completion that resolves it, inside that loop, to the id or the error. `start` runs with
/// the GIL released (it returns at once unless the producer window is full). Returns the
/// future. Errors: `RuntimeError` without a running loop (asyncio's), the error `start` returns
/// (then the future is dropped unresolved and nothing is sent).
pub(crate) fn aio_send<'py>(
    py: Python<'py>,
    completer: &Arc<Completer>,
    start: impl FnOnce(Completion) -> mqlite::Result<()> + Send,
) -> PyResult<Bound<'py, PyAny>> {
    static GET_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let event_loop = GET_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let fut = event_loop.call_method0(intern!(py, "create_future"))?;
    let completion = Completion {
        completer: completer.clone(),
        done: Done::Aio {
            event_loop: event_loop.unbind(),
            fut: fut.clone().unbind(),
        },
    };
    crate::errors::mq(py.detach(|| start(completion)))?;
    Ok(fut)
}

/// Completions run per GIL hold.
const CHUNK: usize = 4096;

#[derive(Default)]
struct State {
    items: Vec<(Done, mqlite::Result<MessageId>)>,
    stop: bool,
}

pub(crate) struct Completer {
    state: Mutex<State>,
    cv: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    thread_id: Mutex<Option<ThreadId>>,
}

impl Completer {
    pub fn start() -> std::io::Result<Arc<Completer>> {
        let c = Arc::new(Completer {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            thread: Mutex::new(None),
            thread_id: Mutex::new(None),
        });
        let c2 = c.clone();
        let t = std::thread::Builder::new()
            .name("mqlite-py-completions".into())
            .spawn(move || c2.run())?;
        *c.thread_id.lock().unwrap_or_else(|e| e.into_inner()) = Some(t.thread().id());
        *c.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        Ok(c)
    }

    /// Queues a completion; called from the core's callback thread (no GIL needed).
    pub fn push(&self, done: Done, r: mqlite::Result<MessageId>) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let was_empty = st.items.is_empty();
        st.items.push((done, r));
        drop(st);
        if was_empty {
            self.cv.notify_one();
        }
    }

    /// Whether the calling thread is this completer's thread.
    pub fn is_current(&self) -> bool {
        *self.thread_id.lock().unwrap_or_else(|e| e.into_inner())
            == Some(std::thread::current().id())
    }

    /// Completes everything queued, then stops the thread. Must be called without the GIL (the
    /// thread needs it), after the core store is closed (so nothing more is pushed). From the
    /// completer thread itself it only asks the thread to stop after the current batch.
    pub fn stop(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stop = true;
        self.cv.notify_all();
        if self.is_current() {
            return;
        }
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t {
            let _ = t.join();
        }
    }

    /// Forgets the thread handle without touching the thread (after fork() it does not exist).
    pub fn forget_thread(&self) {
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            std::mem::forget(t);
        }
    }

    fn run(self: Arc<Self>) {
        ON_COMPLETER.with(|c| c.set(true));
        loop {
            let items = {
                let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
                while st.items.is_empty() && !st.stop {
                    st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
                if st.items.is_empty() {
                    return;
                }
                std::mem::take(&mut st.items)
            };
            // The GIL is let go between chunks so that other Python threads are not held up for
            // the whole of a large backlog of completions.
            let mut items = items.into_iter();
            loop {
                let chunk: Vec<_> = items.by_ref().take(CHUNK).collect();
                if chunk.is_empty() {
                    break;
                }
                Python::attach(|py| complete_all(py, chunk));
            }
        }
    }
}

fn complete_all(py: Python<'_>, items: Vec<(Done, mqlite::Result<MessageId>)>) {
    // asyncio futures grouped by loop (keyed by the loop object's address), in order.
    let mut aio: Vec<(Py<PyAny>, Vec<Bound<'_, PyAny>>)> = Vec::new();
    let mut aio_index: HashMap<usize, usize> = HashMap::new();
    for (done, r) in items {
        match done {
            Done::Future { fut, callback } => {
                let fut = fut.into_bound(py);
                if let Err(e) = complete_future(py, &fut, r) {
                    e.write_unraisable(py, Some(&fut));
                }
                if let Some(cb) = callback {
                    let cb = cb.into_bound(py);
                    if let Err(e) = cb.call1((&fut,)) {
                        // Never swallowed, never fatal: sys.unraisablehook shows it, we go on.
                        e.write_unraisable(py, Some(&cb));
                    }
                }
            }
            Done::Aio { event_loop, fut } => {
                let key = event_loop.as_ptr() as usize;
                let i = *aio_index.entry(key).or_insert_with(|| {
                    aio.push((event_loop, Vec::new()));
                    aio.len() - 1
                });
                let (ok, val) = match r {
                    Ok(id) => (
                        true,
                        id.0.into_pyobject(py)
                            .map(|v| v.into_any())
                            .unwrap_or_else(|e| match e {}),
                    ),
                    Err(e) => (false, to_py(e).into_value(py).into_bound(py).into_any()),
                };
                let ok = pyo3::types::PyBool::new(py, ok).to_owned().into_any();
                match PyTuple::new(py, [fut.into_bound(py), ok, val]) {
                    Ok(t) => aio[i].1.push(t.into_any()),
                    Err(e) => e.write_unraisable(py, None),
                }
            }
        }
    }
    for (event_loop, batch) in aio {
        let r = PyList::new(py, batch).and_then(|list| {
            let f = aio_complete_fn(py)?;
            event_loop
                .bind(py)
                .call_method1(intern!(py, "call_soon_threadsafe"), (f, list))
        });
        // A loop that is already closed has nobody left to tell.
        let _ = r;
    }
}

/// Completes a `SendFuture`: lock-free when nobody has looked at it yet (see `_future.py`).
fn complete_future(
    py: Python<'_>,
    fut: &Bound<'_, PyAny>,
    r: mqlite::Result<MessageId>,
) -> PyResult<()> {
    let (is_ok, attr, val) = match r {
        Ok(id) => (
            true,
            intern!(py, "_result"),
            id.0.into_pyobject(py)?.into_any(),
        ),
        Err(e) => (
            false,
            intern!(py, "_exception"),
            to_py(e).into_value(py).into_bound(py).into_any(),
        ),
    };
    let cond = intern!(py, "_cond");
    if fut.getattr(cond)?.is_none() {
        fut.setattr(attr, &val)?;
        fut.setattr(intern!(py, "_state"), finished(py)?)?;
        if !fut.getattr(cond)?.is_none() {
            fut.call_method0(intern!(py, "_wake"))?;
        }
        Ok(())
    } else if is_ok {
        fut.call_method1(intern!(py, "set_result"), (val,))
            .map(|_| ())
    } else {
        fut.call_method1(intern!(py, "set_exception"), (val,))
            .map(|_| ())
    }
}

fn finished(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static FINISHED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    FINISHED.import(py, "concurrent.futures._base", "FINISHED")
}

fn aio_complete_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static F: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    F.import(py, "mqlite._mqlite", "_aio_complete")
}

/// Runs inside an asyncio loop: completes `(future, ok, value)` triples (skipping cancelled ones).
#[pyfunction]
pub(crate) fn _aio_complete(py: Python<'_>, items: &Bound<'_, PyList>) -> PyResult<()> {
    for item in items.iter() {
        let (fut, ok, val): (Bound<'_, PyAny>, bool, Bound<'_, PyAny>) = item.extract()?;
        if fut.call_method0(intern!(py, "done"))?.is_truthy()? {
            continue;
        }
        if ok {
            fut.call_method1(intern!(py, "set_result"), (val,))?;
        } else {
            fut.call_method1(intern!(py, "set_exception"), (val,))?;
        }
    }
    Ok(())
}

thread_local! {
    /// Set on completer threads: their callbacks cannot wait for another send's completion
    /// (this very thread completes it).
    static ON_COMPLETER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread runs send callbacks (a completer thread). `SendFuture.result()`
/// and `.exception()` on a pending future raise `WouldDeadlock` there instead of hanging.
#[pyfunction]
pub(crate) fn _on_callback_thread() -> bool {
    ON_COMPLETER.with(|c| c.get())
}
