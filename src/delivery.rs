//! Receiving: deliveries and how they are settled, consumers and listeners. Each call is one
//! engine request naming the delivery by (queue, message id, delivery tag).

use std::borrow::Cow;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::record::MAX_REASON_BYTES;
use crate::engine::{
    mark_library_thread, on_library_thread, ConsumerId, DeliveryRef, Received, Settle,
};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::{AckMode, ConsumerOptions};
use crate::queue::Queue;

/// One hand-over of a message to a consumer. Settle it with [`ack`](Delivery::ack),
/// [`nack`](Delivery::nack), [`reject`](Delivery::reject) or [`release`](Delivery::release).
/// Dropping it unsettled counts as a failed delivery (explicit ack mode).
pub struct Delivery {
    queue: Queue,
    message: Message,
    count: u32,
    tag: crate::engine::DeliveryTag,
    consumer: ConsumerId,
    /// Settled through this handle (or handed over already settled: auto-ack).
    settled: bool,
    /// Which connection to the store's owner handed it out (0: this process's engine).
    origin: u64,
    mode: AckMode,
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
    fn new(
        queue: &Queue,
        consumer: ConsumerId,
        mode: AckMode,
        origin: u64,
        r: Received,
    ) -> Delivery {
        Delivery {
            queue: queue.clone(),
            message: r.message,
            count: r.count,
            tag: r.tag,
            consumer,
            settled: mode == AckMode::Auto,
            origin,
            mode,
        }
    }

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

    /// Whether it is settled: by this handle, by a cumulative ack of a later delivery, by a
    /// transaction, or because it timed out or its consumer was closed (settling it then fails
    /// with `AlreadySettled`).
    pub fn is_settled(&self) -> bool {
        self.settled || self.queue.engine.is_settled(self.reference())
    }

    /// How the engine names this delivery.
    pub(crate) fn reference(&self) -> DeliveryRef {
        DeliveryRef {
            queue: self.queue.id,
            id: self.id(),
            tag: self.tag,
            consumer: self.consumer,
            origin: self.origin,
            count: self.count,
        }
    }

    /// Notes that a transaction owns it now (see [`crate::Transaction::ack`]): no consumer
    /// does any more.
    pub(crate) fn claimed_by_transaction(&mut self) {
        self.consumer = ConsumerId::NONE;
    }

    /// Marks it settled by someone else (a committed transaction).
    pub(crate) fn mark_settled(&mut self) {
        self.settled = true;
    }

    fn settle(mut self, op: Settle<'_>) -> Result<()> {
        self.settle_in_place(op)
    }

    /// Settles without consuming: after an `InvalidArgument` (refused before anything changed)
    /// it is still unsettled.
    fn settle_in_place(&mut self, op: Settle<'_>) -> Result<()> {
        if self.settled {
            return Err(Error::new(
                ErrorKind::AlreadySettled,
                format!("{} is already settled", self.id()),
            ));
        }
        if let Settle::Nack { reason, .. } | Settle::Reject { reason } = op {
            // Checked before the handle counts as settled, in every face and for a remote
            // owner alike (review r5 #11: a refused nack used to settle the delivery).
            check_reason(reason)?;
        }
        self.settled = true;
        let r = self.queue.engine.settle(self.reference(), op);
        if matches!(&r, Err(e) if e.kind() == ErrorKind::InvalidArgument) {
            // Refused before anything changed (an oversized reason): still in flight, so the
            // drop that follows fails the delivery instead of leaving it in flight for good.
            self.settled = false;
        }
        r
    }

