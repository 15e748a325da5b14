//! `mqlite.Message` (a received delivery, or a browsed copy) and `mqlite.DeadLetterInfo`.

use std::sync::Mutex;
use std::time::Duration;

use mqlite::{Delivery, ErrorKind, Value};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyType};

use crate::convert::{opt_duration, properties_to_py};
use crate::errors::{mq, new_err};
use crate::store::{check_pid, current_pid};

/// Why a message was dead-lettered, as carried by a message of a dead-letter queue.
#[pyclass(module = "mqlite", frozen, get_all)]
pub(crate) struct DeadLetterInfo {
    /// The queue it was sent to.
    original_queue: String,
    /// Its id in that queue.
    original_id: u64,
    /// ``"max_redeliveries"``, ``"rejected"``, ``"expired"``, ``"overflow"`` or ``"group_parked"``.
    reason: &'static str,
    /// The last failure text given to nack/reject ("" if none).
    last_failure: String,
    /// How many times it had been delivered.
    delivery_count: u32,
    /// When it first failed (ms since the epoch; 0 if it never failed, e.g. expired).
    first_failure_ms: u64,
    /// When it last failed or was dead-lettered (ms since the epoch).
    last_failure_ms: u64,
    /// The subscription it died in (its ``original_queue`` is then ``$sub.<subscription>``);
    /// None for a queue's dead letter.
    subscription: Option<String>,
}

#[pymethods]
impl DeadLetterInfo {
    fn __repr__(&self) -> String {
        format!(
            "DeadLetterInfo(original_queue={:?}, original_id={}, reason={:?}, last_failure={:?}, delivery_count={})",
            self.original_queue, self.original_id, self.reason, self.last_failure, self.delivery_count
        )
    }
}

/// Everything a message carries except its body, copied out of the core message so that it
/// stays readable after the delivery is settled.
struct Head {
    id: u64,
    priority: u8,
    properties: Vec<(String, Value)>,
    correlation_id: Option<String>,
    group: Option<String>,
    dedup_key: Option<String>,
    timestamp_ms: u64,
    expires_at_ms: u64,
    dead_letter: Option<mqlite::DeadLetterInfo>,
    topic: Option<String>,
}

impl Head {
    fn of(m: &mqlite::Message) -> Head {
        Head {
            id: m.id().map(|i| i.0).unwrap_or(0),
            priority: m.get_priority(),
            properties: m.properties().to_vec(),
            correlation_id: m.get_correlation_id().map(str::to_string),
            group: m.get_group().map(str::to_string),
            dedup_key: m.get_dedup_key().map(str::to_string),
            timestamp_ms: m.timestamp_ms(),
            expires_at_ms: m.expires_at_ms(),
            dead_letter: m.dead_letter_info().cloned(),
            topic: m.topic().map(str::to_string),
        }
    }
}

/// A message taken from a queue. A received message is a *delivery*: settle it exactly once with
/// :meth:`ack`, :meth:`nack`, :meth:`reject` or :meth:`release` (or use it as a context manager).
/// A delivery dropped unsettled counts as a failed delivery. A browsed message is a copy and
/// cannot be settled.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct Message {
    body: Py<PyBytes>,
    head: Head,
    delivery_count: u32,
    /// Where a browsed copy was in its queue (`None` for a delivery).
    state: Option<&'static str>,
    queue: String,
    delivery: Mutex<Option<Delivery>>,
    is_delivery: bool,
    /// The queue of a copy handed to a listener's handler (settled by the listener): its own
    /// settles say why they refuse, and `Closed` once the store is closed (review r10 #6: they
    /// said "a browsed copy" even after close).
    listened: Option<mqlite::Queue>,
    pid: u32,
}

impl Message {
    pub(crate) fn from_delivery(py: Python<'_>, d: Delivery) -> Message {
        Message {
            body: PyBytes::new(py, d.body()).unbind(),
            head: Head::of(d.message()),
            delivery_count: d.delivery_count(),
            state: None,
            queue: d.queue().name().to_string(),
            delivery: Mutex::new(Some(d)),
            is_delivery: true,
            listened: None,
            pid: current_pid(),
        }
    }

