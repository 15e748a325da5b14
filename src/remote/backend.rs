//! The one type behind every face handle (Store, Queue, Consumer, Delivery, Transaction,
//! Listener): this process's own engine, or a connection to the owner of the store. Its methods
//! are the engine's requests, with the same arguments and the same semantics either way.

use std::time::Duration;

use super::client::{unanswered_at_close, Callback, Client};
use super::protocol::{Request, Response, WireDest, WireReceived, WireRef, WireSettle};
use super::{fork_generation, forked_error};
use crate::engine::{
    CompactReport, ConsumerId, DeliveryRef, DeliveryTag, Dest, Engine, PurgeFilter, PurgeReport,
    QueueId, QueueStats, Received, Settle, StoredMessage, SubscriptionInfo, SubscriptionOptions,
    TopicStats, TransferFilter, TransferReport, TxnDest, TxnSpec,
};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::{AckMode, QueueOptions};
use crate::queue::ReplayFilter;
use crate::selector::Selector;

/// Local or remote.
#[derive(Clone)]
pub(crate) enum Backend {
    /// This process owns the store.
    Local(Engine, u64),
    /// Another process does.
    Remote(Client),
}

/// Takes from a program's message a dedup key of the reserved form of the automatic resend
/// keys (`\u{1}mq…`, [`AUTO_KEY_PREFIX`](super::AUTO_KEY_PREFIX)): such a key is never the
/// program's (a received message sent on again carries its sender's, which
/// [`Message::get_dedup_key`] hides), and kept it would be taken for a client's resend key —
/// entered in the engine's resend window, not the queue's — and could make the engine drop
/// another client's send as a resend of it.
fn drop_reserved_key(m: &mut Message) {
    if m.meta
        .dedup_key
        .as_deref()
        .is_some_and(crate::engine::is_resend_key)
    {
        m.meta.dedup_key = None;
    }
}

fn unexpected(r: Response) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("the owner answered with an unexpected reply: {r:?}"),
    )
}

fn wire(d: &DeliveryRef, consumer: u64) -> WireRef {
    WireRef {
        queue: d.queue.0,
        id: d.id.0,
        tag: d.tag.0,
        consumer,
    }
}

/// The wire form of a settle.
fn wire_settle(op: Settle<'_>) -> WireSettle {
    match op {
        Settle::Ack => WireSettle::Ack,
        Settle::AckSync => WireSettle::AckSync,
        Settle::Nack { reason, delay } => WireSettle::Nack {
            reason: reason.to_string(),
            delay_ms: delay.map(|t| t.as_millis().min(u64::MAX as u128) as u64),
        },
        Settle::Reject { reason } => WireSettle::Reject {
            reason: reason.to_string(),
        },
        Settle::Release => WireSettle::Release,
    }
}

/// The settle of a delivery of an earlier owner, as one handed over to the current owner
/// (named by queue, message id and delivery count).
fn handed_over(d: &DeliveryRef, op: WireSettle) -> Request {
    Request::SettleHandedOver {
        queue: d.queue.0,
        id: d.id.0,
        count: d.count,
        op,
    }
}

fn received(items: Vec<WireReceived>) -> Vec<Received> {
    items
        .into_iter()
        .map(|r| Received {
            message: r.message,
            tag: DeliveryTag(r.tag),
            count: r.count,
        })
        .collect()
}

impl Backend {
    /// This process's own engine.
    pub(crate) fn local(engine: Engine) -> Backend {
        Backend::Local(engine, fork_generation())
    }

    /// Whether this handle was made before a `fork()` of this process, that is, whether this
    /// is a forked child using its parent's store: it may then touch nothing the parent shares
    /// (its socket, its files, its threads, which do not exist here).
    pub(crate) fn forked(&self) -> bool {
        match self {
            Backend::Local(_, gen) => *gen != fork_generation(),
            Backend::Remote(c) => c.forked(),
        }
    }

    /// The engine, checked not to be used in a `fork()` child.
    fn engine(&self) -> Result<Option<&Engine>> {
        match self {
            Backend::Local(e, gen) => {
                if *gen != fork_generation() {
                    return Err(forked_error());
                }
                Ok(Some(e))
            }
            Backend::Remote(_) => Ok(None),
        }
    }

