//! Selective consumers of a queue (JMS `createConsumer(queue, selector)`): a consumer whose
//! message selector picks which waiting messages it takes; the others stay for other consumers.
//!
//! A selector reads properties, which are stored with the body on disk, so the waiting messages
//! are scanned in delivery order, their records read outside the lock a chunk at a time, until
//! enough match: every match is found wherever it sits in the queue (ActiveMQ looks only at the
//! messages paged into memory, and a consumer whose matches sit deeper starves). The cost is a
//! read of the messages ahead of the matches on each receive; a consumer that needs one kind of
//! message out of a large backlog is better served by a subscription, whose selector is
//! evaluated once, at publish.
//!
//! A selective consumer never prefetches: it takes only the messages its selector selects, and
//! holds none that other consumers could take. Messages waiting in other consumers' prefetch
//! buffers are not in the queue's waiting list, so a selective consumer takes its matches out
//! of those buffers first ([`State::take_buffered_selected`]): a plain consumer's prefetch never
//! starves it.

use std::time::{Duration, Instant};

use super::prefetch::Prefetched;
use super::record::decode_message;
use super::{ConsumerId, Engine, Guard, QueueId, Received, State};
use crate::error::Result;
use crate::message::{Message, MessageId};
use crate::options::AckMode;
use crate::selector::{Selector, SelectorInput};
use crate::Value;

/// Waiting messages read per chunk of a scan.
const SCAN_CHUNK: usize = 1024;

/// A waiting message as a selector sees it: delivered `count` times so far.
struct Waiting<'a> {
    msg: &'a Message,
    count: u32,
    persistent: bool,
}

impl SelectorInput for Waiting<'_> {
    fn property_value(&self, name: &str) -> Option<&Value> {
        self.msg.property_value(name)
    }
    fn jms_priority(&self) -> u8 {
        self.msg.jms_priority()
    }
    fn jms_timestamp_ms(&self) -> u64 {
        self.msg.jms_timestamp_ms()
    }
    fn jms_correlation_id(&self) -> Option<&str> {
        self.msg.jms_correlation_id()
    }
    fn jms_message_id(&self) -> Option<MessageId> {
        self.msg.id()
    }
    fn jms_persistent(&self) -> bool {
        self.persistent
    }
    // The delivery it is about to get is its (count + 1)-th.
    fn jms_redelivered(&self) -> bool {
        self.count > 0
    }
    fn jms_expiration_ms(&self) -> u64 {
        self.msg.jms_expiration_ms()
    }
    fn jmsx_group_id(&self) -> Option<&str> {
        self.msg.jmsx_group_id()
    }
    fn jmsx_delivery_count(&self) -> u32 {
        self.count + 1
    }
}

