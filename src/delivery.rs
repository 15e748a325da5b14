//! Deliveries and how they are settled; consumers and listeners.

use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::{AckMode, ConsumerOptions};
use crate::queue::Queue;
use crate::state::decode_message;
use crate::store::{mark_library_thread, on_library_thread, Inner};

/// Ids (and delivery counts) a cumulative-ack consumer has received and not settled, in order.
type Received = Arc<Mutex<Vec<(u64, u32)>>>;

/// One hand-over of a message to a consumer. Settle it with [`ack`](Delivery::ack),
/// [`nack`](Delivery::nack), [`reject`](Delivery::reject) or [`release`](Delivery::release).
/// Dropping it unsettled counts as a failed delivery (explicit ack mode).
pub struct Delivery {
    queue: Queue,
    consumer: u64,
    message: Message,
    count: u32,
    settled: bool,
    mode: AckMode,
    received: Option<Received>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("queue", &self.queue.name())
            .field("id", &self.id())
            .field("delivery_count", &self.count)
            .finish_non_exhaustive()
    }
}

impl Deref for Delivery {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.message
    }
}

impl Delivery {
    /// The message id.
    pub fn id(&self) -> MessageId {
        self.message.id.unwrap_or(MessageId(0))
    }

    /// The message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// How many times this message has been delivered, this delivery included.
    pub fn delivery_count(&self) -> u32 {
        self.count
    }

    /// Whether it was delivered before (`delivery_count > 1`).
    pub fn redelivered(&self) -> bool {
        self.count > 1
    }

    /// The queue it came from.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// (queue, id, tag) for transactions.
    pub(crate) fn parts(&self) -> (u32, u64, Option<(u64, u32)>) {
        (self.queue.qid, self.id().0, self.tag())
    }

    /// Marks it settled by someone else (a committed transaction).
    pub(crate) fn mark_settled(&mut self) {
        self.settled = true;
        self.forget_received();
    }

    fn tag(&self) -> Option<(u64, u32)> {
        Some((self.consumer, self.count))
    }

    fn settle(
        &mut self,
        op: impl FnOnce(&mut Inner, u32, u64, Option<(u64, u32)>, u64) -> Result<()>,
    ) -> Result<()> {
        if self.settled {
            return Err(Error::new(
                ErrorKind::AlreadySettled,
                format!("{} is already settled", self.id()),
            ));
        }
        self.settled = true;
        let shared = &self.queue.shared;
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        // Expire ack timeouts first, so settling a timed-out delivery fails deterministically.
        g.tick(self.queue.qid, now, &shared.opts)?;
        op(&mut g, self.queue.qid, self.id().0, self.tag(), now)?;
        shared.avail.notify_all();
        shared.room.notify_all();
        let _g = shared.commit(g)?;
        Ok(())
    }

    /// Acknowledges: the message is done and will not be delivered again once this returns.
    /// In cumulative mode, also acks everything this consumer received before it.
    pub fn ack(mut self) -> Result<()> {
        if let (AckMode::Cumulative, Some(rx)) = (self.mode, self.received.clone()) {
            let upto: Vec<(u64, u32)> = {
                let mut r = rx.lock().unwrap_or_else(|e| e.into_inner());
                let Some(pos) = r.iter().position(|&(id, _)| id == self.id().0) else {
                    self.settled = true;
                    return Err(Error::new(
                        ErrorKind::AlreadySettled,
                        format!("{} is already settled", self.id()),
                    ));
                };
                r.drain(..=pos).collect()
            };
            let consumer = self.consumer;
            return self.settle(|g, qid, _, _, _| {
                let ids: Vec<u64> = upto.iter().map(|x| x.0).collect();
                let _ = consumer;
                g.ack(qid, &ids, None)
            });
        }
        self.settle(|g, qid, id, tag, _| g.ack(qid, &[id], tag))
    }

    /// A failed delivery: the redelivery policy decides when it comes back, or whether it goes
    /// to the dead-letter queue. `reason` is kept as the last failure text.
    pub fn nack(self, reason: &str) -> Result<()> {
        self.nack_impl(reason, None)
    }

    /// Like [`nack`](Delivery::nack), but redelivered after `delay` instead of the policy's delay
    /// (the policy still decides when to dead-letter).
    pub fn nack_with_delay(self, reason: &str, delay: Duration) -> Result<()> {
        self.nack_impl(reason, Some(delay.as_millis() as u64))
    }

