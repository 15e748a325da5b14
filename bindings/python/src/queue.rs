//! `mqlite.Queue`: sends (sync, async with a future, asyncio, batch), receives, consume
//! iterators, browse, stats.

use std::time::{Duration, Instant};

use mqlite::{Delivery, QueueStats};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList};

use crate::completer::{aio_send, Done};
use crate::convert::{batch_items, int, message, opt_duration, opt_int, time_ms, Headers, Round};
use crate::errors::{invalid, mq};
use crate::message::Message;
use crate::store::Store;

/// How long one blocking wait lasts before we look for Ctrl-C (signals are only delivered to
/// Python code when we come back to it).
const SLICE: Duration = Duration::from_millis(50);

/// A handle to one queue. Thread-safe; keeps its store open while it lives.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Queue {
    q: mqlite::Queue,
    store: Py<Store>,
    /// The subscriber's handle when this queue is a subscription: dropping the Python object
    /// detaches it (a non-durable subscription then ends).
    sub: Option<mqlite::Subscription>,
}

pub(crate) fn stats_dict<'py>(py: Python<'py>, s: &QueueStats) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    for (k, v) in [
        ("depth", s.depth),
        ("in_flight", s.in_flight),
        ("delayed", s.delayed),
        ("messages", s.messages),
        ("bytes", s.bytes),
        ("enqueued", s.enqueued),
        ("acked", s.acked),
        ("redelivered", s.redelivered),
        ("dead_lettered", s.dead_lettered),
        ("expired", s.expired),
        ("discarded", s.discarded),
        ("replayed", s.replayed),
        ("prefetched", s.prefetched),
        ("replayed_out", s.replayed_out),
    ] {
        d.set_item(k, v)?;
    }
    Ok(d)
}

impl Queue {
    pub(crate) fn new(q: mqlite::Queue, store: Py<Store>) -> Queue {
        Queue {
            q,
            store,
            sub: None,
        }
    }

    /// A subscription, with the receiving API of a queue.
    pub(crate) fn of_subscription(s: mqlite::Subscription, store: Py<Store>) -> Queue {
        Queue {
            q: s.queue().clone(),
            store,
            sub: Some(s),
        }
    }

    pub(crate) fn core(&self) -> &mqlite::Queue {
        &self.q
    }

    fn check(&self) -> PyResult<()> {
        self.store.get().check()
    }

    /// Receives up to `n`, waiting up to `timeout` seconds (None = forever) for the first, in
    /// slices so that Ctrl-C (and other signals) are handled while waiting.
    fn receive_impl(
        &self,
        py: Python<'_>,
        n: usize,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Delivery>> {
        self.check()?;
        let q = &self.q;
        receive_sliced(py, timeout, |slice| q.receive_batch(n, Some(slice)))
    }

    pub(crate) fn wrap(py: Python<'_>, ds: Vec<Delivery>) -> PyResult<Vec<Py<Message>>> {
        ds.into_iter()
            .map(|d| Py::new(py, Message::from_delivery(py, d)))
            .collect()
    }
}

/// Receives with `recv`, waiting up to `timeout` seconds (None = forever) for the first
/// message, in slices: between slices we come back to Python so Ctrl-C (and other signals) are
/// handled while waiting. The GIL is released during each slice.
pub(crate) fn receive_sliced(
    py: Python<'_>,
    timeout: Option<&Bound<'_, PyAny>>,
    recv: impl Fn(Duration) -> mqlite::Result<Vec<Delivery>> + Sync,
) -> PyResult<Vec<Delivery>> {
    let timeout = opt_duration(timeout, "timeout")?;
    // A timeout past what an Instant can hold waits forever, as None does.
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(SLICE),
            None => SLICE,
        };
        let got = mq(py.detach(|| recv(slice)))?;
        if !got.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(got);
        }
        py.check_signals()?;
    }
}

pub(crate) fn future_class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static C: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    C.import(py, "mqlite._future", "SendFuture")
}

