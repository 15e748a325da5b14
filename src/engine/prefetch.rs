//! Prefetch (JMS prefetch): a consumer takes up to `prefetch` messages with ONE durable
//! delivery-count record and hands them out one by one from its buffer, so "receive one, ack
//! one" costs a fraction of an fsync per message.
//!
//! A prefetched message is in flight (its count is durable, so a crash counts it as one failed
//! delivery) but not handed out: it has no ack deadline yet, its tag is known to nobody, and
//! stats count it as `prefetched`, not `in_flight`. It leaves the buffer in three ways:
//! - handed out by its consumer's next receive ([`State::pop_buffered`]);
//! - taken by a competing consumer of the same queue that found the queue empty
//!   ([`State::steal`]): the count already paid for this delivery, so no record is needed, and no
//!   consumer waits while another's buffer holds messages;
//! - given back uncounted (a REQUEUE record with the count before the prefetch) when its
//!   consumer closes, when the store closes, and before a browse or purge of the queue
//!   ([`State::unbuffer`]), so those see every message that is not handed out.
//!
//! A client process's consumer prefetches into its own process: the owner *lends* it the
//! consumer's prefetched messages ([`State::lend`]), which stay `prefetched` here (not handed
//! out, no ack deadline, their count durable) until the client says it handed them out
//! ([`State::lent_handed_out`]: their ack deadlines start then) or gives them back uncounted
//! ([`State::lent_returned`]: at its consumer's close, or when recalled because a competing
//! consumer waits with nothing ready — [`State::recall_targets`]). Nothing here takes a lent
//! message back by itself: only the client knows whether it handed it out. A client that dies
//! with lent messages has them fail with its consumer (one failed delivery each, as a crashed
//! prefetching consumer's); an owner's clean close hands them over with its other deliveries.
//!
//! The plain `receive` of a queue (every face's `queue.receive()`) is served by one consumer per
//! queue made at its first receive ([`State::consumer_for`]), closed with the store. Requests from
//! any face (or another process) go through the same buffers: prefetch lives in the engine.

use super::queue::Entry;
use super::{ConsumerId, DeliveryTag, Engine, QueueId, RecallHook, Received, State};
use crate::message::Message;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::options::{AckMode, StoreOptions};

/// A message taken for a consumer and not yet handed out.
#[derive(Debug)]
pub(crate) struct Prefetched {
    pub id: u64,
    pub tag: DeliveryTag,
    pub count: u32,
    pub message: Message,
}

impl State {
    /// The consumer that serves `consumer`'s receives of queue `qid`: itself, or for a plain
    /// receive ([`ConsumerId::NONE`]) the queue's own consumer (made now if it is the first).
    pub fn consumer_for(&mut self, qid: u32, consumer: ConsumerId) -> u64 {
        if consumer != ConsumerId::NONE {
            return consumer.0;
        }
        if let Some(&c) = self.plain.get(&qid) {
            return c;
        }
        let c = self.open_consumer(qid, AckMode::Explicit, None).0;
        self.plain.insert(qid, c);
        c
    }

    /// How many messages a take for consumer `cid` asks for when the receive wants `n`.
    pub fn fill_size(&self, cid: u64, n: usize) -> usize {
        self.consumers.get(&cid).map_or(n, |c| c.prefetch.max(n))
    }

    /// Hands out up to `n` buffered messages of consumer `cid` (queue `qid`): starts their ack
    /// deadlines and, for a cumulative consumer, lists them. A buffered message that expired
    /// meanwhile is moved out as an expired message instead.
    pub fn pop_buffered(
        &mut self,
        qid: u32,
        cid: u64,
        n: usize,
        now: u64,
        store: &StoreOptions,
    ) -> crate::error::Result<Vec<Received>> {
        let mut out = Vec::new();
        while out.len() < n {
            let Some(c) = self.consumers.get_mut(&cid) else {
                break;
            };
            let Some(p) = c.buffer.pop_front() else { break };
            // None: no longer this delivery's (cannot happen: nobody knows its tag), or expired.
            let Some(e) = self.unexpired_buffered(qid, &p, now, store)? else {
                continue;
            };
            self.hand_out(qid, cid, &e, p.tag, now);
            out.push(Received {
                message: p.message,
                tag: p.tag,
                count: p.count,
            });
        }
        Ok(out)
    }