    /// Acknowledges: the message is done. In cumulative mode, also acks everything this
    /// consumer received before it.
    ///
    /// Lazy by default (as RabbitMQ consumer acks, JMS `DUPS_OK_ACKNOWLEDGE`): it returns once
    /// the ack is queued for the next group commit, which follows within about a millisecond
    /// without waiting for more traffic. A crash before that commit delivers the message again
    /// with `redelivered() == true`; it is never lost. The ack is durable once
    /// [`ack_sync`](Delivery::ack_sync) or any later durable call of the same store (a sync
    /// send, a transaction commit, [`Store::flush`](crate::Store::flush)) returned, or the store
    /// was closed. With the queue option
    /// `ack_durability: Some(AckDurability::Sync)` it is [`ack_sync`](Delivery::ack_sync).
    ///
    /// **From a client process** (a store another process owns: SPEC §10) a lazy ack of a plain
    /// receive's or an explicit-mode consumer's delivery goes one way, without waiting for the
    /// owner (issue 10): it is written with the next request, or within about a millisecond,
    /// or at `close`. An error the owner finds then (the delivery timed out and was
    /// redelivered, say) cannot be returned by this call: it is reported once, as
    /// `DeliveryLost` ("n lazy acks failed: first: …"), by the client's next
    /// [`ack_sync`](Delivery::ack_sync), [`Queue::ack_batch_sync`],
    /// [`Store::flush`](crate::Store::flush), transaction commit or
    /// [`Store::close`](crate::Store::close). Errors known at the call (`AlreadySettled` for a
    /// second settle, `DeliveryLost` for a delivery of an earlier owner) are returned at once.
    pub fn ack(self) -> Result<()> {
        self.settle(Settle::Ack)
    }

    /// Acknowledges and returns only once the ack is durable (fdatasync'd): the message is
    /// never delivered again, even after a crash or power loss.
    pub fn ack_sync(self) -> Result<()> {
        self.settle(Settle::AckSync)
    }

    /// A failed delivery: the redelivery policy decides when it comes back, or whether it goes
    /// to the dead-letter queue. `reason` is kept as the last failure text (at most
    /// [`MAX_REASON_BYTES`]: a longer one is `InvalidArgument`, refused before anything changed;
    /// this consuming call then drops the delivery, which counts as failed with its own text —
    /// [`try_nack`](Delivery::try_nack) keeps it held instead, and [`truncate_reason`] shortens a
    /// text the caller did not write itself).
    pub fn nack(self, reason: &str) -> Result<()> {
        self.settle(Settle::Nack {
            reason,
            delay: None,
        })
    }

    /// Like [`nack`](Delivery::nack), but redelivered after `delay` instead of the policy's delay
    /// (the policy still decides when to dead-letter).
    pub fn nack_with_delay(self, reason: &str, delay: Duration) -> Result<()> {
        self.settle(Settle::Nack {
            reason,
            delay: Some(delay),
        })
    }

    /// [`nack`](Delivery::nack) that keeps the delivery when the nack is refused before anything
    /// changed (`InvalidArgument`: a reason over [`MAX_REASON_BYTES`]): it is still held and
    /// unsettled, to be nacked again, acked or released. After `Ok` or any other error it is
    /// settled (a later settle is `AlreadySettled`). The C and Python faces' nack.
    pub fn try_nack(&mut self, reason: &str) -> Result<()> {
        self.settle_in_place(Settle::Nack {
            reason,
            delay: None,
        })
    }

    /// [`nack_with_delay`](Delivery::nack_with_delay) that keeps the delivery when refused
    /// before anything changed, as [`try_nack`](Delivery::try_nack).
    pub fn try_nack_with_delay(&mut self, reason: &str, delay: Duration) -> Result<()> {
        self.settle_in_place(Settle::Nack {
            reason,
            delay: Some(delay),
        })
    }

    /// Poison: straight to the dead-letter queue with reason `rejected` (`reason` at most
    /// 32 KiB, as for [`nack`](Delivery::nack)). The move stores a copy of the message: on a
    /// full disk it fails with `NoSpace` and the message stays in its queue, ready again
    /// (`mqlite::docs::durability`).
    ///
    /// A message of a dead-letter queue is a dead letter already: its reject is refused with
    /// `InvalidArgument` ("a dead letter cannot be dead-lettered again": ack it to delete it,
    /// or replay it) instead of dropping it silently (review r4 #16). The refused delivery,
    /// dropped here, counts as failed and comes back; [`try_reject`](Delivery::try_reject)
    /// keeps it.
    pub fn reject(self, reason: &str) -> Result<()> {
        self.settle(Settle::Reject { reason })
    }

