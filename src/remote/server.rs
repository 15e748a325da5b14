//! The owner's side: a listening socket in the store directory and, per client connection, a
//! few threads that turn requests into engine calls.
//!
//! No async runtime: connections are few (one per client process), so each gets its own
//! threads. They take turns reading (leader/followers): the thread holding the read half reads
//! one request; a quick, non-blocking one (an async send, a close) it handles before it lets
//! the next reader in, which keeps a connection's sends in the order they were written; a
//! blocking one (a sync send waiting for its fsync, a receive waiting for a message) it hands
//! the read half to another thread first, spawning one if none is idle (at most
//! [`MAX_THREADS`]). So sync sends of many client threads share group commits, and a waiting
//! receive holds up nothing else.
//!
//! Bounds: at most [`WINDOW`] requests per connection are read and not yet answered (the
//! connection is not read further until replies go out), so a client that stops reading
//! cannot make the owner buffer without limit; frames are at most
//! [`MAX_FRAME`](super::protocol::MAX_FRAME) bytes.
//!
//! When a connection ends (the client closed or died) its consumers are closed — unsettled
//! deliveries return to their queues as failed deliveries, the path of a dropped consumer —
//! and nothing it held remains.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::BufReader;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::protocol::{
    decode, put_frame, read_frame, split, Hello, LazyAck, LazyFailure, Request, RequestFrame,
    Response, Welcome, WireDest, WireReceived, WireRef, WireSettle, GOODBYE_ID, HELLO_LEN,
    MAX_FRAME, MAX_LAZY_ACKS, PART_BYTES, PROTOCOL_VERSION, RECALL_ID,
};
use super::{peer_uid, AUTO_KEY_PREFIX};
use crate::engine::{mark_library_thread, ConsumerId, DeliveryRef, DeliveryTag, Engine, QueueId};
use crate::engine::{Dest, Settle, TxnDest, TxnSpec};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::VERSION as FORMAT_VERSION;
use crate::journal::RecoveryReport;
use crate::message::MessageId;
use crate::remote::client::Callback;

/// Most requests of one connection read and not yet answered.
pub const WINDOW: usize = 4096;
/// Most threads serving one connection (each blocking request holds one).
pub const MAX_THREADS: usize = 64;
/// Most client connections at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most messages one receive request takes.
pub const MAX_RECEIVE: u32 = 4096;
/// A waiting receive wakes at least this often to see whether its client is still there.
const RECEIVE_SLICE: Duration = Duration::from_millis(200);
/// How long a new connection may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// The owner's listening side.
pub(crate) struct Server {
    shared: Arc<ServerShared>,
    accept: Mutex<Option<JoinHandle<()>>>,
}

struct ServerShared {
    engine: Engine,
    dir: (u64, u64),
    /// What recovery found when the owner opened the store (a client's `recovery_report`).
    report: RecoveryReport,
    uid: u32,
    listener: UnixListener,
    /// The owner is closing: no new connections or requests; calls failing with `Closed` get
    /// no answer (the client resends them to the next owner).
    stopping: AtomicBool,
    conns: Mutex<Vec<Arc<Conn>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Consumers of connections that ended while the owner was closing: their deliveries are
    /// handed over to the next owner.
    handed: Mutex<HashSet<u64>>,
}

/// One client connection.
struct Conn {
    stream: UnixStream,
    reader: Mutex<BufReader<UnixStream>>,
    writer: Mutex<UnixStream>,
    st: Mutex<ConnState>,
    cv: Condvar,
    dead: AtomicBool,
    /// Replies completed by the engine's callback thread, written by the connection's writer
    /// thread (the callback thread must never block on a client's socket).
    /// Each with whether it answers a request (else it is a push, such as a recall, which
    /// counts as no outstanding request).
    out: Mutex<VecDeque<(Vec<u8>, bool)>>,
    out_cv: Condvar,
}

#[derive(Default)]
struct ConnState {
    /// Requests read and not yet answered.
    outstanding: usize,
    /// Live threads of the connection (its serving threads and its writer thread).
    threads: usize,
    /// Live serving threads (they take turns reading), and how many of them run a blocking
    /// request: when none would read next, another is started.
    servers: usize,
    busy: usize,
    /// Queue ids this connection declared (it may name no other).
    queues: HashSet<u32>,
    /// Consumers it opened.
    consumers: HashSet<u64>,
    /// Per queue, the consumer behind its plain receives (so that they are returned if it dies).
    plain: HashMap<u32, ConsumerId>,
    /// Subscribers it attached, per subscription queue (detached if it dies: a non-durable
    /// subscription of a dead client ends).
    subs: HashMap<u32, usize>,
}

impl Server {
    /// Serves `engine` on `listener` (bound by the caller while holding the store's lock).
    /// `report`: what the owner's recovery found, as clients ask for it.
    pub(crate) fn start(
        engine: Engine,
        listener: UnixListener,
        dir: (u64, u64),
        report: RecoveryReport,
    ) -> Result<Server> {
        let shared = Arc::new(ServerShared {
            engine,
            dir,
            report,
            // SAFETY: geteuid has no preconditions.
            uid: unsafe { libc::geteuid() },
            listener,
            stopping: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
            handed: Mutex::new(HashSet::new()),
        });
        // A receive of the engine that waits with nothing ready asks the clients holding lent
        // messages of its queue to give back what they did not hand out.
        let weak = Arc::downgrade(&shared);
        shared
            .engine
            .set_recall_hook(Some(Arc::new(move |queue: u32, consumers: &[u64]| {
                if let Some(s) = weak.upgrade() {
                    s.recall(queue, consumers);
                }
            })));
        let s2 = shared.clone();
        let accept = std::thread::Builder::new()
            .name("mqlite-owner".into())
            .spawn(move || {
                mark_library_thread();
                s2.accept_loop()
            })
            .map_err(|e| Error::io("starting the owner's accept thread", &e))?;
        Ok(Server {
            shared,
            accept: Mutex::new(Some(accept)),
        })
    }