    /// [`Backend::engine`] for a call that changes the store (`what` names it in the error):
    /// `ReadOnly` when the store was opened read-only. The one place such calls are refused,
    /// for every face.
    fn writer(&self, what: &str) -> Result<Option<&Engine>> {
        let e = self.engine()?;
        if let Some(e) = e {
            e.refuse_if_read_only(what)?;
        }
        Ok(e)
    }

    fn client(&self) -> &Client {
        match self {
            Backend::Remote(c) => c,
            Backend::Local(..) => unreachable!("a local backend has no client"),
        }
    }

    /// Whether `other` is a handle to the same store (opened once).
    pub(crate) fn same(&self, other: &Backend) -> bool {
        match (self, other) {
            (Backend::Local(a, _), Backend::Local(b, _)) => a.same(b),
            (Backend::Remote(a), Backend::Remote(b)) => a.same(b),
            _ => false,
        }
    }

    pub(crate) fn check(&self) -> Result<()> {
        match self.engine()? {
            Some(e) => e.check(),
            None => self.client().call(Request::Check).map(|_| ()),
        }
    }

    pub(crate) fn declare_queue(
        &self,
        name: &str,
        options: Option<&QueueOptions>,
    ) -> Result<QueueId> {
        match self.engine()? {
            // A queue of the store is read as it is; a new one would be written.
            Some(e) if !e.queue_names().iter().any(|n| n == name) => {
                e.refuse_if_read_only(&format!("creating queue {name:?}"))?;
                e.declare_queue(name, options)
            }
            Some(e) => e.declare_queue(name, options),
            None => self.client().declare(name, options).map(QueueId),
        }
    }

    pub(crate) fn queue_names(&self) -> Vec<String> {
        self.try_queue_names().unwrap_or_default()
    }

