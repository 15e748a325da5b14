//! Queue declaration, browse, purge, stats, and closing.

use super::queue::Entry;
use super::record::{decode_message, put_remove, why};
use super::timers::retention_deadline;
use super::{on_library_thread, Engine, QueueId};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};

/// Which waiting messages [`Queue::purge_filtered`](crate::Queue::purge_filtered) removes.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurgeFilter {
    /// Only messages with ids up to this one (inclusive): pass a dry run's
    /// [`PurgeReport::last`] to remove exactly what it counted (and nothing sent since).
    /// `None`: every waiting message.
    pub through: Option<MessageId>,
    /// Only count; change nothing.
    pub dry_run: bool,
}

/// What [`Queue::purge_filtered`](crate::Queue::purge_filtered) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PurgeReport {
    /// Waiting messages that passed the filter (a dry run's count).
    pub matched: u64,
    /// Messages removed (0 on a dry run).
    pub purged: u64,
    /// The highest id that passed the filter (`None`: none did).
    pub last: Option<MessageId>,
}
use crate::options::{QueueOptions, Resolved};

/// Counters and gauges of one queue.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QueueStats {
    /// Messages ready for delivery: waiting, with no delivery time or redelivery delay of
    /// their own. A group's messages behind one in flight count (they are the backlog; see
    /// [`MessageState::Ready`](crate::MessageState::Ready)).
    pub depth: u64,
    /// Messages handed out to a consumer and not yet settled.
    pub in_flight: u64,
    /// Messages taken by consumers' prefetch and not yet handed out (their delivery counts are
    /// durable: after a crash each counts one failed delivery).
    pub prefetched: u64,
    /// Messages waiting for a delivery time or a redelivery delay.
    pub delayed: u64,
    /// All messages held (ready + in flight + prefetched + delayed).
    pub messages: u64,
    /// Bytes of the records held (bodies and headers).
    pub bytes: u64,
    /// Messages stored since the store was opened: sends, publishes reaching the queue, and
    /// dead letters moved into it; not replays (counted in `replayed`). The counters start at
    /// 0 at every open and balance: `enqueued + replayed − (acked + dead_lettered + expired +
    /// discarded + replayed_out)` is the change of `messages` since the open (review r5 #14:
    /// one event, one counter).
    pub enqueued: u64,
    /// Messages acknowledged since the store was opened.
    pub acked: u64,
    /// Deliveries that were redeliveries.
    pub redelivered: u64,
    /// Messages that failed (too many redeliveries, rejected, overflow, a parked group) and
    /// left for the dead-letter queue, or were dropped by the `Discard` strategy. Each message
    /// that leaves a queue counts once, in one of `acked`, `dead_lettered`, `expired`,
    /// `discarded`, `replayed_out`.
    pub dead_lettered: u64,
    /// Messages whose TTL (or a dead-letter queue's retention) passed, whether moved to the
    /// dead-letter queue or dropped.
    pub expired: u64,
    /// Messages dropped by purge, and the oldest dead letters dropped to make room in a full
    /// dead-letter queue (`drop_oldest`). (A dead letter whose redeliveries run out in its
    /// dead-letter queue stays there: issue 15 #2.)
    pub discarded: u64,
    /// Messages replayed into this queue (from a dead-letter queue; not also in `enqueued`).
    pub replayed: u64,
    /// Messages moved out of this queue to another: dead letters replayed out of a dead-letter
    /// queue, and messages moved by `Queue::transfer` (`mqlite move`; review r12
    /// #12: a move was counted by no counter, and the balance above broke).
    pub replayed_out: u64,
}

/// How many dead letters' records [`Engine::apply_retention`] reads at once: bounds the
/// memory of the read (bodies included) whatever the queue's depth.
const RETENTION_READ_BATCH: usize = 1024;

