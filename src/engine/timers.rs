//! Time-driven work: delayed messages becoming ready, expiry (TTL and dead-letter retention),
//! ack timeouts, scheduled repeats. Every timer reads the store's one clock; receives, settles,
//! stats and browse tick the queue they touch, and the commit thread ticks every queue with a
//! timer while it is idle (every 250 ms, at the next repeat's due time, and at once when a
//! manual clock jumps), so that time-driven work happens without a consumer.
//!
//! ## Scheduled repeats
//! A message sent with `repeat(period, n)` is a chain of occurrences, each a message of its own
//! (its own id), the first due at the send's delivery time and the others on the slots `period`
//! apart after it. Each occurrence makes the next one **when it becomes due** — the timer does it,
//! whether or not anyone receives (issue 15 kind 3; it used to be done by the receive that took
//! it, so an unconsumed queue never got its next copy). An occurrence due at once makes the next
//! one in its send's own record. Occurrences made on time are messages like any other: nobody
//! consuming, they wait in the queue (give the message a TTL to keep only recent ones; each
//! occurrence's TTL counts from its own slot).
//!
//! Misfires (an occurrence made more than [`MISFIRE_THRESHOLD_MS`], 1 s, after its due time:
//! the store was closed, a manual clock jumped) follow Quartz's "fire once now": the late
//! occurrence is delivered once, the missed slots are skipped (each uses up one repeat, so the
//! schedule ends when it was planned to), and the next occurrence is due on the first slot after
//! now. A late consumer never gets a burst of every missed slot. Less late (the timer's own
//! granularity), the schedule catches up slot by slot, as planned.
//!
//! Crash safety: the occurrence that makes the next one is rewritten without its repeat
//! (RELOCATE) in the same TXN record as the next occurrence's SEND, so after a crash either both
//! are in the journal (the next one exists; the rewritten one no longer repeats) or neither (the
//! timer makes it again at the next open): a copy is neither lost nor made twice. The record
//! kinds are the existing ones: the format version is unchanged, and a store written before
//! (where the receive made the next occurrence) opens as it was: there an occurrence delivered at
//! least once had made its next one (their TXN), one never delivered has not.

use super::batch::PendingSend;
use super::queue::{Entry, ENTRY_REPEATS, ENTRY_REPEAT_DONE, ENTRY_REPEAT_WRITING};
use super::record::{put_relocate, put_send, send_in_record, txn_begin, txn_end, Relocation};
use super::{Engine, State};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::frame::RECORD_HEADER;
use crate::message::{DeadLetterInfo, DeadLetterReason, Message};
use crate::options::StoreOptions;

/// How long a repeat whose record could not be read waits before the timer tries again (ms).
const REPEAT_RETRY_MS: u64 = 1000;

/// An occurrence made more than this late (ms after its due time) is a misfire (Quartz's
/// `misfireThreshold`): the slots up to now are skipped. Less late — the timer's granularity
/// (250 ms) and scheduling noise, seen as a 1 ms period making one copy where three were due —
/// the schedule goes on from the next slot as planned, catching up.
pub(super) const MISFIRE_THRESHOLD_MS: u64 = 1000;

/// The occurrence after one due at `base` (ms) of `msg` (repeating every `period` ms `left` more
/// times), made at `now`: due on the next slot; or, made more than [`MISFIRE_THRESHOLD_MS`]
/// late, on the first slot after `now`, the slots up to `now` skipped (see the module docs:
/// "fire once now"); `None` when no slot is left. It carries no dedup key (the
/// key named the send, not its occurrences: kept, the dedup window would swallow the next one)
/// and, with `ttl` (ms), expires `ttl` after its own slot.
pub(super) fn next_occurrence(
    msg: &Message,
    base: u64,
    ttl: Option<u64>,
    now: u64,
) -> Option<Message> {
    let (period, left) = msg.meta.repeat?;
    let period = period.max(1);
    // Slots after `base`: base + k·period, k = 1..=left. The first after `now` is
    // k = late / period + 1.
    let late = now.saturating_sub(base);
    let m = if late > MISFIRE_THRESHOLD_MS {
        late / period + 1
    } else {
        1
    };
    if m > left as u64 {
        return None;
    }
    let slot = base.saturating_add(period.saturating_mul(m));
    let mut next = msg.clone();
    next.id = None;
    let rest = left - m as u32;
    next.meta.repeat = (rest > 0).then_some((period, rest));
    next.meta.dedup_key = None;
    next.deliver_at_ms = Some(slot);
    next.delay_ms = None;
    next.ttl_ms = None;
    next.timestamp_ms = now;
    next.expires_at_ms = ttl.map(|t| slot.saturating_add(t)).unwrap_or(0);
    next.keep_times = true;
    Some(next)
}