    /// Marks delivery `tag` of `e` as handed out to consumer `cid`: its ack deadline starts now,
    /// and a cumulative consumer lists it.
    pub fn hand_out(&mut self, qid: u32, cid: u64, e: &Entry, tag: DeliveryTag, now: u64) {
        let q = &mut self.queues[qid as usize];
        if let Some(t) = q.opts.ack_timeout_ms {
            if let Some(f) = q.inflight.get_mut(&e.id) {
                f.deadline = crate::clock::due_after(now, t);
            }
        }
        if let Some(c) = self.consumers.get_mut(&cid) {
            if c.mode == AckMode::Cumulative {
                c.received.push_back((e.id, tag));
            }
        }
    }

    /// Consumer `cid` found queue `qid` empty: takes half (at least one) of the fullest buffer
    /// of another consumer of the queue. Returns whether it took any. (An auto-ack consumer
    /// takes nothing: its hand-overs need an ACK record, not the DELIVER these have.)
    pub fn steal(&mut self, qid: u32, cid: u64) -> bool {
        if self
            .consumers
            .get(&cid)
            .is_none_or(|c| c.mode == AckMode::Auto)
        {
            return false;
        }
        let victim = self
            .consumers
            .iter()
            .filter(|(&id, c)| id != cid && c.qid == qid && !c.buffer.is_empty())
            .max_by_key(|(_, c)| c.buffer.len())
            .map(|(&id, _)| id);
        let Some(victim) = victim else { return false };
        let Some(v) = self.consumers.get_mut(&victim) else {
            return false;
        };
        let keep = v.buffer.len() / 2;
        let taken: Vec<Prefetched> = v.buffer.drain(keep..).collect();
        let q = &mut self.queues[qid as usize];
        for p in &taken {
            if let Some(f) = q.inflight.get_mut(&p.id) {
                f.consumer = cid;
            }
        }
        if let Some(c) = self.consumers.get_mut(&cid) {
            c.buffer.extend(taken);
        }
        true
    }

    /// Gives every buffered message of consumer `cid` back to its queue, uncounted (REQUEUE
    /// records with the count before the prefetch). Returns how many.
    pub fn unbuffer(&mut self, cid: u64, now: u64) -> usize {
        let Some(c) = self.consumers.get_mut(&cid) else {
            return 0;
        };
        let qid = c.qid;
        let buffer = std::mem::take(&mut c.buffer);
        let n = buffer.len();
        for p in buffer {
            if self.release(qid, p.id, Some(p.tag), now).is_ok() && p.count > 1 {
                // It was counted as a redelivery when taken, but was never handed out.
                let c = &mut self.queues[qid as usize].counters;
                c.redelivered = c.redelivered.saturating_sub(1);
            }
        }
        n
    }

