//! Delivering: taking messages for a consumer (their delivery counts made durable before
//! hand-over, with one DELIVER record), reading their records outside the lock, scheduled
//! repeats, and the consumer registry.

use std::time::{Duration, Instant};

use super::queue::{Entry, InFlight, ENTRY_REPEATS, ENTRY_REPEAT_DONE};
use super::read::Records;
use super::record::{decode_message, put_ack, put_deliver, send_in_record, txn_begin, txn_end};
use super::{ConsumerId, DeliveryTag, Engine, Guard, QueueId, Received, State};
use crate::error::{Error, ErrorKind, Result};
use crate::message::DeadLetterReason;
use crate::options::{AckMode, StoreOptions};

/// What [`State::take`] took.
#[derive(Default)]
pub(crate) struct Taken {
    /// The messages, with their new counts and tags.
    pub items: Vec<(Entry, DeliveryTag)>,
    /// Indexes into `items` of repeating messages whose next occurrence is still to be stored
    /// (with their delivery record, in one TXN record, once their record has been read).
    pub repeats: Vec<usize>,
    /// Expired messages or messages of parked groups were moved out on the way.
    pub moved: bool,
}

/// Appends the record that makes deliveries durable before hand-over: DELIVER with their
/// counts, or ACK for auto-ack (at-most-once: done on hand-over).
fn put_delivery(buf: &mut Vec<u8>, qid: u32, items: &[(u64, u32)], auto_ack: bool) {
    if auto_ack {
        let ids: Vec<u64> = items.iter().map(|x| x.0).collect();
        put_ack(buf, qid, &ids);
    } else {
        put_deliver(buf, qid, items);
    }
}

