//! Compaction: segments with nothing live are removed; when the oldest live segment is mostly
//! dead, its live items are copied forward (RELOCATE, DEDUP and QUEUE records), so a few old
//! messages never pin gigabytes of journal. The copies' bodies are read with the state lock
//! released.

use std::cmp::Reverse;

use super::batch::PendingSend;
use super::queue::{Entry, QueueState, ENTRY_REPEAT_WRITING};
use super::record::{put_dedup, put_relocate, send_bytes_in_record, Relocation};
use super::{Engine, Guard, State};

/// The live messages of the segment being compacted: (queue, entry as it was planned).
type Plan = Vec<(u32, Entry)>;

impl QueueState {
    /// A stored message wherever it is, and whether it is in flight.
    pub(super) fn find(&self, id: u64, priority: u8) -> Option<(&Entry, bool)> {
        if let Some(f) = self.inflight.get(&id) {
            return Some((&f.entry, true));
        }
        if let Some(due) = self.delayed_due.get(&id) {
            return self.delayed.get(&(*due, id)).map(|e| (e, false));
        }
        if let Some(e) = self.retry.get(&(Reverse(priority), id)) {
            return Some((e, false));
        }
        let dq = &self.ready[priority as usize];
        let i = dq.binary_search_by_key(&id, |e| e.id).ok()?;
        dq.get(i).map(|e| (e, false))
    }
}

impl State {
    /// Picks the segments that can go (the oldest run with nothing live, never the tail) and,
    /// when the oldest live segment is mostly dead and no compaction is under way, lists the
    /// messages whose records are to be read and copied forward.
    fn plan_compaction(&self, compact_below: f64) -> (Vec<u64>, Option<(u64, Plan)>) {
        let space = &self.space;
        let tail = space.segs.last().map(|s| s.0).unwrap_or(0);
        let mut removable = Vec::new();
        let mut head = None;
        for &(seg, size) in &space.segs {
            if seg == tail {
                break;
            }
            let (items, bytes) = space.seg_live.get(&seg).copied().unwrap_or((0, 0));
            if items == 0 {
                removable.push(seg);
            } else {
                head = Some((seg, size, bytes));
                break;
            }
        }
        let plan = match head {
            Some((h, size, bytes))
                if space.compacting.is_none() && (bytes as f64) < compact_below * size as f64 =>
            {
                Some((h, self.plan_relocation(h as u32)))
            }
            _ => None,
        };
        (removable, plan)
    }

    /// Lists the messages stored in segment `h`.
    fn plan_relocation(&self, h: u32) -> Plan {
        let mut plan = Vec::new();
        for q in &self.queues {
            q.for_each(|e, _| {
                if e.seg == h {
                    plan.push((q.qid, *e));
                }
            });
        }
        plan
    }

    /// Appends the QUEUE and DEDUP records of segment `h`: copies of what lives in memory.
    fn append_declarations(&mut self, h: u32) {
        for qi in 0..self.queues.len() {
            let qid = self.queues[qi].qid;
            if self.queues[qi].decl_seg == h {
                self.put_declaration(qid);
            }
            let dedups: Vec<(String, u64, u64)> = self.queues[qi]
                .dedup
                .iter()
                .filter(|(_, d)| d.seg == h)
                .map(|(k, d)| (k.clone(), d.id, d.at))
                .collect();
            for (key, id, at_ms) in dedups {
                let at = self.pending.buf.len();
                put_dedup(&mut self.pending.buf, qid, id, at_ms, &key);
                self.pending.dedups.push((qid, key.into_boxed_str(), at));
            }
        }
    }

    /// Appends the copies of segment `h`'s live items as they are now: its declarations and
    /// dedup entries, and a RELOCATE record for each planned message still stored where it was
    /// planned (one settled meanwhile is not copied: the copy would bring it back at
    /// recovery). They end the batch ([`Batch::copies_at`](super::batch::Batch::copies_at)),
    /// so that a disk too full for them drops them whole, leaving no trace (see
    /// `write_and_sync`).
    fn append_copies(&mut self, h: u32, plan: &Plan, recs: &super::read::Records) {
        let copies_at = self.pending.buf.len();
        self.append_declarations(h);
        for (&(qid, planned), rec) in plan.iter().zip(recs.iter()) {
            let q = &self.queues[qid as usize];
            let Some((e, in_flight)) = q.find(planned.id, planned.priority) else {
                continue;
            };
            // Settled or moved meanwhile; or a repeat's rewrite is pending (a copy of the older
            // record after it would repeat again at recovery: see `ENTRY_REPEAT_WRITING`).
            if (e.seg, e.off) != (planned.seg, planned.off) || e.flags & ENTRY_REPEAT_WRITING != 0 {
                continue;
            }
            let Some(send) = send_bytes_in_record(rec) else {
                continue;
            };
            let e = *e;
            let fi = q.fail.get(&e.id).cloned().unwrap_or_default();
            let r = Relocation {
                count: e.count,
                in_flight,
                not_before: q.delayed_due.get(&e.id).copied().unwrap_or(0),
                first_failure: fi.first,
                last_failure: fi.last,
                reason: &fi.reason,
            };
            let start = self.pending.buf.len();
            let len = put_relocate(&mut self.pending.buf, &r, qid, send);
            self.pending.sends.push(PendingSend {
                qid,
                rec_off: start,
                // The copy is this queue's own record, whatever the original was shared by.
                entry: Entry { len, refs: 1, ..e },
                due: 0,
                relocate: true,
                replay: false,
                dedup_key: None,
            });
        }
        if self.pending.buf.len() > copies_at {
            self.pending.copies_at = Some(copies_at);
        }
        self.pending.needs_sync = true;
    }
}

impl Engine {
    /// Before a group commit (the caller leads it): the segments that can go once everything
    /// is synced, and, when compaction starts, the copies of the oldest live segment's messages
    /// appended to the pending batch. Their records are read with the state lock released (the
    /// caller holds `io`, so no other commit runs meanwhile).
    pub(super) fn prepare_compaction<'a>(&'a self, g: Guard<'a>) -> (Guard<'a>, Vec<u64>) {
        let shared = &self.shared;
        let (removable, plan) = g.plan_compaction(shared.opts.compact_below);
        let Some((h, plan)) = plan else {
            return (g, removable);
        };
        let snap = g.snapshot(&shared.files, plan.iter().copied());
        drop(g);
        let recs = snap.and_then(|s| s.read());
        let mut g = shared.lock();
        // A failed read only postpones compaction: the next commit plans it again.
        if let Ok(recs) = recs {
            g.append_copies(h as u32, &plan, &recs);
            g.space.compacting = Some(h);
        }
        (g, removable)
    }
}
