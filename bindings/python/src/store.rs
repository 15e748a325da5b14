//! `mqlite.open`, `mqlite.Store`, and the option classes (`RedeliveryPolicy`,
//! `DeadLetterStrategy`, `ManualClock`); fork safety.

use std::mem::ManuallyDrop;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use mqlite::{
    DeadLetterStrategy as CoreDls, Durability, ErrorKind, GroupFailurePolicy, OverflowPolicy,
    QueueOptions, StoreOptions,
};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::completer::Completer;
use crate::convert::{duration, int, opt_duration, opt_int};
use crate::errors::{invalid, mq, new_err};
use crate::queue::{stats_dict, Queue};

// ---------------------------------------------------------------------------------------------
// fork(): a child gets a copy of the parent's objects but not its threads, and possibly a lock
// held mid-call by a thread that no longer exists. Every handle records the pid that made it
// and refuses to work elsewhere. (The store's directory lock is a POSIX record lock, which a
// child never holds: the parent closes and reopens its store while children live.)

static PID: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_in_child() {
    // Only async-signal-safe calls here: getpid, atomics.
    PID.store(unsafe { libc::getpid() } as u32, Ordering::SeqCst);
}

pub(crate) fn init_fork_handling() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        PID.store(std::process::id(), Ordering::SeqCst);
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// The current process id, kept up to date across fork() without a syscall per call.
pub(crate) fn current_pid() -> u32 {
    PID.load(Ordering::Relaxed)
}

pub(crate) fn check_pid(opener: u32) -> PyResult<()> {
    let now = current_pid();
    if now == opener {
        return Ok(());
    }
    Err(new_err(
        ErrorKind::Closed,
        format!(
            "this store was opened by process {opener}; this is process {now}, a fork() child: a store \
             cannot be shared across fork(). Open the store in the process that uses it (it belongs to \
             one process at a time), e.g. open it after forking"
        ),
    ))
}

// ---------------------------------------------------------------------------------------------

/// When and how often a failed message is delivered again. Fields and defaults follow
/// ActiveMQ's RedeliveryPolicy: 6 redeliveries (the 7th failure dead-letters), 1 s apart.
/// Delays are in seconds (constructor arguments may also be ``datetime.timedelta``).
///
/// Every attribute can be set; a value the constructor would refuse raises
/// :class:`InvalidArgument` naming the attribute and its range, and leaves the policy as it was.
#[pyclass(module = "mqlite", get_all)]
#[derive(Clone)]
pub(crate) struct RedeliveryPolicy {
    /// Redeliveries before dead-lettering: -1 = unlimited, 0 = the first failure dead-letters.
    max_redeliveries: i32,
    /// Seconds before the first redelivery.
    initial_redelivery_delay: f64,
    /// Seconds before each later redelivery (without backoff); with backoff, the delay after a
    /// zero delay (as ActiveMQ: initial 0, then this, then multiplied: 0, 1, 2, 4 s).
    redelivery_delay: f64,
    /// Multiply the previous delay by ``backoff_multiplier`` for each later redelivery.
    #[pyo3(set)]
    use_exponential_backoff: bool,
    backoff_multiplier: f64,
    /// Upper bound on any delay, in seconds; None = no bound.
    maximum_redelivery_delay: Option<f64>,
    /// Spread delays by ±15 % at random.
    #[pyo3(set)]
    use_collision_avoidance: bool,
    /// An explicit list of delays in seconds used instead of the formula (NATS-style).
    backoff: Vec<f64>,
}

/// `max_redeliveries` through [`int`] (a default keeps it out of an `Option`).
fn max_redeliveries_arg(o: &Bound<'_, PyAny>) -> PyResult<i32> {
    int(o, "max_redeliveries")
}

