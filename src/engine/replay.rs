//! Replay: moving dead letters back to a queue, each move one DEAD record (crash-safe: nothing
//! lost, nothing doubled). The dead letters' records are read with the state lock released.

use std::cmp::Reverse;

use super::batch::Counted;
use super::queue::{Entry, QueueState};
use super::record::{decode_message, put_group};
use super::settle::{Destination, Source};
use super::{Engine, QueueId, State};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{DeadLetterInfo, DeadLetterReason, Message, MessageId};

/// Which dead letters [`Queue::replay`](crate::Queue::replay) moves, and where.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
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
    /// Move them here instead of to their original queue. A dead-letter queue (the one
    /// replayed, one a dead-letter strategy names, or a default name `DLQ`, `DLQ.<queue>`: the
    /// rule `move` and `copy` use) is refused with `InvalidArgument`: a replay strips the
    /// dead-letter information.
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
    /// to list exactly what [`Queue::replay`](crate::Queue::replay) would move.
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

impl Engine {
    /// Moves the dead letters of queue `q` that `filter` selects back to their original queue
    /// (or `filter.to`) with delivery counts reset; returns how many matched. Messages of a
    /// parked group unpark it. It takes what a purge takes (review r14 #13): waiting dead
    /// letters and those a consumer prefetched and did not hand out (taken back from its
    /// buffer, or recalled from a client process, uncounted); those in flight are left alone.
    /// A dead letter whose original queue is a dead-letter queue stays (it would become a
    /// plain message there): it can go out with `filter.to` only.
    pub(crate) fn replay(&self, q: QueueId, filter: &ReplayFilter) -> Result<u64> {
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        if let Some(to) = filter.to.as_deref() {
            g.check_replay_target(q.0, to, &shared.opts)?;
        }
        // Prefetched dead letters (a DLQ browser's consumer with the default prefetch) blocked
        // a replay of up to a prefetch's worth, with no word why. A dry run counts them
        // without touching the consumers' buffers; the run takes them back first.
        let prefetched: std::collections::HashSet<u64> = if filter.dry_run {
            g.purge_selection(q.0, u64::MAX).into_iter().collect()
        } else {
            g = self.take_back_lent(g, q.0);
            g.check()?;
            let now = shared.now();
            g.unbuffer_all(Some(q.0), now);
            Default::default()
        };
        let mut es = g.queues[q.0 as usize].ordered_waiting();
        if !prefetched.is_empty() {
            let src = &g.queues[q.0 as usize];
            es.extend(
                src.inflight
                    .values()
                    .map(|f| f.entry)
                    .filter(|e| prefetched.contains(&e.id)),
            );
            es.sort_by_key(|e| (Reverse(e.priority), e.id));
        }
        drop(g);
        // Records are read in chunks, only until `limit` matched: a chunked replay of a large
        // dead-letter queue (limit 100 per call) reads what it replays, not the whole queue on
        // every call.
        let chunk = filter.limit.map_or(es.len(), |l| l.clamp(16, 4096));
        // Whether an original queue is a dead-letter queue, asked under the lock once per name
        // (the records are read and decoded with it released; the names are few).
        let mut dlq_seen: std::collections::HashMap<String, bool> = Default::default();
        let mut is_dlq = |name: &str| -> bool {
            if let Some(&b) = dlq_seen.get(name) {
                return b;
            }
            let b = shared.lock().is_dead_letter_name(name, &shared.opts);
            dlq_seen.insert(name.to_string(), b);
            b
        };
        let mut selected: Vec<(Entry, Message, DeadLetterInfo)> = Vec::new();
        for part in es.chunks(chunk.max(1)) {
            if filter.limit.is_some_and(|l| selected.len() >= l) {
                break;
            }
            g = shared.lock();
            g.check()?;
            // Only those still waiting, where they are now (taken or compacted meanwhile).
            let src = &mut g.queues[q.0 as usize];
            let mut live: Vec<Entry> = Vec::with_capacity(part.len());
            for e in part {
                if !src.inflight.contains_key(&e.id) || prefetched.contains(&e.id) {
                    live.extend(src.find_mut(e.id, e.priority).map(|x| *x));
                }
            }
            let snap = g.snapshot(&shared.files, live.iter().map(|&e| (q.0, e)))?;
            drop(g);
            let recs = snap.read()?;
            for (e, rec) in live.iter().zip(recs.iter()) {
                if filter.limit.is_some_and(|l| selected.len() >= l) {
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
                // A dead letter whose original queue is not a queue name (stored before sends
                // checked it) cannot go back: it stays, and the others are replayed, instead of
                // the whole call failing half-way with `InvalidName`.
                // Nor one whose original queue is a dead-letter queue (a letter dead-lettered
                // onward by an older version, or rejected there by an application): it would
                // become a plain message no dead-letter listing finds (review r14 #3); it
                // leaves with `to` only.
                let replayable = filter.to.is_some()
                    || (crate::options::check_name(&info.original_queue).is_ok()
                        && !is_dlq(&info.original_queue));
                if replayable && filter.matches(MessageId(e.id), &info) {
                    selected.push((*e, msg, info));
                }
            }
        }
        let matched = selected.len() as u64;
        // A replay strips the dead-letter information: what the targets' limits count is the
        // message without it.
        for (_, msg, _) in selected.iter_mut() {
            msg.meta.dead_letter = None;
        }
        // Every target is checked before anything moves: a target that cannot be declared (the
        // queue of a subscription that is gone) failed the call half-way, after the letters
        // before it had moved. A dry run says the same as the run.
        let mut g = shared.lock();
        g.check()?;
        g.check_replay_targets(
            selected
                .iter()
                .map(|(e, _, info)| (e.id, filter.to.as_deref().unwrap_or(&info.original_queue))),
        )?;
        let mut need: std::collections::BTreeMap<&str, (u64, u64)> = Default::default();
        for (_, msg, info) in &selected {
            let to = filter.to.as_deref().unwrap_or(&info.original_queue);
            let n = need.entry(to).or_default();
            n.0 += 1;
            n.1 += super::send::payload_of(msg);
        }
        g.check_replay_room(&need, &shared.opts)?;
        drop(need);
        // Every message is checked as its target send would check it (the store's limits, the
        // header size a plain send takes), before anything moves: a move whose send is refused
        // after the dead letter left its queue lost it (review r10 #1). The state lock is held
        // from here to the moves, so what passed here encodes there.
        for (e, msg, _) in &selected {
            g.check_replay_message(e.id, msg)?;
        }
        if filter.dry_run {
            return Ok(matched);
        }
        let now = shared.now();
        // A consumer of this queue in this process may have prefetched some again while the
        // records were read: back to the queue (uncounted), so they move with the rest.
        g.unbuffer_all(Some(q.0), now);
        let mut moved = Vec::new();
        for (e, msg, info) in selected {
            let target = filter.to.as_deref().unwrap_or(&info.original_queue);
            let to = g.declare(target, None, &shared.opts)?;
            let src = &mut g.queues[q.0 as usize];
            // Consumed or moved by someone else meanwhile: not ours to move any more.
            let Some(entry) = src.remove_waiting(e.id, e.priority) else {
                continue;
            };
            src.forget(&entry);
            let from_journaled = src.opts.journaled();
            g.live_dec(&entry);
            let timestamp = msg.timestamp_ms();
            let mut meta = msg.meta;
            meta.dead_letter = None;
            let dest = Destination {
                qid: to,
                priority: msg.priority,
                expires_at: 0,
                timestamp,
                replay: true,
            };
            let from = Source {
                qid: q.0,
                id: e.id,
                journaled: from_journaled,
            };
            let at = g.pending.buf.len();
            g.put_move(from, dest, &meta, &msg.body, now)?;
            // Refused on a full disk: the dead letter stays, and this call says so.
            g.note_restore(at, q.0, entry, Counted::Replayed(to), true, None);
            moved.push(e.id);
            // One event, one counter on each side (review r5 #14): the dead letter leaves its
            // queue as `replayed_out`, and arrives in the target as `replayed` (not `enqueued`).
            g.queues[q.0 as usize].counters.replayed_out += 1;
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
        // Declaring a target queue fails its deliveries from before a crash: finish their moves.
        g = self.finish_moves(g)?;
        if !g.pending.is_empty() {
            g.pending.needs_sync = true;
        }
        shared.avail.notify_all();
        let mut g = self.commit(g)?;
        let refused: Vec<Error> = moved.iter().filter_map(|id| g.refused.remove(id)).collect();
        if let Some(e) = refused.first() {
            return Err(Error::new(
                ErrorKind::NoSpace,
                format!(
                    "{} of the {} dead letters to replay were not replayed (they stay in \
                     the dead-letter queue): {}",
                    refused.len(),
                    moved.len(),
                    e.message()
                ),
            ));
        }
        Ok(matched)
    }
}

impl QueueState {
    /// Whether the queue holds a message with id `id`, in any state.
    fn holds(&self, id: u64) -> bool {
        self.inflight.contains_key(&id)
            || self.delayed_due.contains_key(&id)
            || self.mem.contains_key(&id)
            || (0..self.ready.len()).any(|p| {
                self.retry.contains_key(&(Reverse(p as u8), id))
                    || self.ready[p].binary_search_by_key(&id, |e| e.id).is_ok()
            })
    }
}

impl State {
    /// Refuses a replay of dead-letter queue `qid` into `to` when `to` is a dead-letter queue:
    /// the one replayed, one the store's strategies name, or a default name (`DLQ`,
    /// `DLQ.<queue>`). A replay strips the dead-letter information, so the letters would sit
    /// there as plain messages that no dead-letter listing or replay could find again.
    ///
    /// Errors: `InvalidArgument` naming `to` and the rule.
    pub fn check_replay_target(
        &self,
        qid: u32,
        to: &str,
        store: &crate::options::StoreOptions,
    ) -> Result<()> {
        let replayed = &self.queues[qid as usize].name;
        // The rule move and copy use ([`State::is_dead_letter_name`]), as the CLI's `dlq
        // replay --to` refuses: the API's replay took `DLQ.x` (a dead-letter queue by name
        // only) and stripped the letters there (review r14 #3).
        if to == replayed.as_str() || self.is_dead_letter_name(to, store) {
            return Err(Error::invalid(format!(
                "cannot replay dead letters into {to:?}: it is a dead-letter queue, and a \
                 replay strips the dead-letter information (reason, original queue); replay \
                 to their original queues (no target) or to an ordinary queue"
            )));
        }
        Ok(())
    }

    /// Refuses a replay, before anything moves, when one of its targets (dead letter id,
    /// queue) cannot take messages: a queue name that is not valid, or the queue of a
    /// subscription that does not exist (only subscribing creates one).
    pub fn check_replay_targets<'a>(
        &self,
        targets: impl Iterator<Item = (u64, &'a str)>,
    ) -> Result<()> {
        let mut seen = std::collections::HashSet::new();
        for (id, to) in targets {
            if self.by_name.contains_key(to) || !seen.insert(to) {
                continue;
            }
            let ok = crate::options::check_name(to)
                .and_then(|()| super::topic::refuse_subscription_queue(to));
            if let Err(e) = ok {
                return Err(Error::new(
                    e.kind(),
                    format!(
                        "replay refused, nothing moved: dead letter ID:{id} cannot go to {to:?}: \
                         {}; leave it out (a filter by original queue or ids) or choose a \
                         target",
                        e.message()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Refuses a replay, before anything moves, when dead letter `id` (`msg`: its dead-letter
    /// information already taken off) could not be sent as it is: over the store's body limit
    /// (`max_body_bytes`, which may be lower than when it was stored), headers over
    /// `MAX_SEND_META` (a restored dead letter stored before imports checked it), an invalid
    /// priority. The error keeps the cause's kind and names the dead letter.
    pub fn check_replay_message(&self, id: u64, msg: &Message) -> Result<()> {
        let ok = self.check_message(msg).and_then(|()| {
            let n = super::record::meta_bytes(&msg.meta);
            if n > super::record::MAX_SEND_META as u64 {
                return Err(Error::invalid(format!(
                    "its headers take {n} bytes, over the limit of {} bytes a send accepts",
                    super::record::MAX_SEND_META
                )));
            }
            Ok(())
        });
        ok.map_err(|e| {
            Error::new(
                e.kind(),
                format!(
                    "replay refused, nothing moved: dead letter ID:{id} cannot be sent again: \
                     {}; leave it out (a filter by ids) or export and fix it",
                    e.message()
                ),
            )
        })
    }

    /// Refuses a replay with `QueueFull`, before anything moves, when a target's limits
    /// (`max_messages`, `max_bytes`: the one room rule of every way in) cannot take what it
    /// would get (`need`: target → messages, payload bytes). Whatever the target's overflow
    /// policy: a replay neither drops a queue's oldest messages (they would go to a
    /// dead-letter queue while others come back from one) nor waits for room.
    pub fn check_replay_room(
        &self,
        need: &std::collections::BTreeMap<&str, (u64, u64)>,
        store: &crate::options::StoreOptions,
    ) -> Result<()> {
        for (&to, &(count, payload)) in need {
            let fits = match self.by_name.get(to) {
                Some(&qid) => self.queues[qid as usize].room_for(count, payload),
                None => QueueState::new(
                    u32::MAX,
                    to.to_string(),
                    crate::options::Resolved::new(store, &Default::default()),
                )
                .room_for(count, payload),
            };
            if !fits {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    format!(
                        "replay refused, nothing moved: queue {to:?} has no room for {count} \
                         more messages ({payload} bytes) within its limits; replay fewer (a \
                         limit or a filter) once its consumers made room"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The id of the copy a dead-letter move or a replay stores in queue `to`: the message's
    /// own id, as ActiveMQ keeps the JMSMessageID through the dead-letter queue and back (an
    /// idempotent consumer or a trace keys on it). Ids are unique in the store, so only a
    /// message published to a topic (`published`: one id in every subscription it reached) can
    /// meet its id in the target, held or pending there; it then gets a new id, as does a move
    /// within one queue. Recovery tells the incarnations apart by queue and journal order.
    pub(super) fn moved_id(
        &mut self,
        from: &super::settle::Source,
        to: u32,
        published: bool,
    ) -> u64 {
        let id = from.id;
        let taken = from.qid == to
            || (published
                && (self.queues[to as usize].holds(id)
                    || self
                        .pending
                        .sends
                        .iter()
                        .any(|p| p.qid == to && p.entry.id == id)));
        if !taken {
            return id;
        }
        let new_id = self.next_id;
        self.next_id += 1;
        new_id
    }
}