    fn nack_impl(mut self, reason: &str, delay: Option<u64>) -> Result<()> {
        self.forget_received();
        let store = self.queue.shared.opts.clone();
        self.settle(|g, qid, id, tag, now| g.fail(qid, id, reason, delay, now, tag, &store))
    }

    /// Poison: straight to the dead-letter queue with reason `rejected`.
    pub fn reject(mut self, reason: &str) -> Result<()> {
        self.forget_received();
        let store = self.queue.shared.opts.clone();
        self.settle(|g, qid, id, tag, now| g.reject(qid, id, reason, tag, now, &store))
    }

    /// Gives the message back without counting a failure (e.g. on graceful shutdown).
    pub fn release(mut self) -> Result<()> {
        self.forget_received();
        self.settle(|g, qid, id, tag, now| g.release(qid, id, tag, now))
    }

    fn forget_received(&mut self) {
        if let Some(rx) = &self.received {
            rx.lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|&(id, _)| id != self.id().0);
        }
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled || self.mode != AckMode::Explicit {
            return;
        }
        self.settled = true;
        let shared = &self.queue.shared;
        let mut g = shared.lock();
        if g.check().is_err() {
            return;
        }
        let store = shared.opts.clone();
        let now = shared.now();
        let _ = g.fail(
            self.queue.qid,
            self.id().0,
            "delivery dropped without being settled",
            None,
            now,
            self.tag(),
            &store,
        );
        if !g.pending.is_empty() {
            shared.kick(&g);
        }
        shared.avail.notify_all();
    }
}

/// The receive loop shared by queues and consumers.
pub(crate) fn receive(
    queue: &Queue,
    consumer: u64,
    mode: AckMode,
    n: usize,
    timeout: Option<Duration>,
    received: Option<&Received>,
) -> Result<Vec<Delivery>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let shared = &queue.shared;
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut g = shared.lock();
    loop {
        g.check()?;
        let now = shared.now();
        let es = g.take(
            queue.qid,
            consumer,
            n,
            mode == AckMode::Auto,
            now,
            &shared.opts,
        )?;
        if es.is_empty() && !g.pending.is_empty() {
            // Expired or parked messages were moved: wait, so the move is visible (in the
            // dead-letter queue's stats, browse and replay) when this call returns.
            g = shared.commit(g)?;
        } else if !g.pending.is_empty() {
            shared.kick(&g);
        }
        if !es.is_empty() {
            let recs = g.read_records(queue.qid, &es);
            if !g.pending.is_empty() {
                g = shared.commit(g)?;
            }
            if mode == AckMode::Auto {
                let ids: Vec<u64> = es.iter().map(|e| e.id).collect();
                g.finish_auto_ack(queue.qid, &ids);
            }
            let recs = match recs {
                Ok(r) => r,
                Err(e) => {
                    // Nothing was handed over: give the messages back (not a failed delivery),
                    // or they would stay in flight with no delivery to settle them until reopen.
                    if mode != AckMode::Auto {
                        let (now, was_empty) = (shared.now(), g.pending.is_empty());
                        for x in &es {
                            let _ = g.release(queue.qid, x.id, None, now);
                        }
                        if was_empty && !g.pending.is_empty() {
                            shared.work.notify_one();
                        }
                        shared.avail.notify_all();
                    }
                    return Err(e);
                }
            };
            drop(g);
            let mut out = Vec::with_capacity(es.len());
            for (e, r) in es.iter().zip(recs.iter()) {
                let message = decode_message(r).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("stored record of ID:{} does not decode", e.id),
                    )
                })?;
                out.push(Delivery {
                    queue: queue.clone(),
                    consumer,
                    message,
                    count: e.count,
                    settled: mode == AckMode::Auto,
                    mode,
                    received: received.cloned(),
                });
            }
            if let Some(rx) = received {
                rx.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend(es.iter().map(|e| (e.id, e.count)));
            }
            return Ok(out);
        }
        let mut wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Vec::new());
                }
                left
            }
            None => Duration::from_secs(3600),
        };
        if let Some(due) = g.queues[queue.qid as usize].next_due() {
            wait = wait.min(Duration::from_millis(due.saturating_sub(now).max(1)));
        }
        g = shared
            .avail
            .wait_timeout(g, wait)
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

