//! The client's side: one connection to the owner, requests pipelined over it, a reader thread
//! that completes them, and reconnection (or takeover) when the owner goes away.
//!
//! Every request waits in `pending` until its answer arrives. When the connection breaks, the
//! reader thread connects again — to a new owner, or, if this process wins the store's lock,
//! to the owner it starts itself — and resends what is unanswered: sends and publishes carry
//! an automatic dedup key (producer id + sequence, the Kafka idempotent-producer scheme on the
//! dedup windows of the queue, or of the subscriptions a publish reached), so a send whose
//! answer was lost is stored once and answered with the first id; a receive is simply asked again (what the dead owner handed out comes back through
//! recovery). Settles of deliveries of the old owner fail with `DeliveryLost`; a purge or
//! replay in doubt fails with `OwnerLost`. Async callbacks run on this client's own library
//! thread, each exactly once.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::owner::Owner;
use super::protocol::{
    decode, put_frame, read_frame, Hello, LazyAck, Request, Response, ResponseFrame, Welcome,
    WireReceived, WireRef, WireSettle, GOODBYE_ID, MAX_FRAME, MAX_LAZY_ACKS, PROTOCOL_VERSION,
    RECALL_ID,
};
use super::{connect_socket, fork_generation, forked_error, AUTO_KEY_PREFIX};
use crate::engine::{
    mark_callback_thread, mark_library_thread, on_library_thread, Dest, SubscriptionOptions,
};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::VERSION as FORMAT_VERSION;
use crate::message::{Message, MessageId};
use crate::options::{AckMode, QueueOptions, StoreOptions};

pub(crate) use crate::engine::Callback;

/// A connection to a store's owner. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    dir_id: (u64, u64),
    opts: StoreOptions,
    may_own: bool,
    timeout: Duration,
    fork_gen: u64,
    producer: u64,
    seq: AtomicU64,
    next_id: AtomicU64,
    /// Request frames written with an id (a test's measure of round trips saved).
    frames: AtomicU64,
    st: Mutex<St>,
    /// Waits on `st`: room in the async window; everything answered (flush, close).
    cv: Condvar,
    writer: Mutex<Writer>,
    /// Lazy acks not yet written (locked after `writer` and `st` where those are held).
    outbox: Mutex<Outbox>,
    callbacks: Mutex<Callbacks>,
    callbacks_cv: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

struct Writer {
    epoch: u64,
    stream: Option<UnixStream>,
    buf: Vec<u8>,
    /// Frames of the requests a new connection resends (see `install`), not written yet: the
    /// next write on the connection writes them first, so they keep their order before any
    /// new request.
    backlog: Vec<u8>,
}

impl Writer {
    /// Writes the backlog, then `buf`, on the current connection (nothing without one).
    fn send_buf(&mut self) -> std::io::Result<()> {
        self.flush_backlog()?;
        match &self.stream {
            Some(s) => super::send_all(s, &self.buf),
            None => Ok(()),
        }
    }

    /// Writes the backlog on the current connection. A failed write breaks the connection:
    /// the reader then sees it end, and the next connection resends what was not answered.
    fn flush_backlog(&mut self) -> std::io::Result<()> {
        if self.backlog.is_empty() {
            return Ok(());
        }
        let b = std::mem::take(&mut self.backlog);
        match &self.stream {
            Some(s) => super::send_all(s, &b),
            None => Ok(()),
        }
    }
}

/// How long a lazy ack may wait in the outbox before it is written: about the owner's commit
/// interval, so that a lazy ack is durable within about as long as an owner's own (SPEC §1).
const OUTBOX_DELAY: Duration = Duration::from_millis(1);

/// Lazy acks (of lazy queues' deliveries) made and not yet written to the owner: they go as one
/// `Settles` request at [`MAX_LAZY_ACKS`] items, after [`OUTBOX_DELAY`] (the callback thread),
/// at `close`, and before any other request is written, so that a later request's answer
/// proves them durable (SPEC §1) and a consumer's close never overtakes them.
#[derive(Default)]
struct Outbox {
    /// Each ack with the connection (epoch) whose owner handed its delivery out.
    items: Vec<(LazyAck, u64)>,
    /// What this client did with messages lent to it (see [`LentBuf`]); written before the
    /// acks, so that the owner knows a message is handed out before its ack arrives.
    notices: Vec<Notice>,
    /// When the oldest item was added.
    since: Option<Instant>,
}

/// One `LentNotice` item: a lent message handed out or given back.
struct Notice {
    /// The connection that lent it. A notice not written before that connection ended is not
    /// written to the next: a hand-out is settled there as a handed-over delivery, and a
    /// give-back goes as a handed-over return when that owner closed cleanly (it handed the
    /// message over as held by this client: see `install`); after a crash the message comes
    /// back through recovery.
    epoch: u64,
    queue: u32,
    /// The owner's consumer id (0: the plain receives of `queue`).
    server: u64,
    id: u64,
    tag: u64,
    /// The delivery count it was lent with (what names it once handed over).
    count: u32,
    handed: bool,
}

/// Messages the owner lent to one of this client's consumers (issue 10, W10 W3s): prefetched
/// in the owner, handed out here one by one without a round trip, each hand-out told to the
/// owner through the outbox (a [`Notice`]). Given back at the consumer's close, at the store's
/// close, and when the owner recalls them (a competing consumer waits with nothing ready).
struct LentBuf {
    /// The connection that lent them.
    epoch: u64,
    items: VecDeque<WireReceived>,
}

#[derive(Default)]
struct Callbacks {
    items: VecDeque<(Callback, Result<MessageId>)>,
    stop: bool,
}

struct St {
    /// Which connection is current (1, 2, … : one more per reconnection).
    epoch: u64,
    /// Connected (not reconnecting).
    up: bool,
    /// No owner could be reached again: every call fails with this.
    failed: Option<Error>,
    closed: bool,
    pending: BTreeMap<u64, Pending>,
    /// Declared queues (id → name, options), declared again on every new connection.
    queues: BTreeMap<u32, (String, Option<QueueOptions>)>,
    /// Attached subscribers (queue id → pattern, options with the subscription's name, how many
    /// handles), attached again on every new connection.
    subs: BTreeMap<u32, (String, SubscriptionOptions, usize)>,
    /// This client's consumers (its id → queue, ack mode, the owner's id for it, prefetch).
    consumers: HashMap<u64, (u32, AckMode, u64, Option<u32>)>,
    next_consumer: u64,
    async_msgs: usize,
    async_bytes: usize,
    /// Receives given up on (their owner missed a ping), by request id: their queue and the
    /// owner's consumer id. Deliveries a late answer brings are released back at once.
    abandoned: HashMap<u64, (u32, u64)>,
    /// The owner this process started when it took over (it serves the other clients too).
    hosted: Option<Arc<Owner>>,
    owner_pid: u32,
    /// A second handle on the current connection's socket, outside the writer's lock: `close`
    /// shuts it down to wake a reader blocked in `recv` and a writer blocked in `send` on the
    /// socket of a hung (stopped) owner, which would otherwise wait forever.
    conn: Option<UnixStream>,
    /// The reader thread has ended (`close` waits for it only until its deadline).
    reader_done: bool,
    /// The current connection's owner said goodbye (it closes cleanly): what it did not answer
    /// had no effect.
    goodbye: bool,
    /// Declared queues whose ack durability is lazy (`Response::Declared`): their acks go
    /// through the outbox, without a round trip.
    lazy_queues: HashSet<u32>,
    /// `Settles` requests written or to be written and not yet answered.
    lazy_pending: usize,
    /// Lazy acks the owner could not apply, not yet reported: how many, and the first's text.
    ack_errors: (u64, Option<String>),
    /// Declared queues' prefetch (`Response::Declared`): how many messages a plain receive
    /// asks the owner to lend.
    prefetch: HashMap<u32, u32>,
    /// Messages lent to this client's consumers, by (queue, this client's consumer id; 0: the
    /// plain receives).
    lent: HashMap<(u32, u64), LentBuf>,
    /// Recalls that came while a lending receive of that (queue, consumer) was unanswered:
    /// what it lends is given back as it arrives (the owner's recall may overtake the reply).
    recall_next: HashSet<(u32, u64)>,
}

struct Pending {
    req: Request,
    /// For a receive: this client's consumer id (the owner's changes with the connection).
    consumer: u64,
    deadline: Option<Instant>,
    done: Done,
    partial: Option<Response>,
    async_bytes: Option<usize>,
    /// Written to a connection (else it cannot have taken effect, and is simply sent).
    sent: bool,
}

enum Done {
    Wait(Arc<Slot>),
    Callback(Callback),
    /// A `Settles` request: its failures go to `St.ack_errors`.
    Lazy,
}

#[derive(Default)]
struct Slot {
    r: Mutex<Option<Result<Response>>>,
    cv: Condvar,
    /// The connection whose owner answered (deliveries carry it: only that owner can settle
    /// them, and the current connection may already be a later one when the caller wakes).
    epoch: AtomicU64,
}

impl Slot {
    fn set(&self, r: Result<Response>) {
        *lock(&self.r) = Some(r);
        self.cv.notify_all();
    }