impl Engine {
    /// The id of queue `name`, declared (durably) if new; with `options` (validated) the queue
    /// takes them for as long as the store is open.
    pub(crate) fn declare_queue(
        &self,
        name: &str,
        options: Option<&QueueOptions>,
    ) -> Result<QueueId> {
        if let Some(o) = options {
            o.validate()?;
            if let Some(d) = &o.dead_letter {
                d.check_for(name)?;
            }
        }
        let shared = &self.shared;
        if options.and_then(|o| o.dead_letter.as_ref()).is_none() {
            shared.opts.dead_letter.check_fits(name)?;
        }
        let mut g = shared.lock();
        g.check()?;
        if let Some(o) = options {
            g.check_dead_letter_limits(name, o, &shared.opts)?;
        }
        // A queue opened again without options keeps its own (checked when it was declared).
        if options.is_some() || !g.by_name.contains_key(name) {
            let strategy = options
                .and_then(|o| o.dead_letter.as_ref())
                .unwrap_or(&shared.opts.dead_letter);
            g.check_dead_letter_cycle(name, strategy)?;
        }
        let resolved = options.map(|o| Resolved::new(&shared.opts, o));
        // Retention is the queue's, measured from each letter's dead-letter time (issue 15,
        // review r12 #8): a declaration that gives it a retention its held letters' deadlines
        // do not follow yet (a new or changed value, or the first options after a reopen: they
        // are not stored) sets those deadlines below.
        let retention_changes = resolved.as_ref().is_some_and(|r| {
            g.by_name.get(name).is_some_and(|&qid| {
                let q = &g.queues[qid as usize];
                !q.retention_known || q.opts.retention_ms != r.retention_ms
            })
        });
        let given = resolved.is_some();
        let qid = g.declare(name, resolved, &shared.opts)?;
        if given {
            g.trim_dead_letter_queue(qid, shared.now(), &shared.opts)?;
        }
        g = self.finish_moves(g)?;
        // The declaration (and any recovered failures) are durable before the handle is used.
        let g = self.commit(g)?;
        if retention_changes {
            self.apply_retention(g, qid)?;
        }
        Ok(QueueId(qid))
    }

