//! The records of the next group commit, and what is waiting for them.

use std::time::Duration;

use super::callbacks::Callback;
use super::queue::{Entry, InFlight, ENTRY_REPEATS, ENTRY_REPEAT_WRITING};
use super::State;
use crate::defaults::LAZY_ACK_INTERVAL_MS;
use crate::error::Result;
use crate::journal::Placed;
use crate::message::MessageId;

/// A send waiting for its batch to be committed.
#[derive(Debug)]
pub(crate) struct PendingSend {
    pub qid: u32,
    /// Where its record starts in [`Batch::buf`].
    pub rec_off: usize,
    pub entry: Entry,
    pub due: u64,
    /// A compaction copy: update the location of an existing message instead of adding one.
    pub relocate: bool,
    /// A replay's copy: counted `replayed` in its queue (when the replay is done), not
    /// `enqueued` (review r5 #14: one event, one counter).
    pub replay: bool,
    pub dedup_key: Option<Box<str>>,
}

/// A message a record of the batch takes out of its queue in memory (a dead-letter move,
/// a replay, a transfer, a transaction's ack) together with a copy of it or other messages:
/// such a record is refused as a whole on a full disk (it is not a small settle that the
/// segment's reserve is kept for), and then the message goes back where it was.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Restore {
    /// Where the record that took it out starts in [`Batch::buf`].
    pub rec_off: usize,
    pub qid: u32,
    pub entry: Entry,
    /// The counter the taking counted, to be taken back.
    pub counted: Counted,
    /// A caller waits to learn the outcome: a refusal is left in `State::refused` under the
    /// entry's id (nobody would take it otherwise: dead-lettering by a timer).
    pub tell: bool,
    /// The delivery tag it was in flight under, to put it back in flight (a transaction's
    /// ack: the failed commit's rollback then fails the delivery as for any rollback);
    /// `None`: back to ready.
    pub tag: Option<u64>,
    /// When it may be delivered again (0: at once); a message whose dead-letter move was
    /// refused waits, so that it is not redelivered in a loop while the disk stays full.
    pub not_before: u64,
}

/// The counter a [`Restore`]'s record counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    Nothing,
    /// `acked` of its queue.
    Acked,
    /// `dead_lettered` of its queue.
    DeadLettered,
    /// `replayed_out` of its queue (the dead-letter queue) and `replayed` of queue `.0` (the
    /// replay's target).
    Replayed(u32),
    /// `replayed_out` of its queue alone (a move: the target counts `enqueued`).
    MovedOut,
}

/// The records of the next group commit: appended under the state lock, in the order the
/// changes happen, so the journal's order is the order of the changes.
#[derive(Default)]
pub(crate) struct Batch {
    pub buf: Vec<u8>,
    pub sends: Vec<PendingSend>,
    pub callbacks: Vec<(Callback, Result<MessageId>)>,
    /// Some record needs an fdatasync before its call returns.
    pub needs_sync: bool,
    /// Async sends (count, body bytes) in this batch, for the producer window.
    pub async_msgs: usize,
    pub async_bytes: usize,
    /// Queue declarations (queue, offset of the QUEUE record).
    pub decls: Vec<(u32, usize)>,
    /// Dedup entries carried forward by compaction (queue, key, offset of the DEDUP record).
    pub dedups: Vec<(u32, Box<str>, usize)>,
    /// Bytes of `buf` that are lazy acks (no caller waits for them; they are due within the
    /// lazy-ack commit interval of `lazy_since`).
    pub lazy_bytes: usize,
    /// When the first lazy ack of this batch was appended (ms of the store's clock, so a test's
    /// manual clock decides when lazy acks are due).
    pub lazy_since: Option<u64>,
    /// A caller waits for this batch ([`super::Engine::wait_done`]): it is due now, even if it
    /// holds only lazy acks. (Without it a caller that waits for a batch of lazy acks, e.g. a
    /// delivery record taken by a leader while later lazy acks filled `pending`, waits until
    /// the lazy-ack interval passes on the store's clock, which a manual clock never does.)
    pub awaited: bool,
    /// Messages the batch's records take out of their queues, put back if such a record is
    /// refused on a full disk.
    pub restores: Vec<Restore>,
    /// Where compaction's copies (QUEUE, DEDUP and RELOCATE records of the segment being
    /// compacted) start in `buf`: they end the batch, appended just before it is written. A
    /// disk too full for them drops them (the segment waits), which never refuses a send.
    pub copies_at: Option<usize>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty() && self.callbacks.is_empty()
    }

    pub fn clear(&mut self) {
        self.buf.clear();
        self.sends.clear();
        self.callbacks.clear();
        self.needs_sync = false;
        self.async_msgs = 0;
        self.async_bytes = 0;
        self.decls.clear();
        self.dedups.clear();
        self.lazy_bytes = 0;
        self.lazy_since = None;
        self.awaited = false;
        self.restores.clear();
        self.copies_at = None;
    }

    /// Notes that the records appended since `buf` was `before` bytes long are lazy acks.
    /// Returns whether they are the batch's first (the commit thread must learn its deadline).
    pub fn mark_lazy(&mut self, before: usize, now: u64) -> bool {
        self.lazy_bytes += self.buf.len() - before;
        let first = self.lazy_since.is_none();
        self.lazy_since.get_or_insert(now);
        first
    }

    /// How long the commit of this batch may still wait at `now` (ms): `None` when it is
    /// empty and no caller waits for it, zero when a caller may be waiting for it (anything but
    /// lazy acks, or [`awaited`](Batch::awaited) even when empty: `compact` drives commits by
    /// waiting for empty batches) or the lazy acks are due ([`LAZY_ACK_INTERVAL_MS`] after the
    /// first).
    pub fn may_wait(&self, now: u64) -> Option<Duration> {
        if self.is_empty() && !self.awaited {
            return None;
        }
        match self.lazy_since {
            Some(t)
                if self.buf.len() == self.lazy_bytes
                    && self.callbacks.is_empty()
                    && !self.awaited =>
            {
                let due = t.saturating_add(LAZY_ACK_INTERVAL_MS);
                Some(Duration::from_millis(due.saturating_sub(now)))
            }
            _ => Some(Duration::ZERO),
        }
    }
}

