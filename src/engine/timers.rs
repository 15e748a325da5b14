//! Time-driven work: delayed messages becoming ready, dead-letter retention, ack timeouts.
//! Every timer reads the store's one clock; receives and settles tick the queue they touch, and
//! the commit thread ticks queues with ack timeouts while it is idle.

use super::{Engine, State};
use crate::error::Result;
use crate::options::StoreOptions;

impl State {
    /// Moves due timers, expires dead letters past their retention, fails deliveries past their
    /// ack timeout. Called before every receive and settle of queue `qid`.
    pub fn tick(&mut self, qid: u32, now: u64, store: &StoreOptions) -> Result<()> {
        let q = &mut self.queues[qid as usize];
        q.release_due(now);
        // Drop expired messages at the head of a dead-letter queue with retention, so they do
        // not linger in stats or on disk until a consumer comes by.
        if q.opts.retention_ms.is_some() {
            loop {
                let q = &mut self.queues[qid as usize];
                let Some(head) = q.ready.iter().rev().find_map(|d| d.front().copied()) else {
                    break;
                };
                if head.expires_at == 0 || head.expires_at > now {
                    break;
                }
                let Some(e) = q.remove_waiting(head.id, head.priority) else {
                    break;
                };
                q.hold(e);
                q.counters.expired += 1;
                let process = q.opts.process_expired;
                self.expire(qid, e.id, process, now, store)?;
            }
        }
        let q = &mut self.queues[qid as usize];
        if q.opts.ack_timeout_ms.is_some() && !q.inflight.is_empty() {
            let late: Vec<u64> = q
                .inflight
                .values()
                .filter(|f| f.deadline <= now)
                .map(|f| f.entry.id)
                .collect();
            for id in late {
                self.fail(qid, id, "ack timeout", None, now, None, store)?;
            }
        }
        Ok(())
    }
}

impl Engine {
    /// The commit thread's periodic housekeeping: ack timeouts fail on time even when nobody
    /// receives, and waiting receivers look again (due timers).
    pub(super) fn housekeeping<'a>(&'a self, mut g: super::Guard<'a>) -> super::Guard<'a> {
        let shared = &self.shared;
        let now = shared.now();
        for qid in 0..g.queues.len() as u32 {
            if g.queues[qid as usize].opts.ack_timeout_ms.is_some() {
                let _ = g.tick(qid, now, &shared.opts);
            }
        }
        if !g.moves.is_empty() {
            g = match self.finish_moves(g) {
                Ok(g) => g,
                Err(_) => shared.lock(),
            };
        }
        shared.avail.notify_all();
        g
    }
}
