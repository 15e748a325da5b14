//! Settling: ack, the one failure path (nack, timeout, closed consumer, crash, rollback),
//! release, reject, and moving messages to their dead-letter queue.

use super::batch::{Counted, PendingSend};
use super::queue::{Entry, InFlight, ENTRY_REPEATS, MEM_SEG};
use super::record::{
    decode_message, meta_bytes, put_ack, put_dead, put_group, put_remove, put_requeue, put_send,
    why, Requeue, SendHeader, MAX_REASON_BYTES,
};
use super::state::Move;
use super::{DeliveryRef, DeliveryTag, Engine, Guard, Settle, State};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{DeadLetterInfo, DeadLetterReason, MessageId, Meta};
use crate::options::{AckDurability, AckMode, GroupFailurePolicy, StoreOptions};
use crate::policy::AfterFailure;

/// The least a message whose redeliveries ran out waits before its next delivery when a full
/// disk refused its dead-letter move (ms): its policy's delays may be zero, and each delivery
/// would try the move again at once.
pub(crate) const FULL_DISK_RETRY_MS: u64 = 1000;

/// The least wait (ms) before a dead letter whose redeliveries ran out in its own dead-letter
/// queue is delivered again. Such a failure has nowhere to go: dead-lettered into its own queue
/// it would loop, dropped it would be lost with nobody told (ActiveMQ drops it: "not re-adding
/// to DLQ"). So it stays in the dead-letter queue, as with unlimited redeliveries, no sooner
/// than the policy's delay and never in a hot loop, until it is acked, purged or replayed
/// (issue 15 #2). The same holds for a queue that is its own dead-letter queue through the
/// store's default strategy (store default `Shared("work")` and queue "work").
pub(crate) const DEAD_LETTER_KEPT_RETRY_MS: u64 = 1000;

/// Why-code of a REMOVE record for a dead letter dropped by the discard strategy.
fn reason_code(r: DeadLetterReason) -> u8 {
    match r {
        DeadLetterReason::Expired => why::EXPIRED,
        _ => why::DISCARD,
    }
}

/// The end of a batch settle: `AlreadySettled` naming the deliveries of the batch that were
/// settled before it (by a timeout or another handle), the others having been `done`; `Ok`
/// when there are none. One text for `ack_batch` and `release_batch`.
fn settled_in_batch(stale: impl Iterator<Item = MessageId>, done: &str) -> Result<()> {
    let ids: Vec<String> = stale.map(|id| id.to_string()).collect();
    if ids.is_empty() {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::AlreadySettled,
        format!(
            "{} of the batch {} already settled (or timed out); the others were {done}",
            ids.join(", "),
            if ids.len() == 1 { "was" } else { "were" }
        ),
    ))
}

impl State {
    /// Takes in-flight message `id` out of flight, if `tag` names its delivery (`None`: any).
    fn take_inflight(&mut self, qid: u32, id: u64, tag: Option<DeliveryTag>) -> Result<InFlight> {
        let q = &mut self.queues[qid as usize];
        match q.inflight.get(&id) {
            Some(f) if tag.is_none_or(|t| t.0 == f.tag) => {
                Ok(q.inflight.remove(&id).expect("checked"))
            }
            _ => Err(self.already_settled(qid, id)),
        }
    }

    fn already_settled(&self, qid: u32, id: u64) -> Error {
        Error::new(
            ErrorKind::AlreadySettled,
            format!(
                "delivery of ID:{id} on queue {:?} is already settled (or timed out)",
                self.queues[qid as usize].name
            ),
        )
    }

    /// Whether delivery `tag` of `id` is no longer in flight (settled, timed out or failed).
    pub fn is_settled(&self, qid: u32, id: u64, tag: DeliveryTag) -> bool {
        self.queues[qid as usize]
            .inflight
            .get(&id)
            .is_none_or(|f| f.tag != tag.0)
    }

