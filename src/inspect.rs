//! Reading and moving stored messages, for operators' tools (`mqlite browse`, `export`,
//! `dlq list`, `move`, `copy`): every stored message of a queue in pages, with its delivery
//! state, and atomic moves and copies between queues that keep every header.

use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::{kind, Cursor};
use crate::message::{Message, MessageId};
use crate::queue::Queue;
use crate::state::{check_name, get_send, put_ids, send_in_record, why, Entry};

/// Where a stored message is in its queue's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting, deliverable now.
    Ready,
    /// Waiting for its delivery time or its redelivery delay.
    Delayed,
    /// Handed to a consumer and not yet settled.
    InFlight,
}

impl MessageState {
    /// The stable name: `ready`, `delayed` or `in_flight`.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Ready => "ready",
            MessageState::Delayed => "delayed",
            MessageState::InFlight => "in_flight",
        }
    }
}

/// A message as stored in a queue: the message (id, send time, expiry, properties, headers,
/// dead-letter information) and its delivery state.
#[derive(Debug, Clone, PartialEq)]
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

/// Which messages [`Queue::transfer`] moves or copies, and where.
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    /// The queue they go to (created if new). Must differ from the source.
    pub to: String,
    /// Only these messages (ids in the source queue).
    pub ids: Option<Vec<MessageId>>,
    /// At most this many (the lowest ids first).
    pub limit: Option<usize>,
    /// Copy: leave the originals in place.
    pub copy: bool,
    /// Only count what would be moved or copied; change nothing.
    pub dry_run: bool,
}

/// What [`Queue::transfer`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransferReport {
    /// Messages that passed the filter.
    pub matched: u64,
    /// Messages stored in the target (0 on a dry run).
    pub transferred: u64,
    /// Messages whose dedup key the target already holds within its dedup window: nothing was
    /// stored for them, and a move left them in the source.
    pub duplicates: u64,
}

/// Checks a queue name without creating the queue: 1–255 bytes of UTF-8, no NUL, no control
/// characters (the rule [`crate::Store::queue`] applies). Errors: `InvalidName`, naming it.
pub fn validate_queue_name(name: &str) -> Result<()> {
    check_name(name)
}

impl Queue {
    /// Up to `max` stored messages with ids ≥ `from` — ready, delayed and in flight — in id
    /// (send) order, without consuming them; reads only their records. Page through a queue by
    /// passing the last id + 1 as the next `from`.
    pub fn browse_stored(&self, from: MessageId, max: usize) -> Result<Vec<StoredMessage>> {
        let g = self.shared.lock();
        g.check()?;
        let q = &g.queues[self.qid as usize];
        let mut es: Vec<(Entry, MessageState)> = Vec::new();
        q.for_each(|e, inflight| {
            if e.id >= from.0 {
                let state = if inflight {
                    MessageState::InFlight
                } else if q.delayed_due.contains_key(&e.id) {
                    MessageState::Delayed
                } else {
                    MessageState::Ready
                };
                es.push((*e, state));
            }
        });
        if es.len() > max {
            es.select_nth_unstable_by_key(max, |(e, _)| e.id);
            es.truncate(max);
        }
        es.sort_unstable_by_key(|(e, _)| e.id);
        let entries: Vec<Entry> = es.iter().map(|(e, _)| *e).collect();
        let recs = g.read_records(self.qid, &entries)?;
        drop(g);
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

    /// Moves (or with `filter.copy`, copies) waiting messages of this queue — ready and delayed,
    /// not in flight — to queue `filter.to`, lowest ids first. Each keeps its body, properties,
    /// headers (send time, expiry, deliver-at, priority, correlation id, group, dedup key,
    /// repeats) and dead-letter information, and gets a new id in the target; delivery counts
    /// start again at 0. Everything one call stores and removes is one journal record: a crash
    /// loses and doubles nothing.
    ///
    /// Errors: `InvalidName` for a bad target name, `InvalidArgument` if the target is this
    /// queue, `QueueFull` if the target's limits leave no room for all of them (then nothing is
    /// done), `Corrupt` if a stored record does not decode, `Closed`/`Poisoned`.
    pub fn transfer(&self, filter: &TransferFilter) -> Result<TransferReport> {
        check_name(&filter.to)?;
        if filter.to == *self.name {
            return Err(Error::invalid(format!(
                "cannot transfer messages of queue {:?} to itself",
                filter.to
            )));
        }
        let shared = &self.shared;
        let mut g = shared.lock();
        g.check()?;
        let q = &g.queues[self.qid as usize];
        let mut es: Vec<Entry> = Vec::new();
        q.for_each(|e, inflight| {
            let wanted = filter
                .ids
                .as_ref()
                .is_none_or(|ids| ids.contains(&MessageId(e.id)));
            if !inflight && wanted {
                es.push(*e);
            }
        });
        es.sort_unstable_by_key(|e| e.id);
        es.truncate(filter.limit.unwrap_or(usize::MAX));
        let mut report = TransferReport {
            matched: es.len() as u64,
            ..Default::default()
        };
        if filter.dry_run || es.is_empty() {
            return Ok(report);
        }
        let to = g.declare(&filter.to, None, &shared.opts)?;
        let (count, bytes) = (
            es.len() as u64,
            es.iter().map(|e| e.len as u64).sum::<u64>(),
        );
        let t = &g.queues[to as usize];
        let full = t
            .opts
            .max_messages
            .is_some_and(|m| t.count + t.pending_count + count > m)
            || t.opts
                .max_bytes
                .is_some_and(|m| t.bytes + t.pending_bytes + bytes > m);
        if full {
            return Err(Error::new(
                ErrorKind::QueueFull,
                format!("queue {:?} has no room for {count} messages", filter.to),
            ));
        }
        let recs = g.read_records(self.qid, &es)?;
        let now = shared.now();
        let start = g.txn_begin();
        let mut removed: Vec<u64> = Vec::new();
        let mut outcome = Ok(());
        for (e, rec) in es.iter().zip(recs.iter()) {
            let step = decode_stored(e.id, rec).and_then(|(m, deliver_at)| {
                let (ts, exp) = (m.timestamp_ms(), m.expires_at_ms());
                let mut m = m.restore_times(ts, exp);
                if deliver_at != 0 {
                    m = m.deliver_at_ms(deliver_at);
                }
                g.send(to, &m, now)
            });
            let (_, duplicate) = match step {
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
            if !filter.copy {
                let src = &mut g.queues[self.qid as usize];
                if let Some(entry) = src.remove_waiting(e.id, e.priority) {
                    src.forget(&entry);
                    g.live_dec(&entry);
                    removed.push(e.id);
                }
            }
        }
        if !removed.is_empty() && g.queues[self.qid as usize].opts.journaled() {
            put_ids(
                &mut g.pending.buf,
                kind::REMOVE,
                self.qid,
                Some(why::DISCARD),
                &removed,
            );
        }
        g.txn_end(start);
        g.pending.needs_sync = true;
        shared.avail.notify_all();
        drop(shared.commit(g)?);
        outcome.map(|()| report)
    }
}

/// Decodes a stored record: the message and the deliver-at time of its send header.
fn decode_stored(id: u64, rec: &[u8]) -> Result<(Message, u64)> {
    let send = send_in_record(rec)
        .and_then(|(_, send)| get_send(&mut Cursor::new(send)))
        .and_then(|s| Some((s.to_message()?, s.h.deliver_at)));
    send.ok_or_else(|| {
        Error::new(
            ErrorKind::Corrupt,
            format!("stored record of ID:{id} does not decode"),
        )
    })
}
