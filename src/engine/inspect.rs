//! Operators' requests (`mqlite browse`, `export`, `dlq list`, `move`, `copy`, `compact`):
//! every stored message of a queue with its delivery state; atomic moves and copies between
//! queues that keep every header; compaction on demand; the dedup window. Record bodies are
//! read with the state lock released, as everywhere.

use std::time::Duration;

use super::batch::Counted;
use super::queue::Entry;
use super::record::{put_remove, send_in_record, txn_begin, txn_end, why};
use super::{Engine, QueueId, State};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::check_name;

/// Where a stored message is in its queue's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MessageState {
    /// Waiting, with no delivery time or redelivery delay of its own to wait for. A message of a group whose earlier message is in flight (or waits for its
    /// redelivery) is `Ready` too: it waits for nothing of its own and is next in its group,
    /// handed out once that message settles (groups deliver one message at a time, in order).
    /// So `depth` counts it, as ActiveMQ's queue size counts a group's queued messages: depth is
    /// the backlog, not what a receive can take this instant (review r5 #21).
    Ready,
    /// Waiting for its delivery time (sent with a delay or deliver-at, or a scheduled repeat).
    Delayed,
    /// Handed to a consumer and not yet settled.
    InFlight,
    /// Waiting out a redelivery delay after a failed delivery (nack, or an ack timeout), as
    /// ActiveMQ's RedeliveryPolicy schedules it.
    RedeliveryWait,
    /// Taken into a consumer's prefetch buffer and not handed out yet (counted as
    /// `prefetched` by the queue's stats, not in `depth`): that consumer's next receive hands it
    /// out, a consumer that finds the queue empty may take it over, and its consumer's close
    /// gives it back. Its delivery count does not include the prefetch.
    Prefetched,
}

impl MessageState {
    /// The stable name: `ready`, `delayed`, `in_flight`, `redelivery_wait` or `prefetched`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Ready => "ready",
            MessageState::Delayed => "delayed",
            MessageState::InFlight => "in_flight",
            MessageState::RedeliveryWait => "redelivery_wait",
            MessageState::Prefetched => "prefetched",
        }
    }
}

impl super::queue::QueueState {
    /// The state of stored message `e` (`inflight`: it is in the in-flight table).
    pub(super) fn state_of(&self, e: &Entry, inflight: bool) -> MessageState {
        if inflight {
            MessageState::InFlight
        } else if !self.delayed_due.contains_key(&e.id) {
            MessageState::Ready
        } else if e.count > 0 || self.fail.contains_key(&e.id) {
            MessageState::RedeliveryWait
        } else {
            MessageState::Delayed
        }
    }

    /// Every stored message with its state, in delivery order: ready ones as a receive would
    /// take them (priority, then id), then those delayed or waiting to be redelivered by due
    /// time, then those in flight by id; with `ready_only`, the ready ones alone.
    ///
    /// `prefetched`: the ids of in-flight messages that sit in a consumer's prefetch buffer,
    /// not handed out; they are listed after the delayed ones, by id, in state `prefetched`
    /// (with the delivery count before the prefetch, which is not a delivery yet).
    pub(super) fn browse_order(
        &self,
        ready_only: bool,
        prefetched: &std::collections::HashSet<u64>,
    ) -> Vec<(Entry, MessageState)> {
        let mut v: Vec<(Entry, MessageState)> = self
            .ordered_waiting()
            .into_iter()
            .map(|e| (e, MessageState::Ready))
            .collect();
        if !ready_only {
            v.extend(self.delayed.values().map(|e| (*e, self.state_of(e, false))));
            let mut fl: Vec<Entry> = self.inflight.values().map(|i| i.entry).collect();
            fl.sort_unstable_by_key(|e| (!prefetched.contains(&e.id), e.id));
            v.extend(fl.into_iter().map(|mut e| {
                if prefetched.contains(&e.id) {
                    e.count = e.count.saturating_sub(1);
                    (e, MessageState::Prefetched)
                } else {
                    (e, MessageState::InFlight)
                }
            }));
        }
        v
    }
}

/// A message as stored in a queue: the message (id, send time, expiry, properties, headers,
/// dead-letter information) and its delivery state.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredMessage {
    /// The message, as a delivery would carry it.
    pub message: Message,
    /// The deliver-at time it was sent with (ms since the epoch), 0 if none.
    pub deliver_at_ms: u64,
    /// Failed deliveries so far (0 for a message never delivered).
    pub delivery_count: u32,
    /// Ready, delayed or in flight.
    pub state: MessageState,
}

