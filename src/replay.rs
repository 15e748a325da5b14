//! Replay: moving dead letters back to a queue.

use crate::error::{Error, ErrorKind, Result};
use crate::message::{DeadLetterInfo, DeadLetterReason, MessageId};
use crate::queue::Queue;
use crate::state::{decode_message, put_group};

/// Which dead letters [`Queue::replay`] moves, and where.
#[derive(Debug, Clone, Default)]
pub struct ReplayFilter {
    /// Only dead letters with this reason.
    pub reason: Option<DeadLetterReason>,
    /// Only dead letters from this queue.
    pub original_queue: Option<String>,
    /// Only dead letters whose last failure is at or after this time (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Only dead letters whose last failure is before this time (ms since the epoch).
    pub until_ms: Option<u64>,
    /// Only these messages (dead-letter ids or original ids).
    pub ids: Option<Vec<MessageId>>,
    /// Move them here instead of to their original queue.
    pub to: Option<String>,
    /// At most this many.
    pub limit: Option<usize>,
    /// Only count what would be moved.
    pub dry_run: bool,
}

impl ReplayFilter {
    /// Whether the dead letter `id` (its id in the dead-letter queue), which says `info`, passes
    /// the filter's reason, original queue, time range and ids (an id matches the dead letter's
    /// own id or its original id). `to`, `limit` and `dry_run` are not looked at. Tools use it
    /// to list exactly what [`Queue::replay`] would move.
    pub fn matches(&self, id: MessageId, info: &DeadLetterInfo) -> bool {
        self.reason.is_none_or(|r| r == info.reason)
            && self
                .original_queue
                .as_ref()
                .is_none_or(|q| *q == info.original_queue)
            && self.since_ms.is_none_or(|t| info.last_failure_ms >= t)
            && self.until_ms.is_none_or(|t| info.last_failure_ms < t)
            && self
                .ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|i| *i == id || *i == info.original_id))
    }
}

impl Queue {
    /// Moves dead letters of this (dead-letter) queue back to their original queue (or
    /// `filter.to`), with delivery counts reset; returns how many matched. Each move is one
    /// journal record, so a crash in the middle loses and doubles nothing. Messages of a parked
    /// group unpark it. Messages in flight are left alone.
    pub fn replay(&self, filter: &ReplayFilter) -> Result<u64> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        let es = g.queues[self.qid as usize].ordered_waiting();
        let recs = g.read_records(self.qid, &es)?;
        let mut moved = 0u64;
        for (e, rec) in es.iter().zip(recs.iter()) {
            if filter.limit.is_some_and(|l| moved as usize >= l) {
                break;
            }
            let msg = decode_message(rec).ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("stored record of ID:{} does not decode", e.id),
                )
            })?;
            let Some(info) = msg.dead_letter_info().cloned() else {
                continue;
            };
            if !filter.matches(MessageId(e.id), &info) {
                continue;
            }
            moved += 1;
            if filter.dry_run {
                continue;
            }
            let target = filter
                .to
                .clone()
                .unwrap_or_else(|| info.original_queue.clone());
            let to = g.declare(&target, None, &shared.opts)?;
            let q = &mut g.queues[self.qid as usize];
            let Some(entry) = q.remove_waiting(e.id, e.priority) else {
                continue;
            };
            q.forget(&entry);
            let from_journaled = q.opts.journaled();
            g.live_dec(&entry);
            let mut meta = msg.meta.clone();
            meta.dead_letter = None;
            g.put_move(
                self.qid,
                e.id,
                from_journaled,
                to,
                &meta,
                msg.body(),
                msg.get_priority(),
                0,
                now,
            )?;
            let t = &mut g.queues[to as usize];
            t.counters.replayed += 1;
            if let Some(key) = &meta.group {
                if let Some(&gi) = t.groups.get(key) {
                    let gs = &mut t.group_state[gi as usize - 1];
                    if gs.parked {
                        gs.parked = false;
                        if t.opts.journaled() {
                            put_group(&mut g.pending.buf, to, false, key);
                        }
                    }
                }
            }
        }
        if !g.pending.is_empty() {
            g.pending.needs_sync = true;
        }
        shared.avail.notify_all();
        let _g = shared.commit(g)?;
        Ok(moved)
    }
}