    pub(crate) fn try_queue_names(&self) -> Result<Vec<String>> {
        match self.engine()? {
            Some(e) => Ok(e.queue_names()),
            None => match self.client().call(Request::QueueNames)? {
                Response::Names(n) => Ok(n),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn is_memory(&self, q: QueueId) -> bool {
        match self.engine() {
            Ok(Some(e)) => e.is_memory(q),
            Ok(None) => matches!(
                self.client().call(Request::IsMemory { queue: q.0 }),
                Ok(Response::Flag(true))
            ),
            Err(_) => false,
        }
    }

    pub(crate) fn browse(&self, q: QueueId, max: usize, ready_only: bool) -> Result<Vec<Message>> {
        match self.engine()? {
            Some(e) => e.browse(q, max, ready_only),
            None => match self.client().call(Request::Browse {
                queue: q.0,
                max: max as u64,
                ready_only,
            })? {
                Response::Messages(m) => Ok(m),
                r => Err(unexpected(r)),
            },
        }
    }

    fn count(&self, req: Request) -> Result<u64> {
        match self.client().call(req)? {
            Response::Count(n) => Ok(n),
            r => Err(unexpected(r)),
        }
    }

    pub(crate) fn purge(&self, q: QueueId) -> Result<u64> {
        self.purge_filtered(q, &PurgeFilter::default())
            .map(|r| r.purged)
    }

    pub(crate) fn purge_filtered(&self, q: QueueId, filter: &PurgeFilter) -> Result<PurgeReport> {
        // A dry run only counts: allowed on a read-only store, as a transfer's dry run is not
        // (that one declares its target).
        let e = if filter.dry_run {
            self.engine()?
        } else {
            self.writer("purging a queue")?
        };
        match e {
            Some(e) => e.purge_filtered(q, filter),
            None => match self.client().call(Request::Purge {
                queue: q.0,
                filter: filter.clone(),
            })? {
                Response::Purged(r) => Ok(r),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn stats(&self, q: QueueId) -> Result<QueueStats> {
        match self.engine()? {
            Some(e) => e.stats(q),
            None => match self.client().call(Request::Stats { queue: q.0 })? {
                Response::Stats(s) => Ok(s),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn replay(&self, q: QueueId, filter: &ReplayFilter) -> Result<u64> {
        match self.writer("replaying dead letters")? {
            Some(e) => e.replay(q, filter),
            None => self.count(Request::Replay {
                queue: q.0,
                filter: filter.clone(),
            }),
        }
    }

    pub(crate) fn browse_stored(
        &self,
        q: QueueId,
        from: MessageId,
        max: usize,
    ) -> Result<Vec<StoredMessage>> {
        match self.engine()? {
            Some(e) => e.browse_stored(q, from, max),
            None => match self.client().call(Request::BrowseStored {
                queue: q.0,
                from: from.0,
                max: max as u64,
            })? {
                Response::Stored(m) => Ok(m),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn transfer(&self, q: QueueId, filter: &TransferFilter) -> Result<TransferReport> {
        match self.writer("moving or copying messages")? {
            Some(e) => e.transfer(q, filter),
            None => match self.client().call(Request::Transfer {
                queue: q.0,
                filter: filter.clone(),
            })? {
                Response::Transferred(r) => Ok(r),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn compact_now(&self) -> Result<CompactReport> {
        match self.writer("compacting")? {
            Some(e) => e.compact_now(),
            None => match self.client().call(Request::Compact)? {
                Response::Compacted(r) => Ok(r),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn dedup_window(&self, q: QueueId) -> Result<(Duration, usize)> {
        match self.engine()? {
            Some(e) => e.dedup_window(q),
            None => match self.client().call(Request::DedupWindow { queue: q.0 })? {
                Response::Window { ms, count } => Ok((
                    Duration::from_millis(ms),
                    usize::try_from(count).unwrap_or(usize::MAX),
                )),
                r => Err(unexpected(r)),
            },
        }
    }

    pub(crate) fn dedup_lookup(&self, q: QueueId, key: &str) -> Result<Option<MessageId>> {
        match self.engine()? {
            Some(e) => e.dedup_lookup(q, key),
            None => match self.client().call(Request::DedupLookup {
                queue: q.0,
                key: key.to_string(),
            })? {
                Response::Found(r) => Ok(r),
                r => Err(unexpected(r)),
            },
        }
    }

    /// The engine's group-commit counters; `None` in a client.
    pub(crate) fn commit_stats(&self) -> Option<crate::CommitStats> {
        self.engine().ok().flatten().map(|e| e.commit_stats())
    }

    pub(crate) fn disk_bytes(&self) -> u64 {
        match self.engine() {
            Ok(Some(e)) => e.disk_bytes(),
            Ok(None) => self.count(Request::DiskBytes).unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Waits until everything sent so far (by this process) is durable.
    pub(crate) fn flush(&self) -> Result<()> {
        match self.engine()? {
            Some(e) => e.flush(),
            None => {
                let c = self.client();
                c.wait_async();
                c.call(Request::Flush)?;
                // Lazy acks went before the flush, and their answers came before its answer.
                c.take_ack_errors()
            }
        }
    }

    /// Sends to a queue or publishes to a topic. A client's sends and publishes carry an
    /// automatic dedup key (producer id and sequence), so one resent after a takeover is stored
    /// once: by the queue's dedup window, or by those of the subscriptions a publish reached.
    pub(crate) fn send(&self, to: Dest<'_>, mut msg: Message) -> Result<MessageId> {
        drop_reserved_key(&mut msg);
        match self.writer("sending")? {
            Some(e) => e.send(to, &msg),
            None => {
                let c = self.client();
                c.stamp(&mut msg);
                let req = match to {
                    Dest::Queue(q) => Request::Send {
                        queue: q.0,
                        message: msg,
                    },
                    Dest::Topic(t) => Request::Publish {
                        topic: t.to_string(),
                        message: msg,
                    },
                };
                match c.call(req)? {
                    Response::Id(id) | Response::Published { id, .. } => Ok(id),
                    r => Err(unexpected(r)),
                }
            }
        }
    }

    /// Publishes to `topic`: the id and how many subscriptions the message reached, as the
    /// engine that stored it (this process's or the owner's) counted them.
    pub(crate) fn publish(&self, topic: &str, mut msg: Message) -> Result<(MessageId, u32)> {
        drop_reserved_key(&mut msg);
        match self.writer("publishing")? {
            Some(e) => e.publish(topic, &msg),
            None => {
                let c = self.client();
                c.stamp(&mut msg);
                let req = Request::Publish {
                    topic: topic.to_string(),
                    message: msg,
                };
                match c.call(req)? {
                    Response::Published { id, subscriptions } => Ok((id, subscriptions)),
                    r => Err(unexpected(r)),
                }
            }
        }
    }

    pub(crate) fn send_batch(
        &self,
        to: Dest<'_>,
        msgs: impl IntoIterator<Item = Message>,
    ) -> Result<Vec<MessageId>> {
        let msgs = msgs.into_iter().map(|mut m| {
            drop_reserved_key(&mut m);
            m
        });
        match self.writer("sending")? {
            Some(e) => e.send_batch(to, msgs),
            None => {
                // One request, all or nothing as in the owner (one over 64 MiB goes as several
                // frames).
                let c = self.client();
                let messages: Vec<Message> = msgs
                    .into_iter()
                    .map(|mut m| {
                        c.stamp(&mut m);
                        m
                    })
                    .collect();
                self.batch_frame(to, messages)
            }
        }
    }

    /// A remote batch send.
    fn batch_frame(&self, to: Dest<'_>, messages: Vec<Message>) -> Result<Vec<MessageId>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let req = match to {
            Dest::Queue(q) => Request::SendBatch {
                queue: q.0,
                messages,
            },
            Dest::Topic(t) => Request::PublishBatch {
                topic: t.to_string(),
                messages,
            },
        };
        match self.client().call(req)? {
            Response::Ids(ids) => Ok(ids),
            r => Err(unexpected(r)),
        }
    }

    pub(crate) fn send_async(
        &self,
        to: Dest<'_>,
        mut msg: Message,
        callback: Callback,
    ) -> Result<()> {
        drop_reserved_key(&mut msg);
        match self.writer("sending")? {
            Some(e) => e.send_async(to, msg, callback),
            None => self.client().send_async(to, msg, callback),
        }
    }

    /// Receives for `consumer`; returns the origin its deliveries carry.
    pub(crate) fn receive(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<(u64, Vec<Received>)> {
        self.receive_with(q, consumer, n, timeout, None)
    }

    /// Receives for a selective consumer (see [`Engine::receive_selected`]).
    pub(crate) fn receive_selected(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
        selector: &Selector,
    ) -> Result<(u64, Vec<Received>)> {
        self.receive_with(q, consumer, n, timeout, Some(selector))
    }

    fn receive_with(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
        selector: Option<&Selector>,
    ) -> Result<(u64, Vec<Received>)> {
        match self.writer("receiving")? {
            Some(e) => Ok((
                0,
                match selector {
                    None => e.receive(q, consumer, n, timeout)?,
                    Some(s) => e.receive_selected(q, consumer, n, timeout, s)?,
                },
            )),
            None => {
                if n == 0 {
                    return Ok((0, Vec::new()));
                }
                let max = u32::try_from(n).unwrap_or(u32::MAX);
                let selector = selector.map(|s| s.as_str().to_string());
                match self
                    .client()
                    .receive(q.0, consumer.0, max, timeout, selector)?
                {
                    (origin, Response::Received(items)) => Ok((origin, received(items))),
                    (_, r) => Err(unexpected(r)),
                }
            }
        }
    }

    pub(crate) fn open_consumer(
        &self,
        q: QueueId,
        mode: AckMode,
        prefetch: Option<u32>,
    ) -> Result<ConsumerId> {
        match self.writer("opening a consumer")? {
            Some(e) => e.open_consumer(q, mode, prefetch),
            None => self
                .client()
                .open_consumer(q.0, mode, prefetch)
                .map(ConsumerId),
        }
    }

    pub(crate) fn close_consumer(&self, consumer: ConsumerId) {
        match self.engine() {
            Ok(Some(e)) => e.close_consumer(consumer),
            Ok(None) => self.client().close_consumer(consumer.0),
            Err(_) => {}
        }
    }

    /// The wire name of a delivery of the current connection, or `DeliveryLost`.
    fn wire(&self, d: &DeliveryRef) -> Result<WireRef> {
        let server = self.client().server_consumer(d.consumer.0, d.origin)?;
        Ok(wire(d, server))
    }

    /// Whether `d` was handed out by an earlier connection's owner: its settle goes to the
    /// current owner as a delivery handed over (which it is if that owner closed cleanly).
    fn handed_over(&self, d: &DeliveryRef) -> bool {
        d.origin != 0 && d.origin < self.client().epoch()
    }

    pub(crate) fn settle(&self, d: DeliveryRef, op: Settle<'_>) -> Result<()> {
        match self.writer("settling a delivery")? {
            Some(e) => e.settle(d, op),
            None => {
                let lazy = matches!(op, Settle::Ack);
                let sync = matches!(op, Settle::AckSync);
                let c = self.client();
                if lazy {
                    // A lazy queue's ack of the current connection's delivery: one way, through
                    // the outbox (its failure is reported by the next `ack_sync`, `flush`,
                    // commit or `close`).
                    if let Some(r) =
                        c.lazy_ack(d.queue.0, d.consumer.0, d.id.0, d.tag.0, d.count, d.origin)
                    {
                        return r;
                    }
                }
                let op = wire_settle(op);
                let r = self.settle_now(d, op);
                if sync && r.is_ok() {
                    // The earlier lazy acks' answers came before this one's.
                    return c.take_ack_errors();
                }
                r
            }
        }
    }

    /// A remote settle with a round trip.
    fn settle_now(&self, d: DeliveryRef, op: WireSettle) -> Result<()> {
        if self.handed_over(&d) {
            return self.client().call(handed_over(&d, op)).map(|_| ());
        }
        let req = Request::Settle {
            delivery: self.wire(&d)?,
            op: op.clone(),
        };
        match self.client().call_in(req, d.origin) {
            // Its owner closed cleanly without answering: settle it where it went.
            Err(e) if unanswered_at_close(&e) && self.handed_over(&d) => {
                self.client().call(handed_over(&d, op)).map(|_| ())
            }
            r => r.map(|_| ()),
        }
    }

    pub(crate) fn settle_on_drop(&self, d: DeliveryRef) {
        match self.engine() {
            Ok(Some(e)) => e.settle_on_drop(d),
            Ok(None) => {
                let c = self.client();
                if self.handed_over(&d) {
                    // A failed delivery, as a dropped one is (no answer wanted).
                    let op = WireSettle::Nack {
                        reason: "dropped unsettled".into(),
                        delay_ms: None,
                    };
                    c.drop_delivery(handed_over(&d, op), c.epoch());
                } else if let Ok(delivery) = self.wire(&d) {
                    c.drop_delivery(Request::SettleOnDrop { delivery }, d.origin);
                }
            }
            Err(_) => {}
        }
    }

    /// Acks many deliveries; `sync`: returns once they are durable (for a client: once the
    /// owner's fdatasync of them returned).
    /// Releases a batch (see the engine's `release_batch`). From a client: one release each,
    /// the first error returned after trying them all.
    pub(crate) fn release_batch(&self, q: QueueId, ds: &[DeliveryRef]) -> Result<()> {
        match self.writer("releasing")? {
            Some(e) => e.release_batch(q, ds),
            None => {
                let mut first = Ok(());
                for d in ds {
                    if let Err(e) = self.settle(*d, Settle::Release) {
                        first = first.and(Err(e));
                    }
                }
                first
            }
        }
    }

    pub(crate) fn ack_batch(&self, q: QueueId, ds: &[DeliveryRef], sync: bool) -> Result<()> {
        match self.writer("acknowledging")? {
            Some(e) => e.ack_batch(q, ds, sync),
            None => {
                let mut deliveries = Vec::with_capacity(ds.len());
                // The deliveries of `deliveries`, should they have to be acked again.
                let mut current = Vec::new();
                let mut lost = 0;
                let op = if sync {
                    WireSettle::AckSync
                } else {
                    WireSettle::Ack
                };
                let ack_handed_over = |d: &DeliveryRef, lost: &mut usize| match self
                    .client()
                    .call(handed_over(d, op.clone()))
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.kind() == ErrorKind::DeliveryLost => {
                        *lost += 1;
                        Ok(())
                    }
                    Err(e) => Err(e),
                };
                // The connection the batch is made for: a delivery of an earlier one (`wire`
                // refuses it) goes to the current owner as handed over, one each (the
                // connection may be replaced while the batch is made: each is checked).
                let epoch = self.client().epoch();
                for d in ds {
                    match self.wire(d) {
                        Ok(w) if d.origin == epoch => {
                            deliveries.push(w);
                            current.push(d);
                        }
                        _ if self.handed_over(d) => ack_handed_over(d, &mut lost)?,
                        _ => lost += 1,
                    }
                }
                if !deliveries.is_empty() {
                    let req = Request::AckBatch {
                        queue: q.0,
                        deliveries,
                        sync,
                    };
                    let r = self.client().call_in(req, epoch);
                    match r {
                        // Its owner closed cleanly without answering: ack them where they went.
                        Err(e) if unanswered_at_close(&e) => {
                            for d in current {
                                if self.handed_over(d) {
                                    ack_handed_over(d, &mut lost)?;
                                } else {
                                    lost += 1;
                                }
                            }
                        }
                        r => {
                            r?;
                        }
                    }
                }
                if sync {
                    // The earlier lazy acks' answers came before this one's.
                    self.client().take_ack_errors()?;
                }
                if lost > 0 {
                    return Err(Error::new(
                        ErrorKind::DeliveryLost,
                        format!(
                            "{lost} of the batch {} handed out by a store owner process that has \
                             since gone away and could not be acked (they come back with their \
                             delivery counts incremented); the others were acked",
                            if lost == 1 { "was" } else { "were" }
                        ),
                    ));
                }
                Ok(())
            }
        }
    }

    pub(crate) fn is_settled(&self, d: DeliveryRef) -> bool {
        match self.engine() {
            Ok(Some(e)) => e.is_settled(d),
            Ok(None) => match self.wire(&d) {
                // A delivery of a previous owner can no longer be settled.
                Err(_) => true,
                Ok(delivery) => !matches!(
                    self.client()
                        .call_in(Request::IsSettled { delivery }, d.origin),
                    Ok(Response::Flag(false))
                ),
            },
            Err(_) => false,
        }
    }

    pub(crate) fn commit_txn(&self, mut spec: TxnSpec) -> Result<Vec<MessageId>> {
        for (_, m) in &mut spec.sends {
            drop_reserved_key(m);
        }
        match self.writer("committing a transaction")? {
            Some(e) => e.commit_txn(&spec),
            None => {
                let c = self.client();
                // The connection the acks were handed out on (one, or `wire` fails).
                let built = spec.acks.first().map(|d| d.origin);
                let acks = spec
                    .acks
                    .iter()
                    .map(|d| self.wire(d))
                    .collect::<Result<Vec<_>>>()?;
                let sends = spec
                    .sends
                    .into_iter()
                    .map(|(to, mut m)| {
                        c.stamp(&mut m);
                        match to {
                            TxnDest::Queue(q) => (WireDest::Queue(q.0), m),
                            TxnDest::Topic(t) => (WireDest::Topic(t.to_string()), m),
                        }
                    })
                    .collect();
                let req = Request::Commit { sends, acks };
                let r = match built {
                    Some(epoch) => c.call_in(req, epoch)?,
                    None => c.call(req)?,
                };
                match r {
                    Response::Ids(ids) => {
                        // The earlier lazy acks' answers came before this one's.
                        c.take_ack_errors()?;
                        Ok(ids)
                    }
                    r => Err(unexpected(r)),
                }
            }
        }
    }
    pub(crate) fn txn_claim(&self, d: DeliveryRef) -> Result<()> {
        match self.writer("a transaction's ack")? {
            Some(e) => e.txn_claim(d),
            None => {
                let delivery = self.wire(&d)?;
                self.client()
                    .call_in(Request::TxnClaim { delivery }, d.origin)
                    .map(|_| ())
            }
        }
    }

    pub(crate) fn topic_stats(&self, topic: &str) -> Result<TopicStats> {
        match self.engine()? {
            Some(e) => e.topic_stats(topic),
            None => match self.client().call(Request::TopicStats {
                topic: topic.to_string(),
            })? {
                Response::TopicStats(s) => Ok(s),
                r => Err(unexpected(r)),
            },
        }
    }

    /// Attaches a subscriber; returns the subscription's queue and name.
    pub(crate) fn subscribe(
        &self,
        pattern: &str,
        options: &SubscriptionOptions,
    ) -> Result<(QueueId, String)> {
        match self.writer("subscribing")? {
            Some(e) => e.subscribe(pattern, options),
            None => self
                .client()
                .subscribe(pattern, options)
                .map(|(q, n)| (QueueId(q), n)),
        }
    }

    /// Detaches a subscriber (a non-durable subscription ends with its last one).
    pub(crate) fn close_subscription(&self, q: QueueId) -> Result<()> {
        match self.writer("closing a subscription")? {
            Some(e) => e.close_subscription(q),
            None => self.client().close_subscription(q.0),
        }
    }

    pub(crate) fn unsubscribe(&self, name: &str) -> Result<()> {
        match self.writer("unsubscribing")? {
            Some(e) => e.unsubscribe(name),
            None => self
                .client()
                .call(Request::Unsubscribe {
                    name: name.to_string(),
                })
                .map(|_| ()),
        }
    }

    pub(crate) fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        match self.engine() {
            Ok(Some(e)) => e.subscriptions(),
            Ok(None) => match self.client().call(Request::Subscriptions) {
                Ok(Response::Subscriptions(v)) => v,
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        }
    }
}