    /// [`unbuffer`](State::unbuffer) for every consumer of queue `qid` (`None`: of every queue).
    pub fn unbuffer_all(&mut self, qid: Option<u32>, now: u64) -> usize {
        let ids: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(_, c)| qid.is_none_or(|q| c.qid == q) && !c.buffer.is_empty())
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter().map(|id| self.unbuffer(id, now)).sum()
    }

    /// The oldest (lowest id) message of queue `qid` prefetched by a consumer and not handed
    /// out yet.
    pub fn oldest_prefetched(&self, qid: u32) -> Option<u64> {
        self.consumers
            .values()
            .filter(|c| c.qid == qid)
            .flat_map(|c| c.buffer.iter().map(|p| p.id))
            .min()
    }

    /// Gives prefetched message `id` of queue `qid` back to the queue, uncounted, from
    /// whichever consumer's buffer holds it (as [`unbuffer`](State::unbuffer) does for a whole
    /// buffer; nobody knows its tag, so no delivery is lost). Returns whether it was buffered.
    pub fn unbuffer_one(&mut self, qid: u32, id: u64, now: u64) -> bool {
        let Some(p) = self
            .consumers
            .values_mut()
            .filter(|c| c.qid == qid)
            .find_map(|c| {
                let i = c.buffer.iter().position(|p| p.id == id)?;
                c.buffer.remove(i)
            })
        else {
            return false;
        };
        if self.release(qid, p.id, Some(p.tag), now).is_ok() && p.count > 1 {
            let c = &mut self.queues[qid as usize].counters;
            c.redelivered = c.redelivered.saturating_sub(1);
        }
        true
    }

    /// Messages of queue `qid` prefetched and not yet handed out (lent ones included).
    pub fn prefetched(&self, qid: u32) -> u64 {
        self.consumers
            .values()
            .filter(|c| c.qid == qid)
            .map(|c| (c.buffer.len() + c.lent.len()) as u64)
            .sum()
    }

    /// The in-flight entry of buffered message `p` of queue `qid` as it leaves a buffer (handed
    /// out, or lent): `None` when it is no longer that delivery's, or when it expired meanwhile
    /// — then it is moved out as an expired message (dead-lettered or dropped) here.
    fn unexpired_buffered(
        &mut self,
        qid: u32,
        p: &Prefetched,
        now: u64,
        store: &StoreOptions,
    ) -> crate::error::Result<Option<Entry>> {
        let q = &mut self.queues[qid as usize];
        let Some(f) = q.inflight.get(&p.id).filter(|f| f.tag == p.tag.0) else {
            return Ok(None);
        };
        let e = f.entry;
        if e.expires_at != 0 && e.expires_at <= now {
            q.inflight.remove(&p.id);
            q.hold(e);
            q.counters.expired += 1;
            let process = q.opts.process_expired;
            self.expire(qid, e.id, process, now, store)?;
            return Ok(None);
        }
        Ok(Some(e))
    }

    /// Lends up to `n` of consumer `cid`'s buffered messages (queue `qid`) to its client
    /// process, which hands them out itself: they stay prefetched (no ack deadline) until
    /// [`lent_handed_out`](State::lent_handed_out) or [`lent_returned`](State::lent_returned).
    /// Lends nothing while another receive of the queue waits (it would be starved by them),
    /// nor for a consumer that is not in explicit ack mode, and no more than `max_bytes` of
    /// bodies. A buffered message that expired meanwhile is moved out as an expired message
    /// instead, as at a hand-out.
    pub fn lend(
        &mut self,
        qid: u32,
        cid: u64,
        n: usize,
        max_bytes: usize,
        now: u64,
        store: &StoreOptions,
    ) -> crate::error::Result<Vec<Received>> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        if self.no_lending || self.queues[qid as usize].receivers_waiting > 0 {
            return Ok(out);
        }
        while out.len() < n {
            let Some(c) = self.consumers.get_mut(&cid) else {
                break;
            };
            if c.mode != AckMode::Explicit {
                break;
            }
            let Some(p) = c.buffer.pop_front() else { break };
            let len = p.message.body.len();
            if bytes.saturating_add(len) > max_bytes {
                c.buffer.push_front(p);
                break;
            }
            bytes += len;
            if self.unexpired_buffered(qid, &p, now, store)?.is_none() {
                continue;
            }
            if let Some(c) = self.consumers.get_mut(&cid) {
                c.lent.insert(p.id, (p.tag, p.count));
                c.recalled = false;
            }
            out.push(Received {
                message: p.message,
                tag: p.tag,
                count: p.count,
            });
        }
        Ok(out)
    }

    /// The client of consumer `cid` (queue `qid`) handed out lent messages `items` (id, tag):
    /// they are in flight now (their ack deadlines start). Unknown ones are skipped (settled
    /// already, or not lent). Returns how many were lent.
    pub fn lent_handed_out(&mut self, qid: u32, cid: u64, items: &[(u64, u64)], now: u64) -> usize {
        let mut n = 0;
        for &(id, tag) in items {
            let Some(c) = self.consumers.get_mut(&cid) else {
                break;
            };
            if c.lent.get(&id).is_none_or(|l| l.0 .0 != tag) {
                continue;
            }
            c.lent.remove(&id);
            n += 1;
            let Some(e) = self.queues[qid as usize]
                .inflight
                .get(&id)
                .filter(|f| f.tag == tag)
                .map(|f| f.entry)
            else {
                continue;
            };
            self.hand_out(qid, cid, &e, DeliveryTag(tag), now);
        }
        n
    }

    /// The client of consumer `cid` (queue `qid`) gives back lent messages `items` (id, tag)
    /// it did not hand out: back to the queue uncounted, as an unbuffered message. Returns how
    /// many were lent.
    pub fn lent_returned(&mut self, qid: u32, cid: u64, items: &[(u64, u64)], now: u64) -> usize {
        let mut n = 0;
        for &(id, tag) in items {
            let Some(c) = self.consumers.get_mut(&cid) else {
                break;
            };
            let Some((t, count)) = c.lent.get(&id).copied().filter(|l| l.0 .0 == tag) else {
                continue;
            };
            c.lent.remove(&id);
            n += 1;
            if self.release(qid, id, Some(t), now).is_ok() && count > 1 {
                // Counted as a redelivery when taken, but never handed out.
                let c = &mut self.queues[qid as usize].counters;
                c.redelivered = c.redelivered.saturating_sub(1);
            }
        }
        n
    }

    /// Whether another consumer of queue `qid` than `cid` holds lent messages it was asked to
    /// give back.
    pub fn recalled_lent(&self, qid: u32, cid: u64) -> bool {
        self.consumers
            .iter()
            .any(|(&id, c)| id != cid && c.qid == qid && c.recalled && !c.lent.is_empty())
    }

    /// Consumer `cid` found queue `qid` empty: the other consumers of the queue holding lent
    /// messages that were not recalled since they were lent. Marks them recalled (the caller
    /// asks their clients to give back what they did not hand out).
    pub fn recall_targets(&mut self, qid: u32, cid: u64) -> Vec<u64> {
        let mut out = Vec::new();
        for (&id, c) in self.consumers.iter_mut() {
            if id != cid && c.qid == qid && !c.lent.is_empty() && !c.recalled {
                c.recalled = true;
                out.push(id);
            }
        }
        out
    }
}