    pub(crate) fn browsed(py: Python<'_>, m: &mqlite::Message, queue: &str) -> Message {
        Message {
            body: PyBytes::new(py, m.body()).unbind(),
            head: Head::of(m),
            delivery_count: m.delivery_count(),
            state: m.state().map(|s| s.as_str()),
            queue: queue.to_string(),
            delivery: Mutex::new(None),
            is_delivery: false,
            listened: None,
            pid: current_pid(),
        }
    }

    /// A copy handed to a listener's handler; the listener settles it from the handler's outcome.
    pub(crate) fn listened(py: Python<'_>, d: &Delivery) -> Message {
        let mut m = Message::browsed(py, d.message(), d.queue().name());
        m.delivery_count = d.delivery_count();
        m.state = None;
        m.listened = Some(d.queue().clone());
        m
    }

    /// Takes the delivery out for settling; errors if already settled or not a delivery.
    pub(crate) fn take(&self) -> PyResult<Delivery> {
        check_pid(self.pid)?;
        if let Some(q) = &self.listened {
            mq(q.check_open())?;
            return Err(new_err(
                ErrorKind::InvalidArgument,
                format!(
                    "ID:{} was handed to a listener's handler: the listener settles it from the \
                     handler's outcome (return: ack, raise: nack), not its own methods",
                    self.head.id
                ),
            ));
        }
        if !self.is_delivery {
            return Err(new_err(
                ErrorKind::InvalidArgument,
                format!(
                    "ID:{} is a browsed copy, not a delivery: it cannot be settled",
                    self.head.id
                ),
            ));
        }
        let mut g = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = g.as_ref() {
            // Closed before anything is consumed: the message stays settleable by nobody, but
            // every later call says Closed too, not AlreadySettled.
            mq(d.queue().check_open())?;
        }
        g.take().ok_or_else(|| {
            new_err(
                ErrorKind::AlreadySettled,
                format!("ID:{} is already settled", self.head.id),
            )
        })
    }

    /// Puts a delivery taken for a settle back when the settle was refused before anything
    /// changed (`InvalidArgument`: a dead letter's reject, a reason over `MAX_REASON_BYTES`):
    /// still held, settleable through this object, whichever settle it was (review r5 #11).
    fn keep_if_refused(&self, d: Delivery, r: &mqlite::Result<()>) {
        if matches!(r, Err(e) if e.kind() == ErrorKind::InvalidArgument) {
            *self.delivery.lock().unwrap_or_else(|e| e.into_inner()) = Some(d);
        }
    }

    pub(crate) fn queue_name(&self) -> &str {
        &self.queue
    }

    /// Settled through this object, or in the core (a cumulative ack of a later message, a
    /// timeout, a closed consumer).
    fn is_settled(&self) -> bool {
        self.delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|d| current_pid() == self.pid && d.is_settled())
    }
}

impl Drop for Message {
    fn drop(&mut self) {
        // In a fork() child the core's threads do not exist and its lock may be held by a thread
        // that was copied mid-call: never touch the core there.
        if current_pid() != self.pid {
            if let Some(d) = self
                .delivery
                .get_mut()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                std::mem::forget(d);
            }
        }
    }
}

#[pymethods]
impl Message {
    /// The store-unique message id.
    #[getter]
    fn id(&self) -> u64 {
        self.head.id
    }

    /// The id's stable string form, ``"ID:<number>"``.
    #[getter]
    fn message_id(&self) -> String {
        format!("ID:{}", self.head.id)
    }

    /// The body (``str`` bodies were sent as UTF-8).
    #[getter]
    fn body(&self, py: Python<'_>) -> Py<PyBytes> {
        self.body.clone_ref(py)
    }

    /// The body decoded as UTF-8.
    #[getter]
    fn text(&self, py: Python<'_>) -> PyResult<String> {
        let b = self.body.bind(py);
        b.call_method1("decode", ("utf-8",))?.extract()
    }