    /// The answer, or `None` if none came within `limit`.
    fn wait_for(&self, limit: Duration) -> Option<Result<Response>> {
        let end = crate::clock::deadline_after(limit);
        let mut g = lock(&self.r);
        loop {
            if let Some(r) = g.take() {
                return Some(r);
            }
            let left = crate::clock::time_left(end);
            if left.is_zero() {
                return None;
            }
            g = self
                .cv
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn lost(what: &str) -> Error {
    Error::new(
        ErrorKind::OwnerLost,
        format!(
            "the store's owner process went away during {what}; whether it took effect is unknown"
        ),
    )
}

/// The text of the `DeliveryLost` a settle gets when its owner closed cleanly (said goodbye)
/// without answering it. By the protocol's rule such a request had no effect, and the owner
/// handed the delivery over to the next one: [`Backend`](super::backend::Backend) sends the
/// settle again there as a delivery handed over, so the caller sees no error.
const UNANSWERED_AT_CLOSE: &str = "the store's owner process closed before it answered this \
     settle, which had no effect: the delivery was handed over to the next owner";

/// Whether `e` is a settle left unanswered by a cleanly closing owner (see
/// [`UNANSWERED_AT_CLOSE`]): to be sent again as a delivery handed over.
pub(crate) fn unanswered_at_close(e: &Error) -> bool {
    e.kind() == ErrorKind::DeliveryLost && e.message() == UNANSWERED_AT_CLOSE
}

fn delivery_lost() -> Error {
    Error::new(
        ErrorKind::DeliveryLost,
        "this delivery was handed out by a store owner process that has since died or closed: \
         it can no longer be settled; the message comes back with its delivery count incremented",
    )
}

/// How a pending request fares when the connection is replaced.
enum OnResend {
    Resend(Box<Request>),
    Fail(Error),
}

impl Client {
    /// Connects to the owner of `dir` (whose lock is held by another process), waiting up to
    /// `options.connect_timeout` for one to serve. `may_own`: if the owner goes away, this
    /// process may take the store over.
    pub(crate) fn connect(
        dir: PathBuf,
        dir_id: (u64, u64),
        opts: &StoreOptions,
        may_own: bool,
    ) -> Result<Client> {
        let inner = Arc::new(Inner {
            dir,
            dir_id,
            opts: opts.clone(),
            may_own,
            timeout: opts.connect_timeout,
            fork_gen: fork_generation(),
            producer: producer_id(),
            seq: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            frames: AtomicU64::new(0),
            st: Mutex::new(St {
                epoch: 0,
                up: false,
                failed: None,
                closed: false,
                pending: BTreeMap::new(),
                queues: BTreeMap::new(),
                subs: BTreeMap::new(),
                consumers: HashMap::new(),
                next_consumer: 1,
                async_msgs: 0,
                async_bytes: 0,
                abandoned: HashMap::new(),
                hosted: None,
                owner_pid: 0,
                conn: None,
                reader_done: false,
                goodbye: false,
                lazy_queues: HashSet::new(),
                prefetch: HashMap::new(),
                lent: HashMap::new(),
                recall_next: HashSet::new(),
                lazy_pending: 0,
                ack_errors: (0, None),
            }),
            cv: Condvar::new(),
            writer: Mutex::new(Writer {
                epoch: 0,
                stream: None,
                buf: Vec::new(),
                backlog: Vec::new(),
            }),
            outbox: Mutex::new(Outbox::default()),
            callbacks: Mutex::new(Callbacks::default()),
            callbacks_cv: Condvar::new(),
            threads: Mutex::new(Vec::new()),
        });
        let first = inner.establish(false)?;
        let c = Client { inner };
        let i2 = c.inner.clone();
        let reader = std::thread::Builder::new()
            .name("mqlite-client".into())
            .spawn(move || {
                mark_library_thread();
                i2.read_loop(first);
                lock(&i2.st).reader_done = true;
                i2.cv.notify_all();
            })
            .map_err(|e| Error::io("starting the client's reader thread", &e))?;
        lock(&c.inner.threads).push(reader);
        let i2 = c.inner.clone();
        let cbs = std::thread::Builder::new()
            .name("mqlite-callbacks".into())
            .spawn(move || {
                mark_callback_thread();
                i2.run_callbacks()
            })
            .map_err(|e| Error::io("starting the client's callback thread", &e))?;
        lock(&c.inner.threads).push(cbs);
        Ok(c)
    }

    /// Whether `other` is the same connection.
    pub(crate) fn same(&self, other: &Client) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Whether this process took the store over and now owns it.
    pub(crate) fn hosts_owner(&self) -> bool {
        lock(&self.inner.st).hosted.is_some()
    }

    /// The current connection's number (deliveries carry the one that handed them out).
    pub(crate) fn epoch(&self) -> u64 {
        lock(&self.inner.st).epoch
    }

    /// The pid of the owner it is connected to.
    pub(crate) fn owner_pid(&self) -> u32 {
        lock(&self.inner.st).owner_pid
    }

    /// Whether this client was made before a `fork()` (see `Backend::forked`).
    pub(crate) fn forked(&self) -> bool {
        fork_generation() != self.inner.fork_gen
    }

    fn check_fork(&self) -> Result<()> {
        if self.forked() {
            return Err(forked_error());
        }
        Ok(())
    }

    /// What recovery found when the owner opened the store (a client's `recovery_report`).
    pub(crate) fn owner_report(&self) -> Result<crate::journal::RecoveryReport> {
        match self.call(Request::RecoveryReport)? {
            Response::Report(r) => Ok(r),
            r => Err(unexpected(&r)),
        }
    }

    /// Sends a request and waits for its answer.
    pub(crate) fn call(&self, req: Request) -> Result<Response> {
        self.call_answered_by(req, 0, None, None).map(|(r, _)| r)
    }

    /// Sends a request that names what connection `epoch` handed out (an owner's consumer id,
    /// a delivery tag) and waits for its answer. Should the connection have been replaced since
    /// the request was made, it is not sent as it is — the next owner's ids mean other things —
    /// but as a request pending at the replacement would be (see [`resend`]): a settle fails
    /// with the error that has [`Backend`](super::backend::Backend) settle it as a delivery
    /// handed over, a receive asks the next owner through the consumer opened there again.
    pub(crate) fn call_in(&self, req: Request, epoch: u64) -> Result<Response> {
        self.call_answered_by(req, 0, None, Some(epoch))
            .map(|(r, _)| r)
    }

    /// Calls `req` until the connection that answered it is still the current one, and gives
    /// its answer to `record` under the client's state lock: what the client remembers to
    /// set up again on every new connection (a declared queue, an open consumer, a
    /// subscription) is then never remembered from a connection already replaced, which the
    /// replacement would not have set up.
    fn call_recorded<T>(
        &self,
        req: Request,
        mut record: impl FnMut(&mut St, Response) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..100 {
            let (r, answered) = self.call_answered_by(req.clone(), 0, None, None)?;
            let mut st = lock(&self.inner.st);
            if st.epoch == answered {
                return record(&mut st, r);
            }
        }
        Err(lost("setting up a queue, consumer or subscription"))
    }

    /// A call, and the connection whose owner answered it. `built`: the connection the
    /// request's ids belong to, if it names any (see [`Client::call_in`]).
    fn call_answered_by(
        &self,
        req: Request,
        consumer: u64,
        deadline: Option<Instant>,
        built: Option<u64>,
    ) -> Result<(Response, u64)> {
        let slot = Arc::new(Slot::default());
        let id = self.submit(
            req,
            consumer,
            deadline,
            Done::Wait(slot.clone()),
            None,
            built,
        )?;
        let r = self.wait_answer(&slot, id)?.into_result()?;
        Ok((r, slot.epoch.load(Ordering::SeqCst)))
    }

    /// Waits for the answer of request `id`. A call may legitimately wait long (a receive, a
    /// send blocked on a full queue), so silence alone proves nothing: after each
    /// `connect_timeout` without an answer the owner is pinged (a request its reading thread
    /// answers at once), and an owner that does not answer the ping either — alive, holding
    /// the store's lock, but hung (stopped, deadlocked) — fails the call with `Timeout`
    /// instead of hanging the caller forever.
    fn wait_answer(&self, slot: &Slot, id: u64) -> Result<Response> {
        loop {
            if let Some(r) = slot.wait_for(self.inner.timeout) {
                return r;
            }
            if self.owner_answers() {
                continue;
            }
            let mut st = lock(&self.inner.st);
            if let Some(p) = st.pending.remove(&id) {
                self.inner.uncount(&mut st, &p);
                if let Request::Receive {
                    queue, consumer, ..
                } = p.req
                {
                    st.abandoned.insert(id, (queue, consumer));
                }
            }
            drop(st);
            // It may have been answered just now.
            if let Some(r) = slot.wait_for(Duration::ZERO) {
                return r;
            }
            return Err(self.hung_error());
        }
    }

    /// Whether the owner answers a ping within `connect_timeout` (or is being replaced: the
    /// reconnection has its own deadline).
    fn owner_answers(&self) -> bool {
        if !lock(&self.inner.st).up {
            return true;
        }
        let slot = Arc::new(Slot::default());
        let Ok(id) = self.submit(
            Request::Check,
            0,
            None,
            Done::Wait(slot.clone()),
            None,
            None,
        ) else {
            return true; // closed or failed: the call's own answer says so
        };
        if slot.wait_for(self.inner.timeout).is_some() {
            return true;
        }
        let mut st = lock(&self.inner.st);
        st.pending.remove(&id);
        !st.up
    }

    fn hung_error(&self) -> Error {
        Error::new(
            ErrorKind::Timeout,
            format!(
                "the store's owner (pid {}) holds the store but did not answer within {:?}: it \
                 is hung or stopped; the call's outcome is unknown",
                self.owner_pid(),
                self.inner.timeout
            ),
        )
    }

    /// Queues a request and writes it if connected (else the reconnection writes it).
    fn submit(
        &self,
        req: Request,
        consumer: u64,
        deadline: Option<Instant>,
        done: Done,
        async_bytes: Option<usize>,
        built: Option<u64>,
    ) -> Result<u64> {
        self.check_fork()?;
        let inner = &self.inner;
        let mut w = lock(&inner.writer);
        let mut st = lock(&inner.st);
        if st.closed {
            return Err(Error::closed());
        }
        if let Some(e) = &st.failed {
            return Err(e.clone());
        }
        let mut req = req;
        if let Request::Settle {
            delivery,
            op: WireSettle::Release,
        } = &req
        {
            // A released message is the next one its consumer's receives deliver (as the
            // owner's release gives back its consumer's later prefetched messages): what was
            // lent to that consumer goes back first (written before the release, below).
            let (queue, server) = (delivery.queue, delivery.consumer);
            let consumer = match server {
                0 => Some(0),
                s => st
                    .consumers
                    .iter()
                    .find(|(_, c)| c.2 == s)
                    .map(|(&id, _)| id),
            };
            if let Some(consumer) = consumer {
                inner.return_lent(&mut st, |k| *k == (queue, consumer));
            }
        }
        if built.is_some_and(|b| b != st.epoch) {
            // Made for a connection replaced since: what it names (an owner's consumer id, a
            // delivery tag) means something else to the current owner. It was never sent, so
            // it had no effect: treated as a request pending at the replacement.
            let p = Pending {
                req,
                consumer,
                deadline,
                done: Done::Wait(Arc::new(Slot::default())),
                partial: None,
                async_bytes: None,
                sent: false,
            };
            match resend(&p, &st_consumers(&st.consumers), Instant::now(), &[], true) {
                OnResend::Resend(r) => req = *r,
                OnResend::Fail(e) => return Err(e),
            }
        }
        let w = &mut *w;
        w.buf.clear();
        // The lazy acks made before this request go first: its answer then proves them
        // applied (and durable, if it is a durable call), and a consumer's close, a receive
        // (an ack may free a message group's next message) or a transaction never overtakes
        // them. A receive carries them itself: a consumer receiving and acking one at a time
        // then writes one request per message, not two.
        let mut ids = inner.outbox_to_pending(w, &mut st, Some(&mut req));
        let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
        let write = st.up && w.epoch == st.epoch;
        if write {
            if let Err(e) = put_frame(&mut w.buf, &(id, &req)) {
                drop(st);
                inner.send_buf(w, &ids);
                return Err(e);
            }
            ids.push(id);
            inner.frames.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(b) = async_bytes {
            st.async_msgs += 1;
            st.async_bytes += b;
        }
        st.pending.insert(
            id,
            Pending {
                req,
                consumer,
                deadline,
                done,
                partial: None,
                async_bytes,
                sent: write,
            },
        );
        drop(st);
        inner.send_buf(w, &ids);
        Ok(id)
    }

    /// Sends a request that wants no answer (a dropped delivery, a closed consumer): only on
    /// the current connection; lost with it, as what it concerned is.
    fn tell(&self, req: Request, epoch: u64) {
        if self.check_fork().is_err() {
            return;
        }
        let inner = &self.inner;
        let mut w = lock(&inner.writer);
        if w.epoch != epoch {
            return;
        }
        let w = &mut *w;
        w.buf.clear();
        // Lazy acks first: a consumer closed after its last ack must not return that
        // delivery as a failed one.
        let ids = inner.outbox_to_pending(w, &mut lock(&inner.st), None);
        let _ = put_frame(&mut w.buf, &(0u64, &req));
        inner.send_buf(w, &ids);
    }

    /// Acks a delivery of a lazy queue without a round trip (SPEC §1, issue 14: a lazy ack
    /// returns once queued): it goes into the outbox. `None` if it cannot: the queue's ack
    /// durability is sync (or unknown: a subscription's queue), the consumer is not in explicit
    /// ack mode (a plain receive's is), or the delivery is not the
    /// current connection's (the caller then settles it as before, which refuses or settles as
    /// handed over a delivery of an earlier owner: a stale ack never reaches another owner as a
    /// valid one). Its failure, if the owner cannot apply it, is reported by the next
    /// [`Client::take_ack_errors`].
    pub(crate) fn lazy_ack(
        &self,
        queue: u32,
        consumer: u64,
        id: u64,
        tag: u64,
        count: u32,
        origin: u64,
    ) -> Option<Result<()>> {
        if let Err(e) = self.check_fork() {
            return Some(Err(e));
        }
        let inner = &self.inner;
        let server = {
            let st = lock(&inner.st);
            if st.closed {
                return Some(Err(Error::closed()));
            }
            if origin != st.epoch || !st.lazy_queues.contains(&queue) {
                return None;
            }
            match consumer {
                0 => 0,
                // A cumulative ack settles earlier deliveries too, which only the owner knows:
                // it keeps its round trip (and its error, such as `AlreadySettled`, at once).
                _ => match st.consumers.get(&consumer)? {
                    &(_, AckMode::Explicit, server, _) => server,
                    _ => return None,
                },
            }
        };
        let ack = LazyAck {
            delivery: WireRef {
                queue,
                id,
                tag,
                consumer: server,
            },
            count,
        };
        let (first, full) = {
            let mut ob = lock(&inner.outbox);
            ob.items.push((ack, origin));
            if ob.since.is_none() {
                ob.since = Some(Instant::now());
            }
            (ob.items.len() == 1, ob.items.len() >= MAX_LAZY_ACKS)
        };
        if full {
            inner.flush_outbox();
        } else if first {
            // The callback thread writes the outbox after `OUTBOX_DELAY`.
            let _cb = lock(&inner.callbacks);
            inner.callbacks_cv.notify_all();
        }
        Some(Ok(()))
    }

    /// Reports, once, the lazy acks the owner could not apply since the last report:
    /// `DeliveryLost` ("n lazy acks failed: first …"). Called after a call whose answer came
    /// after theirs (`ack_sync`, `flush`, a commit, `close`).
    pub(crate) fn take_ack_errors(&self) -> Result<()> {
        let (n, first) = std::mem::take(&mut lock(&self.inner.st).ack_errors);
        if n == 0 {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::DeliveryLost,
            format!(
                "{n} lazy ack{} failed: first: {}",
                if n == 1 { "" } else { "s" },
                first.unwrap_or_default()
            ),
        ))
    }

    /// Gives a message its automatic dedup key (unless it has one of its own).
    pub(crate) fn stamp(&self, m: &mut Message) {
        if m.meta.dedup_key.is_none() {
            let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
            m.meta.dedup_key = Some(format!(
                "{AUTO_KEY_PREFIX}{:x}.{seq:x}",
                self.inner.producer
            ));
        }
    }

    /// Declares a queue; remembered, to be declared again on every new connection.
    pub(crate) fn declare(&self, name: &str, options: Option<&QueueOptions>) -> Result<u32> {
        if let Some(o) = options {
            o.validate()?;
        }
        let req = Request::Declare {
            name: name.to_string(),
            options: options.cloned(),
        };
        self.call_recorded(req, |st, r| match r {
            Response::Declared {
                queue: q,
                ack_sync,
                prefetch,
            } => {
                st.queues.insert(q, (name.to_string(), options.cloned()));
                st.prefetch.insert(q, prefetch);
                if ack_sync {
                    st.lazy_queues.remove(&q);
                } else {
                    st.lazy_queues.insert(q);
                }
                Ok(q)
            }
            r => Err(unexpected(&r)),
        })
    }

    /// Sends (or publishes) without waiting; `callback` runs once on this client's callback
    /// thread.
    pub(crate) fn send_async(
        &self,
        to: Dest<'_>,
        mut msg: Message,
        callback: Callback,
    ) -> Result<()> {
        let len = msg.body.len();
        self.stamp(&mut msg);
        let req = match to {
            Dest::Queue(q) => Request::SendAsync {
                queue: q.0,
                message: msg,
            },
            Dest::Topic(t) => Request::PublishAsync {
                topic: t.to_string(),
                message: msg,
            },
        };
        self.wait_window(len)?;
        self.submit(req, 0, None, Done::Callback(callback), Some(len), None)
            .map(|_| ())
    }

    /// Waits for room in this client's window of async sends (the store's producer window
    /// options, applied per client).
    fn wait_window(&self, len: usize) -> Result<()> {
        let inner = &self.inner;
        let o = &inner.opts;
        let mut st = lock(&inner.st);
        while st.async_msgs >= o.max_pending_messages
            || (st.async_bytes > 0 && st.async_bytes + len > o.max_pending_bytes)
        {
            if !o.block_when_window_full {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    "the producer window of async sends is full",
                ));
            }
            if st.closed || st.failed.is_some() {
                break;
            }
            st = inner.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }

    /// A receive: `consumer` is this client's consumer id (0: a plain receive).
    pub(crate) fn receive(
        &self,
        queue: u32,
        consumer: u64,
        max: u32,
        timeout: Option<Duration>,
        selector: Option<String>,
    ) -> Result<(u64, Response)> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let one = max == 1 && selector.is_none();
        if one {
            self.check_fork()?;
            if let Some(r) = self.inner.hand_out_lent(queue, consumer)? {
                return Ok(r);
            }
        } else {
            // A batch (or selective) receive is the owner's: what was lent to the consumer
            // goes back first (written before the receive), so that the batch sees it, in
            // the queue's order.
            let mut st = lock(&self.inner.st);
            self.inner.return_lent(&mut st, |k| *k == (queue, consumer));
        }
        let (server, epoch, lend) = {
            let st = lock(&self.inner.st);
            let (server, prefetch) = if consumer == 0 {
                (0, st.prefetch.get(&queue).copied())
            } else {
                let c = st.consumers.get(&consumer).ok_or_else(Error::closed)?;
                // Only an explicit-ack consumer borrows: a cumulative ack settles what the
                // owner saw handed out, and an auto-ack one takes no prefetch.
                let p = (c.1 == AckMode::Explicit)
                    .then(|| c.3.or_else(|| st.prefetch.get(&queue).copied()))
                    .flatten();
                (c.2, p)
            };
            // A receive of one asks the owner to lend the rest of the consumer's prefetch: the
            // next receives are served here, without a round trip.
            let lend = match prefetch {
                Some(p) if one && p > 1 => p - 1,
                _ => 0,
            };
            (server, st.epoch, lend)
        };
        let req = Request::Receive {
            queue,
            consumer: server,
            max,
            timeout_ms: timeout.map(|t| t.as_millis().min(u64::MAX as u128) as u64),
            selector,
            // Filled with the outbox by `submit`.
            acks: Vec::new(),
            acks_id: 0,
            lend,
        };
        // The answer may come from a later connection than the one asked (a resend, or the
        // connection replaced before it was sent); the deliveries carry the one that answered.
        let (r, answered) = self.call_answered_by(req, consumer, deadline, Some(epoch))?;
        Ok((answered, r))
    }

    /// Attaches a subscriber; remembered (by the subscription's name), to be attached again
    /// on every new connection. Returns the subscription's queue and name.
    pub(crate) fn subscribe(
        &self,
        pattern: &str,
        options: &SubscriptionOptions,
    ) -> Result<(u32, String)> {
        options.queue.validate()?;
        let req = Request::Subscribe {
            pattern: pattern.to_string(),
            options: options.clone(),
        };
        self.call_recorded(req, |st, r| match r {
            Response::Subscribed { queue, name } => {
                let e = st.subs.entry(queue).or_insert_with(|| {
                    let mut o = options.clone();
                    o.name = Some(name.clone());
                    (pattern.to_string(), o, 0)
                });
                e.2 += 1;
                Ok((queue, name))
            }
            r => Err(unexpected(&r)),
        })
    }

    /// Detaches a subscriber (on the current connection: one that ended detached it already).
    pub(crate) fn close_subscription(&self, queue: u32) -> Result<()> {
        {
            let mut st = lock(&self.inner.st);
            match st.subs.get_mut(&queue) {
                Some(e) if e.2 > 1 => e.2 -= 1,
                Some(_) => {
                    st.subs.remove(&queue);
                }
                None => return Ok(()),
            }
        }
        match self.call(Request::CloseSubscription { queue }) {
            Err(e) if e.kind() == ErrorKind::OwnerLost => Ok(()),
            r => r.map(|_| ()),
        }
    }

    /// Opens a consumer; returns this client's id for it.
    pub(crate) fn open_consumer(
        &self,
        queue: u32,
        mode: AckMode,
        prefetch: Option<u32>,
    ) -> Result<u64> {
        let req = Request::OpenConsumer {
            queue,
            mode,
            prefetch,
        };
        self.call_recorded(req, |st, r| match r {
            Response::Consumer(server) => {
                let id = st.next_consumer;
                st.next_consumer += 1;
                st.consumers.insert(id, (queue, mode, server, prefetch));
                Ok(id)
            }
            r => Err(unexpected(&r)),
        })
    }

    /// Closes a consumer (its unsettled deliveries return, as failed deliveries).
    pub(crate) fn close_consumer(&self, consumer: u64) {
        let (c, epoch) = {
            let mut st = lock(&self.inner.st);
            // What was lent to it and not handed out goes back uncounted (written before the
            // close, by `tell`): the close fails only what it handed out.
            self.inner.return_lent(&mut st, |k| k.1 == consumer);
            (st.consumers.remove(&consumer), st.epoch)
        };
        if let Some((_, _, server, _)) = c {
            self.tell(Request::CloseConsumer { consumer: server }, epoch);
        }
    }

    /// The owner's consumer id for this client's `consumer` (0 stays 0), if `origin` is the
    /// current connection.
    pub(crate) fn server_consumer(&self, consumer: u64, origin: u64) -> Result<u64> {
        let st = lock(&self.inner.st);
        if origin != st.epoch {
            return Err(delivery_lost());
        }
        if consumer == 0 {
            return Ok(0);
        }
        st.consumers
            .get(&consumer)
            .map(|c| c.2)
            .ok_or_else(delivery_lost)
    }

    /// Tells the owner of a dropped delivery (if it is still the one that handed it out).
    pub(crate) fn drop_delivery(&self, req: Request, origin: u64) {
        self.tell(req, origin);
    }

    /// Waits until every async send made so far is answered.
    pub(crate) fn wait_async(&self) {
        let inner = &self.inner;
        let mut st = lock(&inner.st);
        while st.async_msgs > 0 && !st.closed {
            st = inner.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Waits at most `connect_timeout` (what a healthy owner answers within) until `done`
    /// holds of the state: the state, locked, and whether `done` held.
    fn wait_timeout_for(&self, done: impl Fn(&St) -> bool) -> (MutexGuard<'_, St>, bool) {
        let inner = &self.inner;
        let (st, _) = inner
            .cv
            .wait_timeout_while(lock(&inner.st), inner.timeout, |st| !done(st))
            .unwrap_or_else(|e| e.into_inner());
        let held = done(&st);
        (st, held)
    }

    /// Waits until every async send made so far is answered, as long as the owner answers:
    /// after each `connect_timeout` of silence it is pinged, as a call's wait does. `false`:
    /// the owner holds the store but answers nothing (stopped, deadlocked).
    fn wait_async_while_alive(&self) -> bool {
        let inner = &self.inner;
        let mut stuck = 0;
        loop {
            let (st, done) = self.wait_timeout_for(|st| {
                (st.async_msgs == 0 && st.lazy_pending == 0) || st.closed || st.failed.is_some()
            });
            if done {
                return true;
            }
            drop(st);
            // A writer blocked in `send` holds the writer's lock (a ping would wait for it):
            // a whole `connect_timeout` of that twice over is an owner that reads nothing.
            if inner.writer.try_lock().is_err() {
                stuck += 1;
                if stuck >= 2 {
                    return false;
                }
                continue;
            }
            stuck = 0;
            if !self.owner_answers() {
                return false;
            }
        }
    }

    /// Closes: waits for every async send, ends the connection, fails what is still pending
    /// with `Closed`, runs the last callbacks, and closes the owner this process took over.
    ///
    /// Bounded whatever the owner does (r4 #3): an owner that stops answering (SIGSTOP,
    /// deadlock) is waited for about `connect_timeout` per step (the async sends, with a ping;
    /// the owner's end of the connection), then the socket is shut down, which wakes the
    /// reader thread blocked in `recv` and any writer blocked in `send`. Async sends it left
    /// unanswered complete with `Timeout` (outcome unknown), not `Closed`.
    pub(crate) fn close(&self) -> Result<()> {
        if on_library_thread()
            && !std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("mqlite-listener"))
        {
            return Err(Error::new(
                ErrorKind::WouldDeadlock,
                "close() called from one of the store's own threads (a callback or listener)",
            ));
        }
        self.check_fork()?;
        let inner = &self.inner;
        if lock(&inner.st).closed {
            return Ok(());
        }
        // What was lent to this client and not handed out goes back uncounted (the owner
        // fails, counted, what a client that ends holds: a killed client's lent messages).
        inner.return_lent(&mut lock(&inner.st), |_| true);
        // Pending lazy acks go out, and are waited for with the async sends: `close()`
        // flushes them (issue 14), and their failures are reported below.
        inner.flush_outbox();
        let alive = self.wait_async_while_alive();
        if !alive {
            let e = self.hung_error();
            inner.fail_all(|_| e.clone());
        }
        let hosted = {
            // Not the writer's lock: a writer blocked in `send` to a stopped owner holds it.
            let mut st = lock(&inner.st);
            st.closed = true;
            if let Some(s) = &st.conn {
                // Half-close and wait for the owner's end of the connection: the owner closes
                // its side only once it has given back what this client held (prefetched
                // messages, unsettled deliveries, subscriptions), so that when `close` returns
                // another process sees them, as it would after a local consumer's close. An
                // owner that does not answer within `connect_timeout` is not waited for.
                if st.up && alive {
                    let _ = s.shutdown(std::net::Shutdown::Write);
                } else {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
            st.hosted.take()
        };
        inner.cv.notify_all();
        // The reader ends when the owner closes its end (or at once, if the connection is
        // down); one blocked in `recv` on a hung owner is woken by shutting the socket down.
        // (A read timeout set now would not reach a `recv` already waiting.)
        {
            let (st, done) = self.wait_timeout_for(|st| st.reader_done);
            if !done {
                if let Some(s) = &st.conn {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
            }
        }
        let threads: Vec<_> = std::mem::take(&mut *lock(&inner.threads));
        let mut it = threads.into_iter();
        if let Some(reader) = it.next() {
            let _ = reader.join();
        }
        inner.fail_all(|_| Error::closed());
        {
            let mut cb = lock(&inner.callbacks);
            cb.stop = true;
            inner.callbacks_cv.notify_all();
        }
        for t in it {
            let _ = t.join();
        }
        let lazy = self.take_ack_errors();
        match hosted {
            Some(o) => o.close(),
            None => Ok(()),
        }
        .and(lazy)
    }
}

impl Client {
    /// Closes without waiting (dropped inside one of its own callbacks): the connection ends,
    /// the reader thread fails what is pending with `Closed` and lets the callback thread finish
    /// the callbacks queued so far; an owner this process took over closes in the background.
    pub(crate) fn close_in_background(&self) {
        let inner = &self.inner;
        let hosted = {
            let mut st = lock(&inner.st);
            if st.closed {
                return;
            }
            st.closed = true;
            if let Some(s) = &st.conn {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
            st.hosted.take()
        };
        inner.cv.notify_all();
        if let Some(o) = hosted {
            o.close_in_background();
        }
    }
}

fn unexpected(r: &Response) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("the owner answered with an unexpected reply: {r:?}"),
    )
}

/// Whether `s` has something to read (or is closed) within `limit` (poll(2)).
fn readable_within(s: &UnixStream, limit: Duration) -> bool {
    use std::os::unix::io::AsRawFd;
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let end = crate::clock::deadline_after(limit);
    loop {
        let left = crate::clock::time_left(end);
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd, count 1.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// "pid N" of the live process holding the store's lock (`F_GETLK`, as the kernel says; the
/// file's pid text only names who wrote it last).
fn lock_holder(dir: &std::path::Path) -> String {
    match crate::store::live_holder(dir) {
        Some(p) => format!("pid {p}"),
        None => "no live holder now".to_string(),
    }
}

/// A random producer id for this client's automatic dedup keys (pid, time and an address:
/// unique enough among the processes of one store).
fn producer_id() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let x = &t as *const u64 as u64;
    let mut h = t ^ (u64::from(std::process::id()) << 32) ^ x.rotate_left(17);
    // splitmix64 finaliser
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d049bb133111eb);
    h ^ (h >> 31)
}

impl Inner {
    /// Connects to an owner — or becomes the owner if the lock is free and this process may —
    /// retrying with backoff until the connect timeout. Returns the new connection's stream.
    fn establish(self: &Arc<Self>, again: bool) -> Result<UnixStream> {
        let deadline = crate::clock::deadline_after(self.timeout);
        let mut backoff = Duration::from_millis(2);
        let mut last: Option<Error> = None;
        loop {
            if lock(&self.st).closed {
                return Err(Error::closed());
            }
            if again && self.may_own && lock(&self.st).hosted.is_none() {
                match Owner::open(&self.dir, &self.opts) {
                    Ok(o) => lock(&self.st).hosted = Some(Arc::new(o)),
                    Err(e) if e.kind() == ErrorKind::Locked => {}
                    Err(e) => last = Some(e),
                }
            }
            match self.hello() {
                Ok(s) => return Ok(s),
                Err(Some(e)) => return Err(e),
                Err(None) => {}
            }
            // The first connection: `Store::open` retries (and tries the lock) itself.
            if !again || crate::clock::time_left(deadline).is_zero() {
                let mut why = last
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                // A socket deleted behind a live owner's back (a tmp cleaner) makes an owner
                // nobody can reach (review r5 #24): say so rather than "no process".
                if let Some(pid) = crate::store::live_holder(&self.dir) {
                    if !self.dir.join(super::SOCKET_NAME).exists() {
                        why.push_str(&format!(
                            "; pid {pid} holds the store's LOCK but its socket {} is missing \
                             (deleted while that process runs?): restart that process",
                            super::SOCKET_NAME
                        ));
                    }
                }
                return Err(Error::new(
                    ErrorKind::OwnerLost,
                    format!(
                        "no process served store {} within {:?}{why}",
                        self.dir.display(),
                        self.timeout
                    ),
                ));
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// Connects and says hello. `Err(None)`: nobody is listening (yet); `Err(Some)`: refused.
    fn hello(&self) -> std::result::Result<UnixStream, Option<Error>> {
        let mut s = connect_socket(&self.dir).map_err(|_| None)?;
        let h = Hello {
            protocol: PROTOCOL_VERSION,
            format: FORMAT_VERSION,
            pid: std::process::id(),
            dir: self.dir_id,
        };
        super::send_all(&s, &h.encode()).map_err(|_| None)?;
        if !readable_within(&s, self.timeout) {
            // Connected (the kernel queues connections) but never welcomed: the process holding
            // the store's lock does not serve.
            return Err(Some(Error::new(
                ErrorKind::Timeout,
                format!(
                    "the owner of store {} ({}) holds its lock but did not answer within {:?}: \
                     it is hung or stopped",
                    self.dir.display(),
                    lock_holder(&self.dir),
                    self.timeout
                ),
            )));
        }
        let w = match Welcome::read(&mut s) {
            Ok(w) => w,
            // An owner that closed or died during the hello: try again.
            Err(_) => return Err(None),
        };
        if let Some((kind, text)) = w.refusal {
            return Err(Some(Error::new(kind, text)));
        }
        lock(&self.st).owner_pid = w.owner_pid;
        Ok(s)
    }

    /// Runs a request on a stream not yet installed (during reconnection).
    fn direct(s: &mut UnixStream, buf: &mut Vec<u8>, req: &Request) -> Result<Response> {
        buf.clear();
        put_frame(buf, &(u64::MAX, req))?;
        let io = |e: std::io::Error| match e.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => Error::new(
                ErrorKind::Timeout,
                "the store's new owner holds the store but did not answer while the connection \
                 was being set up: it is hung or stopped",
            ),
            _ => Error::io("talking to the store's owner", &e),
        };
        super::send_all(s, buf).map_err(io)?;
        let mut acc: Option<Response> = None;
        loop {
            if !read_frame(s, buf).map_err(io)? {
                return Err(Error::new(
                    ErrorKind::OwnerLost,
                    "the owner closed the connection",
                ));
            }
            let (id, more, r): ResponseFrame =
                decode(buf).map_err(|e| Error::new(ErrorKind::Internal, e))?;
            if id == GOODBYE_ID {
                continue; // closing: the end of the stream comes next
            }
            match &mut acc {
                None => acc = Some(r),
                Some(a) => {
                    a.extend(r);
                }
            }
            if !more {
                return acc.unwrap_or(Response::Done).into_result();
            }
        }
    }

    /// Declares the queues and opens the consumers again on a new connection, installs it and
    /// resends what is pending.
    fn install(self: &Arc<Self>, mut s: UnixStream) -> Result<UnixStream> {
        let (queues, subs, consumers) = {
            let st = lock(&self.st);
            (st.queues.clone(), st.subs.clone(), st.consumers.clone())
        };
        // An owner that stops answering while the connection is set up must not hold the
        // reader thread (and so `close`) forever: each answer is waited for `connect_timeout`.
        s.set_read_timeout(Some(self.timeout))
            .map_err(|e| Error::io("setting the client socket's read timeout", &e))?;
        let mut buf = Vec::new();
        let mut moved = Vec::new();
        for (&q, (name, options)) in &queues {
            match Self::direct(
                &mut s,
                &mut buf,
                &Request::Declare {
                    name: name.clone(),
                    options: options.clone(),
                },
            )? {
                Response::Declared { queue: n, .. } if n == q => {}
                _ => moved.push(q),
            }
        }
        for (&q, (pattern, options, n)) in &subs {
            for _ in 0..*n {
                let r = Self::direct(
                    &mut s,
                    &mut buf,
                    &Request::Subscribe {
                        pattern: pattern.clone(),
                        options: options.clone(),
                    },
                );
                if !matches!(r, Ok(Response::Subscribed { queue, .. }) if queue == q) {
                    moved.push(q);
                }
            }
        }
        let mut servers = HashMap::new();
        for (&id, &(queue, mode, _, prefetch)) in &consumers {
            let open = Request::OpenConsumer {
                queue,
                mode,
                prefetch,
            };
            if let Response::Consumer(server) = Self::direct(&mut s, &mut buf, &open)? {
                servers.insert(id, server);
            }
        }
        s.set_read_timeout(None)
            .map_err(|e| Error::io("clearing the client socket's read timeout", &e))?;
        let reader = s
            .try_clone()
            .map_err(|e| Error::io("cloning the client socket", &e))?;
        let mut w = lock(&self.writer);
        let mut st = lock(&self.st);
        st.epoch += 1;
        w.epoch = st.epoch;
        // Late answers of the previous owner cannot come any more.
        st.abandoned.clear();
        if st.closed {
            // Closed while this connection was being set up (close() found no stream to shut
            // down): end it now, or the reader would wait on it forever.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        st.conn = s.try_clone().ok();
        w.stream = Some(s);
        // What was queued for the previous connection is resent below, if still unanswered.
        w.backlog.clear();
        st.up = true;
        for (id, server) in servers {
            if let Some(c) = st.consumers.get_mut(&id) {
                c.2 = server;
            }
        }
        let mut failed = Vec::new();
        let ids: Vec<u64> = st.pending.keys().copied().collect();
        let now = Instant::now();
        let clean = std::mem::take(&mut st.goodbye);
        // Messages the previous owner lent and this client did not hand out: an owner that
        // closed cleanly handed them over with its other deliveries, and the next one takes
        // them back uncounted (first in the backlog, before anything resent). After a crash
        // there is nothing to give back: they come back through recovery, counted, as a
        // crashed prefetching consumer's.
        let lent: Vec<_> = st.lent.drain().collect();
        st.recall_next.clear();
        // Give-backs not written before the previous connection ended (a recall answered
        // after that owner stopped reading, or between connections) are in the same place:
        // handed over as held by this client, they go back the same way.
        let unsent: Vec<Notice> = std::mem::take(&mut lock(&self.outbox).notices);
        if clean {
            let mut returns: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
            for ((queue, _), buf) in lent {
                returns.entry(queue).or_default().extend(
                    buf.items
                        .iter()
                        .map(|r| (r.message.id().map_or(0, |m| m.0), u64::from(r.count))),
                );
            }
            for n in unsent.iter().filter(|n| !n.handed && n.epoch < st.epoch) {
                returns
                    .entry(n.queue)
                    .or_default()
                    .push((n.id, u64::from(n.count)));
            }
            for (queue, returned) in returns {
                if moved.contains(&queue) || returned.is_empty() {
                    continue;
                }
                let req = Request::LentNotice {
                    queue,
                    consumer: 0,
                    handed: Vec::new(),
                    returned,
                    handed_over: true,
                };
                let _ = put_frame(&mut w.backlog, &(0u64, &req));
            }
        }
        for id in ids {
            let map = st_consumers(&st.consumers);
            let Some(p) = st.pending.get_mut(&id) else {
                continue;
            };
            p.partial = None;
            let on = resend(p, &map, now, &moved, clean);
            let Some(p) = st.pending.get_mut(&id) else {
                continue;
            };
            match on {
                OnResend::Resend(req) => {
                    p.req = *req;
                    p.sent = true;
                    // Only framed here: written by another thread (below), never by this one,
                    // the reader, with the locks held. Thousands of resent async sends
                    // outgrow the socket's buffer, and an owner blocked writing their answers
                    // to a reader that is not reading stops reading too: both waited for good,
                    // and every call behind the locks with them (review r10 #2).
                    let _ = put_frame(&mut w.backlog, &(id, &p.req));
                }
                OnResend::Fail(e) => failed.push((id, e)),
            }
        }
        let mut done = Vec::new();
        for (id, e) in failed {
            if let Some(p) = st.pending.remove(&id) {
                self.uncount(&mut st, &p);
                done.push((p, e));
            }
        }
        let epoch = w.epoch;
        let resend = !w.backlog.is_empty();
        drop(st);
        drop(w);
        if resend {
            let flush = move |me: &Inner| {
                let mut w = lock(&me.writer);
                if w.epoch == epoch {
                    let _ = w.flush_backlog();
                }
            };
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("mqlite-client-resend".into())
                .spawn(move || {
                    mark_library_thread();
                    flush(&me)
                });
            if spawned.is_err() {
                // No thread to spare: written here, as before (enough for a short backlog).
                flush(self);
            }
        }
        for (p, e) in done {
            self.complete(p, Err(e));
        }
        Ok(reader)
    }

    fn uncount(&self, st: &mut St, p: &Pending) {
        if let Some(b) = p.async_bytes {
            st.async_msgs -= 1;
            st.async_bytes -= b;
            self.cv.notify_all();
        }
        if matches!(p.done, Done::Lazy) {
            st.lazy_pending = st.lazy_pending.saturating_sub(1);
            self.cv.notify_all();
        }
    }

    /// Moves the outbox's lazy acks into pending `Settles` requests, framed into `w.buf` (after
    /// what it holds) if the connection is writable; returns the ids framed. The acks of the
    /// current connection's deliveries go by tag; those of an earlier connection's (replaced
    /// since the ack was made) go as handed over, by queue, message id and count: that
    /// connection's tags mean other things to the current owner. Unwritten, they are written
    /// by the reconnection (as handed over, see `resend`). `next`: the request to be written
    /// next; a receive of the current connection carries the first batch of the current
    /// connection's acks itself (`acks`, `acks_id`: the pending `Settles` they are), which
    /// saves a request per message for a consumer that receives and acks one at a time.
    fn outbox_to_pending(
        &self,
        w: &mut Writer,
        st: &mut St,
        mut next: Option<&mut Request>,
    ) -> Vec<u64> {
        let (items, notices) = {
            let mut ob = lock(&self.outbox);
            ob.since = None;
            (
                std::mem::take(&mut ob.items),
                std::mem::take(&mut ob.notices),
            )
        };
        let mut ids = Vec::new();
        let write = st.up && w.epoch == st.epoch;
        if !write && !notices.is_empty() {
            // Between connections: kept for the next one's `install`, which sends the
            // give-backs on as handed-over returns if the owner closed cleanly.
            lock(&self.outbox).notices.extend(notices);
        } else if !notices.is_empty() {
            // Before the acks: an ack of a lent message must find it handed out.
            // Per (queue, consumer): the (id, tag)s handed out and given back.
            type Items = Vec<(u64, u64)>;
            let mut by: BTreeMap<(u32, u64), (Items, Items)> = BTreeMap::new();
            for n in notices.into_iter().filter(|n| n.epoch == st.epoch) {
                let e = by.entry((n.queue, n.server)).or_default();
                match n.handed {
                    true => e.0.push((n.id, n.tag)),
                    false => e.1.push((n.id, n.tag)),
                }
            }
            for ((queue, consumer), (handed, returned)) in by {
                let req = Request::LentNotice {
                    queue,
                    consumer,
                    handed,
                    returned,
                    handed_over: false,
                };
                let _ = put_frame(&mut w.buf, &(0u64, &req));
            }
        }
        if items.is_empty() || st.closed {
            return ids;
        }
        let (current, earlier): (Vec<_>, Vec<_>) =
            items.into_iter().partition(|(_, e)| *e == st.epoch);
        for (acks, handed_over) in [(current, false), (earlier, true)] {
            for chunk in acks.chunks(MAX_LAZY_ACKS) {
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let req = Request::Settles {
                    acks: chunk.iter().map(|(a, _)| *a).collect(),
                    handed_over,
                };
                let start = w.buf.len();
                let carrier = match next.take() {
                    Some(Request::Receive { acks, acks_id, .. }) if write && !handed_over => {
                        acks.clone_from(match &req {
                            Request::Settles { acks, .. } => acks,
                            _ => unreachable!("built above"),
                        });
                        *acks_id = id;
                        true
                    }
                    other => {
                        next = other;
                        false
                    }
                };
                let framed = !carrier && write && put_frame(&mut w.buf, &(id, &req)).is_ok();
                let sent = carrier || framed;
                if framed {
                    self.frames.fetch_add(1, Ordering::Relaxed);
                }
                if sent {
                    ids.push(id);
                } else {
                    w.buf.truncate(start);
                }
                st.lazy_pending += 1;
                st.pending.insert(
                    id,
                    Pending {
                        req,
                        consumer: 0,
                        deadline: None,
                        done: Done::Lazy,
                        partial: None,
                        async_bytes: None,
                        sent,
                    },
                );
            }
        }
        ids
    }

    /// Writes `w.buf` (the frames of requests `ids`, and maybe a one-way one) if connected.
    fn send_buf(&self, w: &mut Writer, ids: &[u64]) {
        if w.buf.is_empty() && w.backlog.is_empty() {
            return;
        }
        if w.stream.is_none() {
            return;
        }
        // The backlog of resent requests goes first (`Writer::send_buf`): they are older.
        if w.send_buf().is_err() {
            let Some(s) = &w.stream else {
                return;
            };
            // The owner no longer reads (it is closing, or gone). Not even part of the
            // requests was taken: they had no effect, and are handled as never sent when the
            // connection is replaced (the writer's lock, held, keeps that from happening
            // before this). Only this side's writing is shut: the answers the owner still
            // writes, and its goodbye, which says that what it did not answer had no effect,
            // must still be read (shutting both ways lost them: settles in flight at a clean
            // close were taken as in doubt, the bridge's no_loss test).
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut st = lock(&self.st);
            for id in ids {
                if let Some(p) = st.pending.get_mut(id) {
                    p.sent = false;
                }
            }
        }
    }

    /// Hands out the next message lent to `consumer` of `queue` (see [`LentBuf`]), if any:
    /// the answer a receive of one gets, with the connection that lent it. A message whose
    /// time to live ran out meanwhile is given back instead (the owner expires it: TTL is
    /// honoured at hand-out).
    fn hand_out_lent(&self, queue: u32, consumer: u64) -> Result<Option<(u64, Response)>> {
        let mut st = lock(&self.st);
        if st.closed {
            return Err(Error::closed());
        }
        let epoch = st.epoch;
        let key = (queue, consumer);
        let Some(server) = self.server_of(&st, consumer) else {
            return Ok(None);
        };
        let Some(buf) = st.lent.get_mut(&key) else {
            return Ok(None);
        };
        if buf.epoch != epoch {
            // Lent by an earlier owner: it is gone, and they come back through it.
            st.lent.remove(&key);
            return Ok(None);
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut notices = Vec::new();
        let mut out = None;
        while let Some(r) = buf.items.pop_front() {
            let id = r.message.id().map_or(0, |m| m.0);
            let expired = r.message.expires_at_ms != 0 && r.message.expires_at_ms <= now_ms;
            notices.push(Notice {
                epoch,
                queue,
                server,
                id,
                tag: r.tag,
                count: r.count,
                handed: !expired,
            });
            if !expired {
                out = Some(r);
                break;
            }
        }
        if buf.items.is_empty() {
            st.lent.remove(&key);
        }
        drop(st);
        self.add_notices(notices);
        Ok(out.map(|r| (epoch, Response::Received(vec![r]))))
    }

    /// The owner's id of this client's `consumer` (0 stays 0).
    fn server_of(&self, st: &St, consumer: u64) -> Option<u64> {
        match consumer {
            0 => Some(0),
            c => st.consumers.get(&c).map(|c| c.2),
        }
    }

    /// Gives back (through the outbox) what was lent to the (queue, consumer) keys `keys`
    /// selects and not handed out. Returns whether there was any.
    fn return_lent(&self, st: &mut St, keys: impl Fn(&(u32, u64)) -> bool) -> bool {
        let chosen: Vec<(u32, u64)> = st.lent.keys().copied().filter(|k| keys(k)).collect();
        let mut notices = Vec::new();
        for key in chosen {
            let Some(buf) = st.lent.remove(&key) else {
                continue;
            };
            let Some(server) = self.server_of(st, key.1) else {
                continue;
            };
            if buf.epoch != st.epoch {
                continue;
            }
            notices.extend(buf.items.into_iter().map(|r| Notice {
                epoch: buf.epoch,
                queue: key.0,
                server,
                id: r.message.id().map_or(0, |m| m.0),
                tag: r.tag,
                count: r.count,
                handed: false,
            }));
        }
        let any = !notices.is_empty();
        self.queue_notices(notices);
        any
    }

    /// Queues notices in the outbox, written before the next request (the callers of
    /// `return_lent` write them: a close, a recall, a release).
    fn queue_notices(&self, notices: Vec<Notice>) {
        if !notices.is_empty() {
            lock(&self.outbox).notices.extend(notices);
        }
    }

    /// Queues notices in the outbox (written within [`OUTBOX_DELAY`], or before the next
    /// request).
    fn add_notices(&self, notices: Vec<Notice>) {
        if notices.is_empty() {
            return;
        }
        let first = {
            let mut ob = lock(&self.outbox);
            ob.notices.extend(notices);
            let first = ob.since.is_none();
            if first {
                ob.since = Some(Instant::now());
            }
            first
        };
        if first {
            let _cb = lock(&self.callbacks);
            self.callbacks_cv.notify_all();
        }
    }

    /// The owner recalls what it lent to its consumer `server` of `queue`: given back now, or,
    /// if a lending receive of it is unanswered, as soon as its answer arrives.
    fn on_recall(&self, queue: u32, server: u64) {
        let mut st = lock(&self.st);
        let consumer = match server {
            0 => Some(0),
            s => st
                .consumers
                .iter()
                .find(|(_, c)| c.2 == s && c.0 == queue)
                .map(|(&id, _)| id),
        };
        let Some(consumer) = consumer else { return };
        let key = (queue, consumer);
        let asking = st.pending.values().any(|p| {
            p.consumer == consumer
                && matches!(p.req, Request::Receive { queue: q, lend, .. } if q == queue && lend > 0)
        });
        if asking {
            st.recall_next.insert(key);
        }
        let any = self.return_lent(&mut st, |k| *k == key);
        drop(st);
        if any {
            self.flush_outbox();
        }
    }

    /// Writes the outbox's lazy acks now (see [`Outbox`]).
    fn flush_outbox(&self) {
        let mut w = lock(&self.writer);
        let w = &mut *w;
        w.buf.clear();
        let ids = self.outbox_to_pending(w, &mut lock(&self.st), None);
        self.send_buf(w, &ids);
    }

    /// Records the answer of a `Settles` request: the acks that failed, for the next
    /// [`Client::take_ack_errors`]. An owner gone before it answered is no failure: the acks
    /// were lazy, and what they acked comes back redelivered (as after any crash); an owner
    /// that closed cleanly without answering handed the deliveries over, and the acks were
    /// sent again there (`resend`).
    fn lazy_answered(&self, acks: usize, r: Result<Response>) {
        let failures: Vec<String> = match r {
            Ok(Response::Settled { failed }) => failed
                .into_iter()
                .map(|f| format!("message {}: {}", f.id, f.message))
                .collect(),
            Ok(Response::Error { message, .. }) => vec![message; acks],
            Ok(other) => vec![unexpected(&other).to_string(); acks],
            Err(_) => Vec::new(),
        };
        if failures.is_empty() {
            return;
        }
        let mut st = lock(&self.st);
        st.ack_errors.0 += failures.len() as u64;
        if st.ack_errors.1.is_none() {
            st.ack_errors.1 = failures.into_iter().next();
        }
    }

    fn complete(&self, p: Pending, r: Result<Response>) {
        match p.done {
            Done::Lazy => {
                let n = match &p.req {
                    Request::Settles { acks, .. } => acks.len(),
                    _ => 0,
                };
                self.lazy_answered(n, r);
            }
            Done::Wait(slot) => slot.set(r),
            Done::Callback(cb) => {
                let r = r.and_then(Response::into_result).and_then(|r| match r {
                    Response::Id(id) => Ok(id),
                    r => Err(unexpected(&r)),
                });
                let mut q = lock(&self.callbacks);
                q.items.push_back((cb, r));
                self.callbacks_cv.notify_one();
            }
        }
    }

    /// Fails every pending request.
    fn fail_all(&self, e: impl Fn(&Pending) -> Error) {
        let mut st = lock(&self.st);
        let all = std::mem::take(&mut st.pending);
        for p in all.values() {
            self.uncount(&mut st, p);
        }
        drop(st);
        for (_, p) in all {
            let err = e(&p);
            self.complete(p, Err(err));
        }
        self.cv.notify_all();
    }

    /// The reader thread: completes requests; reconnects when the connection breaks.
    fn read_loop(self: &Arc<Self>, first: UnixStream) {
        let mut stream = self.install(first).ok();
        let mut buf = Vec::new();
        loop {
            if let Some(s) = stream.take() {
                // The connection just installed: its answers carry its number.
                let epoch = lock(&self.st).epoch;
                let mut r = BufReader::with_capacity(64 << 10, s);
                while let Ok(true) = read_frame(&mut r, &mut buf) {
                    let decoded = decode::<ResponseFrame>(&buf);
                    if buf.capacity() > MAX_FRAME {
                        // A reply in several frames: its buffer is not kept.
                        buf = Vec::new();
                    }
                    match decoded {
                        Ok((id, more, resp)) => self.on_answer(id, more, resp, epoch),
                        Err(_) => break,
                    }
                }
            }
            {
                let w = lock(&self.writer);
                let mut st = lock(&self.st);
                st.up = false;
                if let Some(s) = &w.stream {
                    let _ = s.shutdown(std::net::Shutdown::Both);
                }
                if st.closed {
                    drop(st);
                    drop(w);
                    self.fail_all(|_| Error::closed());
                    let mut cb = lock(&self.callbacks);
                    cb.stop = true;
                    self.callbacks_cv.notify_all();
                    return;
                }
            }
            match self.reconnect() {
                Ok(s) => stream = Some(s),
                Err(e) if e.kind() == ErrorKind::Closed => return,
                Err(e) => {
                    lock(&self.st).failed = Some(e.clone());
                    self.fail_all(|_| e.clone());
                    return;
                }
            }
        }
    }

    /// Connects to the store's next owner (or takes the store over) and installs the
    /// connection. A next owner that goes away while the connection is being set up (it was
    /// closing too, as when every process of a store stops at once) is not the end: the next
    /// one is tried, so requests in flight are resent rather than failed.
    fn reconnect(self: &Arc<Self>) -> Result<UnixStream> {
        let mut tries = 0;
        loop {
            let s = self.establish(true)?;
            match self.install(s) {
                Err(e)
                    if matches!(e.kind(), ErrorKind::OwnerLost | ErrorKind::Io) && tries < 100 =>
                {
                    tries += 1
                }
                r => return r,
            }
        }
    }

    fn on_answer(&self, id: u64, more: bool, resp: Response, epoch: u64) {
        if let (RECALL_ID, Response::Recall { queue, consumer }) = (id, &resp) {
            self.on_recall(*queue, *consumer);
            return;
        }
        let mut st = lock(&self.st);
        if id == GOODBYE_ID {
            st.goodbye = true;
            return;
        }
        let Some(p) = st.pending.get_mut(&id) else {
            let gone = match more {
                true => st.abandoned.get(&id).copied(),
                false => st.abandoned.remove(&id),
            };
            drop(st);
            match (gone, resp) {
                (Some((queue, consumer)), Response::Received(items)) => {
                    self.release_late(queue, consumer, items, epoch);
                }
                (Some((queue, consumer)), Response::Lent { handed, lent }) => {
                    self.release_late(queue, consumer, handed, epoch);
                    self.add_notices(
                        lent.into_iter()
                            .map(|r| Notice {
                                epoch,
                                queue,
                                server: consumer,
                                id: r.message.id().map_or(0, |m| m.0),
                                tag: r.tag,
                                count: r.count,
                                handed: false,
                            })
                            .collect(),
                    );
                }
                _ => {}
            }
            return;
        };
        let resp = match p.partial.take() {
            Some(mut a) => {
                a.extend(resp);
                a
            }
            None => resp,
        };
        if more {
            p.partial = Some(resp);
            return;
        }
        let Some(p) = st.pending.remove(&id) else {
            return;
        };
        self.uncount(&mut st, &p);
        let resp = match (resp, &p.req) {
            (Response::Lent { handed, lent }, Request::Receive { queue, .. }) => {
                // Kept here, by the reader, in the order answers come: a recall read after
                // this answer finds them.
                let key = (*queue, p.consumer);
                if !lent.is_empty() {
                    let buf = st.lent.entry(key).or_insert_with(|| LentBuf {
                        epoch,
                        items: VecDeque::new(),
                    });
                    if buf.epoch != epoch {
                        buf.epoch = epoch;
                        buf.items.clear();
                    }
                    buf.items.extend(lent);
                }
                if st.recall_next.remove(&key) && self.return_lent(&mut st, |k| *k == key) {
                    drop(st);
                    self.flush_outbox();
                } else {
                    drop(st);
                }
                Response::Received(handed)
            }
            (resp, _) => {
                drop(st);
                resp
            }
        };
        if let Done::Wait(slot) = &p.done {
            slot.epoch.store(epoch, Ordering::SeqCst);
        }
        self.complete(p, Ok(resp));
    }

    /// Releases the deliveries of a receive its caller gave up on (the owner answered after
    /// missing a ping): nobody will settle them, and they would otherwise stay in flight until
    /// their consumer closes or the ack timeout passes. A release does not count as a failed
    /// delivery (JMS: the session recovers them).
    fn release_late(&self, queue: u32, consumer: u64, items: Vec<WireReceived>, epoch: u64) {
        let mut w = lock(&self.writer);
        if w.epoch != epoch {
            return; // that owner is gone: recovery brings them back
        }
        let w = &mut *w;
        for r in items {
            let req = Request::Settle {
                delivery: WireRef {
                    queue,
                    id: r.message.id().map_or(0, |m| m.0),
                    tag: r.tag,
                    consumer,
                },
                op: WireSettle::Release,
            };
            w.buf.clear();
            if put_frame(&mut w.buf, &(0u64, &req)).is_ok() {
                let _ = w.send_buf();
            }
        }
    }

    fn run_callbacks(&self) {
        let mut q = lock(&self.callbacks);
        loop {
            if let Some((cb, r)) = q.items.pop_front() {
                drop(q);
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cb.call(r)));
                q = lock(&self.callbacks);
                continue;
            }
            if q.stop {
                return;
            }
            // Lazy acks wait in the outbox at most `OUTBOX_DELAY` (this thread writes them).
            let since = lock(&self.outbox).since;
            match since.map(|t| OUTBOX_DELAY.saturating_sub(t.elapsed())) {
                Some(left) if left.is_zero() => {
                    drop(q);
                    self.flush_outbox();
                    q = lock(&self.callbacks);
                }
                Some(left) => {
                    q = self
                        .callbacks_cv
                        .wait_timeout(q, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => q = self.callbacks_cv.wait(q).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}

fn st_consumers(c: &HashMap<u64, (u32, AckMode, u64, Option<u32>)>) -> HashMap<u64, u64> {
    c.iter().map(|(&k, v)| (k, v.2)).collect()
}

/// What to do with a request whose answer was lost with the previous connection. `clean`: that
/// connection's owner said goodbye (closed cleanly), so a request it did not answer had no
/// effect and is sent again where its outcome would otherwise be unknown (a purge, a replay,
/// an unsubscribe; not a move or copy, which may have been partly done when the engine closed).
fn resend(
    p: &Pending,
    consumers: &HashMap<u64, u64>,
    now: Instant,
    moved: &[u32],
    clean: bool,
) -> OnResend {
    let names_moved = |q: &u32| moved.contains(q);
    // A request never written cannot have taken effect, whoever the owner was.
    let clean = clean || !p.sent;
    match &p.req {
        Request::Purge { .. } | Request::Replay { .. } | Request::Unsubscribe { .. } if clean => {
            OnResend::Resend(Box::new(p.req.clone()))
        }
        Request::Send { queue, .. }
        | Request::SendAsync { queue, .. }
        | Request::SendBatch { queue, .. }
            if names_moved(queue) =>
        {
            OnResend::Fail(lost("a send (its queue changed id)"))
        }
        Request::Receive {
            queue,
            max,
            selector,
            lend,
            ..
        } => {
            let consumer = if p.consumer == 0 {
                Some(0)
            } else {
                consumers.get(&p.consumer).copied()
            };
            match consumer {
                None => OnResend::Fail(Error::closed()),
                Some(consumer) => OnResend::Resend(Box::new(Request::Receive {
                    queue: *queue,
                    consumer,
                    max: *max,
                    timeout_ms: p
                        .deadline
                        .map(|d| crate::clock::ms_floor(d.saturating_duration_since(now))),
                    selector: selector.clone(),
                    // Its lazy acks are their own pending `Settles` (see `submit`).
                    acks: Vec::new(),
                    acks_id: 0,
                    lend: *lend,
                })),
            }
        }
        // Never written, it had no effect; but the acks of a transaction (and a claim) name
        // deliveries by the replaced connection's ids, which mean other things to the next
        // owner: those deliveries can no longer be settled, so nothing of it is committed.
        Request::Commit { acks, .. } if !p.sent && !acks.is_empty() => {
            OnResend::Fail(delivery_lost())
        }
        Request::TxnClaim { .. } => OnResend::Fail(delivery_lost()),
        // Never written: it cannot have taken effect.
        Request::Commit { .. } | Request::Subscribe { .. } | Request::Unsubscribe { .. }
            if !p.sent =>
        {
            OnResend::Resend(Box::new(p.req.clone()))
        }
        // Subscribing again under the same name, pattern and selector changes nothing (JMS),
        // and a non-durable subscription of the previous owner is gone with it: always safe.
        Request::Subscribe { .. } => OnResend::Resend(Box::new(p.req.clone())),
        Request::Unsubscribe { .. } => OnResend::Fail(lost("an unsubscribe")),
        Request::Commit { sends, acks } if !acks.is_empty() => {
            if sends.is_empty() {
                // Nothing of it can be looked up: the owner may have made it durable before it
                // died (its acks then hold for good), or not (the messages come back). Unknown,
                // not "it was not" (review r12 #4, the same kind as a probe of the program's
                // own dedup keys).
                OnResend::Fail(lost("a transaction's commit"))
            } else {
                OnResend::Resend(Box::new(Request::CommitProbe {
                    sends: sends.clone(),
                }))
            }
        }
        // Unanswered by an owner that said goodbye: no effect, and the delivery was handed
        // over; the caller settles it again through the next owner (`Backend::settle`).
        Request::Settle { .. } | Request::AckBatch { .. } if clean => {
            OnResend::Fail(Error::new(ErrorKind::DeliveryLost, UNANSWERED_AT_CLOSE))
        }
        // Named by (queue, id, delivery count), not by the connection: if the owner it went to
        // closed cleanly without answering, that owner handed the delivery over again.
        Request::SettleHandedOver { .. } if clean => OnResend::Resend(Box::new(p.req.clone())),
        // In flight when the owner went away: it may or may not have been made durable.
        Request::Settle { .. }
        | Request::SettleHandedOver { .. }
        | Request::AckBatch { .. }
        | Request::SettleOnDrop { .. } => {
            OnResend::Fail(Error::new(
                ErrorKind::DeliveryLost,
                "the store's owner process went away while this settle was in flight: if it was \
                 made durable first, the delivery is settled; otherwise the message comes back \
                 with its delivery count incremented",
            ))
        }
        Request::IsSettled { .. } => OnResend::Resend(Box::new(p.req.clone())).map_settled(),
        // Unanswered by an owner that said goodbye (or never written): no effect, and the
        // deliveries were handed over; acked there by queue, message id and count (their tags
        // were that owner's: never sent as they are).
        Request::Settles { acks, .. } if clean => OnResend::Resend(Box::new(Request::Settles {
            acks: acks.clone(),
            handed_over: true,
        })),
        // In flight when the owner died: lazy acks lost with it, no error (the messages come
        // back redelivered, as after any crash before a lazy ack's commit).
        Request::Settles { .. } => OnResend::Fail(lost("lazy acks")),
        // One-way, never pending; what it named was lent by the replaced connection's owner.
        Request::LentNotice { .. } => OnResend::Fail(lost("a notice of lent messages")),
        Request::Purge { .. } => OnResend::Fail(lost("a purge")),
        Request::Replay { .. } => OnResend::Fail(lost("a replay")),
        Request::Transfer { .. } => OnResend::Fail(lost("a move or copy")),
        Request::OpenConsumer { .. }
        | Request::CloseConsumer { .. }
        | Request::CommitProbe { .. }
        | Request::Commit { .. }
        | Request::Declare { .. }
        | Request::QueueNames
        // Sends and publishes carry automatic dedup keys: stored once however often resent.
        | Request::Send { .. }
        | Request::SendAsync { .. }
        | Request::SendBatch { .. }
        | Request::Publish { .. }
        | Request::PublishAsync { .. }
        | Request::PublishBatch { .. }
        | Request::Browse { .. }
        | Request::Stats { .. }
        | Request::IsMemory { .. }
        | Request::BrowseStored { .. }
        | Request::DedupWindow { .. }
        | Request::DedupLookup { .. }
        | Request::TopicStats { .. }
        | Request::CloseSubscription { .. }
        | Request::Subscriptions
        | Request::Compact
        | Request::Flush
        | Request::DiskBytes
        | Request::RecoveryReport
        | Request::Check => OnResend::Resend(Box::new(p.req.clone())),
    }
}

impl OnResend {
    /// A delivery of the old owner is settled as far as this client can tell.
    fn map_settled(self) -> OnResend {
        OnResend::Fail(delivery_lost())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::QueueId;

    /// A delivery as a settle names it on the wire.
    const WIRE_REF: WireRef = WireRef {
        queue: 1,
        id: 2,
        tag: 3,
        consumer: 4,
    };

    fn pending(req: Request) -> Pending {
        Pending {
            req,
            consumer: 0,
            deadline: None,
            done: Done::Wait(Arc::new(Slot::default())),
            partial: None,
            async_bytes: None,
            sent: true,
        }
    }

    /// Review r3 #9: a replay (or purge, or unsubscribe) whose owner closed cleanly (it said
    /// goodbye) before answering had no effect and is sent again to the next owner; after a
    /// crash its outcome is unknown (`OwnerLost`). A move or copy stays in doubt either way.
    #[test]
    fn what_a_cleanly_closed_owner_did_not_answer_is_sent_again() {
        let now = Instant::now();
        let none = HashMap::new();
        let in_doubt = [
            Request::Replay {
                queue: 1,
                filter: crate::queue::ReplayFilter::default(),
            },
            Request::Purge {
                queue: 1,
                filter: Default::default(),
            },
            Request::Unsubscribe { name: "s".into() },
        ];
        for req in in_doubt {
            let p = pending(req.clone());
            assert!(matches!(
                resend(&p, &none, now, &[], true),
                OnResend::Resend(_)
            ));
            match resend(&p, &none, now, &[], false) {
                OnResend::Fail(e) => assert_eq!(e.kind(), ErrorKind::OwnerLost, "{req:?}"),
                OnResend::Resend(_) => panic!("{req:?} resent after a crash"),
            }
        }
        let copy = pending(Request::Transfer {
            queue: 1,
            filter: crate::engine::TransferFilter {
                to: "b".into(),
                ids: None,
                limit: None,
                through: None,
                copy: true,
                dry_run: false,
            },
        });
        assert!(matches!(
            resend(&copy, &none, now, &[], true),
            OnResend::Fail(_)
        ));
    }

    /// A settle (or ack batch) a cleanly closing owner did not answer had no effect: it fails
    /// with the mark that makes the backend settle it again through the next owner, as a
    /// delivery handed over (else a settle in flight at the instant of a clean close was
    /// `DeliveryLost`, seen as `settle_errors` by the bridge's no_loss test). After a crash
    /// its outcome is unknown: a plain `DeliveryLost`, never the mark.
    #[test]
    fn a_settle_a_cleanly_closed_owner_did_not_answer_is_settled_again() {
        let now = Instant::now();
        let none = HashMap::new();
        let wref = WIRE_REF;
        let settles = [
            Request::Settle {
                delivery: wref,
                op: WireSettle::Ack,
            },
            Request::AckBatch {
                queue: 1,
                deliveries: vec![wref],
                sync: false,
            },
        ];
        for req in settles {
            let p = pending(req.clone());
            match resend(&p, &none, now, &[], true) {
                OnResend::Fail(e) => assert!(unanswered_at_close(&e), "{req:?}: {e}"),
                OnResend::Resend(_) => panic!("{req:?} resent as it was"),
            }
            match resend(&p, &none, now, &[], false) {
                OnResend::Fail(e) => {
                    assert_eq!(e.kind(), ErrorKind::DeliveryLost, "{req:?}");
                    assert!(!unanswered_at_close(&e), "{req:?} after a crash");
                }
                OnResend::Resend(_) => panic!("{req:?} resent after a crash"),
            }
        }
    }

    /// A settle (or ack batch, or claim) never written to the connection it was made for had
    /// no effect, whether or not that connection's owner said goodbye: a settle is settled
    /// again as a delivery handed over (the next owner tells whether it was), never reported
    /// as "in doubt"; a transaction's acks, which name the replaced connection's deliveries,
    /// fail it whole.
    #[test]
    fn a_settle_never_written_had_no_effect() {
        let now = Instant::now();
        let none = HashMap::new();
        let wref = WIRE_REF;
        let unsent = |req| Pending {
            sent: false,
            ..pending(req)
        };
        for clean in [true, false] {
            let p = unsent(Request::Settle {
                delivery: wref,
                op: WireSettle::Ack,
            });
            match resend(&p, &none, now, &[], clean) {
                OnResend::Fail(e) => assert!(unanswered_at_close(&e), "{e}"),
                OnResend::Resend(_) => panic!("a settle resent with the old connection's ids"),
            }
            let p = unsent(Request::Commit {
                sends: vec![],
                acks: vec![wref],
            });
            match resend(&p, &none, now, &[], clean) {
                OnResend::Fail(e) => assert_eq!(e.kind(), ErrorKind::DeliveryLost),
                OnResend::Resend(_) => panic!("a commit resent with the old connection's ids"),
            }
        }
    }

    /// The bridge's no_loss test (CI, stop 25) saw a clean owner close end in a settle error:
    /// an ack batch made for the first owner's connection (its consumer id and tags) was sent,
    /// after the connection was replaced, to the next owner, to which those ids meant nothing.
    /// A request is now bound to the connection it was made for: sent once that connection is
    /// replaced, it is treated as pending at the replacement (the settle is settled again as
    /// handed over), and what a replaced connection answered (a consumer opened) is not
    /// remembered but asked for again.
    #[test]
    fn a_request_made_for_a_replaced_connection_is_not_sent_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        let owner = Owner::open(dir.path(), &opts).unwrap();
        let q = owner.engine.declare_queue("q", None).unwrap();
        owner.engine.send(q, &Message::new("m")).unwrap();
        let id = super::super::dir_identity(dir.path()).unwrap();
        let c = Client::connect(dir.path().to_path_buf(), id, &opts, false).unwrap();
        let qid = c.declare("q", None).unwrap();
        let consumer = c.open_consumer(qid, AckMode::Explicit, None).unwrap();
        let (epoch, r) = c
            .receive(qid, consumer, 1, Some(Duration::from_secs(10)), None)
            .unwrap();
        let Response::Received(items) = r else {
            panic!("{r:?}")
        };
        let d = &items[0];
        let server = c.server_consumer(consumer, epoch).unwrap();
        let settle = Request::Settle {
            delivery: WireRef {
                queue: qid,
                id: d.message.id().unwrap().0,
                tag: d.tag,
                consumer: server,
            },
            op: WireSettle::Ack,
        };
        // A clean close hands the delivery over; the next owner (this process again) serves
        // the client once it reconnects.
        owner.close().unwrap();
        drop(owner);
        let next = Owner::open(dir.path(), &opts).unwrap();
        c.call(Request::Check).unwrap();
        assert!(c.epoch() > epoch, "the client reconnected");
        let e = c.call_in(settle, epoch).unwrap_err();
        assert!(unanswered_at_close(&e), "{e}");
        let before = next.engine.stats(QueueId(qid)).unwrap();
        assert_eq!(before.in_flight, 1, "the delivery is held for its client");
        // The backend's next step: the settle as a delivery handed over.
        c.call(Request::SettleHandedOver {
            queue: qid,
            id: d.message.id().unwrap().0,
            count: d.count,
            op: WireSettle::AckSync,
        })
        .unwrap();
        let after = next.engine.stats(QueueId(qid)).unwrap();
        assert_eq!((after.messages, after.in_flight), (0, 0), "{after:?}");
        assert_eq!(after.redelivered, 0, "nothing came back as failed");
        c.close().unwrap();
        next.close().unwrap();
    }

    /// Lazy acks (`Settles`) unanswered by an owner that closed cleanly (or never written)
    /// had no effect: they go to the next owner as handed over, named by queue, message id and
    /// count (the replaced connection's tags and consumer ids mean other things there). In
    /// flight when the owner died they are dropped without an error: the acks were lazy, and
    /// the messages come back redelivered.
    #[test]
    fn lazy_acks_of_a_replaced_connection_go_as_handed_over_or_are_dropped() {
        let now = Instant::now();
        let none = HashMap::new();
        let acks = vec![LazyAck {
            delivery: WIRE_REF,
            count: 1,
        }];
        let p = Pending {
            done: Done::Lazy,
            ..pending(Request::Settles {
                acks: acks.clone(),
                handed_over: false,
            })
        };
        match resend(&p, &none, now, &[], true) {
            OnResend::Resend(r) => match *r {
                Request::Settles {
                    acks: a,
                    handed_over: true,
                } => assert_eq!(a, acks),
                r => panic!("{r:?}"),
            },
            OnResend::Fail(e) => panic!("{e}"),
        }
        assert!(matches!(
            resend(&p, &none, now, &[], false),
            OnResend::Fail(_)
        ));
    }

    /// A client's lazy ack goes one way and is applied by the owner in read order; one in the
    /// outbox or in flight at the owner's clean close is applied by the next owner (as handed
    /// over), without an error; one the owner refuses is reported once by
    /// `take_ack_errors`.
    #[test]
    fn a_lazy_ack_survives_a_clean_owner_close_and_a_refused_one_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        let owner = Owner::open(dir.path(), &opts).unwrap();
        let q = owner.engine.declare_queue("q", None).unwrap();
        owner.engine.send(q, &Message::new("a")).unwrap();
        owner.engine.send(q, &Message::new("b")).unwrap();
        let id = super::super::dir_identity(dir.path()).unwrap();
        let c = Client::connect(dir.path().to_path_buf(), id, &opts, false).unwrap();
        let qid = c.declare("q", None).unwrap();
        let (epoch, r) = c
            .receive(qid, 0, 2, Some(Duration::from_secs(10)), None)
            .unwrap();
        let Response::Received(items) = r else {
            panic!("{r:?}")
        };
        assert_eq!(items.len(), 2);
        let (a, b) = (&items[0], &items[1]);
        let mid = |d: &WireReceived| d.message.id().unwrap().0;
        assert!(c
            .lazy_ack(qid, 0, mid(a), a.tag, a.count, epoch)
            .unwrap()
            .is_ok());
        owner.close().unwrap();
        drop(owner);
        let next = Owner::open(dir.path(), &opts).unwrap();
        c.call(Request::Check).unwrap();
        assert!(c.epoch() > epoch, "the client reconnected");
        let st = next.engine.stats(QueueId(qid)).unwrap();
        assert_eq!((st.messages, st.redelivered), (1, 0), "{st:?}");
        c.take_ack_errors().unwrap();
        // "b" was handed over; a lazy ack by its old tag is refused at the call (its connection
        // was replaced: `None`, the caller settles it as handed over) ...
        assert!(c.lazy_ack(qid, 0, mid(b), b.tag, b.count, epoch).is_none());
        // ... and one the owner refuses (a tag it never gave) is reported once.
        let e2 = c.epoch();
        assert!(c.lazy_ack(qid, 0, mid(b), 999, 1, e2).unwrap().is_ok());
        c.call(Request::Flush).unwrap();
        let e = c.take_ack_errors().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DeliveryLost);
        assert!(e.message().starts_with("1 lazy ack failed"), "{e}");
        c.take_ack_errors().unwrap();
        c.close().unwrap();
        next.close().unwrap();
    }

    /// Issue 10 (design §6 test 1, the part of one-way acks): a client receiving and acking
    /// one message at a time writes about one request per message (its receive), not two: the
    /// lazy acks go as a few `Settles` requests (about 4,000 requests before).
    #[test]
    fn receive_and_ack_one_at_a_time_from_a_client_borrows_the_owners_prefetch() {
        let dir = tempfile::tempdir().unwrap();
        let owner = crate::Store::open(dir.path(), StoreOptions::default()).unwrap();
        let c = crate::Store::open(
            dir.path(),
            StoreOptions {
                open_as: crate::OpenAs::Client,
                ..StoreOptions::default()
            },
        )
        .unwrap();
        let q = c.queue("q").unwrap();
        const N: u64 = 2_000;
        q.send_batch((0..N).map(|i| Message::from(format!("m{i}"))))
            .unwrap();
        let super::super::backend::Backend::Remote(client) = &c.engine else {
            panic!("not a client")
        };
        let before = client.inner.frames.load(Ordering::SeqCst);
        for _ in 0..N {
            let d = q.receive(Some(Duration::from_secs(10))).unwrap().unwrap();
            d.ack().unwrap();
        }
        c.flush().unwrap();
        let requests = client.inner.frames.load(Ordering::SeqCst) - before;
        // The owner lends the client its consumer's prefetch (1,000 by default): a receive
        // of one goes to the owner once per prefetch, the acks in batches (W10 W3s).
        assert!(
            requests <= N / 10,
            "{requests} requests for {N} receive+acks"
        );
        let st = owner.queue("q").unwrap().stats().unwrap();
        assert_eq!((st.messages, st.in_flight), (0, 0), "{st:?}");
        c.close().unwrap();
        owner.close().unwrap();
    }

    /// A write to a peer that went away is an error, never a SIGPIPE: a C host program does
    /// not ignore the signal, whose default action kills it (an owner answering a client that
    /// just died, a client writing to an owner that is closing). Run in a child process that
    /// restores the signal's default action.
    #[test]
    fn a_write_to_a_peer_gone_is_an_error_not_a_sigpipe() {
        if std::env::var_os("MQLITE_TEST_SIGPIPE_CHILD").is_some() {
            // SAFETY: setting a signal's disposition to its default.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let (a, b) = UnixStream::pair().unwrap();
            drop(b);
            let e = super::super::send_all(&a, b"x").unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe);
            return;
        }
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "remote::client::tests::a_write_to_a_peer_gone_is_an_error_not_a_sigpipe",
                "--exact",
                "--test-threads=1",
            ])
            .env("MQLITE_TEST_SIGPIPE_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout)
        );
    }

    /// A request written after the owner stopped reading (it is closing) was refused whole
    /// (`EPIPE`): it had no effect, and the client still reads the owner's goodbye, so a purge
    /// — which after a crash would be in doubt — is simply run by the next owner. (The client
    /// shut its socket both ways on the failed write, so the goodbye and the answers still
    /// coming were lost: the bridge's no_loss test saw a settle in flight at a clean close
    /// reported as in doubt.)
    #[test]
    fn a_request_a_closing_owner_no_longer_reads_goes_to_the_next_owner() {
        let dir = tempfile::tempdir().unwrap();
        let opts = StoreOptions::default();
        let owner = Owner::open(dir.path(), &opts).unwrap();
        let q = owner.engine.declare_queue("q", None).unwrap();
        owner.engine.send(q, &Message::new("a")).unwrap();
        owner.engine.send(q, &Message::new("b")).unwrap();
        let id = super::super::dir_identity(dir.path()).unwrap();
        let c = Client::connect(dir.path().to_path_buf(), id, &opts, false).unwrap();
        let qid = c.declare("q", None).unwrap();
        // A send blocked on a full queue keeps a request outstanding at the owner, so that
        // its goodbye waits for the engine's close, after the purge below was refused.
        let full = QueueOptions {
            max_messages: Some(1),
            overflow: Some(crate::options::OverflowPolicy::Block {
                timeout: Duration::from_secs(600),
            }),
            ..Default::default()
        };
        let fq = owner.engine.declare_queue("full", Some(&full)).unwrap();
        owner.engine.send(fq, &Message::new("x")).unwrap();
        let fid = c.declare("full", Some(&full)).unwrap();
        let c2 = c.clone();
        let blocked = std::thread::spawn(move || {
            c2.call(Request::Send {
                queue: fid,
                message: Message::new("y"),
            })
        });
        while lock(&c.inner.st).pending.is_empty() {
            std::thread::yield_now();
        }
        owner.stop_reading_requests();
        let c2 = c.clone();
        let purge = std::thread::spawn(move || {
            c2.call(Request::Purge {
                queue: qid,
                filter: Default::default(),
            })
        });
        // The purge is submitted (its write refused) before the owner goes on closing.
        while lock(&c.inner.st).pending.len() < 2 {
            std::thread::yield_now();
        }
        owner.close().unwrap();
        drop(owner);
        let next = Owner::open(dir.path(), &opts).unwrap();
        let r = purge.join().unwrap();
        assert!(
            matches!(&r, Ok(Response::Purged(p)) if p.purged == 2),
            "{r:?}"
        );
        assert_eq!(next.engine.stats(QueueId(qid)).unwrap().messages, 0);
        // The blocked send goes on at the next owner (where the queue is still full).
        next.engine.purge(QueueId(fid)).unwrap();
        assert!(matches!(blocked.join().unwrap(), Ok(Response::Id(_))));
        c.close().unwrap();
        next.close().unwrap();
    }
}