/// Which messages [`Queue::transfer`](crate::Queue::transfer) moves or copies, and where.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TransferFilter {
    /// The queue they go to (created if new). Must differ from the source.
    pub to: String,
    /// Only these messages (ids in the source queue).
    pub ids: Option<Vec<MessageId>>,
    /// At most this many (the lowest ids first).
    pub limit: Option<usize>,
    /// Only messages with ids up to this one (inclusive): to act on exactly what a dry run
    /// counted, pass its [`TransferReport::last`] — messages sent since then (higher ids) stay.
    /// `None`: no bound.
    pub through: Option<MessageId>,
    /// Copy: leave the originals in place.
    pub copy: bool,
    /// Only count what would be moved or copied; change nothing.
    pub dry_run: bool,
}

/// What [`Queue::transfer`](crate::Queue::transfer) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransferReport {
    /// Messages that passed the filter.
    pub matched: u64,
    /// Messages stored in the target (0 on a dry run).
    pub transferred: u64,
    /// Messages whose dedup key the target already holds within its dedup window: nothing was
    /// stored for them, and a move left them in the source.
    pub duplicates: u64,
    /// The highest id that passed the filter (`None`: none did). A dry run's `last` given as
    /// the real run's [`TransferFilter::through`] bounds it to the messages the dry run counted.
    pub last: Option<MessageId>,
}

/// What [`Store::compact`](crate::Store::compact) did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompactReport {
    /// Journal segments before.
    pub segments_before: usize,
    /// Journal segments after.
    pub segments_after: usize,
    /// Disk bytes of the journal before (segments are preallocated: this is disk use).
    pub bytes_before: u64,
    /// Disk bytes of the journal after.
    pub bytes_after: u64,
    /// Group commits run to get there.
    pub commits: usize,
}

/// Decodes a stored record: the message and the deliver-at time of its send header.
fn decode_stored(id: u64, rec: &[u8]) -> Result<(Message, u64)> {
    send_in_record(rec)
        .and_then(|s| Some((s.to_message()?, s.h.deliver_at)))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("stored record of ID:{id} does not decode"),
            )
        })
}

impl Engine {
    /// Up to `max` stored messages of queue `q` with ids ≥ `from` — ready, delayed and in
    /// flight — in id order, without consuming them.
    pub(crate) fn browse_stored(
        &self,
        q: QueueId,
        from: MessageId,
        max: usize,
    ) -> Result<Vec<StoredMessage>> {
        let shared = &self.shared;
        let g = shared.lock();
        g.check()?;
        let queue = &g.queues[q.0 as usize];
        // Prefetched (not handed out) is told apart from in flight, as `browse` does: a
        // purge, move or copy takes the one and leaves the other.
        let prefetched: std::collections::HashSet<u64> = g
            .consumers
            .values()
            .filter(|c| c.qid == q.0)
            .flat_map(|c| c.buffer.iter().map(|p| p.id))
            .collect();
        let mut es: Vec<(Entry, MessageState)> = Vec::new();
        queue.for_each(|e, inflight| {
            if e.id >= from.0 {
                let state = if inflight && prefetched.contains(&e.id) {
                    MessageState::Prefetched
                } else {
                    queue.state_of(e, inflight)
                };
                es.push((*e, state));
            }
        });
        if es.len() > max {
            es.select_nth_unstable_by_key(max, |(e, _)| e.id);
            es.truncate(max);
        }
        es.sort_unstable_by_key(|(e, _)| e.id);
        let snap = g.snapshot(&shared.files, es.iter().map(|&(e, _)| (q.0, e)))?;
        drop(g);
        let recs = snap.read()?;
        es.iter()
            .zip(recs.iter())
            .map(|((e, state), rec)| {
                let (message, deliver_at_ms) = decode_stored(e.id, rec)?;
                Ok(StoredMessage {
                    message,
                    deliver_at_ms,
                    delivery_count: e.count,
                    state: *state,
                })
            })
            .collect()
    }