/// `backoff_multiplier`: a number (an int too large for a float is `InvalidArgument` naming
/// it, not an `OverflowError`); its range is the core's check.
fn backoff_multiplier_arg(o: &Bound<'_, PyAny>) -> PyResult<f64> {
    o.extract::<f64>().map_err(|_| {
        invalid(format!(
            "backoff_multiplier must be a number from 1 (no growth) up, not {}",
            o.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

#[pymethods]
impl RedeliveryPolicy {
    /// The defaults are the core's (``mqlite.RedeliveryPolicy`` in every face): 6
    /// redeliveries, 1 s apart, backoff ×5 when turned on. ``max_redeliveries`` below -1 and a
    /// ``backoff_multiplier`` below 1 raise :class:`InvalidArgument`.
    #[new]
    #[pyo3(signature = (*, max_redeliveries = mqlite::DEFAULT_MAX_REDELIVERIES, initial_redelivery_delay = None,
        redelivery_delay = None, use_exponential_backoff = false, backoff_multiplier = mqlite::DEFAULT_BACKOFF_MULTIPLIER,
        maximum_redelivery_delay = None, use_collision_avoidance = false, backoff = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        #[pyo3(from_py_with = max_redeliveries_arg)] max_redeliveries: i32,
        initial_redelivery_delay: Option<&Bound<'_, PyAny>>,
        redelivery_delay: Option<&Bound<'_, PyAny>>,
        use_exponential_backoff: bool,
        #[pyo3(from_py_with = backoff_multiplier_arg)] backoff_multiplier: f64,
        maximum_redelivery_delay: Option<&Bound<'_, PyAny>>,
        use_collision_avoidance: bool,
        backoff: Option<Vec<Bound<'_, PyAny>>>,
    ) -> PyResult<Self> {
        let secs = |o: Option<&Bound<'_, PyAny>>, what: &str| -> PyResult<Option<f64>> {
            Ok(opt_duration(o, what)?.map(|d| d.as_secs_f64()))
        };
        let default = mqlite::RedeliveryPolicy::default();
        let p = RedeliveryPolicy {
            max_redeliveries,
            initial_redelivery_delay: secs(initial_redelivery_delay, "initial_redelivery_delay")?
                .unwrap_or(default.initial_redelivery_delay.as_secs_f64()),
            redelivery_delay: secs(redelivery_delay, "redelivery_delay")?
                .unwrap_or(default.redelivery_delay.as_secs_f64()),
            use_exponential_backoff,
            backoff_multiplier,
            maximum_redelivery_delay: secs(maximum_redelivery_delay, "maximum_redelivery_delay")?,
            use_collision_avoidance,
            backoff: backoff
                .unwrap_or_default()
                .iter()
                .map(|b| duration(b, "backoff").map(|d| d.as_secs_f64()))
                .collect::<PyResult<_>>()?,
        };
        p.to_core()?;
        Ok(p)
    }

    #[setter]
    fn set_max_redeliveries(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = max_redeliveries_arg(value)?;
        self.set_checked(|p| p.max_redeliveries = v)
    }

    #[setter]
    fn set_initial_redelivery_delay(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = duration(value, "initial_redelivery_delay")?.as_secs_f64();
        self.set_checked(|p| p.initial_redelivery_delay = v)
    }

    #[setter]
    fn set_redelivery_delay(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = duration(value, "redelivery_delay")?.as_secs_f64();
        self.set_checked(|p| p.redelivery_delay = v)
    }

    #[setter]
    fn set_backoff_multiplier(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = backoff_multiplier_arg(value)?;
        self.set_checked(|p| p.backoff_multiplier = v)
    }

    #[setter]
    fn set_maximum_redelivery_delay(&mut self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let v = opt_duration(Some(value), "maximum_redelivery_delay")?.map(|d| d.as_secs_f64());
        self.set_checked(|p| p.maximum_redelivery_delay = v)
    }

    #[setter]
    fn set_backoff(&mut self, value: Vec<Bound<'_, PyAny>>) -> PyResult<()> {
        let v = value
            .iter()
            .map(|b| duration(b, "backoff").map(|d| d.as_secs_f64()))
            .collect::<PyResult<Vec<f64>>>()?;
        self.set_checked(|p| p.backoff = v)
    }

    /// The delay in seconds before the ``n``-th redelivery (n ≥ 1), without jitter.
    fn delay(&self, n: &Bound<'_, PyAny>) -> PyResult<f64> {
        let n: u32 = int(n, "n")?;
        if n == 0 {
            return Err(invalid("n counts redeliveries from 1"));
        }
        Ok(self.to_core()?.delay_ms(n, 0.5) as f64 / 1000.0)
    }

    fn __repr__(&self) -> String {
        format!(
            "RedeliveryPolicy(max_redeliveries={}, initial_redelivery_delay={}, redelivery_delay={}, \
             use_exponential_backoff={}, backoff_multiplier={}, maximum_redelivery_delay={}, \
             use_collision_avoidance={}, backoff={:?})",
            self.max_redeliveries,
            self.initial_redelivery_delay,
            self.redelivery_delay,
            if self.use_exponential_backoff { "True" } else { "False" },
            self.backoff_multiplier,
            self.maximum_redelivery_delay
                .map_or_else(|| "None".to_string(), |d| d.to_string()),
            if self.use_collision_avoidance { "True" } else { "False" },
            self.backoff
        )
    }
}

impl RedeliveryPolicy {
    /// Sets an attribute only if the policy it makes passes the constructor's checks (the
    /// core's): a refused value leaves the policy as it was.
    fn set_checked(&mut self, f: impl FnOnce(&mut Self)) -> PyResult<()> {
        let mut next = self.clone();
        f(&mut next);
        next.to_core()?;
        *self = next;
        Ok(())
    }

    /// The core's policy, validated by the core (so every face refuses the same values).
    fn to_core(&self) -> PyResult<mqlite::RedeliveryPolicy> {
        // The core's one conversion: NaN/negative refused, too long saturates ("never").
        let d = |s: f64, what: &str| -> PyResult<Duration> {
            crate::errors::mq(mqlite::clock::secs_to_duration(s, what))
        };
        let p = mqlite::RedeliveryPolicy {
            max_redeliveries: self.max_redeliveries,
            initial_redelivery_delay: d(self.initial_redelivery_delay, "initial_redelivery_delay")?,
            redelivery_delay: d(self.redelivery_delay, "redelivery_delay")?,
            use_exponential_backoff: self.use_exponential_backoff,
            backoff_multiplier: self.backoff_multiplier,
            maximum_redelivery_delay: self
                .maximum_redelivery_delay
                .map(|s| d(s, "maximum_redelivery_delay"))
                .transpose()?,
            use_collision_avoidance: self.use_collision_avoidance,
            backoff: self
                .backoff
                .iter()
                .map(|&s| d(s, "backoff"))
                .collect::<PyResult<_>>()?,
        };
        mq(p.validate())?;
        Ok(p)
    }
}

/// Where dead letters go: :meth:`shared` (one queue, default ``"DLQ"``, the default strategy),
/// :meth:`individual` (``prefix`` + the queue's name) or :meth:`discard`.
#[pyclass(module = "mqlite", frozen)]
#[derive(Clone)]
pub(crate) struct DeadLetterStrategy {
    inner: CoreDls,
}

#[pymethods]
impl DeadLetterStrategy {
    /// One dead-letter queue for the whole store, named ``name`` (default ``"DLQ"``, the
    /// core's ``DEFAULT_DEAD_LETTER_QUEUE``).
    #[staticmethod]
    #[pyo3(signature = (name = None))]
    fn shared(name: Option<&str>) -> PyResult<Self> {
        let inner = match name {
            Some(name) => CoreDls::Shared { name: name.into() },
            None => CoreDls::shared(),
        };
        mq(inner.validate())?;
        Ok(DeadLetterStrategy { inner })
    }

    /// One dead-letter queue per queue: ``prefix`` + the queue's name (default prefix
    /// ``"DLQ."``, the core's ``DEFAULT_DEAD_LETTER_PREFIX``).
    #[staticmethod]
    #[pyo3(signature = (prefix = None))]
    fn individual(prefix: Option<&str>) -> Self {
        DeadLetterStrategy {
            inner: match prefix {
                Some(prefix) => CoreDls::Individual {
                    prefix: prefix.into(),
                },
                None => CoreDls::individual(),
            },
        }
    }

    /// Drop dead letters (they are still counted in the queue's stats).
    #[staticmethod]
    fn discard() -> Self {
        DeadLetterStrategy {
            inner: CoreDls::Discard,
        }
    }

    /// ``"shared"``, ``"individual"`` or ``"discard"``.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner {
            CoreDls::Shared { .. } => "shared",
            CoreDls::Individual { .. } => "individual",
            CoreDls::Discard => "discard",
        }
    }

    /// The queue name (shared) or prefix (individual); None for discard.
    #[getter]
    fn name(&self) -> Option<&str> {
        match &self.inner {
            CoreDls::Shared { name } => Some(name),
            CoreDls::Individual { prefix } => Some(prefix),
            CoreDls::Discard => None,
        }
    }

    fn __repr__(&self) -> String {
        match &self.inner {
            CoreDls::Shared { name } => format!("DeadLetterStrategy.shared({name:?})"),
            CoreDls::Individual { prefix } => format!("DeadLetterStrategy.individual({prefix:?})"),
            CoreDls::Discard => "DeadLetterStrategy.discard()".into(),
        }
    }
}

/// A clock that moves only when told to. Pass it to :func:`open` (``clock=``) and every timer
/// of the store (delays, TTLs, redelivery backoff, ack timeouts) follows it: tests advance it
/// instead of sleeping. Times are seconds since the epoch.
#[pyclass(module = "mqlite", frozen)]
pub(crate) struct ManualClock {
    inner: Arc<mqlite::ManualClock>,
}

#[pymethods]
impl ManualClock {
    /// A clock standing at ``start`` (seconds since the epoch or a datetime; default: now).
    #[new]
    #[pyo3(signature = (start = None))]
    fn new(start: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let ms = match start {
            Some(s) if !s.is_none() => {
                crate::convert::time_ms(s, "start", crate::convert::Round::Down)?
            }
            _ => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(mqlite::clock::ms_floor)
                .unwrap_or(0),
        };
        Ok(ManualClock {
            inner: mqlite::ManualClock::new(ms),
        })
    }

    /// Moves the clock forward by ``seconds`` (or a timedelta) and wakes waiting receivers.
    /// The clock reads whole milliseconds; the parts of a millisecond of successive calls add
    /// up (ten ``advance(0.0001)`` move it 1 ms), so it never runs ahead of the time asked for.
    fn advance(&self, py: Python<'_>, seconds: &Bound<'_, PyAny>) -> PyResult<()> {
        let d = duration(seconds, "seconds")?;
        let c = self.inner.clone();
        py.detach(move || c.advance(d));
        Ok(())
    }

    /// Sets the clock (seconds since the epoch or a datetime); it may go backwards.
    fn set(&self, py: Python<'_>, when: &Bound<'_, PyAny>) -> PyResult<()> {
        let ms = crate::convert::time_ms(when, "when", crate::convert::Round::Down)?;
        let c = self.inner.clone();
        py.detach(move || c.set_ms(ms));
        Ok(())
    }

    /// The clock's time in seconds since the epoch.
    fn now(&self) -> f64 {
        use mqlite::Clock;
        self.inner.now_ms() as f64 / 1000.0
    }

    /// The clock's time in ms since the epoch.
    fn now_ms(&self) -> u64 {
        use mqlite::Clock;
        self.inner.now_ms()
    }
}

/// A durability by name; ``max_delay`` is batched durability's delay (default: the core's,
/// ``DEFAULT_BATCHED_MAX_DELAY_MS``), the knob C calls ``max_delay_ms``.
fn durability(name: &str, max_delay: Option<&Bound<'_, PyAny>>) -> PyResult<Durability> {
    match name {
        "sync" => Ok(Durability::Sync),
        "batched" => Ok(match opt_duration(max_delay, "max_delay")? {
            Some(max_delay) => Durability::Batched { max_delay },
            None => Durability::batched(),
        }),
        "memory" => Ok(Durability::Memory),
        other => Err(invalid(format!(
            "durability must be 'sync', 'batched' or 'memory', not {other:?}"
        ))),
    }
}

/// Opens (creating if missing) the store in directory ``path`` and recovers its durable state.
/// Use it as a context manager, or call :meth:`Store.close`.
///
/// Several processes may open one store: the first becomes its *owner* (it keeps the journal
/// and serves the others over ``owner.sock`` in the directory); the others become its
/// *clients*, with the same API (:meth:`Store.role`). ``open_as``: ``"any"`` (the default),
/// ``"owner"`` (raise :class:`Locked` naming the owner's pid rather than be a client) or
/// ``"client"`` (never own). ``connect_timeout`` (seconds, default 30, at least 0.01, else
/// :class:`InvalidArgument`): how long a client waits for an owner to serve, at open and while
/// another process takes the store over. The store
/// options (durability, redelivery, …) of a client are its owner's; queue options are its own.
///
/// ``read_only=True`` (the Rust ``StoreOptions::read_only``) opens the store only to read it:
/// for one this process cannot or must not write (a read-only file system, a snapshot, another
/// user's directory). It takes no lock, joins no owner and writes nothing (recovery runs in
/// memory); every call that would change the store (send, receive, settle, a purge other than
/// a dry run, replay, compact, subscribe, a queue the store lacks) raises :class:`ReadOnly`.
/// With ``repair=True`` or ``open_as="client"`` it raises :class:`InvalidArgument`. What it
/// shows is the durable state as read at open; a live owner may since have changed it.
#[pyfunction]
#[pyo3(signature = (path, *, durability = "sync", max_delay = None, redelivery = None, dead_letter = None,
    max_body_bytes = None, segment_bytes = None, max_pending_bytes = None, max_pending_messages = None,
    block_when_window_full = true, repair = false, create = true, clock = None, open_as = "any",
    connect_timeout = None, read_only = false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn open<'py>(
    py: Python<'py>,
    path: &Bound<'_, PyAny>,
    durability: &str,
    max_delay: Option<&Bound<'_, PyAny>>,
    redelivery: Option<&RedeliveryPolicy>,
    dead_letter: Option<&DeadLetterStrategy>,
    max_body_bytes: Option<&Bound<'_, PyAny>>,
    segment_bytes: Option<&Bound<'_, PyAny>>,
    max_pending_bytes: Option<&Bound<'_, PyAny>>,
    max_pending_messages: Option<&Bound<'_, PyAny>>,
    block_when_window_full: bool,
    repair: bool,
    create: bool,
    clock: Option<&ManualClock>,
    open_as: &str,
    connect_timeout: Option<&Bound<'_, PyAny>>,
    read_only: bool,
) -> PyResult<Bound<'py, Store>> {
    init_fork_handling();
    let path = crate::convert::path(path)?;
    let mut o = StoreOptions {
        durability: self::durability(durability, max_delay)?,
        block_when_window_full,
        repair,
        create,
        read_only,
        ..StoreOptions::default()
    };
    if let Some(r) = redelivery {
        o.redelivery = r.to_core()?;
    }
    if let Some(d) = dead_letter {
        o.dead_letter = d.inner.clone();
    }
    if let Some(v) = opt_int(max_body_bytes, "max_body_bytes")? {
        o.max_body_bytes = v;
    }
    if let Some(v) = opt_int(segment_bytes, "segment_bytes")? {
        o.segment_bytes = v;
    }
    if let Some(v) = opt_int(max_pending_bytes, "max_pending_bytes")? {
        o.max_pending_bytes = v;
    }
    if let Some(v) = opt_int(max_pending_messages, "max_pending_messages")? {
        o.max_pending_messages = v;
    }
    if let Some(c) = clock {
        o.clock = c.inner.clone();
    }
    o.open_as = match open_as {
        "any" => mqlite::OpenAs::Any,
        "owner" => mqlite::OpenAs::Owner,
        "client" => mqlite::OpenAs::Client,
        other => {
            return Err(invalid(format!(
                "open_as must be 'any', 'owner' or 'client', not {other:?}"
            )))
        }
    };
    if let Some(t) = connect_timeout {
        o.connect_timeout = crate::convert::duration(t, "connect_timeout")?;
    }
    let store = mq(py.detach(move || mqlite::Store::open(&path, o)))?;
    let completer = Completer::start()
        .map_err(|e| new_err(ErrorKind::Io, format!("starting a thread: {e}")))?;
    let store = Bound::new(
        py,
        Store {
            store: ManuallyDrop::new(store),
            completer: ManuallyDrop::new(completer),
            pid: current_pid(),
            closed: AtomicBool::new(false),
        },
    )?;
    open_stores(py)?.call_method1("add", (&store,))?;
    Ok(store)
}