    /// [`reject`](Delivery::reject) that keeps the delivery when the reject is refused before
    /// anything changed (`InvalidArgument`: a message of a dead-letter queue, a reason over
    /// 32 KiB): it is still held, to be acked, released or nacked. After `Ok` or any other
    /// error it is settled (a later settle is `AlreadySettled`). The C and Python faces'
    /// reject.
    pub fn try_reject(&mut self, reason: &str) -> Result<()> {
        self.settle_in_place(Settle::Reject { reason })
    }

    /// Gives the message back without counting a failure (e.g. on graceful shutdown).
    pub fn release(self) -> Result<()> {
        self.settle(Settle::Release)
    }
}

/// Refuses a failure text over [`MAX_REASON_BYTES`] with `InvalidArgument` (the engine checks
/// again: a remote owner's requests reach it without passing here).
pub(crate) fn check_reason(reason: &str) -> Result<()> {
    if reason.len() > MAX_REASON_BYTES {
        return Err(Error::invalid(format!(
            "failure reason of {} bytes is over the limit of {MAX_REASON_BYTES} bytes",
            reason.len()
        )));
    }
    Ok(())
}

/// What a failure text longer than [`MAX_REASON_BYTES`] is cut to: its first bytes, on a char
/// boundary, followed by this marker, `MAX_REASON_BYTES` bytes at most in all.
pub const REASON_ELLIPSIS: &str = "…";

/// A failure text that fits a settle: `text` itself when it is at most [`MAX_REASON_BYTES`]
/// (UTF-8 bytes), else its longest prefix that ends on a char boundary and leaves room for
/// [`REASON_ELLIPSIS`], followed by it. For the texts a program composes rather than writes
/// (an exception's `"Type: text"`, a broker's error, a listener handler's `Err`): the library
/// uses it for every reason it builds itself, so that a long exception text is kept in part
/// instead of replacing the failure by `InvalidArgument` (review r5 #11). A reason passed to
/// `nack`/`reject` is never cut: a long one there is refused.
pub fn truncate_reason(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_REASON_BYTES {
        return Cow::Borrowed(text);
    }
    let mut end = MAX_REASON_BYTES - REASON_ELLIPSIS.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}{REASON_ELLIPSIS}", &text[..end]))
}

impl Drop for Delivery {
    fn drop(&mut self) {
        if self.settled || self.mode != AckMode::Explicit {
            return;
        }
        self.settled = true;
        self.queue.engine.settle_on_drop(self.reference());
    }
}