    /// Acks the deliveries still in flight under their tags, with one ACK record; returns the
    /// ids of the others (settled already, or timed out).
    pub fn ack_checked(&mut self, qid: u32, items: &[(u64, DeliveryTag)]) -> Vec<u64> {
        let mut done = Vec::with_capacity(items.len());
        let mut stale = Vec::new();
        for &(id, tag) in items {
            match self.take_inflight(qid, id, Some(tag)) {
                Ok(f) => {
                    let q = &mut self.queues[qid as usize];
                    q.forget(&f.entry);
                    q.counters.acked += 1;
                    self.live_dec(&f.entry);
                    done.push(id);
                }
                Err(_) => stale.push(id),
            }
        }
        if !done.is_empty() {
            self.log(qid, |b| put_ack(b, qid, &done));
        }
        stale
    }

    /// Acks deliveries, each checked against its tag; fails when none could be acked.
    pub fn ack(&mut self, qid: u32, items: &[(u64, DeliveryTag)]) -> Result<()> {
        let stale = self.ack_checked(qid, items);
        match stale.first() {
            Some(&id) if stale.len() == items.len() => Err(self.already_settled(qid, id)),
            _ => Ok(()),
        }
    }

    /// The one failure path (nack, timeout, closed consumer, crash, rollback): redeliver later
    /// per the policy (`delay` overrides its delay), or dead-letter.
    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        qid: u32,
        id: u64,
        reason: &str,
        delay: Option<u64>,
        now: u64,
        tag: Option<DeliveryTag>,
        store: &StoreOptions,
    ) -> Result<()> {
        let f = self.take_inflight(qid, id, tag)?;
        let random = self.random();
        // A dead-letter queue's own failures never leave it (issue 15 #2; see
        // `DEAD_LETTER_KEPT_RETRY_MS`): asked only when a failure would dead-letter.
        let after = self.queues[qid as usize]
            .opts
            .redelivery
            .after_failure(f.entry.count, random);
        let in_dlq = (f.entry.group != 0 || after == AfterFailure::DeadLetter)
            && self.is_dead_letter_queue(qid, store);
        let q = &mut self.queues[qid as usize];
        q.note_failure(id, now, reason);
        let group_policy = if f.entry.group != 0 && !in_dlq {
            q.opts.group_failure
        } else {
            GroupFailurePolicy::Block
        };
        let outcome = match (group_policy, after) {
            (GroupFailurePolicy::Block, AfterFailure::Redeliver { delay_ms }) => {
                AfterFailure::Redeliver {
                    delay_ms: delay.unwrap_or(delay_ms),
                }
            }
            (GroupFailurePolicy::Block, AfterFailure::DeadLetter) if in_dlq => {
                let policy = &q.opts.redelivery;
                let wait = delay.unwrap_or_else(|| policy.delay_ms(f.entry.count.max(1), random));
                AfterFailure::Redeliver {
                    delay_ms: wait.max(DEAD_LETTER_KEPT_RETRY_MS),
                }
            }
            (GroupFailurePolicy::Block, dead) => dead,
            (GroupFailurePolicy::Skip | GroupFailurePolicy::Park, _) => AfterFailure::DeadLetter,
        };
        // Parking dead-letters the failed message and the rest of its group now, not when a
        // receive happens to reach them: until then depth and browse would show deliverable
        // work that no consumer will ever get.
        let mut parked_rest = Vec::new();
        if group_policy == GroupFailurePolicy::Park {
            let key = q.group_keys[f.entry.group as usize - 1].clone();
            q.group_state[f.entry.group as usize - 1].parked = true;
            parked_rest = q
                .ordered_waiting()
                .into_iter()
                .filter(|e| e.group == f.entry.group)
                .collect();
            parked_rest.sort_unstable_by_key(|e| e.id);
            self.log(qid, |b| put_group(b, qid, true, &key));
        }
        match outcome {
            AfterFailure::Redeliver { delay_ms } => {
                let due = self.due_after(now, delay_ms);
                let r = Requeue {
                    qid,
                    id,
                    count: f.entry.count,
                    not_before: due,
                    failed_at: now,
                    reason,
                };
                self.log(qid, |b| put_requeue(b, &r));
                self.queues[qid as usize].requeue(f.entry, due, now);
                Ok(())
            }
            AfterFailure::DeadLetter => {
                self.queues[qid as usize].hold(f.entry);
                let r = DeadLetterReason::MaxRedeliveries;
                self.dead_letter(qid, id, r, reason, now, store)?;
                for e in parked_rest {
                    let q = &mut self.queues[qid as usize];
                    let Some(e) = q.remove_waiting(e.id, e.priority) else {
                        continue;
                    };
                    q.hold(e);
                    let (r, text) = (DeadLetterReason::GroupParked, "its group is parked");
                    self.dead_letter(qid, e.id, r, text, now, store)?;
                }
                Ok(())
            }
        }
    }

    /// Gives a delivery back without counting a failure.
    pub fn release(&mut self, qid: u32, id: u64, tag: Option<DeliveryTag>, now: u64) -> Result<()> {
        let mut f = self.take_inflight(qid, id, tag)?;
        f.entry.count = f.entry.count.saturating_sub(1);
        let r = Requeue {
            qid,
            id,
            count: f.entry.count,
            not_before: 0,
            failed_at: 0,
            reason: "",
        };
        self.log(qid, |b| put_requeue(b, &r));
        self.queues[qid as usize].requeue(f.entry, 0, now);
        Ok(())
    }

    /// Rejects: straight to the dead-letter queue.
    pub fn reject(
        &mut self,
        qid: u32,
        id: u64,
        reason: &str,
        tag: Option<DeliveryTag>,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        let f = self.take_inflight(qid, id, tag)?;
        let q = &mut self.queues[qid as usize];
        q.note_failure(id, now, reason);
        q.hold(f.entry);
        self.dead_letter(qid, id, DeadLetterReason::Rejected, reason, now, store)
    }

    /// An expired message (held): dead-lettered with reason `expired`, or dropped. In a
    /// dead-letter queue (TTL, or the queue's retention) it is always dropped (review r14 #3):
    /// dead-lettering it onward (to the shared `DLQ`) rewrote its original queue and reason to
    /// the dead-letter queue's and `expired`, lost its failure text, and kept it for good,
    /// where the docs of `retention` say "dropped". The caller counted it `expired`: the one
    /// counter.
    pub fn expire(
        &mut self,
        qid: u32,
        id: u64,
        process: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        // The one rule of what a dead-letter queue is (strategies, or the names `DLQ` and
        // `DLQ.*`), as move, copy and replay use (review r15 #8).
        if process && !self.is_dead_letter_name(&self.queues[qid as usize].name, store) {
            self.dead_letter(qid, id, DeadLetterReason::Expired, "", now, store)
        } else {
            self.drop_inflight(qid, id, why::EXPIRED)
        }
    }

    /// Drops a held message for good (a REMOVE record).
    fn drop_inflight(&mut self, qid: u32, id: u64, code: u8) -> Result<()> {
        let f = self.take_inflight(qid, id, None)?;
        let q = &mut self.queues[qid as usize];
        q.forget(&f.entry);
        // Not counted here: the caller's event (expiry, dead-lettering) is the one counter.
        self.log(qid, |b| put_remove(b, qid, code, &[id]));
        self.live_dec(&f.entry);
        Ok(())
    }

    /// Counts a message leaving `qid` for its dead-letter queue (or dropped by the discard
    /// strategy): one event, one counter. An expired message was counted as `expired` when it
    /// expired, so it is not counted again as dead-lettered.
    fn count_dead_letter(&mut self, qid: u32, reason: DeadLetterReason) {
        if reason != DeadLetterReason::Expired {
            self.queues[qid as usize].counters.dead_lettered += 1;
        }
    }

    /// Counts a message that would leave `qid` for a dead-letter queue but is dropped (no
    /// dead-letter queue: the discard strategy): `dead_lettered`, as a move would be — except
    /// in a dead-letter queue, where a dead letter whose redeliveries ran out is not
    /// dead-lettered again but `discarded` (one event, one counter).
    fn count_dropped_dead_letter(
        &mut self,
        qid: u32,
        reason: DeadLetterReason,
        store: &StoreOptions,
    ) {
        if reason != DeadLetterReason::Expired && self.is_dead_letter_queue(qid, store) {
            self.queues[qid as usize].counters.discarded += 1;
        } else {
            self.count_dead_letter(qid, reason);
        }
    }

    /// Moves held message `id` of `qid` to its dead-letter queue. Its record must be read for
    /// the copy, which is not done under the lock: the message stays held (no delivery can
    /// settle it) until [`Engine::finish_moves`] appends its DEAD record. Without a dead-letter
    /// queue it is dropped at once.
    pub fn dead_letter(
        &mut self,
        qid: u32,
        id: u64,
        reason: DeadLetterReason,
        text: &str,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        if self.dlq_for(qid, store)?.is_none() {
            self.count_dropped_dead_letter(qid, reason, store);
            return self.drop_inflight(qid, id, reason_code(reason));
        }
        self.moves.push(Move {
            qid,
            id,
            reason,
            text: text.to_string(),
            now,
            tell: reason == DeadLetterReason::Rejected,
        });
        Ok(())
    }

    /// Appends the DEAD record of a move whose record was read: `rec` is the message's stored
    /// record, read when it was held at the same place.
    fn finish_dead_letter(&mut self, mv: &Move, rec: &[u8], store: &StoreOptions) -> Result<()> {
        let (qid, id, now) = (mv.qid, mv.id, mv.now);
        let Some(dlq) = self.dlq_for(qid, store)? else {
            self.count_dropped_dead_letter(qid, mv.reason, store);
            return self.drop_inflight(qid, id, reason_code(mv.reason));
        };
        let f = self.take_inflight(qid, id, Some(DeliveryTag(0)))?;
        let msg = decode_message(rec).ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("stored record of ID:{id} does not decode"),
            )
        })?;
        let q = &mut self.queues[qid as usize];
        let fi = q.fail.remove(&id).unwrap_or_default();
        let info = DeadLetterInfo {
            original_queue: q.name.clone(),
            original_id: MessageId(id),
            reason: mv.reason,
            last_failure: mv.text.clone(),
            delivery_count: f.entry.count,
            first_failure_ms: fi.first,
            last_failure_ms: if fi.last == 0 { now } else { fi.last },
        };
        q.forget(&f.entry);
        let src_journaled = q.opts.journaled();
        self.count_dead_letter(qid, mv.reason);
        self.live_dec(&f.entry);
        let timestamp = msg.timestamp_ms();
        let mut meta = msg.meta;
        meta.dead_letter = Some(info);
        let retention = self.queues[dlq as usize].opts.retention_ms;
        let expires_at = meta
            .dead_letter
            .as_ref()
            .map_or(0, |i| super::timers::retention_deadline(i, retention));
        let to = Destination {
            qid: dlq,
            priority: msg.priority,
            expires_at,
            timestamp,
            replay: false,
        };
        let from = Source {
            qid,
            id,
            journaled: src_journaled,
        };
        self.make_room_for_dead_letter(dlq, msg.body.len() as u64 + meta_bytes(&meta), now)?;
        let at = self.pending.buf.len();
        self.put_move(from, to, &meta, &msg.body, now)?;
        // Refused on a full disk (the DEAD record carries the message): the message stays in
        // its queue, and a reject's caller is told (the other dead-lettering has none).
        let counted = if mv.reason == DeadLetterReason::Expired {
            Counted::Nothing
        } else {
            Counted::DeadLettered
        };
        let at_count = f.entry.count;
        self.note_restore(at, qid, f.entry, counted, mv.tell, None);
        if mv.reason == DeadLetterReason::MaxRedeliveries {
            // Its redeliveries ran out, but a full disk may refuse the move: it then waits the
            // policy's delay (at least FULL_DISK_RETRY_MS) before its next delivery, which
            // tries the move again, instead of coming back at once in a hot loop.
            let random = self.random();
            let policy = &self.queues[qid as usize].opts.redelivery;
            let wait = policy
                .delay_ms(at_count.max(1), random)
                .max(FULL_DISK_RETRY_MS);
            if let Some(r) = self.pending.restores.last_mut().filter(|r| r.rec_off == at) {
                r.not_before = now.saturating_add(wait);
            }
        }
        Ok(())
    }

    /// Stores a copy of a message in `to.qid` (keeping its id: see `State::moved_id`) and
    /// removes `from.id` from `from.qid`,
    /// as one DEAD record: the move is atomic. The caller already took `from.id` out of memory.
    pub fn put_move(
        &mut self,
        from: Source,
        to: Destination,
        meta: &Meta,
        body: &[u8],
        now: u64,
    ) -> Result<()> {
        let new_id = self.moved_id(&from, to.qid, meta.topic.is_some());
        let h = SendHeader {
            id: new_id,
            qid: to.qid,
            priority: to.priority,
            flags: 0,
            delivery_count: 0,
            timestamp: if to.timestamp != 0 { to.timestamp } else { now },
            expires_at: to.expires_at,
            deliver_at: 0,
            meta_len: 0,
        };
        let d = &mut self.queues[to.qid as usize];
        let group = meta.group.as_deref().map(|g| d.group_index(g)).unwrap_or(0);
        let flags = if meta.repeat.is_some() {
            ENTRY_REPEATS
        } else {
            0
        };
        let mut entry = Entry {
            id: new_id,
            expires_at: to.expires_at,
            seg: MEM_SEG,
            off: 0,
            len: 0,
            count: 0,
            group,
            priority: to.priority,
            flags,
            refs: 1,
        };
        if !d.opts.journaled() {
            let mut rec = Vec::new();
            entry.len = put_send(&mut rec, h, meta, body)?;
            d.mem.insert(new_id, rec);
            d.insert(entry, 0, now);
            if !to.replay {
                d.counters.enqueued += 1;
            }
            if from.journaled {
                put_remove(&mut self.pending.buf, from.qid, why::DISCARD, &[from.id]);
            }
            return Ok(());
        }
        let sync = d.opts.needs_sync() || self.queues[from.qid as usize].opts.needs_sync();
        let start = self.pending.buf.len();
        entry.len = put_dead(&mut self.pending.buf, from.qid, from.id, h, meta, body)?;
        let d = &mut self.queues[to.qid as usize];
        d.pending_count += 1;
        d.pending_bytes += entry.len as u64;
        self.pending.needs_sync |= sync;
        self.pending.sends.push(PendingSend {
            qid: to.qid,
            rec_off: start,
            entry,
            due: 0,
            relocate: false,
            replay: to.replay,
            dedup_key: None,
        });
        Ok(())
    }

    /// A dead-letter queue at its `max_messages`/`max_bytes` (with `drop_oldest`, the only
    /// overflow policy a dead-letter queue takes: see [`check_dead_letter_limits`]) discards
    /// its oldest dead letters not handed out until one more of `payload` bytes fits, each
    /// counted `discarded` in it: retention by count (review r5 #23: the limits used to be
    /// ignored for dead letters). A dead letter is never refused for room: when every dead
    /// letter is handed out (or still being written in this batch), it is stored over the
    /// limit, and the next dead letter makes room again.
    fn make_room_for_dead_letter(&mut self, dlq: u32, payload: u64, now: u64) -> Result<()> {
        while !self.queues[dlq as usize].room_for(1, payload) {
            let Some(id) = self.hold_oldest_not_handed_out(dlq, now) else {
                return Ok(());
            };
            self.queues[dlq as usize].counters.discarded += 1;
            self.drop_inflight(dlq, id, why::DISCARD)?;
        }
        Ok(())
    }

    /// Retention by count applies to the dead letters already held, as retention by age does
    /// (review r12 #8): a dead-letter queue declared with limits (so with `drop_oldest`) lower
    /// than what it holds discards its oldest dead letters not handed out until it is within
    /// them, each counted `discarded`, at the declaration rather than when the next dead letter
    /// arrives. (A queue that is no dead-letter queue keeps its messages over a lowered limit:
    /// its overflow policy is what a send does at the limit, and drop_oldest there moves
    /// messages to the dead-letter queue, which a declaration must not do.)
    pub fn trim_dead_letter_queue(
        &mut self,
        dlq: u32,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        let o = &self.queues[dlq as usize].opts;
        if o.max_messages.is_none() && o.max_bytes.is_none()
            || !self.is_dead_letter_queue(dlq, store)
        {
            return Ok(());
        }
        while !self.queues[dlq as usize].room_for(0, 0) {
            let Some(id) = self.hold_oldest_not_handed_out(dlq, now) else {
                return Ok(());
            };
            self.queues[dlq as usize].counters.discarded += 1;
            self.drop_inflight(dlq, id, why::DISCARD)?;
        }
        Ok(())
    }

    /// Takes the oldest message of queue `qid` that is not handed out — waiting, or only
    /// prefetched by a consumer (taken back from its buffer first: nobody holds it, as work
    /// stealing shows) — out of the waiting ones and holds it, for the caller to drop or
    /// dead-letter. Its id, or `None` when every message is handed out or not yet due.
    fn hold_oldest_not_handed_out(&mut self, qid: u32, now: u64) -> Option<u64> {
        let waiting = self.queues[qid as usize]
            .ordered_waiting()
            .into_iter()
            .map(|e| e.id)
            .min();
        if let Some(p) = self.oldest_prefetched(qid) {
            if waiting.is_none_or(|w| p < w) {
                self.unbuffer_one(qid, p, now);
            }
        }
        let q = &mut self.queues[qid as usize];
        let oldest = q.ordered_waiting().into_iter().min_by_key(|e| e.id)?;
        let e = q.remove_waiting(oldest.id, oldest.priority)?;
        q.hold(e);
        Some(oldest.id)
    }

    /// Makes room in a full queue with `drop_oldest`: dead-letters its oldest message that is
    /// not handed out — waiting, or only prefetched by a consumer (taken back from its buffer
    /// first: nobody holds it, as work stealing shows). `false`: none (every message is handed
    /// out or not yet due).
    pub fn drop_oldest(&mut self, qid: u32, now: u64, store: &StoreOptions) -> Result<bool> {
        let Some(id) = self.hold_oldest_not_handed_out(qid, now) else {
            return Ok(false);
        };
        self.dead_letter(qid, id, DeadLetterReason::Overflow, "", now, store)?;
        Ok(true)
    }
}