/// Acks a batch of deliveries of one queue with one record.
pub(crate) fn settle_batch(queue: &Queue, mut deliveries: Vec<Delivery>) -> Result<()> {
    let shared = &queue.shared;
    let mut g = shared.lock();
    g.check()?;
    let mut ids = Vec::with_capacity(deliveries.len());
    for d in deliveries.iter_mut() {
        if d.queue.qid != queue.qid {
            return Err(Error::invalid(format!(
                "{} is not from queue {:?}",
                d.id(),
                queue.name()
            )));
        }
        if !d.settled {
            d.settled = true;
            d.forget_received();
            ids.push(d.id().0);
        }
    }
    g.ack(queue.qid, &ids, None)?;
    shared.room.notify_all();
    let _g = shared.commit(g)?;
    Ok(())
}

/// A consumer of one queue with its own ack mode. Dropping it returns its unsettled deliveries
/// to the queue as failed deliveries.
pub struct Consumer {
    queue: Queue,
    id: u64,
    mode: AckMode,
    received: Option<Received>,
}

impl Consumer {
    pub(crate) fn new(queue: Queue, options: ConsumerOptions) -> Self {
        let id = {
            let mut g = queue.shared.lock();
            g.next_consumer += 1;
            g.next_consumer
        };
        let received = (options.ack_mode == AckMode::Cumulative).then(Received::default);
        Consumer {
            queue,
            id,
            mode: options.ack_mode,
            received,
        }
    }

    /// Receives one message, waiting up to `timeout` (`None` = forever).
    pub fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        Ok(self.receive_batch(1, timeout)?.pop())
    }

    /// Receives up to `n` messages.
    pub fn receive_batch(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<Delivery>> {
        receive(
            &self.queue,
            self.id,
            self.mode,
            n,
            timeout,
            self.received.as_ref(),
        )
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let shared = &self.queue.shared;
        let mut g = shared.lock();
        if g.check().is_err() {
            return;
        }
        let ids: Vec<u64> = g.queues[self.queue.qid as usize]
            .inflight
            .values()
            .filter(|f| f.consumer == self.id)
            .map(|f| f.entry.id)
            .collect();
        let store = shared.opts.clone();
        let now = shared.now();
        for id in ids {
            let _ = g.fail(
                self.queue.qid,
                id,
                "the consumer was closed without settling it",
                None,
                now,
                None,
                &store,
            );
        }
        if !g.pending.is_empty() {
            shared.kick(&g);
        }
        shared.avail.notify_all();
    }
}

/// How many ready messages a listener takes at once.
const LISTENER_BATCH: usize = 32;

/// A running message listener; dropping it (or calling [`stop`](Listener::stop)) stops it.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub(crate) fn start<F>(queue: Queue, mut handler: F) -> Result<Listener>
    where
        F: FnMut(&Delivery) -> std::result::Result<(), String> + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("mqlite-listener-{}", queue.name()))
            .spawn(move || {
                mark_library_thread();
                let consumer = queue.consumer(ConsumerOptions::default());
                while !stop2.load(Ordering::Acquire) {
                    // Take what is ready (up to a small batch), run the handler on each in
                    // order, and ack the successes together: one durable ack per batch instead
                    // of one fsync per message. Failures are nacked at once.
                    match consumer.receive_batch(LISTENER_BATCH, Some(Duration::from_millis(50))) {
                        Ok(ds) => {
                            let mut ok = Vec::with_capacity(ds.len());
                            for d in ds {
                                let r =
                                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                        handler(&d)
                                    }));
                                match r {
                                    Ok(Ok(())) => ok.push(d),
                                    Ok(Err(reason)) => drop(d.nack(&reason)),
                                    Err(_) => drop(d.nack("the listener panicked")),
                                }
                            }
                            if !ok.is_empty() {
                                let _ = settle_batch(consumer.queue(), ok);
                            }
                        }
                        Err(_) => break,
                    }
                }
            })
            .map_err(|e| Error::io("starting a listener thread", &e))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the listener and waits for its thread (unless called from that thread).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if !on_library_thread() || t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.halt();
    }
}

// ---- Accessor for the C face (src/ffi). Ownership only, no semantics: the C delivery handle
// keeps the message readable after the delivery is settled (settling consumes the Delivery)
// without copying the body.
impl Delivery {
    /// Moves the message out, leaving an empty message with the same id behind (settling and
    /// dropping only need the id).
    pub(crate) fn take_message(&mut self) -> Message {
        let id = self.message.id;
        let mut empty = Message::new(Vec::new());
        empty.id = id;
        std::mem::replace(&mut self.message, empty)
    }
}
