//! Topics: publish to every matching subscription (subscriptions are `Queue`s with a handle).

use mqlite::SubscriptionOptions;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::completer::{aio_send, Done};
use crate::convert::{batch_items, message, Headers};
use crate::errors::mq;
use crate::queue::future_class;
use crate::store::Store;

/// A topic: ``store.topic("orders.eu.created")``. Publishing reaches every subscription whose
/// pattern (``*`` one segment, ``>`` the rest, as ActiveMQ and NATS) and JMS selector match,
/// evaluated at publish time; the body is stored once with a reference per subscription.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Topic {
    t: mqlite::Topic,
    store: Py<Store>,
}

impl Topic {
    pub(crate) fn new(t: mqlite::Topic, store: Py<Store>) -> Topic {
        Topic { t, store }
    }
}

/// `SubscriptionOptions` from `store.subscribe`'s keywords.
pub(crate) fn options(
    name: Option<String>,
    durable: bool,
    shared: bool,
    selector: Option<String>,
    queue: mqlite::QueueOptions,
) -> SubscriptionOptions {
    SubscriptionOptions {
        name,
        durable,
        shared,
        selector,
        queue,
    }
}

#[pymethods]
impl Topic {
    /// The topic's name.
    #[getter]
    fn name(&self) -> &str {
        self.t.name()
    }

    /// Publishes a message and returns its id (the same in every subscription) once it is
    /// durable in the durable subscriptions. When no subscription matches, nothing is stored
    /// and ``stats()["unrouted"]`` counts it. ``ttl``/``delay`` are seconds or timedelta
    /// (a ``ttl`` of 0: never expires, as JMS).
    /// Raises InvalidArgument for a dedup key or repeats (queue features), QueueFull naming a
    /// subscription at its limit whose ``overflow`` is ``"reject"`` or whose ``"block"`` wait
    /// timed out (then nothing is stored); a ``"drop_oldest"`` subscription makes room as a
    /// queue does.
    #[pyo3(signature = (body, *, properties = None, priority = None, ttl = None, delay = None, deliver_at = None,
        group = None, correlation_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn publish(
        &self,
        py: Python<'_>,
        body: &Bound<'_, PyAny>,
        properties: Option<&Bound<'_, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'_, PyAny>>,
        delay: Option<&Bound<'_, PyAny>>,
        deliver_at: Option<&Bound<'_, PyAny>>,
        group: Option<String>,
        correlation_id: Option<String>,
    ) -> PyResult<u64> {
        self.store.get().check()?;
        let m = message(
            body,
            Headers {
                properties,
                priority,
                ttl,
                delay,
                deliver_at,
                group,
                dedup_key: None,
                correlation_id,
                repeat: None,
            },
        )?;
        let t = &self.t;
        Ok(mq(py.detach(|| t.publish(m)))?.0)
    }

    /// Publishes without waiting: returns a :class:`SendFuture` resolving to the id once the
    /// message is durable; ``callback(future)`` runs after that, as for ``Queue.send_async``.
    #[pyo3(signature = (body, *, callback = None, properties = None, priority = None, ttl = None, delay = None,
        deliver_at = None, group = None, correlation_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_async<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        callback: Option<Py<PyAny>>,
        properties: Option<&Bound<'py, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'py, PyAny>>,
        delay: Option<&Bound<'py, PyAny>>,
        deliver_at: Option<&Bound<'py, PyAny>>,
        group: Option<String>,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.get();
        store.check()?;
        let m = message(
            body,
            Headers {
                properties,
                priority,
                ttl,
                delay,
                deliver_at,
                group,
                dedup_key: None,
                correlation_id,
                repeat: None,
            },
        )?;
        let fut = future_class(py)?.call0()?;
        let done = Done::Future {
            fut: fut.clone().unbind(),
            callback,
        };
        let c = store.completer().clone();
        let t = &self.t;
        mq(py.detach(|| t.publish_async(m, move |r| c.push(done, r))))?;
        Ok(fut)
    }

    /// asyncio: publishes without blocking the loop; returns an awaitable resolving to the id
    /// once the message is durable (at once when no durable subscription matched), as
    /// :meth:`publish` returns it, or raising its error. The keywords are :meth:`publish`'s.
    /// Must be called with a running event loop (else RuntimeError); raises Closed on a closed
    /// store.
    #[pyo3(signature = (body, *, properties = None, priority = None, ttl = None, delay = None,
        deliver_at = None, group = None, correlation_id = None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_async_aio<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        properties: Option<&Bound<'py, PyAny>>,
        priority: Option<&Bound<'py, PyAny>>,
        ttl: Option<&Bound<'py, PyAny>>,
        delay: Option<&Bound<'py, PyAny>>,
        deliver_at: Option<&Bound<'py, PyAny>>,
        group: Option<String>,
        correlation_id: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let store = self.store.get();
        store.check()?;
        let m = message(
            body,
            Headers {
                properties,
                priority,
                ttl,
                delay,
                deliver_at,
                group,
                dedup_key: None,
                correlation_id,
                repeat: None,
            },
        )?;
        let t = &self.t;
        aio_send(py, store.completer(), |done| {
            t.publish_async(m, move |r| done.complete(r))
        })
    }

    /// Publishes many messages with one record batch and one wait. Items are bodies, or dicts
    /// with ``body`` and keywords of :meth:`publish`. If one is refused, the ones before it are
    /// published and the error names its index.
    fn publish_batch(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
        self.store.get().check()?;
        let ms = batch_items(messages)?;
        let t = &self.t;
        Ok(mq(py.detach(|| t.publish_batch(ms)))?
            .into_iter()
            .map(|i| i.0)
            .collect())
    }

    /// The topic's statistics as a ``dict[str, int]``:
    ///
    /// - ``published``: messages published that reached at least one subscription, since the
    ///   store was opened (0 at every open).
    /// - ``unrouted``: messages published while no subscription matched them (stored nowhere,
    ///   as JMS topics), since the store was opened.
    /// - ``subscriptions``: subscriptions whose pattern matches the topic now (a gauge).
    ///
    /// Per-subscription counts are the subscription's :meth:`Queue.stats`. Raises
    /// :class:`Closed` after close.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.store.get().check()?;
        let s = mq(self.t.stats())?;
        let d = PyDict::new(py);
        d.set_item("published", s.published)?;
        d.set_item("unrouted", s.unrouted)?;
        d.set_item("subscriptions", s.subscriptions)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!("Topic({:?})", self.t.name())
    }
}
