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
//! The plain `receive` of a queue (every face's `queue.receive()`) is served by one consumer per
//! queue made at its first receive ([`State::consumer_for`]), closed with the store. Requests from
//! any face (or another process) go through the same buffers: prefetch lives in the engine.

use super::queue::Entry;
use super::{ConsumerId, DeliveryTag, Received, State};
use crate::message::Message;
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
            let q = &mut self.queues[qid as usize];
            let Some(f) = q.inflight.get(&p.id).filter(|f| f.tag == p.tag.0) else {
                continue; // no longer this delivery's (cannot happen: nobody knows its tag)
            };
            let e = f.entry;
            if e.expires_at != 0 && e.expires_at <= now {
                q.inflight.remove(&p.id);
                q.hold(e);
                q.counters.expired += 1;
                let process = q.opts.process_expired;
                self.expire(qid, e.id, process, now, store)?;
                continue;
            }
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

    /// Messages of queue `qid` prefetched and not yet handed out.
    pub fn prefetched(&self, qid: u32) -> u64 {
        self.consumers
            .values()
            .filter(|c| c.qid == qid)
            .map(|c| c.buffer.len() as u64)
            .sum()
    }
}