    /// Stops taking connections and requests (the owner is closing). Requests being served go
    /// on; their answers are still written.
    pub(crate) fn begin_stop(&self) {
        self.stop_in_background();
        if let Some(t) = lock(&self.accept).take() {
            let _ = t.join();
        }
    }

    /// Stops taking connections and requests without waiting for anything (the owner was
    /// dropped inside one of its own callbacks).
    pub(crate) fn stop_in_background(&self) {
        let s = &self.shared;
        s.stopping.store(true, Ordering::SeqCst);
        // SAFETY: shutdown on the listener's own descriptor: its accept returns.
        unsafe { libc::shutdown(s.listener.as_raw_fd(), libc::SHUT_RDWR) };
        for c in lock(&s.conns).iter() {
            let _ = c.stream.shutdown(std::net::Shutdown::Read);
            c.cv.notify_all();
        }
    }

    /// The consumers of the client connections (those of connections still open and of those
    /// that ended while the owner was closing): at a clean close, their deliveries in flight
    /// are handed over to the next owner.
    pub(crate) fn client_consumers(&self) -> HashSet<u64> {
        let s = &self.shared;
        let mut all = lock(&s.handed).clone();
        for c in lock(&s.conns).iter() {
            let st = lock(&c.st);
            all.extend(st.consumers.iter().copied());
            all.extend(st.plain.values().map(|c| c.0));
        }
        all
    }