fn aio_helper<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static M: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let m = M.get_or_try_init(py, || {
        py.import("mqlite._aio").map(|m| m.into_any().unbind())
    })?;
    m.bind(py).getattr(name)
}

/// `consume_aio`'s `batch` through [`int`] (a default keeps it out of an `Option`).
fn batch_arg(o: &Bound<'_, PyAny>) -> PyResult<usize> {
    crate::convert::count(o, "batch")
}

#[pymethods]
impl Queue {
    /// The queue's name.
    #[getter]
    fn name(&self) -> &str {
        self.q.name()
    }

    /// The subscription's name when this queue is a subscription (``store.subscribe``); None
    /// for a plain queue. Its queue's name is ``$sub.<name>``.
    #[getter]
    fn subscription(&self) -> Option<&str> {
        self.sub.as_ref().map(|s| s.subscription_name())
    }

    /// Sends a message and returns its id once it is durable (per the queue's durability).
    /// ``body`` is bytes-like, or ``str`` (sent as UTF-8). ``ttl``/``delay`` are seconds or
    /// timedelta; a ``ttl`` of 0 means the message never expires (JMS's time to live of 0);
    /// ``deliver_at`` a datetime or epoch seconds. With a ``dedup_key`` seen within
    /// the queue's dedup window, nothing is stored and the first message's id is returned.
    #[pyo3(signature = (body, *, properties = None, priority = None, ttl = None, delay = None, deliver_at = None,
        group = None, dedup_key = None, correlation_id = None, repeat = None))]
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        py: Python<'_>,
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
    ) -> PyResult<u64> {
        self.check()?;
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
        let q = &self.q;
        Ok(mq(py.detach(|| q.send(m)))?.0)
    }

    /// Sends without waiting for durability. Returns a :class:`SendFuture` (a
    /// ``concurrent.futures.Future``) that resolves to the id once the message is durable, or
    /// to the error if it never will be. ``callback(future)``, if given, runs exactly once after
    /// that, on a library thread with the GIL held; an exception it raises goes to
    /// ``sys.unraisablehook``. Closing the store completes every pending future first.
    #[pyo3(signature = (body, *, callback = None, properties = None, priority = None, ttl = None, delay = None,
        deliver_at = None, group = None, dedup_key = None, correlation_id = None, repeat = None))]
    #[allow(clippy::too_many_arguments)]
    fn send_async<'py>(
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
        dedup_key: Option<String>,
        correlation_id: Option<String>,
        repeat: Option<&Bound<'py, PyAny>>,
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
                dedup_key,
                correlation_id,
                repeat,
            },
        )?;
        let fut = future_class(py)?.call0()?;
        let done = Done::Future {
            fut: fut.clone().unbind(),
            callback,
        };
        let c = store.completer().clone();
        let q = &self.q;
        // Usually returns at once; it blocks only while the producer window is full.
        mq(py.detach(|| q.send_async(m, move |r| c.push(done, r))))?;
        Ok(fut)
    }

    /// asyncio: sends without blocking the loop; returns an awaitable resolving to the id once
    /// the message is durable. Must be called with a running event loop.
    #[pyo3(signature = (body, *, properties = None, priority = None, ttl = None, delay = None, deliver_at = None,
        group = None, dedup_key = None, correlation_id = None, repeat = None))]
    #[allow(clippy::too_many_arguments)]
    fn send_async_aio<'py>(
        &self,
        py: Python<'py>,
        body: &Bound<'py, PyAny>,
        properties: Option<&Bound<'py, PyAny>>,
        priority: Option<&Bound<'_, PyAny>>,
        ttl: Option<&Bound<'py, PyAny>>,
        delay: Option<&Bound<'py, PyAny>>,
        deliver_at: Option<&Bound<'py, PyAny>>,
        group: Option<String>,
        dedup_key: Option<String>,
        correlation_id: Option<String>,
        repeat: Option<&Bound<'py, PyAny>>,
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
                dedup_key,
                correlation_id,
                repeat,
            },
        )?;
        let q = &self.q;
        aio_send(py, store.completer(), |done| {
            q.send_async(m, move |r| done.complete(r))
        })
    }

    /// Sends many messages with one record batch and one wait: all are durable when it returns.
    /// Items are bodies, or dicts with ``body`` and any keyword of :meth:`send`. If one is
    /// refused, the ones before it are sent and the error names its index.
    fn send_batch(&self, py: Python<'_>, messages: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
        self.check()?;
        let ms = batch_items(messages)?;
        let q = &self.q;
        Ok(mq(py.detach(|| q.send_batch(ms)))?
            .into_iter()
            .map(|i| i.0)
            .collect())
    }

    /// Receives one message, waiting up to ``timeout`` seconds (None = forever, 0 = don't
    /// wait). Returns None on timeout. Interruptible by Ctrl-C; other threads run meanwhile.
    #[pyo3(signature = (timeout = None))]
    fn receive(
        &self,
        py: Python<'_>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<Message>>> {
        let mut got = self.receive_impl(py, 1, timeout)?;
        got.pop()
            .map(|d| Py::new(py, Message::from_delivery(py, d)))
            .transpose()
    }

    /// Receives up to ``n`` messages, waiting up to ``timeout`` for the first (None = forever).
    /// Their delivery counts are made durable with one record.
    #[pyo3(signature = (n, timeout = None))]
    fn receive_batch(
        &self,
        py: Python<'_>,
        n: &Bound<'_, PyAny>,
        timeout: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Vec<Py<Message>>> {
        let got = self.receive_impl(py, crate::convert::count(n, "n")?, timeout)?;
        Self::wrap(py, got)
    }

    /// Iterates over messages as they arrive; stops after ``timeout`` seconds without one
    /// (None = never). Each message must be settled (``with msg:`` does it).
    #[pyo3(signature = (timeout = None))]
    fn consume(slf: &Bound<'_, Self>, timeout: Option<&Bound<'_, PyAny>>) -> PyResult<Consume> {
        slf.get().check()?;
        let timeout = opt_duration(timeout, "timeout")?.map(|d| d.as_secs_f64());
        Ok(Consume {
            queue: slf.clone().unbind(),
            timeout,
        })
    }

    /// asyncio: awaitable receive; resolves to a message or None after ``timeout``.
    #[pyo3(signature = (timeout = None))]
    fn receive_aio<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check()?;
        aio_helper(slf.py(), "receive")?.call1((slf, timeout))
    }

    /// asyncio: ``async for msg in q.consume_aio(timeout=…)``; stops after ``timeout`` seconds
    /// without a message (None = never). Receives up to ``batch`` at a time off the loop.
    #[pyo3(signature = (timeout = None, batch = 64))]
    fn consume_aio<'py>(
        slf: &Bound<'py, Self>,
        timeout: Option<&Bound<'py, PyAny>>,
        #[pyo3(from_py_with = batch_arg)] batch: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        slf.get().check()?;
        aio_helper(slf.py(), "consume")?.call1((slf, timeout, batch))
    }

    /// Acks many messages of this queue with one record. Lazy like :meth:`Message.ack` (the
    /// next receive's delivery record shares their commit: one fsync per receive/ack cycle);
    /// with ``sync=True`` it returns once the acks are durable.
    #[pyo3(signature = (messages, *, sync = false))]
    fn ack_batch(&self, py: Python<'_>, messages: &Bound<'_, PyAny>, sync: bool) -> PyResult<()> {
        self.check()?;
        let msgs: Vec<Bound<'_, Message>> = if let Ok(l) = messages.cast::<PyList>() {
            l.iter()
                .map(|m| m.cast_into::<Message>().map_err(PyErr::from))
                .collect::<PyResult<_>>()?
        } else {
            messages
                .try_iter()?
                .map(|m| Ok(m?.cast_into::<Message>()?))
                .collect::<PyResult<_>>()?
        };
        // Check every message first: taking deliveries and then failing would drop them unsettled.
        for m in &msgs {
            if m.get().queue_name() != self.q.name() {
                return Err(invalid(format!(
                    "a message of queue {:?} cannot be acked through queue {:?}",
                    m.get().queue_name(),
                    self.q.name()
                )));
            }
        }
        let mut ds = Vec::with_capacity(msgs.len());
        for m in &msgs {
            ds.push(m.get().take()?);
        }
        let q = &self.q;
        mq(py.detach(|| {
            if sync {
                q.ack_batch_sync(ds)
            } else {
                q.ack_batch(ds)
            }
        }))
    }

    /// Up to ``max`` messages the queue holds (all if None), without consuming them: every
    /// message whatever its state, each with :attr:`Message.state` (``"ready"``,
    /// ``"delayed"``, ``"redelivery_wait"``, ``"in_flight"``, ``"prefetched"``) and its true
    /// :attr:`Message.delivery_count`; ready ones first in delivery order, then delayed and
    /// redelivery-waiting ones by due time, then those prefetched, then those in flight (a
    /// browse leaves prefetched messages in their consumer's buffer). ``ready_only=True`` lists only
    /// the ready messages (what a receive could take now). Messages of a dead-letter queue
    /// carry :attr:`Message.dead_letter`.
    #[pyo3(signature = (max = None, *, ready_only = false))]
    fn browse(
        &self,
        py: Python<'_>,
        max: Option<&Bound<'_, PyAny>>,
        ready_only: bool,
    ) -> PyResult<Vec<Py<Message>>> {
        self.check()?;
        let q = &self.q;
        let max = opt_int(max, "max")?.unwrap_or(usize::MAX);
        let ms = mq(py.detach(|| {
            if ready_only {
                q.browse_ready(max)
            } else {
                q.browse(max)
            }
        }))?;
        ms.iter()
            .map(|m| Py::new(py, Message::browsed(py, m, q.name())))
            .collect()
    }

    /// Removes every waiting message (and those prefetched by a consumer, not handed out; not
    /// those in flight); returns how many.
    fn purge(&self, py: Python<'_>) -> PyResult<u64> {
        self.check()?;
        let q = &self.q;
        mq(py.detach(|| q.purge()))
    }

    /// Removes the waiting messages (and those prefetched by a consumer, not handed out; never
    /// those in flight) with ids up to ``through`` (an ``int`` message id, inclusive; ``None``:
    /// every one), or with ``dry_run=True`` only counts them, changing nothing — the Rust
    /// ``Queue::purge_filtered``. Count with a dry run, confirm, then pass the dry run's
    /// ``last`` as ``through``: messages sent meanwhile are kept. Returns a dict: ``matched``
    /// (messages that passed the filter), ``purged`` (removed; 0 on a dry run) and ``last``
    /// (the highest id that passed, or ``None``). Raises :class:`InvalidArgument` for a
    /// ``through`` below 1 (``TypeError`` for one not an int), :class:`ReadOnly` (a store opened read-only; a dry run works),
    /// :class:`NoSpace` (nothing removed), :class:`Closed`.
    #[pyo3(signature = (*, through = None, dry_run = false))]
    fn purge_filtered<'py>(
        &self,
        py: Python<'py>,
        through: Option<&Bound<'_, PyAny>>,
        dry_run: bool,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        self.check()?;
        let through = match through {
            Some(t) if !t.is_none() => {
                let id = crate::convert::int_in(t, "through", 1, u64::MAX as i128)?;
                // In range by the check above.
                Some(mqlite::MessageId(id as u64))
            }
            _ => None,
        };
        let filter = mqlite::PurgeFilter { through, dry_run };
        let q = &self.q;
        let r = mq(py.detach(|| q.purge_filtered(&filter)))?;
        let d = pyo3::types::PyDict::new(py);
        d.set_item("matched", r.matched)?;
        d.set_item("purged", r.purged)?;
        d.set_item("last", r.last.map(|id| id.0))?;
        Ok(d)
    }

    /// The queue's statistics as a ``dict[str, int]`` (a subscription's too: it is a queue).
    /// Gauges, counted in messages at the time of the call:
    ///
    /// - ``depth``: ready for delivery now.
    /// - ``in_flight``: handed out to a consumer and not yet settled.
    /// - ``prefetched``: taken by a consumer's prefetch and not yet handed out (their delivery
    ///   counts are durable: after a crash each counts one failed delivery).
    /// - ``delayed``: waiting for a delivery time or a redelivery delay.
    /// - ``messages``: all held (``depth + in_flight + prefetched + delayed``).
    /// - ``bytes``: bytes of the journal records the held messages occupy (bodies and
    ///   headers), in bytes.
    ///
    /// Counters, in messages since the store was opened (they start at 0 at every open; the
    /// messages themselves are durable):
    ///
    /// - ``enqueued``: stored into this queue (sent, published or dead-lettered in; a replay
    ///   counts in ``replayed`` instead).
    /// - ``acked``: acknowledged.
    /// - ``redelivered``: deliveries that were redeliveries (each one counts).
    /// - ``dead_lettered``: failed (too many redeliveries, rejected, overflow, a parked group)
    ///   and left for the dead-letter queue, or dropped by the discard strategy.
    /// - ``expired``: their TTL (or a dead-letter queue's retention) passed, moved to the
    ///   dead-letter queue or dropped.
    /// - ``discarded``: dropped by :meth:`purge`.
    /// - ``replayed``: replayed into this queue from a dead-letter queue.
    /// - ``replayed_out``: moved out of this queue to another: dead letters replayed, and
    ///   messages moved by a move (``mqlite move``).
    ///
    /// A message that leaves the queue counts once, in one of ``acked``, ``dead_lettered``,
    /// ``expired``, ``discarded``, ``replayed_out``; one that arrives once, in ``enqueued`` or
    /// ``replayed``: ``enqueued + replayed - (acked + dead_lettered + expired + discarded +
    /// replayed_out)`` is the change of ``messages`` since the open (the core's
    /// ``QueueStats``). Raises :class:`Closed` after close.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        stats_dict(py, &mq(self.q.stats())?)
    }

    /// On a dead-letter queue: moves dead letters back to their original queue (or ``to``), with
    /// delivery counts reset; returns how many matched. Filters: ``reason`` (``"rejected"``,
    /// ``"max_redeliveries"``, ``"expired"``, ``"overflow"``, ``"group_parked"``), ``original_queue``, ``since``/
    /// ``until`` (datetime or epoch seconds, on the last failure time), ``ids`` (dead-letter or
    /// original ids), ``limit``. ``dry_run=True`` only counts. Crash-safe: one record per move.
    /// Dead letters a consumer prefetched and has not handed out are taken back (uncounted) and
    /// replayed; those in flight stay, not counted (``stats()["in_flight"]``).
    /// Raises InvalidArgument when ``to`` is a dead-letter queue (this one, one a dead-letter
    /// strategy names, or a default name ``DLQ``, ``DLQ.<queue>``): a replay strips the
    /// dead-letter information.
    #[pyo3(signature = (*, reason = None, original_queue = None, since = None, until = None, ids = None, to = None,
        limit = None, dry_run = false))]
    #[allow(clippy::too_many_arguments)]
    fn replay(
        &self,
        py: Python<'_>,
        reason: Option<&str>,
        original_queue: Option<String>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        ids: Option<Vec<Bound<'_, PyAny>>>,
        to: Option<String>,
        limit: Option<&Bound<'_, PyAny>>,
        dry_run: bool,
    ) -> PyResult<u64> {
        self.check()?;
        let reason = reason
            .map(|r| mq(r.parse::<mqlite::DeadLetterReason>()))
            .transpose()?;
        let time = |t: Option<&Bound<'_, PyAny>>, what: &str, round| {
            t.filter(|t| !t.is_none())
                .map(|t| time_ms(t, what, round))
                .transpose()
        };
        let filter = mqlite::ReplayFilter {
            reason,
            original_queue,
            since_ms: time(since, "since", Round::Up)?,
            until_ms: time(until, "until", Round::Down)?,
            ids: ids
                .map(|v| {
                    v.iter()
                        .map(|i| int(i, "ids").map(mqlite::MessageId))
                        .collect::<PyResult<_>>()
                })
                .transpose()?,
            to,
            limit: opt_int(limit, "limit")?,
            dry_run,
        };
        let q = &self.q;
        mq(py.detach(|| q.replay(&filter)))
    }

    /// A consumer with its own acknowledgement mode: ``"explicit"`` (each message settled on its
    /// own, the default), ``"cumulative"`` (acking a message acks every earlier one this consumer
    /// received, like CLIENT_ACKNOWLEDGE) or ``"auto"`` (acked on hand-over: at-most-once).
    /// Closing it (or dropping it) returns its unsettled messages to the queue as failures, and
    /// its prefetched messages not yet handed out, uncounted. ``prefetch`` (None: the queue's)
    /// is how many messages it takes at once with one durable delivery-count record (0 or 1:
    /// none); auto-ack consumers never prefetch, nor do selective ones (they take only what
    /// they are given). With ``selector`` (a JMS message selector) it receives only the
    /// messages the selector selects, wherever they sit in the queue; the others stay for other
    /// consumers. Raises InvalidArgument naming the position of a selector that does not parse.
    #[pyo3(signature = (ack_mode = "explicit", *, selector = None, prefetch = None))]
    fn consumer(
        &self,
        ack_mode: &str,
        selector: Option<&str>,
        prefetch: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<crate::consumer::Consumer> {
        self.check()?;
        let mode = match ack_mode {
            "explicit" => mqlite::AckMode::Explicit,
            "cumulative" => mqlite::AckMode::Cumulative,
            "auto" => mqlite::AckMode::Auto,
            other => {
                return Err(invalid(format!(
                    "ack_mode must be 'explicit', 'cumulative' or 'auto', not {other:?}"
                )))
            }
        };
        let options = mqlite::ConsumerOptions {
            ack_mode: mode,
            prefetch: opt_int(prefetch, "prefetch")?,
        };
        mq(options.validate())?;
        let store = Python::attach(|py| self.store.clone_ref(py));
        let c = match selector {
            None => self.q.consumer(options),
            Some(s) => mq(self.q.consumer_with_selector(options, s))?,
        };
        Ok(crate::consumer::Consumer::new(
            c,
            store,
            mode == mqlite::AckMode::Auto,
        ))
    }

    /// Push consumer: ``handler(message)`` runs on a library thread (with the GIL) for each
    /// message; returning acks it, raising nacks it with ``"ExcType: text"``. The message is a
    /// copy settled by that outcome (its own ack/nack methods refuse). Stops when the returned
    /// :class:`Listener` is stopped (or closed by its ``with`` block).
    fn listen(&self, py: Python<'_>, handler: Py<PyAny>) -> PyResult<crate::consumer::Listener> {
        self.check()?;
        let l = mq(self.q.listen(move |d| {
            Python::attach(|py| {
                let msg = Message::listened(py, d);
                match handler.bind(py).call1((msg,)) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(crate::consumer::failure_text(py, &e)),
                }
            })
        }))?;
        Ok(crate::consumer::Listener::new(l, self.store.clone_ref(py)))
    }

    /// The store this queue belongs to.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<Store> {
        self.store.clone_ref(py)
    }

    fn __repr__(&self) -> String {
        format!("<mqlite.Queue {:?}>", self.q.name())
    }
}

/// The iterator of :meth:`Queue.consume`.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Consume {
    queue: Py<Queue>,
    timeout: Option<f64>,
}

#[pymethods]
impl Consume {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<Message>>> {
        let t = self.timeout.map(|t| t.into_pyobject(py)).transpose()?;
        self.queue.get().receive(py, t.as_ref().map(|b| b.as_any()))
    }
}