impl Engine {
    /// Receives up to `n` messages of queue `q` that `selector` selects, for `consumer`,
    /// waiting up to `timeout` (`None`: forever) for the first match.
    pub(crate) fn receive_selected(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
        selector: &Selector,
    ) -> Result<Vec<Received>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut g = shared.lock();
        loop {
            g.check()?;
            let now = shared.now();
            g.tick(q.0, now, &shared.opts)?;
            g = self.finish_moves(g)?;
            let mode = g.mode_of(consumer);
            if mode != AckMode::Auto {
                let got = g.take_buffered_selected(q.0, consumer.0, n, selector, now);
                if !got.is_empty() {
                    return Ok(got);
                }
            }
            let (ids, g2) = self.scan(g, q, n, selector)?;
            g = g2;
            if !ids.is_empty() {
                let auto = mode == AckMode::Auto;
                let taken = g.take_ids(q.0, consumer, &ids, auto, now, &shared.opts)?;
                g = self.finish_moves(g)?;
                if !taken.items.is_empty() {
                    let all = taken.items.len();
                    return self.hand_over(g, q, consumer.0, mode, taken, all);
                }
                continue; // taken by another consumer meanwhile: scan again
            }
            let mut wait = match deadline {
                Some(Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Vec::new());
                    }
                    left
                }
                _ => Duration::from_secs(3600),
            };
            if let Some(due) = g.queues[q.0 as usize].next_due() {
                wait = wait.min(Duration::from_millis(due.saturating_sub(now).max(1)));
            }
            g = shared
                .avail
                .wait_timeout(g, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The first `n` waiting messages of `q` in delivery order that `selector` selects, as
    /// (id, priority), read a chunk at a time with the lock released.
    fn scan<'a>(
        &'a self,
        mut g: Guard<'a>,
        q: QueueId,
        n: usize,
        selector: &Selector,
    ) -> Result<(Vec<(u64, u8)>, Guard<'a>)> {
        let shared = &self.shared;
        let waiting = g.queues[q.0 as usize].ordered_waiting();
        let persistent = g.queues[q.0 as usize].opts.journaled();
        let mut found = Vec::new();
        for chunk in waiting.chunks(SCAN_CHUNK) {
            let snap = g.snapshot(&shared.files, chunk.iter().map(|&e| (q.0, e)));
            drop(g);
            // A message settled meanwhile may be gone from a memory queue: read what is left.
            let recs = snap.and_then(|s| s.read());
            g = shared.lock();
            let Ok(recs) = recs else {
                break;
            };
            for (e, rec) in chunk.iter().zip(recs.iter()) {
                let Some(msg) = decode_message(rec) else {
                    continue;
                };
                let input = Waiting {
                    msg: &msg,
                    count: e.count,
                    persistent,
                };
                if selector.matches(&input) {
                    found.push((e.id, e.priority));
                    if found.len() == n {
                        return Ok((found, g));
                    }
                }
            }
        }
        Ok((found, g))
    }
}

impl State {
    /// Selective consumer `cid` takes up to `n` messages `selector` selects out of the prefetch
    /// buffers of the other consumers of queue `qid`, and hands them out. Their delivery counts
    /// are already durable (the prefetch's record), so this needs no record. (An auto-ack
    /// consumer must not call this: its hand-over needs an ACK record.) A buffered message that
    /// expired is left for its owner, who moves it out.
    pub fn take_buffered_selected(
        &mut self,
        qid: u32,
        cid: u64,
        n: usize,
        selector: &Selector,
        now: u64,
    ) -> Vec<Received> {
        let persistent = self.queues[qid as usize].opts.journaled();
        let mut owners: Vec<u64> = self
            .consumers
            .iter()
            .filter(|(&id, c)| id != cid && c.qid == qid && !c.buffer.is_empty())
            .map(|(&id, _)| id)
            .collect();
        owners.sort_unstable();
        let mut moved: Vec<Prefetched> = Vec::new();
        let q = &self.queues[qid as usize];
        for owner in owners {
            let Some(c) = self.consumers.get_mut(&owner) else {
                continue;
            };
            let mut i = 0;
            while i < c.buffer.len() && moved.len() < n {
                let p = &c.buffer[i];
                let expires = q.inflight.get(&p.id).map_or(0, |f| f.entry.expires_at);
                let input = Waiting {
                    msg: &p.message,
                    count: p.count.saturating_sub(1), // the count before this delivery
                    persistent,
                };
                if (expires == 0 || expires > now) && selector.matches(&input) {
                    moved.extend(c.buffer.remove(i));
                } else {
                    i += 1;
                }
            }
        }
        let mut out = Vec::with_capacity(moved.len());
        for p in moved {
            let q = &mut self.queues[qid as usize];
            let Some(f) = q.inflight.get_mut(&p.id).filter(|f| f.tag == p.tag.0) else {
                continue;
            };
            f.consumer = cid;
            let e = f.entry;
            self.hand_out(qid, cid, &e, p.tag, now);
            out.push(Received {
                message: p.message,
                tag: p.tag,
                count: p.count,
            });
        }
        out
    }
}
