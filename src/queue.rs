//! Queue handles: sending, receiving, browsing, stats.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::{Consumer, Delivery, Listener};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::{AckMode, ConsumerOptions, OverflowPolicy};
use crate::state::decode_message;
use crate::store::{Callback, Inner, Shared};
use std::sync::MutexGuard;

/// A handle to one queue of a [`crate::Store`]. Cheap to clone; usable from any thread. Every
/// call fails with `Closed` once the store is closed.
#[derive(Clone)]
pub struct Queue {
    pub(crate) shared: Arc<Shared>,
    pub(crate) qid: u32,
    pub(crate) name: Arc<str>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

/// Counters and gauges of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages ready for delivery now.
    pub depth: u64,
    /// Messages delivered and not yet settled.
    pub in_flight: u64,
    /// Messages waiting for a delivery time or a redelivery delay.
    pub delayed: u64,
    /// All messages held (ready + in flight + delayed).
    pub messages: u64,
    /// Bytes of the records held (bodies and headers).
    pub bytes: u64,
    /// Messages stored since the store was opened.
    pub enqueued: u64,
    /// Messages acknowledged since the store was opened.
    pub acked: u64,
    /// Deliveries that were redeliveries.
    pub redelivered: u64,
    /// Messages moved to a dead-letter queue (or discarded by the `Discard` strategy).
    pub dead_lettered: u64,
    /// Messages that expired.
    pub expired: u64,
    /// Messages dropped by purge or discard.
    pub discarded: u64,
    /// Messages replayed into this queue.
    pub replayed: u64,
}

