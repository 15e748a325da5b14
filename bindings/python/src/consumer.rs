//! `mqlite.Consumer` (a pull consumer with its own ack mode) and `mqlite.Listener` (push).

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;

use crate::errors::new_err;
use crate::message::{reason_text, Message};
use crate::queue::{receive_sliced, Queue};
use crate::store::{current_pid, Store};

/// A consumer of one queue with its own acknowledgement mode (from :meth:`Queue.consumer`).
/// Closing it, leaving its ``with`` block, or dropping it returns its unsettled messages to the
/// queue as failed deliveries.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Consumer {
    // An Arc so that a receive waits (GIL released) without holding this lock: a thread holding
    // the GIL and waiting for the lock would otherwise deadlock with one holding the lock and
    // waiting for the GIL. The core consumer closes when the last receive in progress ends.
    c: Mutex<Option<Arc<mqlite::Consumer>>>,
    store: Py<Store>,
    pid: u32,
    auto_ack: bool,
}

impl Consumer {
    pub(crate) fn new(c: mqlite::Consumer, store: Py<Store>, auto_ack: bool) -> Self {
        Consumer {
            auto_ack,
            c: Mutex::new(Some(Arc::new(c))),
            store,
            pid: current_pid(),
        }
    }

    fn receive_impl(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<Message>>> {
        self.store.get().check()?;
        let c = self.c.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(c) = c else {
            return Err(new_err(mqlite::ErrorKind::Closed, "the consumer is closed"));
        };
        let got = receive_sliced(py, timeout, |slice| c.receive_batch(n, Some(slice)))?;
        let msgs = Queue::wrap(py, got)?;
        if self.auto_ack {
            // Acked on hand-over by the core: show them as settled.
            for m in &msgs {
                drop(m.get().take());
            }
        }
        Ok(msgs)
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if current_pid() != self.pid {
            if let Some(c) = self.c.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                std::mem::forget(c);
            }
        }
    }
}

#[pymethods]
impl Consumer {
    /// Receives one message, waiting up to ``timeout`` seconds (None = forever).
    #[pyo3(signature = (timeout = None))]
    fn receive(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<Message>>> {
        Ok(self.receive_impl(py, 1, timeout)?.pop())
    }

    /// Receives up to ``n`` messages, waiting up to ``timeout`` for the first.
    #[pyo3(signature = (n, timeout = None))]
    fn receive_batch(
        &self,
        py: Python<'_>,
        n: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<Message>>> {
        self.receive_impl(py, crate::convert::count(n, "n")?, timeout)
    }

    /// Closes it: its unsettled messages go back to the queue as failed deliveries.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.store.get().check()?;
        let c = self.c.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(move || drop(c));
        Ok(())
    }

    /// Enters its ``with`` block. Raises :class:`Closed` if it (or its store) is already closed:
    /// a block over a closed consumer could only fail later, at its first receive.
    fn __enter__(slf: Py<Self>) -> PyResult<Py<Self>> {
        let this = slf.get();
        this.store.get().check()?;
        if this.c.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return Err(new_err(mqlite::ErrorKind::Closed, "the consumer is closed"));
        }
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}

/// A running push consumer (from :meth:`Queue.listen`). :meth:`stop` (or leaving its ``with``
/// block) stops it after the message in hand.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Listener {
    l: Mutex<Option<mqlite::Listener>>,
    _store: Py<Store>,
    pid: u32,
}

impl Listener {
    pub(crate) fn new(l: mqlite::Listener, store: Py<Store>) -> Self {
        Listener {
            l: Mutex::new(Some(l)),
            _store: store,
            pid: current_pid(),
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let l = self.l.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if current_pid() != self.pid {
            std::mem::forget(l);
            return;
        }
        // Stopping joins the listener thread, which may be waiting for the GIL.
        Python::attach(|py| py.detach(move || drop(l)));
    }
}

#[pymethods]
impl Listener {
    /// Stops it and waits for the message in hand to be settled.
    fn stop(&self, py: Python<'_>) {
        let l = self.l.lock().unwrap_or_else(|e| e.into_inner()).take();
        py.detach(move || drop(l));
    }

    /// Whether it is still running: False once stopped, and once its store is closed (or
    /// poisoned) and the message in hand is done, since it then takes no more messages.
    #[getter]
    fn running(&self) -> bool {
        self.l
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|l| l.is_running())
    }

    /// Enters its ``with`` block. Raises :class:`Closed` if it was already stopped.
    fn __enter__(slf: Py<Self>) -> PyResult<Py<Self>> {
        if !slf.get().running() {
            return Err(new_err(
                mqlite::ErrorKind::Closed,
                "the listener is stopped",
            ));
        }
        Ok(slf)
    }

    #[pyo3(signature = (_exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        _exc_type: Option<&Bound<'_, PyAny>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.stop(py);
        false
    }
}

/// `"ExcType: text"` of a Python exception raised by a handler.
pub(crate) fn failure_text(py: Python<'_>, e: &PyErr) -> String {
    let name = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    let text = e.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    reason_text(&name, &text)
}