impl State {
    /// Notes that the record starting at `rec_off` of the pending batch took `entry` out of
    /// queue `qid` (see [`Restore`]). Nothing to note when no record was appended there (a
    /// memory queue's change is not written, so no disk can refuse it).
    pub fn note_restore(
        &mut self,
        rec_off: usize,
        qid: u32,
        entry: Entry,
        counted: Counted,
        tell: bool,
        tag: Option<u64>,
    ) {
        if self.pending.buf.len() > rec_off {
            self.pending.restores.push(Restore {
                rec_off,
                qid,
                entry,
                counted,
                tell,
                tag,
                not_before: 0,
            });
        }
    }

    /// Puts back a message whose taking-out record a full disk refused: ready again in its
    /// queue (the journal still holds it as it was), its counter taken back.
    pub fn restore(&mut self, r: &Restore, now: u64) {
        let q = &mut self.queues[r.qid as usize];
        match r.counted {
            Counted::Nothing => {}
            Counted::Acked => q.counters.acked = q.counters.acked.saturating_sub(1),
            Counted::DeadLettered => {
                q.counters.dead_lettered = q.counters.dead_lettered.saturating_sub(1)
            }
            Counted::Replayed(t) => {
                q.counters.replayed_out = q.counters.replayed_out.saturating_sub(1);
                let t = &mut self.queues[t as usize].counters;
                t.replayed = t.replayed.saturating_sub(1);
            }
            Counted::MovedOut => {
                q.counters.replayed_out = q.counters.replayed_out.saturating_sub(1)
            }
        }
        let q = &mut self.queues[r.qid as usize];
        if q.find(r.entry.id, r.entry.priority).is_some() {
            return;
        }
        q.insert(r.entry, r.not_before, now);
        if let Some(tag) = r.tag {
            if let Some(e) = q.take_back(r.entry.id, r.entry.priority) {
                q.inflight.insert(
                    e.id,
                    InFlight {
                        entry: e,
                        consumer: 0,
                        deadline: None,
                        tag,
                    },
                );
            }
        }
        self.live_inc(r.entry.seg as u64, r.entry.live_bytes());
    }

    /// Applies a committed batch: its sends become visible (at the place they were written),
    /// declarations, dedup entries and compaction's copies get their segments.
    pub fn publish(&mut self, batch: &mut Batch, placed: &[Placed], now: u64) {
        let locate = |rec_off: usize| -> Option<(u64, u64)> {
            placed
                .iter()
                .find(|p| p.buf_start <= rec_off && rec_off < p.buf_end)
                .map(|p| (p.seg, p.file_off + (rec_off - p.buf_start) as u64))
        };
        for (qid, at) in batch.decls.drain(..) {
            if let Some((seg, _)) = locate(at) {
                let old = self.queues[qid as usize].decl_seg;
                self.live_dec_item(old);
                self.queues[qid as usize].decl_seg = seg as u32;
                self.live_inc(seg, 0);
            }
        }
        for (qid, key, at) in batch.dedups.drain(..) {
            if let Some((seg, _)) = locate(at) {
                let q = &mut self.queues[qid as usize];
                if let Some(d) = q.dedup.get_mut(&*key) {
                    let old = d.seg;
                    d.seg = seg as u32;
                    self.live_dec_item(old);
                    self.live_inc(seg, 0);
                }
            }
        }
        let mut pi = 0;
        for s in batch.sends.drain(..) {
            while pi < placed.len() && placed[pi].buf_end <= s.rec_off {
                pi += 1;
            }
            let Some(p) = placed.get(pi) else { continue };
            let seg = p.seg;
            let off = p.file_off + (s.rec_off - p.buf_start) as u64;
            let mut e = s.entry;
            e.seg = seg as u32;
            e.off = off as u32;
            let q = &mut self.queues[s.qid as usize];
            if s.relocate {
                let Some(cur) = q.find_mut(e.id, e.priority) else {
                    continue;
                };
                let old = *cur;
                cur.seg = e.seg;
                cur.off = e.off;
                cur.len = e.len;
                cur.refs = e.refs;
                if e.flags & ENTRY_REPEAT_WRITING != 0 {
                    // The rewrite that made its next occurrence: its record no longer repeats.
                    cur.flags &= !(ENTRY_REPEATS | ENTRY_REPEAT_WRITING);
                }
                q.bytes = q.bytes + e.len as u64 - old.len as u64;
                self.live_dec(&old);
                self.live_inc(seg, e.live_bytes());
                continue;
            }
            q.pending_count -= 1;
            q.pending_bytes -= e.len as u64;
            if !s.replay {
                q.counters.enqueued += 1;
            }
            q.insert(e, s.due, now);
            if let Some(k) = s.dedup_key {
                if let Some(d) = q.dedup.get_mut(&*k) {
                    if d.id == e.id {
                        d.seg = e.seg;
                        self.live_inc(seg, 0);
                    }
                }
            }
            self.live_inc(seg, e.live_bytes());
        }
    }
}