impl Queue {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn wait_room<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        len: usize,
    ) -> Result<MutexGuard<'a, Inner>> {
        let mut deadline = None;
        while !g.has_room(self.qid, len) {
            let q = &g.queues[self.qid as usize];
            match q.opts.overflow {
                OverflowPolicy::Reject => {
                    return Err(Error::new(
                        ErrorKind::QueueFull,
                        format!("queue {:?} is full", self.name),
                    ))
                }
                OverflowPolicy::DropOldest => {
                    let now = self.shared.now();
                    if !g.drop_oldest(self.qid, now, &self.shared.opts)? {
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!(
                                "queue {:?} is full and every message is in flight",
                                self.name
                            ),
                        ));
                    }
                }
                OverflowPolicy::Block { timeout } => {
                    let d = *deadline.get_or_insert_with(|| Instant::now() + timeout);
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!("queue {:?} stayed full for {timeout:?}", self.name),
                        ));
                    }
                    g = self
                        .shared
                        .room
                        .wait_timeout(g, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    g.check()?;
                }
            }
        }
        Ok(g)
    }

    /// Sends `msg` and waits until it is durable (per the queue's durability). Returns its id
    /// (for a dedup hit, the first message's id).
    pub fn send(&self, msg: impl Into<Message>) -> Result<MessageId> {
        let msg = msg.into();
        let mut g = self.shared.lock();
        g.check()?;
        g = self.wait_room(g, msg.body.len())?;
        let (id, _) = g.send(self.qid, &msg, self.shared.now())?;
        if !g.queues[self.qid as usize].opts.journaled() {
            self.shared.avail.notify_all();
            return Ok(MessageId(id));
        }
        let mut g = self.shared.commit(g)?;
        if let Some(e) = g.refused.remove(&id) {
            return Err(e);
        }
        Ok(MessageId(id))
    }

    /// Sends many messages with one lock, one record batch and one wait: all are durable when it
    /// returns. If one is refused (a limit, an invalid message) the ones before it are still sent
    /// and the error names its index.
    pub fn send_batch<M: Into<Message>>(
        &self,
        msgs: impl IntoIterator<Item = M>,
    ) -> Result<Vec<MessageId>> {
        let mut ids = Vec::new();
        let mut g = self.shared.lock();
        g.check()?;
        let now = self.shared.now();
        let mut failure = None;
        for (i, m) in msgs.into_iter().enumerate() {
            let m = m.into();
            let r = self.wait_room(g, m.body.len()).map(|mut g2| {
                let r = g2.send(self.qid, &m, now);
                (g2, r)
            });
            match r {
                Ok((g2, Ok((id, _)))) => {
                    g = g2;
                    ids.push(MessageId(id));
                }
                Ok((g2, Err(e))) => {
                    g = g2;
                    failure = Some(Error::new(
                        e.kind(),
                        format!("message {i} of the batch: {}", e.message()),
                    ));
                    break;
                }
                Err(e) => {
                    failure = Some(Error::new(
                        e.kind(),
                        format!("message {i} of the batch: {}", e.message()),
                    ));
                    g = self.shared.lock();
                    break;
                }
            }
        }
        if !g.queues[self.qid as usize].opts.journaled() {
            self.shared.avail.notify_all();
        } else if !ids.is_empty() {
            g = self.shared.commit(g)?;
            // Refused for lack of space: the batch's messages shared one write, so all are.
            let refused: Vec<_> = ids
                .iter()
                .filter_map(|id| g.refused.remove(&id.0))
                .collect();
            if let Some(e) = refused.into_iter().next() {
                return Err(e);
            }
        }
        drop(g);
        match failure {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }

    /// Sends without waiting. `callback` runs exactly once, on a library thread, with the id once
    /// the message is durable or with the error if it never will be; closing the store completes
    /// every pending callback. If `send_async` itself returns an error (the message is invalid, the
    /// queue or producer window is full with the reject policy, the store is closed), the
    /// callback is dropped without being called.
    pub fn send_async<F>(&self, msg: impl Into<Message>, callback: F) -> Result<()>
    where
        F: FnOnce(Result<MessageId>) + Send + 'static,
    {
        self.send_async_boxed(msg.into(), Box::new(callback))
    }

    pub(crate) fn send_async_boxed(&self, msg: Message, callback: Callback) -> Result<()> {
        let len = msg.body.len();
        let mut g = self.shared.lock();
        g.check()?;
        let opts = &self.shared.opts;
        let mut deadline: Option<Instant> = None;
        while g.async_msgs >= opts.max_pending_messages
            || (g.async_bytes > 0 && g.async_bytes + len > opts.max_pending_bytes)
        {
            if !opts.block_when_window_full {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    "the producer window of async sends is full",
                ));
            }
            let d = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(3600));
            g = self
                .shared
                .room
                .wait_timeout(g, d.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            g.check()?;
        }
        g = self.wait_room(g, len)?;
        let (id, _) = g.send(self.qid, &msg, self.shared.now())?;
        if !g.queues[self.qid as usize].opts.journaled() {
            drop(g);
            self.shared.avail.notify_all();
            let mut cq = self
                .shared
                .callbacks
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            cq.items.push_back((callback, Ok(MessageId(id))));
            self.shared.callbacks_cv.notify_one();
            return Ok(());
        }
        g.async_msgs += 1;
        g.async_bytes += len;
        g.pending.async_msgs += 1;
        g.pending.async_bytes += len;
        g.pending.callbacks.push((callback, Ok(MessageId(id))));
        self.shared.kick(&g);
        Ok(())
    }

    /// Sends and returns a future that resolves once the message is durable (for tokio and other
    /// async runtimes; no runtime is required).
    pub fn send_future(
        &self,
        msg: impl Into<Message>,
    ) -> impl Future<Output = Result<MessageId>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.send_async(msg, move |r| {
            let _ = tx.send(r);
        });
        async move {
            started?;
            rx.await
                .map_err(|_| Error::new(ErrorKind::Internal, "the completion was dropped"))?
        }
    }

    /// Receives one message, waiting up to `timeout` (`None` = forever). The delivery must be
    /// settled; dropping it unsettled counts as a failed delivery.
    pub fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        Ok(self.receive_batch(1, timeout)?.pop())
    }

    /// Receives up to `n` messages, waiting up to `timeout` for the first; their delivery
    /// counts are made durable with one record before they are handed over.
    pub fn receive_batch(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<Delivery>> {
        crate::delivery::receive(self, 0, AckMode::Explicit, n, timeout, None)
    }

    /// A consumer with its own ack mode; its unsettled deliveries return to the queue (as
    /// failures) when it is dropped.
    pub fn consumer(&self, options: ConsumerOptions) -> Consumer {
        Consumer::new(self.clone(), options)
    }

    /// Starts a listener: `handler` runs on a library thread for each message; `Ok` acks it and
    /// `Err(reason)` nacks it (a panic nacks too). Stops when the [`Listener`] is dropped.
    pub fn listen<F>(&self, handler: F) -> Result<Listener>
    where
        F: FnMut(&Delivery) -> std::result::Result<(), String> + Send + 'static,
    {
        Listener::start(self.clone(), handler)
    }

    /// Acks many deliveries with one record and one wait.
    pub fn ack_batch(&self, deliveries: Vec<Delivery>) -> Result<()> {
        crate::delivery::settle_batch(self, deliveries)
    }

    /// Up to `max` waiting messages in delivery order, without consuming them.
    pub fn browse(&self, max: usize) -> Result<Vec<Message>> {
        let g = self.shared.lock();
        g.check()?;
        let mut es = g.queues[self.qid as usize].ordered_waiting();
        es.truncate(max);
        let recs = g.read_records(self.qid, &es)?;
        drop(g);
        recs.iter()
            .map(|r| {
                decode_message(r)
                    .ok_or_else(|| Error::new(ErrorKind::Corrupt, "stored record does not decode"))
            })
            .collect()
    }

    /// Removes every waiting message (not those in flight); returns how many.
    pub fn purge(&self) -> Result<u64> {
        let mut g = self.shared.lock();
        g.check()?;
        let n = g.purge(self.qid);
        let _g = self.shared.commit(g)?;
        Ok(n)
    }

    /// The queue's statistics.
    pub fn stats(&self) -> Result<QueueStats> {
        let mut g = self.shared.lock();
        g.check()?;
        let now = self.shared.now();
        g.tick(self.qid, now, &self.shared.opts)?;
        let q = &mut g.queues[self.qid as usize];

        let c = &q.counters;
        Ok(QueueStats {
            depth: q.waiting_count(),
            in_flight: q.inflight.len() as u64,
            delayed: q.delayed.len() as u64,
            messages: q.count,
            bytes: q.bytes,
            enqueued: c.enqueued,
            acked: c.acked,
            redelivered: c.redelivered,
            dead_lettered: c.dead_lettered,
            expired: c.expired,
            discarded: c.discarded,
            replayed: c.replayed,
        })
    }

    /// Whether this queue keeps its messages only in memory.
    pub fn is_memory(&self) -> bool {
        let g = self.shared.lock();
        !g.queues[self.qid as usize].opts.journaled()
    }
}