    /// Moves (or copies) waiting messages of queue `q` — and those prefetched by a consumer,
    /// not handed out, taken back from its buffer first, as a purge does — to `filter.to`,
    /// lowest ids first, each keeping every header, all in one TXN record. Messages in flight
    /// stay. A message consumed while its record was read is not moved (nor copied).
    // Long (≈100 lines): pick under the lock, read with it released, then re-check and append
    // under it again; the three phases share one guard's hand-offs and read best in sequence.
    pub(crate) fn transfer(&self, q: QueueId, filter: &TransferFilter) -> Result<TransferReport> {
        check_name(&filter.to)?;
        let shared = &self.shared;
        let g = shared.lock();
        g.check()?;
        let src = &g.queues[q.0 as usize];
        if filter.to == src.name {
            return Err(Error::invalid(format!(
                "cannot transfer messages of queue {:?} to itself",
                filter.to
            )));
        }
        // One rule for source and target (review r14 #1): the source used to be asked by the
        // strategies only, so `DLQ.x` (a dead-letter queue by name, as `dlq` lists it) let
        // `move DLQ DLQ.x` then `move DLQ.x q` do what `move DLQ q` refuses.
        let dlq_named = |name: &str| g.is_dead_letter_name(name, &shared.opts);
        if dlq_named(&src.name) && !dlq_named(&filter.to) {
            // Review r12 #5: a move out of a dead-letter queue into an ordinary one was a
            // replay that gave each message a new id and left its dead-letter headers on a live
            // message, counted as no replay. Replay is the way out: it keeps the id and clears
            // them. (Between dead-letter queues, a dead letter stays one: allowed.)
            return Err(Error::invalid(format!(
                "queue {:?} is a dead-letter queue: its messages go back to ordinary queues with \
                 replay (`mqlite dlq replay`, `Queue::replay`), which keeps each message's id \
                 and clears its dead-letter headers; a move or copy would do neither",
                src.name
            )));
        }
        // A set: a filter of many ids (a whole queue's) must not cost ids × messages.
        let ids: Option<std::collections::HashSet<u64>> =
            filter.ids.as_ref().map(|v| v.iter().map(|i| i.0).collect());
        // What a purge takes (issue 15 #6): waiting messages and those a consumer prefetched
        // (not handed out), never those in flight. Move and copy left prefetched ones behind.
        let through = filter.through.map_or(u64::MAX, |t| t.0);
        let picked: std::collections::HashSet<u64> =
            g.purge_selection(q.0, through).into_iter().collect();
        let mut es: Vec<Entry> = Vec::new();
        src.for_each(|e, _| {
            if picked.contains(&e.id) && ids.as_ref().is_none_or(|ids| ids.contains(&e.id)) {
                es.push(*e);
            }
        });
        es.sort_unstable_by_key(|e| e.id);
        es.truncate(filter.limit.unwrap_or(usize::MAX));
        let mut report = TransferReport {
            matched: es.len() as u64,
            last: es.last().map(|e| MessageId(e.id)),
            ..Default::default()
        };
        if filter.dry_run || es.is_empty() {
            return Ok(report);
        }
        let snap = g.snapshot(&shared.files, es.iter().map(|&e| (q.0, e)))?;
        drop(g);
        let recs = snap.read()?;
        // Messages lent to client processes and not handed out are asked back first, as a
        // purge does: then they are moved with the rest (one handed out meanwhile is not).
        let mut g = self.take_back_lent(shared.lock(), q.0);
        g.check()?;
        let to = g.declare(&filter.to, None, &shared.opts)?;
        let bytes = es.iter().map(|e| e.payload()).sum::<u64>();
        if !g.queues[to as usize].room_for(es.len() as u64, bytes) {
            return Err(Error::new(
                ErrorKind::QueueFull,
                format!(
                    "queue {:?} has no room for {} messages",
                    filter.to,
                    es.len()
                ),
            ));
        }
        let now = shared.now();
        // Prefetched messages go back to the queue first (uncounted), as for a purge, where
        // they are moved or copied with the waiting ones.
        g.unbuffer_all(Some(q.0), now);
        let start = txn_begin(&mut g.pending.buf);
        let mut removed: Vec<u64> = Vec::new();
        let mut sent: Vec<u64> = Vec::new();
        let mut outcome = Ok(());
        for (e, rec) in es.iter().zip(recs.iter()) {
            let waiting = g.queues[q.0 as usize]
                .find(e.id, e.priority)
                .is_some_and(|(_, inflight)| !inflight);
            if !waiting {
                continue; // consumed (or moved) while its record was read
            }
            let step = decode_stored(e.id, rec).and_then(|(m, deliver_at)| {
                let (ts, exp) = (m.timestamp_ms(), m.expires_at_ms());
                let mut m = m.restore_times(ts, exp);
                if deliver_at != 0 {
                    m = m.deliver_at_ms(deliver_at);
                }
                g.send_in_txn(to, &m, now)
            });
            let (id, duplicate) = match step {
                Ok(x) => x,
                Err(err) => {
                    // What was done so far stays consistent: each message is in one place.
                    outcome = Err(err);
                    break;
                }
            };
            if duplicate {
                report.duplicates += 1;
                continue;
            }
            report.transferred += 1;
            sent.push(id);
            if !filter.copy {
                let src = &mut g.queues[q.0 as usize];
                if let Some(entry) = src.remove_waiting(e.id, e.priority) {
                    src.forget(&entry);
                    // Out of this queue to another: counted as a replay out is (the target
                    // counts it `enqueued`), so the stats balance holds (review r12 #12).
                    src.counters.replayed_out += 1;
                    g.live_dec(&entry);
                    // The TXN record carries the copies: refused on a full disk as a whole,
                    // and then the message stays.
                    g.note_restore(start, q.0, entry, Counted::MovedOut, true, None);
                    removed.push(e.id);
                }
            }
        }
        if !removed.is_empty() {
            g.log(q.0, |b| put_remove(b, q.0, why::DISCARD, &removed));
        }
        txn_end(&mut g.pending.buf, start);
        g.pending.needs_sync = true;
        g = self.finish_moves(g)?;
        shared.avail.notify_all();
        let mut g = self.commit(g)?;
        // A full disk refuses the whole TXN record: nothing moved, nothing copied.
        let refused: Vec<Error> = sent
            .iter()
            .chain(&removed)
            .filter_map(|id| g.refused.remove(id))
            .collect();
        if let Some(e) = refused.first() {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "nothing was {}: {}",
                    if filter.copy { "copied" } else { "moved" },
                    e.message()
                ),
            ));
        }
        outcome.map(|()| report)
    }

    /// Compacts now: runs group commits (empty ones when nothing is pending: every commit plans
    /// compaction first) until every segment older than the current tail is gone, or
    /// compaction stops making progress. Stopped because the disk has no room for the copies
    /// that would free the oldest segment, it fails with `NoSpace` naming the space needed.
    pub(crate) fn compact_now(&self) -> Result<CompactReport> {
        let shape = |g: &State| {
            let segs = &g.space.segs;
            (
                segs.len(),
                segs.iter().map(|s| s.1).sum::<u64>(),
                segs.first().map(|s| s.0),
            )
        };
        let shared = &self.shared;
        let (segments_before, bytes_before, start_tail) = {
            let g = shared.lock();
            g.check()?;
            let (n, b, _) = shape(&g);
            (n, b, g.space.segs.last().map(|s| s.0).unwrap_or(0))
        };
        let (mut commits, mut stalled, mut last) = (0, 0, None);
        // Each segment needs one commit to be copied forward and one to be removed.
        while commits < 2 * segments_before + 8 {
            let g = shared.lock();
            g.check()?;
            let (n, _, head) = shape(&g);
            if head.is_none_or(|h| h >= start_tail) {
                break;
            }
            if last == Some((n, head)) {
                stalled += 1;
                if stalled > 2 {
                    break;
                }
            } else {
                stalled = 0;
                last = Some((n, head));
            }
            let no = g.progress.batch_no;
            drop(self.wait_done(g, no)?);
            commits += 1;
        }
        let g = shared.lock();
        let (segments_after, bytes_after, head) = shape(&g);
        if let Some(e) = &g.space.copies_refused {
            if head.is_some_and(|h| h < start_tail) {
                // Not a no-op to report as success: the store stays as full as it was.
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    format!(
                        "{}; {segments_before} segments ({bytes_before} bytes) -> \
                         {segments_after} segments ({bytes_after} bytes); free disk space \
                         (or settle messages in newer segments) and compact again",
                        e.message()
                    ),
                ));
            }
        }
        Ok(CompactReport {
            segments_before,
            segments_after,
            bytes_before,
            bytes_after,
            commits,
        })
    }

    /// Queue `q`'s dedup window as resolved for this open: (time, most keys).
    pub(crate) fn dedup_window(&self, q: QueueId) -> Result<(Duration, usize)> {
        let g = self.shared.lock();
        g.check()?;
        let o = &g.queues[q.0 as usize].opts;
        Ok((Duration::from_millis(o.dedup_window_ms), o.dedup_count))
    }

    /// The id a publish to `topic` with dedup key `key` (a client's automatic key) was stored
    /// under, if a subscription the topic matches holds the key in its dedup window.
    pub(crate) fn published_lookup(&self, topic: &str, key: &str) -> Result<Option<MessageId>> {
        let mut g = self.shared.lock();
        g.check()?;
        let now = self.shared.now();
        Ok(g.published_under(topic, key, now)
            .map(|(id, _)| MessageId(id)))
    }

    /// The id stored under dedup key `key` in queue `q`, if the key is inside the window (keys
    /// past it are forgotten, as a send would).
    pub(crate) fn dedup_lookup(&self, q: QueueId, key: &str) -> Result<Option<MessageId>> {
        let mut g = self.shared.lock();
        g.check()?;
        let now = self.shared.now();
        g.prune_dedup(q.0, now);
        let queue = &g.queues[q.0 as usize];
        Ok(queue.dedup.get(key).map(|d| MessageId(d.id)))
    }
}