impl State {
    /// Takes up to `n` messages for `consumer`, appending one DELIVER (or, for auto-ack, ACK)
    /// record for them. Expired messages and messages of parked groups met on the way are
    /// moved out (dead-lettered or dropped).
    pub fn take(
        &mut self,
        qid: u32,
        consumer: ConsumerId,
        n: usize,
        auto_ack: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<Taken> {
        self.tick(qid, now, store)?;
        let mut taken = Taken::default();
        while taken.items.len() < n {
            let Some(e) = self.queues[qid as usize].pop_next() else {
                break;
            };
            self.hand_out(qid, consumer, e, now, store, &mut taken)?;
        }
        self.log_taken(qid, &taken, auto_ack);
        Ok(taken)
    }

    /// Takes the messages `ids` (with their priorities) for `consumer` where they still wait
    /// and may be delivered (a selective consumer's choice), as [`State::take`] does.
    pub fn take_ids(
        &mut self,
        qid: u32,
        consumer: ConsumerId,
        ids: &[(u64, u8)],
        auto_ack: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<Taken> {
        let mut taken = Taken::default();
        for &(id, priority) in ids {
            if let Some(e) = self.queues[qid as usize].take_waiting(id, priority) {
                self.hand_out(qid, consumer, e, now, store, &mut taken)?;
            }
        }
        self.log_taken(qid, &taken, auto_ack);
        Ok(taken)
    }

    /// Hands message `e` (just taken from waiting) to `consumer`, or moves it out when it
    /// expired or its group is parked.
    fn hand_out(
        &mut self,
        qid: u32,
        consumer: ConsumerId,
        mut e: Entry,
        now: u64,
        store: &StoreOptions,
        taken: &mut Taken,
    ) -> Result<()> {
        let q = &mut self.queues[qid as usize];
        let parked = e.group != 0 && q.group_state[e.group as usize - 1].parked;
        if parked || (e.expires_at != 0 && e.expires_at <= now) {
            taken.moved = true;
            q.hold(e);
            if parked {
                let text = "its group is parked";
                self.dead_letter(qid, e.id, DeadLetterReason::GroupParked, text, now, store)?;
            } else {
                let process = q.opts.process_expired;
                q.counters.expired += 1;
                self.expire(qid, e.id, process, now, store)?;
            }
            return Ok(());
        }
        e.count += 1;
        if e.count > 1 {
            q.counters.redelivered += 1;
        }
        let deadline = q
            .opts
            .ack_timeout_ms
            .map(|t| now.saturating_add(t))
            .unwrap_or(u64::MAX);
        if e.flags & ENTRY_REPEATS != 0 && e.flags & ENTRY_REPEAT_DONE == 0 {
            e.flags |= ENTRY_REPEAT_DONE;
            taken.repeats.push(taken.items.len());
        }
        let tag = self.tag();
        let q = &mut self.queues[qid as usize];
        q.inflight.insert(
            e.id,
            InFlight {
                entry: e,
                consumer: consumer.0,
                deadline,
                tag: tag.0,
            },
        );
        taken.items.push((e, tag));
        Ok(())
    }

    /// Appends the one DELIVER (or ACK) record of what was taken.
    fn log_taken(&mut self, qid: u32, taken: &Taken, auto_ack: bool) {
        if self.queues[qid as usize].opts.journaled() {
            let plain = |i: usize| !taken.repeats.contains(&i);
            let items: Vec<(u64, u32)> = (0..taken.items.len())
                .filter(|&i| taken.repeats.is_empty() || plain(i))
                .map(|i| (taken.items[i].0.id, taken.items[i].0.count))
                .collect();
            if !items.is_empty() {
                self.log(qid, |b| put_delivery(b, qid, &items, auto_ack));
            }
        }
    }

    /// For each repeating message just delivered: its delivery record and its next occurrence
    /// (a new message, due one period later), in one TXN record, so that neither is stored
    /// without the other.
    fn schedule_repeats(
        &mut self,
        qid: u32,
        taken: &Taken,
        recs: &Records,
        auto_ack: bool,
        now: u64,
    ) -> Result<()> {
        let recs: Vec<&[u8]> = recs.iter().collect();
        for &i in &taken.repeats {
            let (e, tag) = taken.items[i];
            let journaled = self.queues[qid as usize].opts.journaled();
            let start = journaled.then(|| txn_begin(&mut self.pending.buf));
            let still_ours = self.queues[qid as usize]
                .inflight
                .get(&e.id)
                .is_some_and(|f| f.tag == tag.0);
            if journaled && still_ours {
                put_delivery(&mut self.pending.buf, qid, &[(e.id, e.count)], auto_ack);
            }
            if let Some(s) = send_in_record(recs[i]) {
                if let (Some(mut msg), Some((period, left))) =
                    (s.to_message(), s.meta().and_then(|m| m.repeat))
                {
                    let base = if s.h.deliver_at != 0 {
                        s.h.deliver_at
                    } else {
                        s.h.timestamp
                    };
                    msg.meta.repeat = (left > 1).then_some((period, left - 1));
                    // The dedup key named the send, not its occurrences: kept, it would make the
                    // dedup window swallow the next occurrence.
                    msg.meta.dedup_key = None;
                    msg.deliver_at_ms = Some(base.saturating_add(period).max(now));
                    msg.delay_ms = None;
                    // The occurrence is stored "as of" its due time so TTLs count from it.
                    msg.ttl_ms =
                        (s.h.expires_at != 0).then(|| s.h.expires_at.saturating_sub(s.h.timestamp));
                    self.send(qid, &msg, now)?;
                }
            }
            if let Some(start) = start {
                txn_end(&mut self.pending.buf, start);
                self.pending.needs_sync |= self.queues[qid as usize].opts.needs_sync();
            }
        }
        Ok(())
    }

    /// Removes auto-acked deliveries once their records were read.
    fn finish_auto_ack(&mut self, qid: u32, taken: &Taken) {
        for (e, _) in &taken.items {
            let q = &mut self.queues[qid as usize];
            if let Some(f) = q.inflight.remove(&e.id) {
                q.forget(&f.entry);
                q.counters.acked += 1;
                self.live_dec(&f.entry);
            }
        }
    }
}

impl Engine {
    /// Registers a consumer of queue `q` with its ack mode.
    pub(crate) fn open_consumer(&self, q: QueueId, mode: AckMode) -> Result<ConsumerId> {
        let mut g = self.shared.lock();
        g.check()?;
        Ok(g.open_consumer(q.0, mode))
    }

    /// Closes a consumer: its unsettled deliveries return to the queue as failed deliveries.
    /// Does not wait for their records (a dropped handle must not block).
    pub(crate) fn close_consumer(&self, consumer: ConsumerId) {
        let shared = &self.shared;
        let mut g = shared.lock();
        let Some(c) = g.consumers.remove(&consumer.0) else {
            return;
        };
        if g.check().is_err() {
            return;
        }
        let qid = c.qid;
        let ids: Vec<u64> = g.queues[qid as usize]
            .inflight
            .values()
            .filter(|f| f.consumer == consumer.0)
            .map(|f| f.entry.id)
            .collect();
        let now = shared.now();
        for id in ids {
            let text = "the consumer was closed without settling it";
            let _ = g.fail(qid, id, text, None, now, None, &shared.opts);
        }
        if let Ok(g) = self.finish_moves(g) {
            if !g.pending.is_empty() {
                self.kick(&g);
            }
        }
        shared.avail.notify_all();
    }

    /// Receives up to `n` messages of queue `q` for `consumer`, waiting up to `timeout` (`None`:
    /// forever) for the first. Their delivery counts are durable before this returns.
    pub(crate) fn receive(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Received>> {
        if n == 0 {
            // Refused in every face alike: a batch of none is a caller's bug, and waiting for
            // "the first of none" would never end.
            return Err(Error::invalid(
                "a receive batch of 0 messages: ask for at least 1",
            ));
        }
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut g = shared.lock();
        loop {
            g.check()?;
            let now = shared.now();
            let mode = g.mode_of(consumer);
            let taken = g.take(q.0, consumer, n, mode == AckMode::Auto, now, &shared.opts)?;
            g = self.finish_moves(g)?;
            if !taken.items.is_empty() {
                return self.hand_over(g, q, consumer, mode, taken);
            }
            if taken.moved {
                // Expired or parked messages were moved: wait, so the move is visible (in the
                // dead-letter queue's stats, browse and replay) when this call returns. (Their
                // records may already be in a batch being written: `commit` waits for that too.)
                g = self.commit(g)?;
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

    /// Reads the records of what was taken (with the lock released), makes their delivery
    /// records durable, and hands them over.
    pub(super) fn hand_over(
        &self,
        g: Guard<'_>,
        q: QueueId,
        consumer: ConsumerId,
        mode: AckMode,
        taken: Taken,
    ) -> Result<Vec<Received>> {
        let shared = &self.shared;
        let snap = g.snapshot(&shared.files, taken.items.iter().map(|&(e, _)| (q.0, e)));
        drop(g);
        let recs = snap.and_then(|s| s.read());
        let mut g = shared.lock();
        if let Ok(recs) = &recs {
            g.schedule_repeats(q.0, &taken, recs, mode == AckMode::Auto, shared.now())?;
        }
        // The delivery records are durable before hand-over. While the lock was released a
        // leader may have taken them into a batch it is writing, so `pending` may be empty:
        // `commit` then waits for that batch.
        if !g.pending.is_empty() || taken.moved || g.queues[q.0 as usize].opts.journaled() {
            g = self.commit(g)?;
        }
        if mode == AckMode::Auto {
            g.finish_auto_ack(q.0, &taken);
        }
        let recs = match recs {
            Ok(r) => r,
            Err(e) => {
                // Nothing was handed over: give the messages back (not a failed delivery),
                // or they would stay in flight with no delivery to settle them until reopen.
                if mode != AckMode::Auto {
                    let (now, was_empty) = (shared.now(), g.pending.is_empty());
                    for &i in &taken.repeats {
                        let id = taken.items[i].0.id;
                        if let Some(f) = g.queues[q.0 as usize].inflight.get_mut(&id) {
                            f.entry.flags &= !ENTRY_REPEAT_DONE; // its repeat was not stored
                        }
                    }
                    for (x, tag) in &taken.items {
                        let _ = g.release(q.0, x.id, Some(*tag), now);
                    }
                    if was_empty && !g.pending.is_empty() {
                        shared.work.notify_one();
                    }
                    shared.avail.notify_all();
                }
                return Err(e);
            }
        };
        if mode == AckMode::Cumulative {
            if let Some(c) = g.consumers.get_mut(&consumer.0) {
                c.received
                    .extend(taken.items.iter().map(|&(e, tag)| (e.id, tag)));
            }
        }
        drop(g);
        let mut out = Vec::with_capacity(taken.items.len());
        for (&(e, tag), r) in taken.items.iter().zip(recs.iter()) {
            let message = decode_message(r).ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("stored record of ID:{} does not decode", e.id),
                )
            })?;
            out.push(Received {
                message,
                tag,
                count: e.count,
            });
        }
        Ok(out)
    }
}