/// The message [`State::put_move`] moves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    pub qid: u32,
    pub id: u64,
    /// Whether its queue is journaled (a memory queue's message needs no record to leave).
    pub journaled: bool,
}

/// Where [`State::put_move`] puts the copy.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Destination {
    pub qid: u32,
    pub priority: u8,
    pub expires_at: u64,
    /// The message's original send time, kept through dead-lettering and replay (0: now).
    pub timestamp: u64,
    /// A replay (counted `replayed` in the target, not `enqueued`); else a dead-letter move.
    pub replay: bool,
}

impl Engine {
    /// Completes the dead-letter moves waiting in the state: reads their records with the lock
    /// released, then appends their DEAD records. Every request that may dead-letter calls it
    /// before it waits for its batch; when it returns, every move queued before the call has its
    /// record appended (moves another thread took are waited for).
    pub(super) fn finish_moves<'a>(&'a self, mut g: Guard<'a>) -> Result<Guard<'a>> {
        let shared = &self.shared;
        loop {
            if g.moves.is_empty() {
                if g.moves_reading == 0 {
                    return Ok(g);
                }
                g = shared.done.wait(g).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let moves = std::mem::take(&mut g.moves);
            let held: Vec<(u32, Entry)> = moves
                .iter()
                .filter_map(|m| {
                    let f = g.queues[m.qid as usize].inflight.get(&m.id)?;
                    (f.tag == 0).then_some((m.qid, f.entry))
                })
                .collect();
            if held.len() != moves.len() {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "a message on its way to the dead-letter queue is no longer held",
                ));
            }
            let snap = g.snapshot(&shared.files, held)?;
            g.moves_reading += 1;
            drop(g);
            let recs = snap.read();
            g = shared.lock();
            g.moves_reading -= 1;
            shared.done.notify_all();
            // A failed read leaves the messages held: they come back at the next open.
            let recs = recs?;
            for (mv, rec) in moves.iter().zip(recs.iter()) {
                g.finish_dead_letter(mv, rec, &shared.opts)?;
            }
        }
    }

    /// Settles one delivery and waits until the settle is durable (per the queue's durability).
    pub(crate) fn settle(&self, d: DeliveryRef, op: Settle<'_>) -> Result<()> {
        let shared = &self.shared;
        let (qid, id, tag) = (d.queue.0, d.id.0, d.tag);
        if let Settle::Nack { reason, .. } | Settle::Reject { reason } = op {
            // The text is stored (REQUEUE records, a dead letter's headers): its size is
            // checked here, where the caller can still be told.
            if reason.len() > MAX_REASON_BYTES {
                return Err(Error::invalid(format!(
                    "failure reason of {} bytes is over the limit of {MAX_REASON_BYTES} bytes",
                    reason.len()
                )));
            }
        }
        let mut g = shared.lock();
        g.check()?;
        if matches!(op, Settle::Reject { .. }) && g.is_dead_letter_queue(qid, &shared.opts) {
            let name = &g.queues[qid as usize].name;
            return Err(super::state::dead_letter_reject_refused(name));
        }
        let now = shared.now();
        // Expire ack timeouts first, so settling a timed-out delivery fails deterministically.
        g.tick(qid, now, &shared.opts)?;
        let before = g.pending.buf.len();
        match op {
            Settle::Ack | Settle::AckSync if g.mode_of(d.consumer) == AckMode::Cumulative => {
                g.ack_cumulative(d)?;
            }
            Settle::Ack | Settle::AckSync => g.ack(qid, &[(id, tag)])?,
            Settle::Nack { reason, delay } => {
                g.forget_received(d.consumer, id, tag);
                let delay = delay.map(crate::clock::ms_ceil);
                g.fail(qid, id, reason, delay, now, Some(tag), &shared.opts)?;
                // The failure dead-letters it: this caller is told if a full disk refuses the
                // move, as a reject's is.
                if let Some(m) = g.moves.iter_mut().find(|m| m.qid == qid && m.id == id) {
                    m.tell = true;
                }
            }
            Settle::Reject { reason } => {
                g.forget_received(d.consumer, id, tag);
                g.reject(qid, id, reason, Some(tag), now, &shared.opts)?;
            }
            Settle::Release => {
                if let Some(cid) = g.release_delivery(d, now)? {
                    g.unbuffer(cid, now);
                }
            }
        }
        g = self.finish_moves(g)?;
        shared.avail.notify_all();
        shared.room.notify_all();
        if matches!(op, Settle::Ack) && self.lazy_acks(&mut g, qid, before) {
            return Ok(());
        }
        let mut g = self.commit(g)?;
        if matches!(op, Settle::Reject { .. } | Settle::Nack { .. }) {
            // The dead-letter move was refused (a full disk): the message is back in its queue.
            if let Some(e) = g.refused.remove(&id) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the acks of queue `qid` appended since the batch was `before` bytes long may be
    /// lazy (the queue's ack durability); if so they are marked lazy and the commit thread
    /// learns when they are due. (Records of memory queues are never written: nothing to wait
    /// for either.)
    fn lazy_acks(&self, g: &mut Guard<'_>, qid: u32, before: usize) -> bool {
        let o = &g.queues[qid as usize].opts;
        if o.ack_durability == AckDurability::Sync {
            return false;
        }
        let now = self.shared.now();
        if g.pending.buf.len() > before && g.pending.mark_lazy(before, now) && g.progress.idle {
            self.shared.work.notify_one();
        }
        self.kick_unless_lazy(g);
        true
    }

    /// Wakes the commit thread when the batch holds more than lazy acks (a ticked timeout).
    pub(super) fn kick_unless_lazy(&self, g: &Guard<'_>) {
        if g.pending
            .may_wait(self.shared.now())
            .is_some_and(|w| w.is_zero())
        {
            self.kick(g);
        }
    }

    /// A delivery dropped unsettled (explicit ack mode): a failed delivery. Does not wait for
    /// its record (a drop must not block).
    pub(crate) fn settle_on_drop(&self, d: DeliveryRef) {
        let shared = &self.shared;
        let mut g = shared.lock();
        if g.check().is_err() {
            return;
        }
        let now = shared.now();
        let text = "delivery dropped without being settled";
        let r = g.fail(
            d.queue.0,
            d.id.0,
            text,
            None,
            now,
            Some(d.tag),
            &shared.opts,
        );
        if r.is_ok() {
            if let Ok(g) = self.finish_moves(g) {
                if !g.pending.is_empty() {
                    self.kick(&g);
                }
            }
        }
        shared.avail.notify_all();
    }

    /// Acks many deliveries of queue `q` with one record and one wait. A delivery that is no
    /// longer in flight under its tag (timed out, redelivered) is not acked: the others are, and
    /// the call fails with `AlreadySettled` naming it.
    ///
    /// With `sync` (or the queue's `ack_durability = Sync`) it returns once the acks are
    /// durable; otherwise they are lazy, like [`Settle::Ack`]: the next commit of the store (a
    /// receive's delivery record, a send, or the commit thread within the lazy-ack interval)
    /// writes them, so a receive-batch/ack-batch loop pays one fsync per cycle.
    pub(crate) fn ack_batch(
        &self,
        q: super::QueueId,
        ds: &[DeliveryRef],
        sync: bool,
    ) -> Result<()> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        for d in ds {
            g.forget_received(d.consumer, d.id.0, d.tag);
        }
        let items: Vec<(u64, DeliveryTag)> = ds.iter().map(|d| (d.id.0, d.tag)).collect();
        let before = g.pending.buf.len();
        let stale = g.ack_checked(q.0, &items);
        shared.room.notify_all();
        let _g = if !sync && self.lazy_acks(&mut g, q.0, before) {
            g
        } else {
            self.commit(g)?
        };
        settled_in_batch(stale.into_iter().map(MessageId), "acked")
    }

    /// Releases the deliveries `ds` of queue `q` (each as [`Settle::Release`]: back to the
    /// queue, no failure counted, ahead of what their consumers prefetched) under one lock and
    /// with ONE commit, durable when this returns. A release each waited for its own fdatasync:
    /// a bridge giving back a window of 60,000 took 60–90 s (review r11 #1, #2).
    ///
    /// Errors: `AlreadySettled` naming those of the batch settled before (the others are
    /// released); `Closed`, `Poisoned`.
    pub(crate) fn release_batch(&self, q: super::QueueId, ds: &[DeliveryRef]) -> Result<()> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        // As a single settle: ack timeouts first, so a timed-out delivery is reported settled.
        g.tick(q.0, now, &shared.opts)?;
        let mut stale = Vec::new();
        let mut takers = Vec::new();
        for d in ds {
            match g.release_delivery(*d, now) {
                Ok(taker) => takers.extend(taker),
                Err(e) if e.kind() == ErrorKind::AlreadySettled => stale.push(d.id),
                Err(e) => return Err(e),
            }
        }
        // What their consumers prefetched after them goes back too (see `release_delivery`).
        takers.sort_unstable();
        takers.dedup();
        for cid in takers {
            g.unbuffer(cid, now);
        }
        g = self.finish_moves(g)?;
        shared.avail.notify_all();
        shared.room.notify_all();
        let _g = self.commit(g)?;
        settled_in_batch(stale.into_iter(), "released")
    }

    /// Whether delivery `d` is settled (by its handle, a cumulative ack, a transaction, a
    /// timeout or its consumer's close). A closed store settles nothing any more: `false`.
    pub(crate) fn is_settled(&self, d: DeliveryRef) -> bool {
        let g = self.shared.lock();
        !g.closed && g.is_settled(d.queue.0, d.id.0, d.tag)
    }
}