/// How long a purge, or a receive that finds its queue empty, waits for client processes to
/// give back what was lent to them. A client answers within a round trip, or as it closes; the
/// bound is for one that does not answer at all (stopped, hung). 1 s was too short on a loaded
/// machine: six competing `receive` processes on 2 busy cores saw two "empty" answers in CI
/// while a client that was exiting gave its lent messages back.
pub(super) const LENT_RECALL_WAIT: Duration = Duration::from_secs(5);

impl Engine {
    /// Sets what asks client processes to give back lent messages (an owner's server).
    pub(crate) fn set_recall_hook(&self, hook: Option<RecallHook>) {
        *self.shared.recall.lock().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    /// Asks the clients of `consumers` (of queue `q`) to give back what was lent to them.
    pub(super) fn recall(&self, q: u32, consumers: &[u64]) {
        let hook = self
            .shared
            .recall
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(h) = hook {
            h(q, consumers);
        }
    }

    /// Lends up to `n` of `consumer`'s prefetched messages of queue `q` to its client process
    /// (see [`State::lend`]). `consumer` [`ConsumerId::NONE`] is refused: a client's plain
    /// receives have a consumer of their own in the owner.
    pub(crate) fn lend(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        max_bytes: usize,
    ) -> Result<Vec<Received>> {
        if consumer == ConsumerId::NONE || n == 0 {
            return Ok(Vec::new());
        }
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        let out = g.lend(q.0, consumer.0, n, max_bytes, now, &shared.opts)?;
        if !g.moves.is_empty() {
            g = self.finish_moves(g)?;
        }
        self.kick_unless_lazy(&g);
        Ok(out)
    }

    /// Asks every client holding lent messages of queue `qid` to give back what it did not
    /// hand out, and waits (at most [`LENT_RECALL_WAIT`]) until those messages are back or
    /// handed out (a purge takes what is not handed out). A client that does not answer in
    /// time keeps them: they are then as handed out.
    pub(super) fn take_back_lent<'a>(&'a self, g: super::Guard<'a>, qid: u32) -> super::Guard<'a> {
        self.take_back_lent_of(g, Some(qid))
    }

    /// An owner's clean close: takes back what was lent to client processes and not handed
    /// out (as [`take_back_lent`](Engine::take_back_lent), for every queue), before it stops
    /// reading their requests, so that those messages go back uncounted (as a closing owner's
    /// own prefetch buffers do) rather than be handed over as deliveries the clients hold.
    pub(crate) fn take_back_all_lent(&self) {
        let mut g = self.shared.lock();
        g.no_lending = true;
        drop(self.take_back_lent_of(g, None));
    }

    fn take_back_lent_of<'a>(&'a self, g: super::Guard<'a>, qid: Option<u32>) -> super::Guard<'a> {
        let of = |c: &super::state::ConsumerState| qid.is_none_or(|q| c.qid == q);
        let lent: std::collections::HashSet<(u32, u64)> = g
            .consumers
            .values()
            .filter(|c| of(c))
            .flat_map(|c| c.lent.keys().map(|&id| (c.qid, id)))
            .collect();
        if lent.is_empty() {
            return g;
        }
        let mut targets: std::collections::BTreeMap<u32, Vec<u64>> = Default::default();
        for (&id, c) in g
            .consumers
            .iter()
            .filter(|(_, c)| of(c) && !c.lent.is_empty())
        {
            targets.entry(c.qid).or_default().push(id);
        }
        drop(g);
        for (q, consumers) in &targets {
            self.recall(*q, consumers);
        }
        let end = crate::clock::deadline_after(LENT_RECALL_WAIT);
        let mut g = self.shared.lock();
        loop {
            let held = g
                .consumers
                .values()
                .filter(|c| of(c))
                .any(|c| c.lent.keys().any(|&id| lent.contains(&(c.qid, id))));
            let left = end.map_or(Duration::ZERO, |e| {
                e.saturating_duration_since(Instant::now())
            });
            if !held || left.is_zero() || g.check().is_err() {
                return g;
            }
            g = self
                .shared
                .avail
                .wait_timeout(g, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The client of `consumer` handed out lent messages `items` (id, tag) of queue `q`.
    pub(crate) fn lent_handed_out(&self, q: QueueId, consumer: ConsumerId, items: &[(u64, u64)]) {
        let shared = &self.shared;
        let mut g = shared.lock();
        let now = shared.now();
        g.lent_handed_out(q.0, consumer.0, items, now);
    }

    /// The client of `consumer` gives back lent messages `items` (id, tag) of queue `q`, not
    /// handed out: back to the queue uncounted, and a waiting receive is woken.
    pub(crate) fn lent_returned(&self, q: QueueId, consumer: ConsumerId, items: &[(u64, u64)]) {
        let shared = &self.shared;
        let mut g = shared.lock();
        let now = shared.now();
        if g.lent_returned(q.0, consumer.0, items, now) > 0 {
            self.kick(&g);
            shared.avail.notify_all();
        }
    }
}