impl Queue {
    /// Receives one message, waiting up to `timeout` (`None` = forever). The delivery must be
    /// settled; dropping it unsettled counts as a failed delivery.
    pub fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        Ok(self.receive_batch(1, timeout)?.pop())
    }

    /// Receives up to `n` messages, waiting up to `timeout` for the first; their delivery
    /// counts are made durable with one record before they are handed over.
    pub fn receive_batch(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<Delivery>> {
        let (origin, got) = self.engine.receive(self.id, ConsumerId::NONE, n, timeout)?;
        Ok(got
            .into_iter()
            .map(|r| Delivery::new(self, ConsumerId::NONE, AckMode::Explicit, origin, r))
            .collect())
    }

    /// A consumer with its own ack mode; its unsettled deliveries return to the queue (as
    /// failures) when it is dropped. On a closed store it is closed from the start (receiving
    /// fails with `Closed`).
    ///
    /// The consumer prefetches up to `options.prefetch` messages (default: the queue's) with
    /// one durable delivery-count record; those not yet handed out go back uncounted when it is
    /// dropped. An invalid prefetch makes a consumer whose receives fail with that error.
    pub fn consumer(&self, options: ConsumerOptions) -> Consumer {
        let id = options.validate().and_then(|()| {
            self.engine
                .open_consumer(self.id, options.ack_mode, options.prefetch)
        });
        Consumer {
            queue: self.clone(),
            id,
            mode: options.ack_mode,
            selector: None,
        }
    }

    /// A consumer that receives only the messages `selector` (a JMS message selector, see
    /// [`crate::selector`]) selects, wherever they sit in the queue; the others stay for other
    /// consumers (JMS `createConsumer(queue, selector)`). Each receive reads the waiting
    /// messages ahead of its matches (their properties are on disk): to pick one kind of
    /// message out of a large backlog often, subscribe to a topic with that selector instead.
    ///
    /// Errors: `InvalidArgument` naming the character position of a selector that does not
    /// parse.
    pub fn consumer_with_selector(
        &self,
        options: ConsumerOptions,
        selector: &str,
    ) -> Result<Consumer> {
        let selector = crate::selector::Selector::parse(selector)?;
        let mut c = self.consumer(options);
        c.selector = (!selector.is_select_all()).then(|| std::sync::Arc::new(selector));
        Ok(c)
    }

    /// Starts a listener: `handler` runs on a library thread for each message; `Ok` acks it and
    /// `Err(reason)` nacks it (a panic nacks too). Stops when the [`Listener`] is dropped.
    pub fn listen<F>(&self, handler: F) -> Result<Listener>
    where
        F: FnMut(&Delivery) -> std::result::Result<(), String> + Send + 'static,
    {
        Listener::start(self.clone(), handler)
    }

    /// Acks many deliveries of this queue with one record and one wait. Everything is checked
    /// before anything is settled: refused (a delivery of another queue), the deliveries are
    /// dropped unsettled (failed deliveries). A delivery that is no longer in flight under its
    /// tag (timed out, redelivered) is not acked: the others are, and the call fails with
    /// `AlreadySettled` naming it.
    ///
    /// The acks are lazy like [`Delivery::ack`] (unless the queue's ack durability is `Sync`):
    /// the next receive's delivery record shares their commit, so a loop of `receive_batch` and
    /// `ack_batch` pays one fsync per cycle. [`ack_batch_sync`](Queue::ack_batch_sync) waits.
    pub fn ack_batch(&self, deliveries: Vec<Delivery>) -> Result<()> {
        self.ack_many(deliveries, false)
    }

    /// [`ack_batch`](Queue::ack_batch) that returns only once the acks are durable.
    pub fn ack_batch_sync(&self, deliveries: Vec<Delivery>) -> Result<()> {
        self.ack_many(deliveries, true)
    }

    /// Releases every delivery of `deliveries` ([`Delivery::release`]: back to the queue, no
    /// failure counted) in one operation with one commit: durable when this returns, at the
    /// cost of one fdatasync for the whole batch (a release each costs one each). Deliveries
    /// already settled are skipped.
    ///
    /// Errors: `InvalidArgument` (nothing released) if one is not a delivery of this queue;
    /// `AlreadySettled` naming those settled by a timeout or another handle meanwhile (the
    /// others are released); `Closed`.
    pub fn release_batch(&self, mut deliveries: Vec<Delivery>) -> Result<()> {
        self.check_own(&deliveries)?;
        let mut refs = Vec::with_capacity(deliveries.len());
        for d in deliveries.iter_mut().filter(|d| !d.settled) {
            d.settled = true;
            refs.push(d.reference());
        }
        self.engine.release_batch(self.id, &refs)
    }

    /// `InvalidArgument` unless every delivery of `deliveries` is one of this queue.
    fn check_own(&self, deliveries: &[Delivery]) -> Result<()> {
        if let Some(d) = deliveries.iter().find(|d| !d.queue.same(self)) {
            return Err(Error::invalid(format!(
                "{} is not a delivery of queue {:?} of this store",
                d.id(),
                self.name()
            )));
        }
        Ok(())
    }

    fn ack_many(&self, mut deliveries: Vec<Delivery>, sync: bool) -> Result<()> {
        self.check_own(&deliveries)?;
        let mut refs = Vec::with_capacity(deliveries.len());
        for d in deliveries.iter_mut().filter(|d| !d.settled) {
            d.settled = true;
            refs.push(d.reference());
        }
        self.engine.ack_batch(self.id, &refs, sync)
    }
}

