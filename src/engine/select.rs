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

use std::time::{Duration, Instant};

use super::record::decode_message;
use super::{ConsumerId, Engine, Guard, QueueId, Received};
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
            let (ids, g2) = self.scan(g, q, n, selector)?;
            g = g2;
            if !ids.is_empty() {
                let mode = g.mode_of(consumer);
                let auto = mode == AckMode::Auto;
                let taken = g.take_ids(q.0, consumer, &ids, auto, now, &shared.opts)?;
                g = self.finish_moves(g)?;
                if !taken.items.is_empty() {
                    return self.hand_over(g, q, consumer, mode, taken);
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