/// A `weakref.WeakSet` of the stores opened in this process, closed at interpreter exit.
fn open_stores(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static SET: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(SET
        .get_or_try_init(py, || {
            py.import("weakref")?
                .getattr("WeakSet")?
                .call0()
                .map(Bound::unbind)
        })?
        .bind(py))
}

/// Registered with `atexit`: closes every store still open (flushing pending async sends and
/// completing their futures) while Python still runs, so that no completion thread meets a
/// finalizing interpreter.
#[pyfunction]
pub(crate) fn _close_open_stores(py: Python<'_>) -> PyResult<()> {
    let stores: Vec<Bound<'_, PyAny>> = open_stores(py)?
        .call_method0("copy")?
        .try_iter()?
        .collect::<PyResult<_>>()?;
    for s in stores {
        if let Ok(s) = s.cast::<Store>() {
            if s.get().pid == current_pid() {
                let _ = s.get().close_impl(py);
            }
        }
    }
    Ok(())
}

/// An open store: one directory holding all queues of an application. Thread-safe. Closing it
/// (or leaving its ``with`` block) flushes pending sends and completes every async-send future
/// and callback. Opened by :func:`open`.
#[pyclass(module = "mqlite", frozen, weakref)]
pub(crate) struct Store {
    store: ManuallyDrop<mqlite::Store>,
    completer: ManuallyDrop<Arc<Completer>>,
    pid: u32,
    closed: AtomicBool,
}