/// A consumer of one queue with its own ack mode. Dropping it returns its unsettled deliveries
/// to the queue as failed deliveries.
pub struct Consumer {
    queue: Queue,
    /// Its id, or why it could not be opened (a closed or poisoned store).
    id: Result<ConsumerId>,
    mode: AckMode,
    /// A selective consumer's selector.
    selector: Option<std::sync::Arc<crate::selector::Selector>>,
}

impl Consumer {
    /// Receives one message, waiting up to `timeout` (`None` = forever).
    pub fn receive(&self, timeout: Option<Duration>) -> Result<Option<Delivery>> {
        Ok(self.receive_batch(1, timeout)?.pop())
    }

    /// Receives up to `n` messages.
    pub fn receive_batch(&self, n: usize, timeout: Option<Duration>) -> Result<Vec<Delivery>> {
        let id = self.id.clone()?;
        let engine = &self.queue.engine;
        let (origin, got) = match &self.selector {
            None => engine.receive(self.queue.id, id, n, timeout)?,
            Some(s) => engine.receive_selected(self.queue.id, id, n, timeout, s)?,
        };
        Ok(got
            .into_iter()
            .map(|r| Delivery::new(&self.queue, id, self.mode, origin, r))
            .collect())
    }

    /// The queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Ok(id) = self.id {
            self.queue.engine.close_consumer(id);
        }
    }
}

/// How many ready messages a listener takes at once.
const LISTENER_BATCH: usize = 32;

/// A running message listener; dropping it (or calling [`stop`](Listener::stop)) stops it.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// `fork()`s of this process before it started (see `Listener::halt`).
    fork_gen: u64,
}

impl Listener {
    fn start<F>(queue: Queue, mut handler: F) -> Result<Listener>
    where
        F: FnMut(&Delivery) -> std::result::Result<(), String> + Send + 'static,
    {
        queue.engine.check()?;
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
                    let Ok(ds) =
                        consumer.receive_batch(LISTENER_BATCH, Some(Duration::from_millis(50)))
                    else {
                        break;
                    };
                    let mut ok = Vec::with_capacity(ds.len());
                    for d in ds {
                        let r =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(&d)));
                        match r {
                            Ok(Ok(())) => ok.push(d),
                            // The handler's text is a composed one (an error's display): cut
                            // rather than refused, or the failure would lose its reason.
                            Ok(Err(reason)) => drop(d.nack(&truncate_reason(&reason))),
                            Err(_) => drop(d.nack("the listener panicked")),
                        }
                    }
                    if !ok.is_empty() {
                        let _ = consumer.queue().ack_batch(ok);
                    }
                }
            })
            .map_err(|e| Error::io("starting a listener thread", &e))?;
        Ok(Listener {
            stop,
            thread: Some(thread),
            fork_gen: crate::remote::fork_generation(),
        })
    }

    /// Whether its thread still takes messages: false once it ended, which it does when its
    /// store is closed or poisoned (after the message in hand), not only when stopped.
    pub fn is_running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the listener and waits for its thread (unless called from that thread).
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            if self.forked() {
                // A fork() child: the thread exists only in the parent (joining it panicked,
                // review r12 #7). Left alone: the parent's listener goes on.
                return;
            }
            if !on_library_thread() || t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }

    fn forked(&self) -> bool {
        self.fork_gen != crate::remote::fork_generation()
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
#[cfg(feature = "capi")]
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