    /// The properties, as a new dict (values keep their Python types).
    #[getter]
    fn properties<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        properties_to_py(py, &self.head.properties)
    }

    /// Priority 0–9 (higher first).
    #[getter]
    fn priority(&self) -> u8 {
        self.head.priority
    }

    #[getter]
    fn correlation_id(&self) -> Option<&str> {
        self.head.correlation_id.as_deref()
    }

    #[getter]
    fn group(&self) -> Option<&str> {
        self.head.group.as_deref()
    }

    #[getter]
    fn dedup_key(&self) -> Option<&str> {
        self.head.dedup_key.as_deref()
    }

    /// When it was sent, in ms since the epoch (by the store's clock).
    #[getter]
    fn timestamp_ms(&self) -> u64 {
        self.head.timestamp_ms
    }

    /// When it expires, in ms since the epoch; None if never (no TTL, or one so long that
    /// its expiry saturated the clock's range).
    #[getter]
    fn expires_at_ms(&self) -> Option<u64> {
        let at = self.head.expires_at_ms;
        (at != 0 && at != u64::MAX).then_some(at)
    }

    /// How many times it has been delivered, this delivery included; for a browsed copy, how
    /// many times it had been delivered when browsed (the delivery in progress included while
    /// it is in flight; 0 if never).
    #[getter]
    fn delivery_count(&self) -> u32 {
        self.delivery_count
    }

    /// For a browsed copy, where it was in its queue: ``"ready"``, ``"delayed"`` (waiting for
    /// its delivery time), ``"redelivery_wait"`` (waiting out a redelivery delay after a
    /// failed delivery), ``"in_flight"`` (delivered, not yet settled) or ``"prefetched"``
    /// (taken by a consumer's prefetch, not handed out yet: the queue's ``prefetched`` stat);
    /// None for a delivery.
    #[getter]
    fn state(&self) -> Option<&'static str> {
        self.state
    }

    /// Whether it was delivered before.
    #[getter]
    fn redelivered(&self) -> bool {
        self.delivery_count > 1
    }

    /// The name of the queue it came from.
    #[getter]
    fn queue(&self) -> &str {
        &self.queue
    }

    /// Why it died, on a message of a dead-letter queue; None otherwise.
    #[getter]
    fn dead_letter(&self) -> Option<DeadLetterInfo> {
        self.head.dead_letter.as_ref().map(|d| DeadLetterInfo {
            original_queue: d.original_queue.clone(),
            original_id: d.original_id.0,
            reason: d.reason.as_str(),
            last_failure: d.last_failure.clone(),
            delivery_count: d.delivery_count,
            first_failure_ms: d.first_failure_ms,
            last_failure_ms: d.last_failure_ms,
            subscription: d.subscription().map(str::to_string),
        })
    }

    /// The topic it was published to, on a message of a subscription (or a dead letter of
    /// one); None for a message sent to a queue.
    #[getter]
    fn topic(&self) -> Option<&str> {
        self.head.topic.as_deref()
    }

    /// Whether it was settled (always True for a browsed copy).
    #[getter]
    fn settled(&self) -> bool {
        self.is_settled()
    }

    /// Acknowledges it: done. Lazy by default (as RabbitMQ consumer acks or JMS
    /// ``DUPS_OK_ACKNOWLEDGE``): returns once the ack is queued for the next group commit,
    /// which follows within about a millisecond; a crash before it delivers the message again
    /// with ``redelivered`` true, never loses it. Durable once :meth:`ack_sync` or a later
    /// durable call of the store (a send, a transaction commit, ``store.flush()``) returned, or
    /// the store closed. With the queue option ``ack_durability="sync"`` it is :meth:`ack_sync`.
    ///
    /// From a client process (a store another process owns) a lazy ack goes one way, without
    /// waiting for the owner: an error the owner finds then (the delivery timed out, say) is
    /// raised once, as ``DeliveryLost`` ("n lazy acks failed: first: ..."), by the client's
    /// next ``ack_sync()``, ``ack_batch_sync()``, ``store.flush()``, transaction commit or
    /// ``store.close()``.
    fn ack(&self, py: Python<'_>) -> PyResult<()> {
        let d = self.take()?;
        mq(py.detach(move || d.ack()))
    }

    /// Acknowledges it and returns only once the ack is durable (fdatasync'd): never delivered
    /// again, even after a crash or power loss.
    fn ack_sync(&self, py: Python<'_>) -> PyResult<()> {
        let d = self.take()?;
        mq(py.detach(move || d.ack_sync()))
    }

    /// A failed delivery: the queue's redelivery policy decides when it comes back, or sends it
    /// to the dead-letter queue. ``reason`` is kept as the last failure text: at most
    /// 32 KiB (32768 bytes) of UTF-8, a longer one is ``InvalidArgument`` and the
    /// message stays held and unsettled. ``delay`` (seconds or timedelta) overrides the policy's
    /// delay for this redelivery.
    #[pyo3(signature = (reason = "", *, delay = None))]
    fn nack(&self, py: Python<'_>, reason: &str, delay: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let delay: Option<Duration> = opt_duration(delay, "delay")?;
        let mut d = self.take()?;
        let reason = reason.to_string();
        let (d, r) = py.detach(move || {
            let r = match delay {
                Some(t) => d.try_nack_with_delay(&reason, t),
                None => d.try_nack(&reason),
            };
            (d, r)
        });
        self.keep_if_refused(d, &r);
        mq(r)
    }

    /// Poison: straight to the dead-letter queue with reason ``"rejected"``. A message of a
    /// dead-letter queue is a dead letter already: ``InvalidArgument`` ("a dead letter cannot
    /// be dead-lettered again": ack it to delete it, or replay it), and it stays held, to be
    /// acked or released.
    #[pyo3(signature = (reason = ""))]
    fn reject(&self, py: Python<'_>, reason: &str) -> PyResult<()> {
        let mut d = self.take()?;
        let reason = reason.to_string();
        let (d, r) = py.detach(move || {
            let r = d.try_reject(&reason);
            (d, r)
        });
        self.keep_if_refused(d, &r);
        mq(r)
    }

    /// Gives it back without counting a failure (e.g. on graceful shutdown).
    fn release(&self, py: Python<'_>) -> PyResult<()> {
        let d = self.take()?;
        mq(py.detach(move || d.release()))
    }

    /// Returns the message itself. Raises ``Closed`` if its store is closed (review r12 #11:
    /// it returned, and the ``__exit__`` that settles then failed).
    fn __enter__(slf: Py<Self>) -> PyResult<Py<Self>> {
        {
            let this = slf.get();
            if let Some(q) = &this.listened {
                mq(q.check_open())?;
            }
            if let Some(d) = this
                .delivery
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                mq(d.queue().check_open())?;
            }
        }
        Ok(slf)
    }

    /// Acks on a clean exit; nacks with ``"<ExceptionType>: <text>"`` on an exception (which
    /// propagates, unchanged). The text is cut to 32 KiB (32768 bytes) on a character
    /// boundary, ending in "…", when longer. Does nothing if the body already settled the
    /// message.
    #[pyo3(signature = (exc_type = None, exc = None, _tb = None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        exc: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if !self.is_delivery || self.is_settled() {
            return Ok(false);
        }
        match exc_type {
            None => self.ack(py)?,
            Some(t) => {
                let text = exc
                    .map(|e| e.str().map(|s| s.to_string()))
                    .transpose()?
                    .unwrap_or_default();
                let name = t.name()?.to_string();
                self.nack(py, &reason_text(&name, &text), None)?;
            }
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let n = self.body.bind(py).as_bytes().len();
        format!(
            "<mqlite.Message ID:{} queue={:?} body={} bytes delivery_count={}{}>",
            self.head.id,
            self.queue,
            n,
            self.delivery_count,
            if self.is_delivery && self.is_settled() {
                " settled"
            } else {
                ""
            }
        )
    }
}

/// The failure text of an exception: ``"ExcType: text"`` (just the type when the text is empty),
/// cut to `MAX_REASON_BYTES` by `mqlite::truncate_reason`: the library composes it, so a long
/// exception text must not turn the failure into `InvalidArgument` (review r5 #11).
pub(crate) fn reason_text(type_name: &str, text: &str) -> String {
    let full = if text.is_empty() {
        type_name.to_string()
    } else {
        format!("{type_name}: {text}")
    };
    mqlite::truncate_reason(&full).into_owned()
}
