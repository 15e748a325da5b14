//! `mqlite.Transaction`: sends and acks across queues, committed as one durable record.

use std::sync::Mutex;

use mqlite::ErrorKind;
use pyo3::prelude::*;
use pyo3::types::PyType;

use crate::convert::{message, Headers};
use crate::errors::{mq, new_err};
use crate::message::Message;
use crate::queue::Queue;
use crate::store::current_pid;

/// A transaction of a store (from :meth:`Store.transaction`). Sends are stored and acks take
/// effect only at :meth:`commit`, all together and durably; :meth:`rollback` (or an exception
/// in its ``with`` block) discards the sends and makes the acked deliveries count as failed.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Transaction {
    tx: Mutex<Option<mqlite::Transaction>>,
    ids: Mutex<Option<Vec<u64>>>,
    /// Its store: every method checks it first (`Closed` once the store is closed).
    store: Py<crate::store::Store>,
    pid: u32,
}

impl Transaction {
    pub(crate) fn new(tx: mqlite::Transaction, store: Py<crate::store::Store>) -> Self {
        Transaction {
            tx: Mutex::new(Some(tx)),
            ids: Mutex::new(None),
            store,
            pid: current_pid(),
        }
    }

    fn with_tx<T>(&self, f: impl FnOnce(&mut mqlite::Transaction) -> PyResult<T>) -> PyResult<T> {
        self.store.get().check()?;
        let mut g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
        match g.as_mut() {
            Some(tx) => f(tx),
            None => Err(new_err(
                ErrorKind::AlreadySettled,
                "the transaction is already committed or rolled back",
            )),
        }
    }

    fn finish(&self) -> PyResult<mqlite::Transaction> {
        self.store.get().check()?;
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| {
                new_err(
                    ErrorKind::AlreadySettled,
                    "the transaction is already committed or rolled back",
                )
            })
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if current_pid() != self.pid {
            if let Some(tx) = self.tx.get_mut().unwrap_or_else(|e| e.into_inner()).take() {
                std::mem::forget(tx);
            }
        }
    }
}

#[pymethods]
impl Transaction {
    /// Adds a send to ``queue`` (same keywords as :meth:`Queue.send`); stored at commit.
    #[pyo3(signature = (queue, body, *, properties = None, priority = None, ttl = None, delay = None,
        deliver_at = None, group = None, dedup_key = None, correlation_id = None, repeat = None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        queue: &Queue,
        body: &Bound<'_, PyAny>,
        properties: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        delay: Option<&Bound<'_, PyAny>>,
        deliver_at: Option<&Bound<'_, PyAny>>,
        group: Option<String>,
        dedup_key: Option<String>,
        correlation_id: Option<String>,
        repeat: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let m = message(
            body,
            Headers {
                properties,
                priority,
                ttl,
                delay,
                deliver_at,
                group,
                dedup_key,
                correlation_id,
                repeat,
            },
        )?;
        self.with_tx(|tx| mq(tx.send(queue.core(), m)))
    }

    /// Adds an ack of a received message; it stays in flight until commit (acked) or rollback
    /// (a failed delivery).
    fn ack(&self, message: &Message) -> PyResult<()> {
        self.with_tx(|tx| {
            let d = message.take()?;
            mq(tx.ack(d))
        })
    }

    /// Commits: every send and ack takes effect as one durable record. Returns the ids of the
    /// sent messages, in order (also kept in :attr:`ids`).
    fn commit(&self, py: Python<'_>) -> PyResult<Vec<u64>> {
        let tx = self.finish()?;
        let ids: Vec<u64> = mq(py.detach(move || tx.commit()))?
            .into_iter()
            .map(|i| i.0)
            .collect();
        *self.ids.lock().unwrap_or_else(|e| e.into_inner()) = Some(ids.clone());
        Ok(ids)
    }

    /// Rolls back: the sends are discarded and the acked deliveries fail (redelivery policy).
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        let tx = self.finish()?;
        mq(py.detach(move || tx.rollback()))
    }

    /// The ids of the sent messages once committed; None before.
    #[getter]
    fn ids(&self) -> Option<Vec<u64>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many sends and acks were added (0 once finished).
    fn __len__(&self) -> usize {
        self.tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|t| t.len())
            .unwrap_or(0)
    }

    /// Enters its ``with`` block. Raises :class:`Closed` if its store is closed, and
    /// :class:`AlreadySettled` if the transaction is already finished (committed or rolled
    /// back), as its every other method and the C face's calls do: the block's sends and acks
    /// could not be committed, and a silent enter would only defer the failure.
    fn __enter__(slf: Py<Self>) -> PyResult<Py<Self>> {
        let this = slf.get();
        this.store.get().check()?;
        if this.tx.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return Err(new_err(
                ErrorKind::AlreadySettled,
                "the transaction is already committed or rolled back; start a new one with \
                 Store.transaction()",
            ));
        }
        Ok(slf)
    }

    /// Commits on a clean exit (unless already finished); rolls back on an exception.
    #[pyo3(signature = (exc_type = None, _exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        _exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.tx.lock().unwrap_or_else(|e| e.into_inner()).is_none() {
            return Ok(false);
        }
        match exc_type {
            None => {
                self.commit(py)?;
            }
            Some(_) => self.rollback(py)?,
        }
        Ok(false)
    }
}