    /// Waits for every connection's threads (after the engine closed, so every answer that will
    /// ever come has been written), then closes the connections.
    pub(crate) fn finish_stop(&self) {
        let s = &self.shared;
        for c in lock(&s.conns).iter() {
            c.dead.store(true, Ordering::SeqCst);
            c.out_cv.notify_all();
            c.cv.notify_all();
        }
        loop {
            let t: Vec<_> = std::mem::take(&mut *lock(&s.threads));
            if t.is_empty() {
                break;
            }
            for t in t {
                let _ = t.join();
            }
        }
        for c in lock(&s.conns).drain(..) {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ServerShared {
    /// Pushes a recall to the connections holding `consumers` (owner ids) of queue `queue`.
    fn recall(&self, queue: u32, consumers: &[u64]) {
        let conns: Vec<Arc<Conn>> = lock(&self.conns).clone();
        for c in conns {
            let wire: Vec<u64> = {
                let st = lock(&c.st);
                consumers
                    .iter()
                    .filter_map(|&id| {
                        if st.consumers.contains(&id) {
                            Some(id)
                        } else if st.plain.get(&queue).is_some_and(|p| p.0 == id) {
                            Some(0)
                        } else {
                            None
                        }
                    })
                    .collect()
            };
            for w in wire {
                c.push_recall(queue, w);
            }
        }
    }

    /// The engine's consumer behind the connection's consumer `consumer` of queue `q` (0:
    /// its plain receives, opened at the first).
    fn served_consumer(&self, c: &Conn, q: QueueId, consumer: u64) -> Result<ConsumerId> {
        if consumer != 0 {
            return self.consumer(c, consumer);
        }
        if let Some(&id) = lock(&c.st).plain.get(&q.0) {
            return Ok(id);
        }
        let id = self
            .engine
            .open_consumer(q, crate::options::AckMode::Explicit, None)?;
        lock(&c.st).plain.insert(q.0, id);
        Ok(id)
    }

    /// A client's `LentNotice`: what it handed out of the messages lent to it, and what it
    /// gives back.
    fn lent_notice(
        &self,
        c: &Conn,
        queue: u32,
        consumer: u64,
        handed: &[(u64, u64)],
        returned: &[(u64, u64)],
    ) -> Result<()> {
        let q = self.queue(c, queue)?;
        let cid = match consumer {
            0 => match lock(&c.st).plain.get(&queue) {
                Some(&id) => id,
                None => return Ok(()), // nothing was lent to it
            },
            id => self.consumer(c, id)?,
        };
        if !handed.is_empty() {
            self.engine.lent_handed_out(q, cid, handed);
        }
        if !returned.is_empty() {
            self.engine.lent_returned(q, cid, returned);
        }
        Ok(())
    }
    fn accept_loop(self: &Arc<Self>) {
        for stream in self.listener.incoming() {
            if self.stopping.load(Ordering::SeqCst) {
                break;
            }
            let Ok(stream) = stream else {
                // EMFILE and the like: wait a little rather than spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            if let Err(e) = self.admit(stream) {
                // Nothing to tell: the refusal was written to the peer where possible.
                let _ = e;
            }
        }
    }

    fn spawn(self: &Arc<Self>, name: &str, f: impl FnOnce() + Send + 'static) -> bool {
        match std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                mark_library_thread();
                f()
            }) {
            Ok(t) => {
                let mut ts = lock(&self.threads);
                ts.retain(|t| !t.is_finished());
                ts.push(t);
                true
            }
            Err(_) => false,
        }
    }

    /// Checks a new connection (peer uid, connection count) and starts its threads; the hello
    /// is read by its first thread.
    fn admit(self: &Arc<Self>, stream: UnixStream) -> Result<()> {
        let refuse = |stream: &UnixStream, kind: ErrorKind, text: String| {
            let w = Welcome {
                protocol: PROTOCOL_VERSION,
                format: FORMAT_VERSION,
                owner_pid: std::process::id(),
                refusal: Some((kind, text.clone())),
            };
            let _ = super::send_all(stream, &w.encode());
            Err(Error::new(kind, text))
        };
        match peer_uid(&stream) {
            Some(uid) if uid == self.uid => {}
            other => {
                let who = other.map_or("an unknown user".to_string(), |u| format!("uid {u}"));
                return refuse(
                    &stream,
                    ErrorKind::Locked,
                    format!(
                        "the store's owner (pid {}, uid {}) serves only its own user, not {who}",
                        std::process::id(),
                        self.uid
                    ),
                );
            }
        }
        let mut conns = lock(&self.conns);
        conns.retain(|c| !c.dead.load(Ordering::SeqCst) || lock(&c.st).threads > 0);
        if conns.len() >= MAX_CONNECTIONS {
            drop(conns);
            return refuse(
                &stream,
                ErrorKind::QueueFull,
                format!("the store's owner serves at most {MAX_CONNECTIONS} connections"),
            );
        }
        let err = |e: std::io::Error| Error::io("accepting a client", &e);
        let conn = Arc::new(Conn {
            reader: Mutex::new(BufReader::with_capacity(
                64 << 10,
                stream.try_clone().map_err(err)?,
            )),
            writer: Mutex::new(stream.try_clone().map_err(err)?),
            stream,
            st: Mutex::new(ConnState {
                threads: 2,
                servers: 1,
                ..Default::default()
            }),
            cv: Condvar::new(),
            dead: AtomicBool::new(false),
            out: Mutex::new(VecDeque::new()),
            out_cv: Condvar::new(),
        });
        conns.push(conn.clone());
        drop(conns);
        let (s, c) = (self.clone(), conn.clone());
        let first = self.spawn("mqlite-owner-conn", move || {
            if s.hello(&c) {
                s.serve(&c);
            } else {
                c.die();
            }
            lock(&c.st).servers -= 1;
            s.thread_done(&c);
        });
        let (s, c) = (self.clone(), conn.clone());
        let writer = self.spawn("mqlite-owner-write", move || {
            c.write_loop();
            s.thread_done(&c);
        });
        if !first || !writer {
            conn.die();
            let mut st = lock(&conn.st);
            st.threads -= (!first) as usize + (!writer) as usize;
            st.servers -= (!first) as usize;
        }
        Ok(())
    }

    /// Reads and answers the hello; `false` if the connection is refused.
    fn hello(&self, c: &Conn) -> bool {
        let _ = c.stream.set_read_timeout(Some(HELLO_TIMEOUT));
        let mut b = [0u8; HELLO_LEN];
        let got = {
            let mut r = lock(&c.reader);
            std::io::Read::read_exact(&mut *r, &mut b)
        };
        let _ = c.stream.set_read_timeout(None);
        if got.is_err() {
            return false;
        }
        let refusal = match Hello::decode(&b) {
            None => Some((
                ErrorKind::InvalidArgument,
                "not an mqlite client (bad magic)".to_string(),
            )),
            Some(h) if h.protocol != PROTOCOL_VERSION || h.format != FORMAT_VERSION => Some((
                ErrorKind::Corrupt,
                format!(
                    "version mismatch: the owner (pid {}) speaks protocol {PROTOCOL_VERSION} \
                     with journal format {FORMAT_VERSION}, the client (pid {}) protocol {} with \
                     format {}; use one mqlite version for every process of a store",
                    std::process::id(),
                    h.pid,
                    h.protocol,
                    h.format
                ),
            )),
            Some(h) if h.dir != self.dir => Some((
                ErrorKind::InvalidArgument,
                "the client reached this owner's socket from another store directory".to_string(),
            )),
            Some(_) => None,
        };
        let ok = refusal.is_none();
        let w = Welcome {
            protocol: PROTOCOL_VERSION,
            format: FORMAT_VERSION,
            owner_pid: std::process::id(),
            refusal,
        };
        let wrote = super::send_all(&lock(&c.writer), &w.encode()).is_ok();
        ok && wrote
    }

    fn thread_done(&self, c: &Arc<Conn>) {
        let mut st = lock(&c.st);
        st.threads -= 1;
        if st.threads > 0 {
            return;
        }
        // The last thread out: return what the client held.
        let mut consumers: Vec<u64> = st.consumers.drain().collect();
        consumers.extend(st.plain.drain().map(|(_, c)| c.0));
        let subs: Vec<(u32, usize)> = st.subs.drain().collect();
        drop(st);
        if self.stopping.load(Ordering::SeqCst) {
            // The owner is closing cleanly: what the client holds is handed over to the next
            // owner (`Server::client_consumers`), not returned as failed deliveries.
            lock(&self.handed).extend(consumers.iter().copied());
        } else {
            for id in consumers {
                self.engine.close_consumer(ConsumerId(id));
            }
        }
        for (q, n) in subs {
            for _ in 0..n {
                let _ = self.engine.close_subscription(QueueId(q));
            }
        }
        lock(&self.conns).retain(|x| !Arc::ptr_eq(x, c));
        if self.stopping.load(Ordering::SeqCst) {
            // Every answer this connection will get is written: say goodbye, so that the
            // client knows what was not answered had no effect.
            let mut bye = Vec::new();
            if put_frame(&mut bye, &(GOODBYE_ID, false, Response::Done)).is_ok() {
                let _ = super::send_all(&lock(&c.writer), &bye);
            }
        }
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
    }

    /// One of a connection's threads: take turns reading, answer what was read.
    fn serve(self: &Arc<Self>, c: &Arc<Conn>) {
        let mut buf = Vec::new();
        loop {
            let mut r = lock(&c.reader);
            {
                let mut st = lock(&c.st);
                while st.outstanding >= WINDOW && !c.is_dead() {
                    st = c.cv.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
            if c.is_dead() || self.stopping.load(Ordering::SeqCst) {
                c.stop_reading();
                return;
            }
            match read_frame(&mut *r, &mut buf) {
                Ok(true) => {}
                Ok(false) | Err(_) => {
                    c.stop_reading();
                    return;
                }
            }
            let decoded = decode::<RequestFrame>(&buf);
            if buf.capacity() > MAX_FRAME {
                // A request in several frames: its buffer is not kept (one per serving thread
                // would hold up to MAX_MESSAGE each).
                buf = Vec::new();
            }
            let (id, req) = match decoded {
                Ok(x) => x,
                Err(_) => {
                    // Garbage: nothing after it can be trusted to be framed right.
                    c.die();
                    return;
                }
            };
            lock(&c.st).outstanding += 1;
            let mut req = req;
            if let Request::Receive { acks, acks_id, .. } = &mut req {
                if !acks.is_empty() {
                    // The lazy acks that came with the receive: applied and answered in read
                    // order, as a `Settles` is (before the receive: an ack may free a message
                    // group's next message).
                    let (acks, acks_id) = (std::mem::take(acks), *acks_id);
                    lock(&c.st).outstanding += 1;
                    let out = self.handle(
                        c,
                        acks_id,
                        Request::Settles {
                            acks,
                            handed_over: false,
                        },
                    );
                    c.answer(acks_id, out);
                }
            }
            if is_quick(&req) {
                // Lazy acks are answered before the next request is read: their failures then
                // reach the client before the answer of any later request (the next `ack_sync`,
                // `flush` or commit reports them).
                let ordered = matches!(req, Request::Settles { .. } | Request::LentNotice { .. });
                let out = self.handle(c, id, req);
                if ordered {
                    c.answer(id, out);
                    drop(r);
                } else {
                    drop(r);
                    c.answer(id, out);
                }
                continue;
            }
            let spawn = {
                let mut st = lock(&c.st);
                st.busy += 1;
                let spawn = st.servers == st.busy && st.servers < MAX_THREADS;
                if spawn {
                    st.threads += 1;
                    st.servers += 1;
                }
                spawn
            };
            drop(r);
            if spawn {
                let (s, c2) = (self.clone(), c.clone());
                if !self.spawn("mqlite-owner-conn", move || {
                    s.serve(&c2);
                    lock(&c2.st).servers -= 1;
                    s.thread_done(&c2);
                }) {
                    let mut st = lock(&c.st);
                    st.threads -= 1;
                    st.servers -= 1;
                }
            }
            let out = self.handle(c, id, req);
            c.answer(id, out);
            lock(&c.st).busy -= 1;
        }
    }

    /// Checks that the connection declared queue `q`.
    fn queue(&self, c: &Conn, q: u32) -> Result<QueueId> {
        if lock(&c.st).queues.contains(&q) {
            Ok(QueueId(q))
        } else {
            Err(Error::invalid(format!(
                "queue id {q} was not declared on this connection"
            )))
        }
    }

    /// The engine's name of a delivery the connection names (its queue and consumer checked).
    fn delivery(&self, c: &Conn, d: &WireRef) -> Result<DeliveryRef> {
        let queue = self.queue(c, d.queue)?;
        let consumer = self.consumer(c, d.consumer)?;
        Ok(DeliveryRef {
            queue,
            id: MessageId(d.id),
            tag: DeliveryTag(d.tag),
            consumer,
            origin: 0,
            count: 0,
        })
    }

    /// A consumer the connection opened (0: its plain receives, which settle as `NONE`).
    fn consumer(&self, c: &Conn, id: u64) -> Result<ConsumerId> {
        if id == 0 || lock(&c.st).consumers.contains(&id) {
            Ok(ConsumerId(id))
        } else {
            Err(Error::invalid(format!(
                "consumer {id} was not opened on this connection"
            )))
        }
    }

    /// Runs one request.
    fn handle(self: &Arc<Self>, c: &Arc<Conn>, id: u64, req: Request) -> Outcome {
        match self.run(c, id, req) {
            Ok(o) => o,
            // The owner is closing: no answer, the client resends it to the next owner.
            Err(e) if e.kind() == ErrorKind::Closed && self.stopping.load(Ordering::SeqCst) => {
                Outcome::Drop
            }
            Err(e) => Outcome::Answer(Response::error(&e)),
        }
    }

    fn run(self: &Arc<Self>, c: &Arc<Conn>, id: u64, req: Request) -> Result<Outcome> {
        let e = &self.engine;
        let r = match req {
            Request::Declare { name, options } => {
                let q = e.declare_queue(&name, options.as_ref())?;
                lock(&c.st).queues.insert(q.0);
                let (ack_sync, prefetch) = e.ack_sync_and_prefetch(q);
                Response::Declared {
                    queue: q.0,
                    ack_sync,
                    prefetch,
                }
            }
            Request::QueueNames => Response::Names(e.queue_names()),
            Request::Send { queue, message } => {
                Response::Id(e.send(self.queue(c, queue)?, &message)?)
            }
            Request::SendAsync { queue, message } => {
                let q = self.queue(c, queue)?;
                e.send_async(q, message, self.later(c, id))?;
                return Ok(Outcome::Later);
            }
            Request::PublishAsync { topic, message } => {
                e.send_async(Dest::Topic(&topic), message, self.later(c, id))?;
                return Ok(Outcome::Later);
            }
            Request::Publish { topic, message } => {
                let (id, subscriptions) = e.publish(&topic, &message)?;
                Response::Published { id, subscriptions }
            }
            Request::PublishBatch { topic, messages } => {
                Response::Ids(e.send_batch(Dest::Topic(&topic), messages)?)
            }
            Request::TopicStats { topic } => Response::TopicStats(e.topic_stats(&topic)?),
            Request::Subscribe { pattern, options } => {
                let (q, name) = e.subscribe(&pattern, &options)?;
                let mut st = lock(&c.st);
                st.queues.insert(q.0);
                *st.subs.entry(q.0).or_default() += 1;
                Response::Subscribed { queue: q.0, name }
            }
            Request::CloseSubscription { queue } => {
                let attached = {
                    let mut st = lock(&c.st);
                    match st.subs.get_mut(&queue) {
                        Some(n) if *n > 1 => {
                            *n -= 1;
                            true
                        }
                        Some(_) => st.subs.remove(&queue).is_some(),
                        None => false,
                    }
                };
                if attached {
                    e.close_subscription(QueueId(queue))?;
                }
                Response::Done
            }
            Request::Unsubscribe { name } => {
                e.unsubscribe(&name)?;
                Response::Done
            }
            Request::Subscriptions => Response::Subscriptions(e.subscriptions()),
            Request::TxnClaim { delivery } => {
                e.txn_claim(self.delivery(c, &delivery)?)?;
                Response::Done
            }
            Request::SendBatch { queue, messages } => {
                Response::Ids(e.send_batch(self.queue(c, queue)?, messages)?)
            }
            Request::Receive {
                queue,
                consumer,
                max,
                timeout_ms,
                selector,
                lend,
                ..
            } => {
                let selector = selector
                    .map(|s| crate::selector::Selector::parse(&s))
                    .transpose()?;
                self.receive(
                    c,
                    queue,
                    consumer,
                    (max, lend),
                    timeout_ms,
                    selector.as_ref(),
                )?
            }
            Request::LentNotice {
                queue,
                consumer,
                handed,
                returned,
                handed_over,
            } => {
                if handed_over {
                    let q = self.queue(c, queue)?;
                    for (id, count) in returned {
                        // Not held for this client (its earlier owner died): it comes back
                        // through recovery, counted, as a crashed prefetching consumer's.
                        match e.settle_handed_over(
                            q,
                            MessageId(id),
                            u32::try_from(count).unwrap_or(u32::MAX),
                            Settle::Release,
                        ) {
                            Err(err) if err.kind() == ErrorKind::Closed => return Err(err),
                            _ => {}
                        }
                    }
                } else {
                    self.lent_notice(c, queue, consumer, &handed, &returned)?;
                }
                Response::Done
            }
            Request::OpenConsumer {
                queue,
                mode,
                prefetch,
            } => {
                let cid = e.open_consumer(self.queue(c, queue)?, mode, prefetch)?;
                lock(&c.st).consumers.insert(cid.0);
                Response::Consumer(cid.0)
            }
            Request::CloseConsumer { consumer } => {
                if lock(&c.st).consumers.remove(&consumer) {
                    e.close_consumer(ConsumerId(consumer));
                }
                Response::Done
            }
            Request::Settle { delivery, op } => {
                let d = self.delivery(c, &delivery)?;
                e.settle(d, settle_op(&op))?;
                Response::Done
            }
            Request::SettleHandedOver {
                queue,
                id,
                count,
                op,
            } => {
                let q = self.queue(c, queue)?;
                e.settle_handed_over(q, MessageId(id), count, settle_op(&op))?;
                Response::Done
            }
            Request::SettleOnDrop { delivery } => {
                e.settle_on_drop(self.delivery(c, &delivery)?);
                Response::Done
            }
            Request::Settles { acks, handed_over } => self.lazy_acks(c, &acks, handed_over)?,
            Request::AckBatch {
                queue,
                deliveries,
                sync,
            } => {
                let q = self.queue(c, queue)?;
                let ds = deliveries
                    .iter()
                    .map(|d| self.delivery(c, d))
                    .collect::<Result<Vec<_>>>()?;
                e.ack_batch(q, &ds, sync)?;
                Response::Done
            }
            Request::IsSettled { delivery } => {
                Response::Flag(e.is_settled(self.delivery(c, &delivery)?))
            }
            Request::Commit { sends, acks } => {
                let spec = TxnSpec {
                    sends: sends
                        .into_iter()
                        .map(|(to, m)| {
                            Ok(match to {
                                WireDest::Queue(q) => (TxnDest::Queue(self.queue(c, q)?), m),
                                WireDest::Topic(t) => (TxnDest::Topic(t.into()), m),
                            })
                        })
                        .collect::<Result<_>>()?,
                    acks: acks
                        .iter()
                        .map(|d| self.delivery(c, d))
                        .collect::<Result<_>>()?,
                };
                Response::Ids(e.commit_txn(&spec)?)
            }
            Request::CommitProbe { sends } => {
                // Per send: whether its dedup key is an automatic one, and what it finds.
                let mut ids = Vec::with_capacity(sends.len());
                for (to, m) in &sends {
                    let key = m.meta.dedup_key.as_deref().unwrap_or_default();
                    let found = match to {
                        WireDest::Queue(q) => e.dedup_lookup(self.queue(c, *q)?, key)?,
                        WireDest::Topic(t) => match e.published_lookup(t, key)? {
                            // Published to no subscription (now): stored nowhere either way.
                            None if e.topic_stats(t)?.subscriptions == 0 => {
                                return Err(Error::new(
                                    ErrorKind::OwnerLost,
                                    format!(
                                        "the store's owner died while this transaction was \
                                         being committed; whether it was is unknown (its \
                                         publish to topic {t:?} matches no subscription, so \
                                         left no trace)"
                                    ),
                                ))
                            }
                            found => found,
                        },
                    };
                    ids.push((key.starts_with(AUTO_KEY_PREFIX), found));
                }
                Response::Ids(commit_probe_verdict(&ids)?)
            }
            Request::Browse {
                queue,
                max,
                ready_only,
            } => Response::Messages(e.browse(
                self.queue(c, queue)?,
                usize::try_from(max).unwrap_or(usize::MAX),
                ready_only,
            )?),
            Request::Purge { queue, filter } => {
                Response::Purged(e.purge_filtered(self.queue(c, queue)?, &filter)?)
            }
            Request::Stats { queue } => Response::Stats(e.stats(self.queue(c, queue)?)?),
            Request::IsMemory { queue } => Response::Flag(e.is_memory(self.queue(c, queue)?)),
            Request::Replay { queue, filter } => {
                Response::Count(e.replay(self.queue(c, queue)?, &filter)?)
            }
            Request::BrowseStored { queue, from, max } => Response::Stored(e.browse_stored(
                self.queue(c, queue)?,
                MessageId(from),
                usize::try_from(max).unwrap_or(usize::MAX),
            )?),
            Request::Transfer { queue, filter } => {
                let r = e.transfer(self.queue(c, queue)?, &filter)?;
                // The target queue may be new: the connection may name it from now on.
                if let Ok(t) = e.declare_queue(&filter.to, None) {
                    lock(&c.st).queues.insert(t.0);
                }
                Response::Transferred(r)
            }
            Request::DedupWindow { queue } => {
                let (w, n) = e.dedup_window(self.queue(c, queue)?)?;
                Response::Window {
                    ms: w.as_millis().min(u64::MAX as u128) as u64,
                    count: n as u64,
                }
            }
            Request::DedupLookup { queue, key } => {
                Response::Found(e.dedup_lookup(self.queue(c, queue)?, &key)?)
            }
            Request::Compact => Response::Compacted(e.compact_now()?),
            Request::Flush => {
                e.flush()?;
                Response::Done
            }
            Request::DiskBytes => Response::Count(e.disk_bytes()),
            Request::Check => {
                e.check()?;
                Response::Done
            }
            Request::RecoveryReport => Response::Report(self.report.clone()),
        };
        Ok(Outcome::Answer(r))
    }

    /// A client's batch of lazy acks (`Request::Settles`), applied in order; each failure is
    /// reported in the answer, not as the request's error (the others are applied). Only the
    /// engine closing under it fails it whole (the client then settles them at the next owner).
    fn lazy_acks(&self, c: &Conn, acks: &[LazyAck], handed_over: bool) -> Result<Response> {
        if acks.len() > MAX_LAZY_ACKS {
            return Err(Error::invalid(format!(
                "{} lazy acks in one request, over the limit of {MAX_LAZY_ACKS}",
                acks.len()
            )));
        }
        let e = &self.engine;
        let mut failed = Vec::new();
        for a in acks {
            let d = &a.delivery;
            let r = if handed_over {
                self.queue(c, d.queue)
                    .and_then(|q| e.settle_handed_over(q, MessageId(d.id), a.count, Settle::Ack))
            } else {
                self.delivery(c, d).and_then(|r| e.settle(r, Settle::Ack))
            };
            match r {
                Ok(()) => {}
                Err(err) if err.kind() == ErrorKind::Closed => return Err(err),
                // Not held for this client: its earlier owner died, and the lazy ack was lost
                // with it (the message comes back redelivered, as after any crash).
                Err(err) if handed_over && err.kind() == ErrorKind::DeliveryLost => {}
                Err(err) => failed.push(LazyFailure {
                    id: d.id,
                    kind: err.kind().code(),
                    message: err.message().to_string(),
                }),
            }
        }
        Ok(Response::Settled { failed })
    }

    /// A receive: waits in slices, so that a client that went away is noticed.
    fn receive(
        &self,
        c: &Conn,
        queue: u32,
        consumer: u64,
        (max, lend): (u32, u32),
        timeout_ms: Option<u64>,
        selector: Option<&crate::selector::Selector>,
    ) -> Result<Response> {
        let q = self.queue(c, queue)?;
        let consumer = self.served_consumer(c, q, consumer)?;
        let max = max.clamp(1, MAX_RECEIVE) as usize;
        // `None`: no timeout, or one past what an Instant holds: both wait for good.
        let deadline =
            timeout_ms.and_then(|t| crate::clock::deadline_after(Duration::from_millis(t)));
        loop {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            let slice = left.map_or(RECEIVE_SLICE, |l| l.min(RECEIVE_SLICE));
            let got = match selector {
                None => self.engine.receive(q, consumer, max, Some(slice))?,
                Some(s) => self
                    .engine
                    .receive_selected(q, consumer, max, Some(slice), s)?,
            };
            let over = left.is_some_and(|l| l <= slice);
            if !got.is_empty() || over || c.is_dead() || self.stopping.load(Ordering::SeqCst) {
                if got.is_empty() && !over && self.stopping.load(Ordering::SeqCst) {
                    return Err(Error::closed());
                }
                let wire = |v: Vec<crate::engine::Received>| -> Vec<WireReceived> {
                    v.into_iter()
                        .map(|r| WireReceived {
                            message: r.message,
                            tag: r.tag.0,
                            count: r.count,
                        })
                        .collect()
                };
                if lend == 0 || max != 1 || selector.is_some() {
                    return Ok(Response::Received(wire(got)));
                }
                let lent = if got.is_empty() {
                    Vec::new()
                } else {
                    // A failure to lend loses nothing: what was not lent stays buffered here.
                    self.engine
                        .lend(q, consumer, lend.min(MAX_RECEIVE) as usize, PART_BYTES)
                        .unwrap_or_default()
                };
                return Ok(Response::Lent {
                    handed: wire(got),
                    lent: wire(lent),
                });
            }
        }
    }
}

impl ServerShared {
    /// The completion of an async send or publish: answered by the engine's callback thread
    /// through the connection's writer (or not at all while the owner closes: resent).
    fn later(self: &Arc<Self>, c: &Arc<Conn>, id: u64) -> Callback {
        let (s, c2) = (self.clone(), c.clone());
        Callback::boxed(move |r| {
            let resp = match r {
                Ok(id) => Response::Id(id),
                Err(e) if e.kind() == ErrorKind::Closed && s.stopping.load(Ordering::SeqCst) => {
                    c2.queue_answer(id, None);
                    return;
                }
                Err(e) => Response::error(&e),
            };
            c2.queue_answer(id, Some(resp));
        })
    }
}

/// The engine's settle of a wire settle.
/// What a commit probe (the resend of a `Commit` whose answer was lost with the owner) finds,
/// from each send's dedup key — whether it is an automatic one (this transaction's own, unique)
/// — and the message its lookup found:
/// - a send not found: the transaction, atomic, was not committed (`DeliveryLost`: its acked
///   deliveries come back with their counts incremented);
/// - all found, one of them by an automatic key: it was committed (their ids);
/// - all found, by the program's own keys only: unknown (`OwnerLost`) — a key of the program's
///   may be an earlier send's, stored whether or not this transaction was. Review r12 #4: this
///   case said "it was not", while the acks it carried had been applied for good.
fn commit_probe_verdict(found: &[(bool, Option<MessageId>)]) -> Result<Vec<MessageId>> {
    let mut ids = Vec::with_capacity(found.len());
    for &(_, id) in found {
        let Some(id) = id else {
            return Err(Error::new(
                ErrorKind::DeliveryLost,
                "the store's owner died while this transaction was being committed, and it \
                 was not: its acked deliveries come back with their delivery counts incremented",
            ));
        };
        ids.push(id);
    }
    if !found.iter().any(|&(auto, _)| auto) {
        return Err(Error::new(
            ErrorKind::OwnerLost,
            "the store's owner died while this transaction was being committed; whether it was \
             is unknown (its sends carry the program's own dedup keys, which an earlier send may \
             have stored)",
        ));
    }
    Ok(ids)
}

fn settle_op(op: &WireSettle) -> Settle<'_> {
    match op {
        WireSettle::Ack => Settle::Ack,
        WireSettle::AckSync => Settle::AckSync,
        WireSettle::Nack { reason, delay_ms } => Settle::Nack {
            reason,
            delay: delay_ms.map(Duration::from_millis),
        },
        WireSettle::Reject { reason } => Settle::Reject { reason },
        WireSettle::Release => Settle::Release,
    }
}

/// What becomes of a request.
enum Outcome {
    /// Answered now.
    Answer(Response),
    /// Answered later, by the engine's callback thread (an async send).
    Later,
    /// Never answered (the owner is closing): the client resends it to the next owner.
    Drop,
}

/// Requests handled by the reading thread itself: they do not block (beyond a full producer
/// window), and handling them in order keeps a connection's async sends in order.
fn is_quick(req: &Request) -> bool {
    matches!(
        req,
        Request::SendAsync { .. }
            | Request::PublishAsync { .. }
            | Request::QueueNames
            | Request::OpenConsumer { .. }
            | Request::CloseConsumer { .. }
            | Request::SettleOnDrop { .. }
            | Request::Settles { .. }
            | Request::LentNotice { .. }
            | Request::IsSettled { .. }
            | Request::IsMemory { .. }
            | Request::DiskBytes
            | Request::Check
            | Request::RecoveryReport
    )
}

impl Conn {
    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// Ends the connection: blocked reads and writes return, every thread leaves.
    fn die(&self) {
        self.dead.store(true, Ordering::SeqCst);
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        self.cv.notify_all();
        self.out_cv.notify_all();
    }

    /// The client closed its side (or the owner is closing): no more requests; answers still
    /// go out. The writer thread ends once nothing is outstanding.
    fn stop_reading(&self) {
        let st = lock(&self.st);
        if st.outstanding == 0 {
            drop(st);
            // Only the read half: the client, closing, waits for the owner's end of the
            // connection to learn that what it held was given back, and the last thread out
            // (`thread_done`) ends it only after that. Ending it here raced with that.
            self.dead.store(true, Ordering::SeqCst);
            let _ = self.stream.shutdown(std::net::Shutdown::Read);
            self.cv.notify_all();
            self.out_cv.notify_all();
            return;
        }
        drop(st);
        self.dead.store(true, Ordering::SeqCst);
        self.cv.notify_all();
        self.out_cv.notify_all();
    }

    /// One request less outstanding.
    fn count_out(&self) {
        let mut st = lock(&self.st);
        st.outstanding = st.outstanding.saturating_sub(1);
        drop(st);
        self.cv.notify_all();
        self.out_cv.notify_all();
    }

    /// Queues a recall of what was lent to the connection's consumer `consumer` (the wire's
    /// id: 0 for its plain receives of `queue`) for the writer thread: the engine's receive
    /// that asks for it must not block on this client's socket.
    fn push_recall(&self, queue: u32, consumer: u64) {
        if self.is_dead() {
            return;
        }
        let mut buf = Vec::new();
        if put_frame(
            &mut buf,
            &(RECALL_ID, false, Response::Recall { queue, consumer }),
        )
        .is_ok()
        {
            lock(&self.out).push_back((buf, false));
            self.out_cv.notify_one();
        }
    }

    /// Writes the answer of request `id` (id 0 wants none).
    fn answer(&self, id: u64, out: Outcome) {
        match out {
            Outcome::Later => return,
            Outcome::Drop => {}
            Outcome::Answer(resp) => {
                if id != 0 {
                    let bytes = frames(id, resp);
                    let w = lock(&self.writer);
                    if super::send_all(&w, &bytes).is_err() {
                        drop(w);
                        self.die();
                    }
                }
            }
        }
        self.count_out();
    }

    /// Queues an answer for the writer thread (from the engine's callback thread).
    fn queue_answer(&self, id: u64, resp: Option<Response>) {
        match resp {
            Some(resp) if id != 0 => {
                lock(&self.out).push_back((frames(id, resp), true));
                self.out_cv.notify_one();
            }
            _ => self.count_out(),
        }
    }

    /// The writer thread: writes queued answers until the connection is dead and nothing is
    /// outstanding.
    fn write_loop(&self) {
        let mut q = lock(&self.out);
        loop {
            if let Some((bytes, answers)) = q.pop_front() {
                drop(q);
                let failed = super::send_all(&lock(&self.writer), &bytes).is_err();
                if failed {
                    self.die();
                }
                if answers {
                    self.count_out();
                }
                q = lock(&self.out);
                continue;
            }
            if self.is_dead() && lock(&self.st).outstanding == 0 {
                // The stream is shut down by the last thread out, after it returned what the
                // client held (`thread_done`): a client closing cleanly waits for that.
                return;
            }
            q = self
                .out_cv
                .wait_timeout(q, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// The frames of an answer (several for a large receive or browse).
fn frames(id: u64, resp: Response) -> Vec<u8> {
    let parts = split(resp);
    let n = parts.len();
    let mut buf = Vec::new();
    for (i, p) in parts.into_iter().enumerate() {
        if let Err(e) = put_frame(&mut buf, &(id, i + 1 < n, p)) {
            buf.clear();
            let _ = put_frame(&mut buf, &(id, false, Response::error(&e)));
            break;
        }
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Review r12 #4: a commit probe whose sends carry only the program's own dedup keys said
    /// "it was not committed" when they were found — the transaction may well have been, and
    /// then its acks hold for good. Found by an automatic key (this transaction's own), it was.
    #[test]
    fn a_commit_probe_is_sure_only_of_what_its_keys_prove() {
        let (a, b) = (Some(MessageId(7)), Some(MessageId(9)));
        assert_eq!(
            commit_probe_verdict(&[(true, a), (false, b)]).unwrap(),
            [MessageId(7), MessageId(9)]
        );
        let unknown = commit_probe_verdict(&[(false, a), (false, b)]).unwrap_err();
        assert_eq!(unknown.kind(), ErrorKind::OwnerLost, "{unknown}");
        for not_committed in [
            &[(true, a), (false, None)][..],
            &[(false, None)],
            &[(true, None)],
        ] {
            let e = commit_probe_verdict(not_committed).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DeliveryLost, "{e}");
        }
    }
}
