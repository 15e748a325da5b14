//! Time-driven work: delayed messages becoming ready, expiry (TTL and dead-letter retention),
//! ack timeouts. Every timer reads the store's one clock; receives, settles, stats and browse
//! tick the queue they touch, and the commit thread ticks every queue with a timer while it is
//! idle (every 250 ms, and at once when a manual clock jumps), so that time-driven work happens
//! without a consumer.

use super::{Engine, State};
use crate::error::Result;
use crate::message::DeadLetterReason;
use crate::options::StoreOptions;

impl State {
    /// Moves due timers, expires dead letters past their retention, fails deliveries past their
    /// ack timeout. Called before every receive and settle of queue `qid`.
    pub fn tick(&mut self, qid: u32, now: u64, store: &StoreOptions) -> Result<()> {
        let q = &mut self.queues[qid as usize];
        // Messages sent into a parked group go where the group's others went.
        for (id, priority) in std::mem::take(&mut q.parked_arrivals) {
            let q = &mut self.queues[qid as usize];
            // Taken meanwhile (a receive dead-lettered it), or a replay unparked the group.
            let parked = q.find(id, priority).is_some_and(|(e, inflight)| {
                !inflight && e.group != 0 && q.group_state[e.group as usize - 1].parked
            });
            let Some(e) = parked.then(|| q.remove_waiting(id, priority)).flatten() else {
                continue;
            };
            q.hold(e);
            let text = "its group is parked";
            self.dead_letter(qid, id, DeadLetterReason::GroupParked, text, now, store)?;
        }
        let q = &mut self.queues[qid as usize];
        q.release_due(now);
        // Expire what is due (TTL, a dead-letter queue's retention) on time, through the expiry
        // index: not only when a consumer reaches it. Messages handed out are left to their
        // delivery (they stay indexed, and expire if they come back); messages only prefetched
        // (in a consumer's buffer, known to nobody) expire on time too, taken out of the buffer,
        // or an idle consumer would keep them from the dead-letter queue for as long as it idles.
        if q.expiring.first().is_some_and(|&(at, _, _)| at <= now) {
            let consumers = &self.consumers;
            // (id, priority, the consumer whose buffer holds it)
            let due: Vec<(u64, u8, Option<u64>)> = q
                .expiring
                .range(..=(now, u64::MAX, u8::MAX))
                .filter_map(|&(_, id, p)| match q.inflight.get(&id) {
                    None => Some((id, p, None)),
                    Some(f) => consumers
                        .get(&f.consumer)
                        .filter(|c| c.buffer.iter().any(|b| b.id == id && b.tag.0 == f.tag))
                        .map(|_| (id, p, Some(f.consumer))),
                })
                .collect();
            for (id, priority, buffered_by) in due {
                let e = match buffered_by {
                    Some(cid) => {
                        if let Some(c) = self.consumers.get_mut(&cid) {
                            c.buffer.retain(|b| b.id != id);
                        }
                        let Some(f) = self.queues[qid as usize].inflight.remove(&id) else {
                            continue;
                        };
                        f.entry
                    }
                    None => {
                        let Some(e) = self.queues[qid as usize].remove_waiting(id, priority) else {
                            continue;
                        };
                        e
                    }
                };
                let q = &mut self.queues[qid as usize];
                q.hold(e);
                q.counters.expired += 1;
                let process = q.opts.process_expired;
                self.expire(qid, id, process, now, store)?;
            }
        }
        let q = &mut self.queues[qid as usize];
        if q.handover_until.is_some_and(|t| t <= now) {
            q.handover_until = None;
            let late: Vec<u64> = q
                .inflight
                .values()
                .filter(|f| f.consumer == super::handover::HANDED_OVER)
                .map(|f| f.entry.id)
                .collect();
            for id in late {
                self.fail(
                    qid,
                    id,
                    "handed over by the previous owner's close and not settled by its client in time",
                    None,
                    now,
                    None,
                    store,
                )?;
            }
        }
        let q = &mut self.queues[qid as usize];
        if q.opts.ack_timeout_ms.is_some() && !q.inflight.is_empty() {
            let late: Vec<u64> = q
                .inflight
                .values()
                .filter(|f| f.deadline.is_some_and(|d| d <= now))
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
        g.progress.housekept = std::time::Instant::now();
        for qid in 0..g.queues.len() as u32 {
            let q = &g.queues[qid as usize];
            let due = q.next_due().is_some_and(|d| d <= now)
                || q.expiring.first().is_some_and(|&(at, _, _)| at <= now);
            let handover = q.handover_until.is_some_and(|t| t <= now);
            if due
                || handover
                || !q.parked_arrivals.is_empty()
                || (q.opts.ack_timeout_ms.is_some() && !q.inflight.is_empty())
            {
                let _ = g.tick(qid, now, &shared.opts);
            }
        }
        if !g.pending.is_empty() {
            // Expiry records: the commit thread writes them next (it is the caller).
            g.pending.needs_sync = true;
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