    /// Sets the expiry of every dead letter queue `qid` holds by the queue's retention, counted
    /// from the letter's dead-letter time ([`retention_deadline`]): the letters held when the
    /// retention is declared, changed, or declared again after a reopen follow it as the
    /// letters arriving do. The dead-letter time is in each letter's record, not in memory (an
    /// entry stays 40 bytes), so the records are read once, [`RETENTION_READ_BATCH`] at a time,
    /// with the state lock released (as takes and dead-letter moves read). Letters that leave
    /// meanwhile are skipped; those arriving meanwhile already take the new retention. Letters
    /// past their new deadline expire at once (counted `expired`), the others on time.
    fn apply_retention<'a>(&'a self, mut g: super::Guard<'a>, qid: u32) -> Result<()> {
        let shared = &self.shared;
        let ids: Vec<(u64, u8)> = {
            let mut v = Vec::new();
            g.queues[qid as usize].for_each(|e, _| v.push((e.id, e.priority)));
            v
        };
        for chunk in ids.chunks(RETENTION_READ_BATCH) {
            // Where each is now (compaction may have moved it; it may be gone).
            let held: Vec<(u32, Entry)> = {
                let q = &mut g.queues[qid as usize];
                chunk
                    .iter()
                    .filter_map(|&(id, p)| q.find_mut(id, p).map(|e| (qid, *e)))
                    .collect()
            };
            let snap = g.snapshot(&shared.files, held.iter().copied())?;
            drop(g);
            let recs = snap.read();
            g = shared.lock();
            g.check()?;
            let recs = recs?;
            let q = &mut g.queues[qid as usize];
            let retention = q.opts.retention_ms;
            for ((_, e), rec) in held.iter().zip(recs.iter()) {
                let msg = decode_message(rec).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupt,
                        format!("stored record of ID:{} does not decode", e.id),
                    )
                })?;
                // A message sent to the queue itself keeps its own TTL: retention is for
                // dead letters.
                if let Some(info) = msg.dead_letter_info() {
                    q.set_expiry(e.id, e.priority, retention_deadline(info, retention));
                }
            }
        }
        g.queues[qid as usize].retention_known = true;
        // Letters now past their deadline expire at once, not at the next housekeeping.
        g.tick(qid, shared.now(), &shared.opts)?;
        let g = self.finish_moves(g)?;
        let _g = self.commit(g)?;
        Ok(())
    }

    /// The names of all queues, in creation order (also once the store is closed).
    pub(crate) fn queue_names(&self) -> Vec<String> {
        let g = self.shared.lock();
        // Subscriptions' queues (`$sub.<name>`) are listed; the slots of ended ones (no name)
        // are not.
        g.queues
            .iter()
            .filter(|q| !q.name.is_empty())
            .map(|q| q.name.clone())
            .collect()
    }

    /// Whether queue `q` keeps its messages only in memory.
    pub(crate) fn is_memory(&self, q: QueueId) -> bool {
        !self.shared.lock().queues[q.0 as usize].opts.journaled()
    }

    /// Queue `q`'s resolved ack durability (`true`: sync) and prefetch (messages), as a
    /// client learns them when it declares the queue (`Response::Declared`).
    pub(crate) fn ack_sync_and_prefetch(&self, q: QueueId) -> (bool, u32) {
        let g = self.shared.lock();
        let o = &g.queues[q.0 as usize].opts;
        (
            o.ack_durability == crate::options::AckDurability::Sync,
            u32::try_from(o.prefetch).unwrap_or(u32::MAX),
        )
    }

    /// Up to `max` stored messages of queue `q` — every state, or with `ready_only` the ready
    /// ones — in delivery order (see `QueueState::browse_order`), without consuming them; each
    /// carries its state and delivery count. Messages in a consumer's prefetch buffer are listed
    /// as `prefetched` (as stats count them) and left where they are: a browse changes nothing.
    pub(crate) fn browse(&self, q: QueueId, max: usize, ready_only: bool) -> Result<Vec<Message>> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        // Due delays become ready and expired messages leave before the listing, as for stats.
        g.tick(q.0, shared.now(), &shared.opts)?;
        let g = self.finish_moves(g)?;
        let prefetched: std::collections::HashSet<u64> = g
            .consumers
            .values()
            .filter(|c| c.qid == q.0)
            .flat_map(|c| c.buffer.iter().map(|p| p.id).chain(c.lent.keys().copied()))
            .collect();
        let mut es = g.queues[q.0 as usize].browse_order(ready_only, &prefetched);
        es.truncate(max);
        let snap = g.snapshot(&shared.files, es.iter().map(|&(e, _)| (q.0, e)))?;
        drop(g);
        let recs = snap.read()?;
        recs.iter()
            .zip(es.iter())
            .map(|(r, &(e, state))| {
                let mut m = decode_message(r).ok_or_else(|| {
                    Error::new(ErrorKind::Corrupt, "stored record does not decode")
                })?;
                m.browsed = Some((state, e.count));
                Ok(m)
            })
            .collect()
    }

    /// Removes every waiting message of queue `q` (and those prefetched, not yet handed out;
    /// not those in flight); returns how many.
    #[cfg(test)]
    pub(crate) fn purge(&self, q: QueueId) -> Result<u64> {
        self.purge_filtered(q, &PurgeFilter::default())
            .map(|r| r.purged)
    }

    /// [`purge`](Engine::purge) of the waiting messages with ids up to `filter.through`, or
    /// with `filter.dry_run` only their count and highest id (nothing changes, prefetch
    /// buffers are left alone). Both count what [`State::purge_selection`] picks, so a dry
    /// run's count is what the purge removes.
    pub(crate) fn purge_filtered(&self, q: QueueId, filter: &PurgeFilter) -> Result<PurgeReport> {
        let through = filter.through.map_or(u64::MAX, |t| t.0);
        let g = self.shared.lock();
        g.check()?;
        let picked = g.purge_selection(q.0, through);
        if filter.dry_run {
            return Ok(PurgeReport {
                matched: picked.len() as u64,
                purged: 0,
                last: picked.iter().max().map(|&id| MessageId(id)),
            });
        }
        let picked: std::collections::HashSet<u64> = picked.into_iter().collect();
        // Messages lent to client processes and not handed out are asked back first.
        let mut g = self.take_back_lent(g, q.0);
        g.check()?;
        let now = self.shared.now();
        // Prefetched messages go back to the queue first (uncounted), where they are taken
        // with the rest.
        g.unbuffer_all(Some(q.0), now);
        let st = &mut *g;
        let queue = &mut st.queues[q.0 as usize];
        let mut gone: Vec<Entry> = Vec::new();
        for dq in queue.ready.iter_mut() {
            dq.retain(|e| {
                let go = picked.contains(&e.id);
                if go {
                    gone.push(*e);
                }
                !go
            });
        }
        queue.retry.retain(|_, e| {
            let go = picked.contains(&e.id);
            if go {
                gone.push(*e);
            }
            !go
        });
        let mut delayed_gone: Vec<u64> = Vec::new();
        queue.delayed.retain(|_, e| {
            let go = picked.contains(&e.id);
            if go {
                gone.push(*e);
                delayed_gone.push(e.id);
            }
            !go
        });
        for id in &delayed_gone {
            queue.delayed_due.remove(id);
        }
        for e in &gone {
            queue.forget(e);
        }
        queue.counters.discarded += gone.len() as u64;
        for e in &gone {
            st.live_dec(e);
        }
        if !gone.is_empty() {
            let ids: Vec<u64> = gone.iter().map(|e| e.id).collect();
            st.log(q.0, |b| put_remove(b, q.0, why::PURGE, &ids));
        }
        let _g = self.commit(g)?;
        Ok(PurgeReport {
            matched: gone.len() as u64,
            purged: gone.len() as u64,
            last: gone.iter().map(|e| MessageId(e.id)).max(),
        })
    }

    /// The statistics of queue `q` (its timers moved first).
    pub(crate) fn stats(&self, q: QueueId) -> Result<QueueStats> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        g.tick(q.0, shared.now(), &shared.opts)?;
        let g = self.finish_moves(g)?;
        let prefetched = g.prefetched(q.0);
        let queue = &g.queues[q.0 as usize];
        let c = &queue.counters;
        Ok(QueueStats {
            depth: queue.waiting_count(),
            in_flight: (queue.inflight.len() as u64).saturating_sub(prefetched),
            prefetched,
            delayed: queue.delayed.len() as u64,
            messages: queue.count,
            bytes: queue.bytes,
            enqueued: c.enqueued,
            acked: c.acked,
            redelivered: c.redelivered,
            dead_lettered: c.dead_lettered,
            expired: c.expired,
            discarded: c.discarded,
            replayed: c.replayed,
            replayed_out: c.replayed_out,
        })
    }

    /// Disk bytes used by journal segments.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.shared.lock().space.segs.iter().map(|s| s.1).sum()
    }

    /// Begins closing: no new calls; the commit thread writes what is pending and ends.
    /// Returns whether the store was already closed. From a library thread (a callback or
    /// listener) it is `WouldDeadlock`: closing waits for those threads.
    pub(crate) fn begin_close(&self) -> Result<bool> {
        if on_library_thread() {
            return Err(Error::new(
                ErrorKind::WouldDeadlock,
                "close() called from one of the store's own threads (a callback or listener)",
            ));
        }
        let mut g = self.shared.lock();
        if g.closed {
            return Ok(true);
        }
        if !g.closing && g.error.is_none() {
            // Prefetched messages go back uncounted; the commit thread writes that at close.
            let now = self.shared.now();
            g.unbuffer_all(None, now);
        }
        g.closing = true;
        drop(g);
        self.shared.wake_all();
        Ok(false)
    }

    /// Closes: joins the library threads (every pending send is written and every callback
    /// completed by then), then marks the store closed. Returns `Poisoned` (saying the store is now closed) if an
    /// earlier failure poisoned it.
    pub(crate) fn finish_close(&self) -> Result<()> {
        let threads: Vec<_> = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
        let mut g = self.shared.lock();
        g.closed = true;
        let err = g.error.clone();
        drop(g);
        // Every thread that wrote or read is joined: the segment files go now, not when the
        // last queue or store handle of the program is dropped (r5 #13).
        self.shared.files.clear();
        self.shared.wake_all();
        match err {
            Some(e) => Err(super::state::poisoned_at_close(&e)),
            None => Ok(()),
        }
    }

    /// Marks the store closing without waiting (it was dropped inside one of its own
    /// callbacks): the commit thread writes what is pending and ends by itself. `first` runs
    /// (under the state lock, so before the commit thread can end) if it was still open.
    pub(crate) fn close_in_background(&self, first: impl FnOnce()) {
        let mut g = self.shared.lock();
        if !g.closing && !g.closed {
            first();
            if g.error.is_none() {
                let now = self.shared.now();
                g.unbuffer_all(None, now);
            }
        }
        g.closing = true;
        drop(g);
        self.shared.wake_all();
    }
}

impl super::State {
    /// The ids of the messages of queue `qid` that a purge (and a move or copy: issue 15 #6)
    /// takes, in no order: every message not handed out to a consumer — ready, waiting for a delivery time or a redelivery delay,
    /// or prefetched into a consumer's buffer (a purge gives those back first) — with an id up
    /// to `through`. The one selection of the dry run and the purge: the dry run used to leave
    /// out prefetched messages, which the purge then removed (its count was short).
    pub(crate) fn purge_selection(&self, qid: u32, through: u64) -> Vec<u64> {
        let prefetched: std::collections::HashSet<u64> = self
            .consumers
            .values()
            .filter(|c| c.qid == qid)
            .flat_map(|c| c.buffer.iter().map(|p| p.id).chain(c.lent.keys().copied()))
            .collect();
        let mut ids = Vec::new();
        self.queues[qid as usize].for_each(|e, inflight| {
            if e.id <= through && (!inflight || prefetched.contains(&e.id)) {
                ids.push(e.id);
            }
        });
        ids
    }
}