/// The expiry (ms, 0: never) of a dead letter in a queue with retention `retention_ms`: its
/// age counts from its dead-letter time, the `last_failure_ms` of its dead-letter info (the
/// failure that dead-lettered it, or the dead-lettering itself when it never failed). One rule
/// for the letter arriving and for those held when the retention is declared or changed
/// (issue 15, review r12 #8), so that a reopen that declares it rebuilds the same deadlines.
pub(crate) fn retention_deadline(info: &DeadLetterInfo, retention_ms: Option<u64>) -> u64 {
    // At least 1: 0 means "never" in an entry.
    retention_ms.map_or(0, |r| info.last_failure_ms.saturating_add(r).max(1))
}

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
        self.make_due_repeats(qid, now)?;
        let q = &mut self.queues[qid as usize];
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
            // Each handed-over delivery is held until its own time (its hold runs from the
            // close that first handed it over): those due fail now, the next one's time is kept.
            let mut next: Option<u64> = None;
            let mut late = Vec::new();
            for f in q.inflight.values() {
                if f.consumer != super::handover::HANDED_OVER {
                    continue;
                }
                match f.deadline {
                    Some(d) if d > now => next = Some(next.map_or(d, |n| n.min(d))),
                    _ => late.push(f.entry.id),
                }
            }
            q.handover_until = next;
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

impl State {
    /// Makes the next occurrence of every repeating message of queue `qid` due by `now` that
    /// has not made it yet (see the module docs).
    fn make_due_repeats(&mut self, qid: u32, now: u64) -> Result<()> {
        loop {
            let q = &mut self.queues[qid as usize];
            let Some(&(due, id, priority)) = q.repeat_due.first() else {
                return Ok(());
            };
            if due > now {
                return Ok(());
            }
            q.repeat_due.remove(&(due, id, priority));
            // Gone (purged, expired), or held on its way out: no next occurrence.
            let Some((&e, false)) = q.find(id, priority) else {
                continue;
            };
            if e.flags & (ENTRY_REPEATS | ENTRY_REPEAT_DONE) != ENTRY_REPEATS {
                continue;
            }
            match self.make_next_occurrence(qid, e, now) {
                Ok(made) => {
                    if let Some(cur) = self.queues[qid as usize].find_mut(id, priority) {
                        *cur = made;
                    }
                }
                Err(err) => {
                    let retry = (now.saturating_add(REPEAT_RETRY_MS), id, priority);
                    self.queues[qid as usize].repeat_due.insert(retry);
                    return Err(err);
                }
            }
        }
    }

    /// Makes the next occurrence of repeating message `e` of queue `qid` (due by `now`, not
    /// made yet): one TXN record with `e` rewritten without its repeat (RELOCATE) and the next
    /// occurrence's SEND (see the module docs). Returns `e` as it is now (the caller puts it
    /// back where it is kept). Reads `e`'s record under the lock: once per occurrence, one
    /// record, and it keeps `e` from being taken before its next one is made (the receive that
    /// takes it then goes after this record in the journal).
    pub(super) fn make_next_occurrence(&mut self, qid: u32, e: Entry, now: u64) -> Result<Entry> {
        let corrupt = || {
            Error::new(
                ErrorKind::Corrupt,
                format!("stored record of ID:{} does not decode", e.id),
            )
        };
        let recs = self.snapshot(&self.files, [(qid, e)])?.read()?;
        let rec = recs.iter().next().ok_or_else(corrupt)?;
        let s = send_in_record(rec).ok_or_else(corrupt)?;
        let h = s.h;
        let msg = s.to_message().ok_or_else(corrupt)?;
        let base = if h.deliver_at != 0 {
            h.deliver_at
        } else {
            h.timestamp
        };
        let ttl = (h.expires_at != 0).then(|| h.expires_at.saturating_sub(base));
        let next = next_occurrence(&msg, base, ttl, now);
        let mut meta = msg.meta.clone();
        meta.repeat = None;
        let mut rewritten = Vec::new();
        let len = put_send(&mut rewritten, h, &meta, &msg.body)?;
        let q = &mut self.queues[qid as usize];
        let journaled = q.opts.journaled();
        if !journaled {
            // A memory queue's record is its only copy: rewritten in place.
            q.bytes = q.bytes + len as u64 - e.len as u64;
            q.mem.insert(e.id, rewritten);
            if let Some(next) = next {
                self.send(qid, &next, now)?;
            }
            let flags = (e.flags & !ENTRY_REPEATS) | ENTRY_REPEAT_DONE;
            return Ok(Entry { len, flags, ..e });
        }
        let fi = q.fail.get(&e.id).cloned().unwrap_or_default();
        let r = Relocation {
            count: e.count,
            in_flight: false,
            not_before: q.delayed_due.get(&e.id).copied().unwrap_or(0),
            first_failure: fi.first,
            last_failure: fi.last,
            reason: &fi.reason,
        };
        let flags = e.flags | ENTRY_REPEAT_DONE | ENTRY_REPEAT_WRITING;
        self.pending.needs_sync |= q.opts.needs_sync();
        let start = txn_begin(&mut self.pending.buf);
        let at = self.pending.buf.len();
        let len = put_relocate(&mut self.pending.buf, &r, qid, &rewritten[RECORD_HEADER..]);
        self.pending.sends.push(PendingSend {
            qid,
            rec_off: at,
            entry: Entry {
                len,
                refs: 1,
                flags,
                ..e
            },
            due: 0,
            relocate: true,
            replay: false,
            dedup_key: None,
        });
        // Cannot fail where the send of `e` passed (the same checks, a smaller meta); the TXN
        // is closed whatever happens, so the batch stays well formed.
        let sent = next.map(|n| self.send_in_txn(qid, &n, now)).transpose();
        txn_end(&mut self.pending.buf, start);
        sent.map(|_| Entry { flags, ..e })
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
                || q.expiring.first().is_some_and(|&(at, _, _)| at <= now)
                || q.repeat_due.first().is_some_and(|&(at, _, _)| at <= now);
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