impl Store {
    /// Every method of the store and of the objects made from it (queues, consumers,
    /// transactions) starts here: `Closed` once the store is closed (as the C face's
    /// `MQLITE_CLOSED`) or in a `fork()` child.
    pub(crate) fn check(&self) -> PyResult<()> {
        check_pid(self.pid)?;
        if self.closed.load(Ordering::SeqCst) {
            return Err(new_err(
                ErrorKind::Closed,
                format!("the store at {} is closed", self.store.path().display()),
            ));
        }
        Ok(())
    }

    pub(crate) fn completer(&self) -> &Arc<Completer> {
        &self.completer
    }

    fn close_impl(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed.swap(true, Ordering::SeqCst) {
            return Ok(());
        }
        let store: &mqlite::Store = &self.store;
        let completer: &Completer = &self.completer;
        // The core completes every pending send (pushing to the completer) before close returns;
        // then the completer drains and stops. Both wait for threads that may need the GIL.
        let r = py.detach(|| {
            let r = store.close();
            completer.stop();
            r
        });
        mq(r)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if current_pid() != self.pid {
            // A fork() child: the threads do not exist here; leak rather than join or lock.
            self.completer.forget_thread();
            return;
        }
        if !self.closed.load(Ordering::SeqCst) {
            Python::attach(|py| {
                let _ = self.close_impl(py);
            });
        }
        // SAFETY: dropped exactly once, here, and never used again.
        unsafe {
            ManuallyDrop::drop(&mut self.store);
            ManuallyDrop::drop(&mut self.completer);
        }
    }
}