impl State {
    /// Releases delivery `d` (no failure counted). Returns the consumer that took it (a plain
    /// receive's too: the queue's own consumer, or a client connection's), whose buffer the
    /// caller gives back: a released message is the next one its consumer's receives deliver
    /// (as a JMS session's recover), so the later messages that consumer prefetched go back
    /// too, uncounted, or they would overtake it (a bridge route giving a message back
    /// forwarded the next one first). One path for `release` and `release_batch`.
    fn release_delivery(&mut self, d: DeliveryRef, now: u64) -> Result<Option<u64>> {
        let (qid, id, tag) = (d.queue.0, d.id.0, d.tag);
        self.forget_received(d.consumer, id, tag);
        let taker = self.queues[qid as usize]
            .inflight
            .get(&id)
            .filter(|f| f.tag == tag.0)
            .map(|f| f.consumer);
        self.release(qid, id, Some(tag), now)?;
        Ok(taker.filter(|&c| c != 0))
    }

    /// A cumulative ack: `d` and every delivery its consumer received before it that is still
    /// that consumer's (a timed-out one may be another consumer's redelivery by now).
    fn ack_cumulative(&mut self, d: DeliveryRef) -> Result<()> {
        let settled = || {
            Error::new(
                ErrorKind::AlreadySettled,
                format!("{} is already settled", d.id),
            )
        };
        let c = self.consumers.get_mut(&d.consumer.0).ok_or_else(settled)?;
        let pos = c
            .received
            .iter()
            .position(|&(id, t)| id == d.id.0 && t == d.tag)
            .ok_or_else(settled)?;
        let upto: Vec<(u64, DeliveryTag)> = c.received.drain(..=pos).collect();
        self.ack(d.queue.0, &upto)
    }
}