#[pymethods]
impl Store {
    /// A handle to queue ``name``, creating it if new. Options given here replace the queue's
    /// options for as long as this store is open; omitted ones take the store's defaults.
    /// Durations are seconds or ``datetime.timedelta``.
    ///
    /// ``prefetch`` (default 1000, as ActiveMQ; 0 or 1 = none): how many messages a consumer
    /// of this queue, ``receive()`` and listeners included, takes at once with one durable
    /// delivery-count record and then hands out one by one; those not yet handed out go back
    /// uncounted when their consumer closes, and after a crash each counts one failed delivery.
    /// ``retention`` (seconds or ``timedelta``; for a dead-letter queue): dead letters older
    /// than it are dropped, counted ``expired``, on time whether or not anyone receives. Age
    /// counts from a letter's dead-letter time (``dead_letter.last_failure_ms``); the retention
    /// applies to the letters already held when it is declared, changed, or declared again
    /// after a reopen (options are not stored). Messages sent to the queue itself keep their
    /// own TTL.
    /// ``ack_durability``: ``"lazy"`` (default: ``ack()`` returns once the ack is queued for the
    /// next group commit, within about a millisecond; a crash before it redelivers the message)
    /// or ``"sync"`` (``ack()`` returns once the ack is fdatasync'd, like ``ack_sync()``).
    #[pyo3(signature = (name, *, redelivery = None, dead_letter = None, durability = None, max_delay = None,
        max_messages = None, max_bytes = None, overflow = None, overflow_timeout = None, ack_timeout = None,
        process_expired = None, dedup_window = None, dedup_window_count = None, group_failure = None,
        retention = None, prefetch = None, ack_durability = None))]
    #[allow(clippy::too_many_arguments)]
    fn queue(
        slf: &Bound<'_, Self>,
        name: &str,
        redelivery: Option<&RedeliveryPolicy>,
        dead_letter: Option<&DeadLetterStrategy>,
        durability: Option<&str>,
        max_delay: Option<&Bound<'_, PyAny>>,
        max_messages: Option<&Bound<'_, PyAny>>,
        max_bytes: Option<&Bound<'_, PyAny>>,
        overflow: Option<&str>,
        overflow_timeout: Option<&Bound<'_, PyAny>>,
        ack_timeout: Option<&Bound<'_, PyAny>>,
        process_expired: Option<bool>,
        dedup_window: Option<&Bound<'_, PyAny>>,
        dedup_window_count: Option<&Bound<'_, PyAny>>,
        group_failure: Option<&str>,
        retention: Option<&Bound<'_, PyAny>>,
        prefetch: Option<&Bound<'_, PyAny>>,
        ack_durability: Option<&str>,
    ) -> PyResult<Queue> {
        let this = slf.get();
        this.check()?;
        let o = QueueOptions {
            durability: durability
                .map(|d| self::durability(d, max_delay))
                .transpose()?,
            max_messages: opt_int(max_messages, "max_messages")?,
            max_bytes: opt_int(max_bytes, "max_bytes")?,
            overflow: overflow
                .map(|o| match o {
                    "reject" => Ok(OverflowPolicy::Reject),
                    "drop_oldest" => Ok(OverflowPolicy::DropOldest),
                    "block" => Ok(match opt_duration(overflow_timeout, "overflow_timeout")? {
                        Some(timeout) => OverflowPolicy::Block { timeout },
                        None => OverflowPolicy::block(),
                    }),
                    other => Err(invalid(format!(
                        "overflow must be 'reject', 'drop_oldest' or 'block', not {other:?}"
                    ))),
                })
                .transpose()?,
            redelivery: redelivery.map(|r| r.to_core()).transpose()?,
            dead_letter: dead_letter.map(|d| d.inner.clone()),
            ack_timeout: opt_duration(ack_timeout, "ack_timeout")?,
            process_expired,
            dedup_window: opt_duration(dedup_window, "dedup_window")?,
            dedup_window_count: opt_int(dedup_window_count, "dedup_window_count")?,
            group_failure: group_failure
                .map(|g| match g {
                    "block" => Ok(GroupFailurePolicy::Block),
                    "skip" => Ok(GroupFailurePolicy::Skip),
                    "park" => Ok(GroupFailurePolicy::Park),
                    other => Err(invalid(format!(
                        "group_failure must be 'block', 'skip' or 'park', not {other:?}"
                    ))),
                })
                .transpose()?,
            retention: opt_duration(retention, "retention")?,
            prefetch: opt_int(prefetch, "prefetch")?,
            ack_durability: self::ack_durability(ack_durability)?,
        };
        let q = mq(if o.is_empty() {
            this.store.queue(name)
        } else {
            this.store.queue_with(name, o)
        })?;
        Ok(Queue::new(q, slf.clone().unbind()))
    }

    /// A topic handle: ``store.topic("orders.eu.created")`` (dot-separated segments, no
    /// wildcards). Raises InvalidName naming the rule broken.
    fn topic(slf: &Bound<'_, Self>, name: &str) -> PyResult<crate::topic::Topic> {
        let this = slf.get();
        this.check()?;
        let t = mq(this.store.topic(name))?;
        Ok(crate::topic::Topic::new(t, slf.clone().unbind()))
    }

    /// Subscribes to the topics matching ``pattern`` (``*`` one segment, ``>`` all remaining
    /// ones, as ActiveMQ and NATS) and returns the subscription: a :class:`Queue` with the
    /// whole receiving API (``receive``, ``consume``, ``consumer``, ``listen``, ``browse``,
    /// ``stats``, acks, nack/reject/release). ``selector`` is a JMS message selector evaluated
    /// at publish time. A durable subscription (``name`` required) keeps collecting while
    /// nobody is attached and across restarts, until :meth:`unsubscribe`; a non-durable one
    /// ends when its last handle is dropped. ``shared=True`` lets several handles consume it as
    /// competing consumers (JMS 2.0). Subscribing again under a name with another pattern or
    /// selector replaces the subscription and drops what it held (JMS). ``redelivery``,
    /// ``dead_letter``, ``max_messages``, ``max_bytes``, ``ack_timeout`` (seconds),
    /// ``prefetch`` and ``ack_durability`` are the subscription's own, as for a queue
    /// (:meth:`queue`: prefetch default 1000, ``"lazy"`` or ``"sync"`` acks). Raises InvalidName (pattern or name),
    /// InvalidArgument (a selector that does not parse, naming the character position; a
    /// durable or shared subscription without a name; a subscription in use).
    #[pyo3(signature = (pattern, *, name = None, durable = false, shared = false, selector = None,
        redelivery = None, dead_letter = None, max_messages = None, max_bytes = None, ack_timeout = None,
        prefetch = None, ack_durability = None))]
    #[allow(clippy::too_many_arguments)]
    fn subscribe(
        slf: &Bound<'_, Self>,
        pattern: &str,
        name: Option<String>,
        durable: bool,
        shared: bool,
        selector: Option<String>,
        redelivery: Option<&RedeliveryPolicy>,
        dead_letter: Option<&DeadLetterStrategy>,
        max_messages: Option<&Bound<'_, PyAny>>,
        max_bytes: Option<&Bound<'_, PyAny>>,
        ack_timeout: Option<&Bound<'_, PyAny>>,
        prefetch: Option<&Bound<'_, PyAny>>,
        ack_durability: Option<&str>,
    ) -> PyResult<Queue> {
        let this = slf.get();
        this.check()?;
        let queue = QueueOptions {
            redelivery: redelivery.map(|r| r.to_core()).transpose()?,
            dead_letter: dead_letter.map(|d| d.inner.clone()),
            max_messages: opt_int(max_messages, "max_messages")?,
            max_bytes: opt_int(max_bytes, "max_bytes")?,
            ack_timeout: opt_duration(ack_timeout, "ack_timeout")?,
            prefetch: opt_int(prefetch, "prefetch")?,
            ack_durability: self::ack_durability(ack_durability)?,
            ..Default::default()
        };
        let o = crate::topic::options(name, durable, shared, selector, queue);
        let store = &this.store;
        let sub = mq(slf.py().detach(|| store.subscribe(pattern, o)))?;
        Ok(Queue::of_subscription(sub, slf.clone().unbind()))
    }

    /// Ends subscription ``name`` and drops every message it holds (JMS ``unsubscribe``).
    /// Raises NotFound if there is none, InvalidArgument while a subscriber is attached.
    fn unsubscribe(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        self.check()?;
        let store = &self.store;
        mq(py.detach(|| store.unsubscribe(name)))
    }

    /// Every subscription: a list of dicts with ``name``, ``pattern``, ``selector``,
    /// ``durable``, ``shared``, ``subscribers`` and ``queue`` (``$sub.<name>``).
    fn subscriptions<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.check()?;
        self.store
            .subscriptions()
            .into_iter()
            .map(|i| {
                let d = PyDict::new(py);
                d.set_item("name", i.name)?;
                d.set_item("pattern", i.pattern)?;
                d.set_item("selector", i.selector)?;
                d.set_item("durable", i.durable)?;
                d.set_item("shared", i.shared)?;
                d.set_item("subscribers", i.subscribers)?;
                d.set_item("queue", i.queue)?;
                Ok(d)
            })
            .collect()
    }

    /// Begins a transaction: sends and acks across queues of this store that take effect
    /// together, as one durable record, at commit. ``with store.transaction() as tx:`` commits
    /// on a clean exit and rolls back on an exception.
    fn transaction(slf: &Bound<'_, Self>) -> PyResult<crate::txn::Transaction> {
        let this = slf.get();
        this.check()?;
        Ok(crate::txn::Transaction::new(
            this.store.transaction(),
            slf.clone().unbind(),
        ))
    }

    /// The names of all queues, in creation order.
    fn queue_names(&self) -> PyResult<Vec<String>> {
        self.check()?;
        Ok(self.store.queue_names())
    }

    /// Statistics of every queue of the store (dead-letter queues and subscriptions included),
    /// as ``dict[str, dict[str, int]]``: queue name → the dict :meth:`Queue.stats` returns,
    /// with the same keys and units:
    ///
    /// - gauges in messages: ``depth`` (ready), ``in_flight`` (handed out, unsettled),
    ///   ``prefetched`` (taken by a prefetch, not yet handed out), ``delayed`` (waiting for a
    ///   delivery time or redelivery delay), ``messages`` (all held: the four added up);
    ///   ``bytes``: bytes of the journal records held (bodies and headers), in bytes;
    /// - counters in messages since the store was opened (0 at every open): ``enqueued``,
    ///   ``acked``, ``redelivered`` (deliveries that were redeliveries), ``dead_lettered``,
    ///   ``expired``, ``discarded`` (by purge), ``replayed`` (into the queue), ``replayed_out``
    ///   (moved out to another queue: replayed dead letters, and moves).
    ///
    /// Raises :class:`Closed` after close.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let out = PyDict::new(py);
        for name in self.store.queue_names() {
            let q = mq(self.store.queue(&name))?;
            out.set_item(&name, stats_dict(py, &mq(q.stats())?)?)?;
        }
        Ok(out)
    }

    /// Waits until everything sent so far is durable (and the lazy acks made so far). In a
    /// client process, raises ``DeliveryLost`` ("n lazy acks failed: first: ...") once for lazy
    /// ``ack()`` calls the owner could not apply since they were last reported.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        self.check()?;
        let s: &mqlite::Store = &self.store;
        mq(py.detach(|| s.flush()))
    }

    /// Closes the store: pending sends are flushed, every future and callback completes, the
    /// lock is released. Idempotent. Later calls on its queues raise :class:`Closed`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        check_pid(self.pid)?;
        self.close_impl(py)
    }

    /// Whether :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// The store's directory (absolute).
    #[getter]
    fn path(&self) -> PathBuf {
        self.store.path().to_path_buf()
    }

    /// ``"owner"`` if this process owns the store (keeps its journal and serves the other
    /// processes that opened it), ``"client"`` if it is served by the process that does. A
    /// client that took the store over after its owner went away is ``"owner"`` from then on.
    fn role(&self) -> PyResult<&'static str> {
        self.check()?;
        Ok(self.store.role().as_str())
    }

    /// The pid of the process that owns the store (this process's own for an owner).
    #[getter]
    fn owner_pid(&self) -> PyResult<u32> {
        self.check()?;
        Ok(self.store.owner_pid())
    }

    /// Disk bytes used by journal segments.
    fn disk_bytes(&self) -> PyResult<u64> {
        self.check()?;
        Ok(self.store.disk_bytes())
    }

    /// What recovery found when the store was opened, as the Rust and C faces report it:
    /// ``segments``, ``records``, ``bytes`` (read), ``torn_tail`` (bool: an unsynced tail was
    /// cut), ``quarantined`` (what a repair cut out: a list of dicts with ``file``, ``offset``,
    /// ``len``, ``frames_lost``, ``saved_as``, the file in the store directory holding the
    /// bytes), ``missing`` (segment files found deleted, or cut short before their last
    /// frames — the last one too, when the ``CHECKPOINT`` of the last clean close proves those
    /// frames durable —, that a repair replaced or bridged: a list of dicts with ``file``, ``what``,
    /// ``frames_lost``, an int, or ``None`` when it cannot be known: a missing first or last
    /// segment, every segment gone, each but the last of adjacent missing segments, whose
    /// total is counted on the last) and ``lost_queues`` (placeholder names of queues whose
    /// declaration a repair cut out; their surviving messages are kept there),
    /// ``checkpoint_used`` (bool: the state came from the index checkpoint the last clean
    /// close wrote, and no record was replayed) and ``checkpoint_ignored`` (why a checkpoint
    /// that was there was not used, or ``None``). A client reports what its owner's recovery
    /// found.
    fn recovery_report<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.check()?;
        let r = self.store.recovery_report();
        let d = PyDict::new(py);
        d.set_item("segments", r.segments)?;
        d.set_item("records", r.records)?;
        d.set_item("bytes", r.bytes)?;
        d.set_item("torn_tail", r.torn_tail.is_some())?;
        let quarantined = pyo3::types::PyList::empty(py);
        for x in &r.quarantined {
            let q = PyDict::new(py);
            q.set_item("file", &x.file)?;
            q.set_item("offset", x.offset)?;
            q.set_item("len", x.len)?;
            q.set_item("frames_lost", x.frames_lost)?;
            q.set_item("saved_as", &x.saved_as)?;
            quarantined.append(q)?;
        }
        d.set_item("quarantined", quarantined)?;
        let missing = pyo3::types::PyList::empty(py);
        for x in &r.missing {
            let m = PyDict::new(py);
            m.set_item("file", &x.file)?;
            m.set_item("what", &x.what)?;
            m.set_item("frames_lost", x.frames_lost)?;
            missing.append(m)?;
        }
        d.set_item("missing", missing)?;
        d.set_item("lost_queues", r.lost_queues.clone())?;
        d.set_item("checkpoint_used", r.checkpoint_used)?;
        d.set_item("checkpoint_ignored", r.checkpoint_ignored.clone())?;
        Ok(d)
    }

    /// Enters its ``with`` block (closing it at the end). Raises :class:`Closed` if it is
    /// already closed: a block over a closed store could only fail at its first call.
    fn __enter__(slf: Py<Self>) -> PyResult<Py<Self>> {
        slf.get().check()?;
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

    fn __repr__(&self) -> String {
        format!(
            "<mqlite.Store {:?}{}>",
            self.store.path().display().to_string(),
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// The ``ack_durability`` option of a queue or subscription: ``"lazy"`` or ``"sync"``.
fn ack_durability(a: Option<&str>) -> PyResult<Option<mqlite::AckDurability>> {
    a.map(|a| match a {
        "lazy" => Ok(mqlite::AckDurability::Lazy),
        "sync" => Ok(mqlite::AckDurability::Sync),
        other => Err(invalid(format!(
            "ack_durability must be 'lazy' or 'sync', not {other:?}"
        ))),
    })
    .transpose()
}
