//! Sending: a message becomes a SEND record in the pending batch (or a memory queue's record),
//! checked against the queue's limits, the producer window and the dedup window.

use std::time::{Duration, Instant};

use super::batch::PendingSend;
use super::callbacks::Callback;
use super::queue::{DedupEntry, Entry, ENTRY_REPEATS, MEM_SEG};
use super::record::{put_send, SendHeader, SEND_OVERHEAD};
use super::topic::Appended;
use super::{Engine, Guard, QueueId, State};
use crate::defaults::MIN_COUNTED_BYTES;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::OverflowPolicy;

/// Where a message goes: a queue, or a topic (every subscription that matches it).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Dest<'a> {
    /// A queue.
    Queue(QueueId),
    /// A topic, by name.
    Topic(&'a str),
}

impl From<QueueId> for Dest<'_> {
    fn from(q: QueueId) -> Self {
        Dest::Queue(q)
    }
}

impl State {
    /// Checks a message against the store's limits, and the original queue of a restored dead
    /// letter ([`Message::restore_dead_letter_info`]) against the queue-name rule
    /// (`InvalidName`): a replay sends it back there, so a name no queue can have would leave a
    /// dead letter nobody can replay, whichever face stored it.
    pub fn check_message(&self, msg: &Message) -> Result<()> {
        if msg.body.len() > self.max_body {
            return Err(Error::invalid(format!(
                "message body of {} bytes is over the limit of {} bytes",
                msg.body.len(),
                self.max_body
            )));
        }
        if let Some(d) = &msg.meta.dead_letter {
            crate::options::check_name_as("dead-letter original queue name", &d.original_queue)?;
            // A dead letter's headers may use the room kept for the dead-letter part (up to
            // `MAX_META`), but a replay sends it back without that part, as a plain send
            // (`MAX_SEND_META`): a restored dead letter over that could never be replayed
            // (review r10 #1), so it is refused here, in every face, before it is stored.
            let n = super::record::meta_bytes_without_dead_letter(&msg.meta);
            if n > super::record::MAX_SEND_META as u64 {
                return Err(Error::invalid(format!(
                    "a restored dead letter's headers (properties, correlation id, group, dedup \
                     key) take {n} bytes without its dead-letter information, over the limit \
                     of {} bytes a send accepts: a replay could never send it back",
                    super::record::MAX_SEND_META
                )));
            }
        }
        crate::options::check_priority(msg.priority)
    }

    /// Appends a message to queue `qid`. Returns its id and whether it was a dedup hit.
    ///
    /// A repeating message due at once makes its next occurrence here, in one TXN record with
    /// it (stored without its repeat), as the timer does for one that becomes due later (see
    /// [`super::timers`]): the chain never waits for a timer that might run late.
    pub fn send(&mut self, qid: u32, msg: &Message, now: u64) -> Result<(u64, bool)> {
        self.send_wrapped(qid, msg, now, true)
    }

    /// [`State::send`] from inside a TXN record being built (a transaction's commit, a
    /// transfer): a repeating message's two records go into it (a TXN does not nest).
    pub fn send_in_txn(&mut self, qid: u32, msg: &Message, now: u64) -> Result<(u64, bool)> {
        self.send_wrapped(qid, msg, now, false)
    }

    fn send_wrapped(
        &mut self,
        qid: u32,
        msg: &Message,
        now: u64,
        wrap: bool,
    ) -> Result<(u64, bool)> {
        let due_at_once = match (msg.deliver_at_ms, msg.delay_ms) {
            (Some(at), _) => at <= now,
            (None, d) => d.unwrap_or(0) == 0,
        };
        if msg.meta.repeat.is_none() || !due_at_once {
            return self.send_one(qid, msg, now);
        }
        self.check_message(msg)?;
        if let Some(key) = &msg.meta.dedup_key {
            self.prune_dedup(qid, now);
            if let Some(d) = self.queues[qid as usize].dedup.get(key) {
                return Ok((d.id, true));
            }
        }
        let mut first = msg.clone();
        first.meta.repeat = None;
        let (base, ttl) = if msg.keep_times {
            let ttl = (msg.expires_at_ms != 0)
                .then(|| msg.expires_at_ms.saturating_sub(msg.timestamp_ms));
            (msg.deliver_at_ms.unwrap_or(msg.timestamp_ms), ttl)
        } else {
            (
                msg.deliver_at_ms.unwrap_or(now),
                msg.ttl_ms.filter(|&t| t > 0),
            )
        };
        let next = super::timers::next_occurrence(msg, base, ttl, now);
        let journaled = self.queues[qid as usize].opts.journaled();
        let start = (journaled && wrap).then(|| super::record::txn_begin(&mut self.pending.buf));
        // The second send cannot fail where the first passed (the same checks, a smaller
        // meta); the TXN is closed whatever happens, so the batch stays well formed.
        let sent = self.send_one(qid, &first, now).and_then(|first| {
            if let Some(next) = &next {
                self.send_one(qid, next, now)?;
            }
            Ok(first)
        });
        if let Some(start) = start {
            super::record::txn_end(&mut self.pending.buf, start);
        }
        sent
    }

    /// [`State::send`] of one message, as it is.
    fn send_one(&mut self, qid: u32, msg: &Message, now: u64) -> Result<(u64, bool)> {
        self.check_message(msg)?;
        if let Some(key) = &msg.meta.dedup_key {
            self.prune_dedup(qid, now);
            if let Some(d) = self.queues[qid as usize].dedup.get(key) {
                return Ok((d.id, true));
            }
        }
        let (h, mut entry, due) = self.new_message(qid, msg, now);
        let id = h.id;
        let q = &mut self.queues[qid as usize];
        if !q.opts.journaled() {
            let mut rec = Vec::with_capacity(SEND_OVERHEAD + msg.body.len() + 16);
            entry.len = put_send(&mut rec, h, &msg.meta, &msg.body)?;
            q.mem.insert(id, rec);
            q.insert(entry, due, now);
            q.counters.enqueued += 1;
            if let Some(key) = &msg.meta.dedup_key {
                q.remember_dedup(key, id, now);
            }
            return Ok((id, false));
        }
        let sync = q.opts.needs_sync();
        let start = self.pending.buf.len();
        entry.len = put_send(&mut self.pending.buf, h, &msg.meta, &msg.body)?;
        let q = &mut self.queues[qid as usize];
        q.pending_count += 1;
        q.pending_bytes += entry.len as u64;
        let dedup_key = msg.meta.dedup_key.as_ref().map(|k| {
            q.remember_dedup(k, id, now);
            k.clone().into_boxed_str()
        });
        self.pending.needs_sync |= sync;
        self.pending.sends.push(PendingSend {
            qid,
            rec_off: start,
            entry,
            due,
            relocate: false,
            replay: false,
            dedup_key,
        });
        Ok((id, false))
    }

    /// A new message's id, send header and index entry (its record not written yet), and when
    /// it becomes due.
    fn new_message(&mut self, qid: u32, msg: &Message, now: u64) -> (SendHeader, Entry, u64) {
        let (mut h, due) = self.new_header(msg, now);
        h.qid = qid;
        let entry = self.entry_for(qid, msg, h.id, h.expires_at, 0, 1);
        (h, entry, due)
    }

    /// A new message's id and send header (for no queue yet), and when it becomes due.
    pub(super) fn new_header(&mut self, msg: &Message, now: u64) -> (SendHeader, u64) {
        let id = self.next_id;
        self.next_id += 1;
        // A restored message (`Message::restore_times`) keeps its send time and expiry.
        let expires_at = match msg.keep_times {
            true => msg.expires_at_ms,
            false => msg
                .ttl_ms
                // 0 never expires (JMS), also from a message that came over the socket.
                .filter(|&t| t > 0)
                .map(|t| now.saturating_add(t))
                .unwrap_or(0),
        };
        let due = match (msg.deliver_at_ms, msg.delay_ms) {
            (Some(at), _) => at,
            (None, Some(d)) => self.due_after(now, d),
            _ => 0,
        };
        let h = SendHeader {
            id,
            qid: 0,
            priority: msg.priority,
            flags: 0,
            delivery_count: 0,
            timestamp: if msg.keep_times {
                msg.timestamp_ms
            } else {
                now
            },
            expires_at,
            deliver_at: due,
            meta_len: 0,
        };
        (h, due)
    }

    /// The index entry of message `id` in queue `qid` (a record of `len` bytes shared by `refs`
    /// queues), its group registered in the queue.
    pub(super) fn entry_for(
        &mut self,
        qid: u32,
        msg: &Message,
        id: u64,
        expires_at: u64,
        len: u32,
        refs: u16,
    ) -> Entry {
        let q = &mut self.queues[qid as usize];
        let group = msg
            .meta
            .group
            .as_deref()
            .map(|g| q.group_index(g))
            .unwrap_or(0);
        Entry {
            id,
            expires_at,
            seg: MEM_SEG,
            off: 0,
            len,
            count: 0,
            group,
            priority: msg.priority,
            flags: if msg.meta.repeat.is_some() {
                ENTRY_REPEATS
            } else {
                0
            },
            refs,
        }
    }

    /// Appends a message to a queue or publishes it to a topic.
    pub fn send_to(&mut self, to: Dest<'_>, msg: &Message, now: u64) -> Result<Appended> {
        match to {
            Dest::Queue(q) => {
                let (id, _) = self.send(q.0, msg, now)?;
                let journaled = self.queues[q.0 as usize].opts.journaled();
                Ok(Appended {
                    id,
                    journaled,
                    in_memory: !journaled,
                    reached: 1,
                })
            }
            Dest::Topic(t) => self.publish_to(t, msg, now),
        }
    }

    /// Whether queue `qid` has room for one more message of `payload` bytes (see
    /// [`payload_of`]).
    pub fn has_room(&self, qid: u32, payload: u64) -> bool {
        self.queues[qid as usize].room_for(1, payload)
    }
}

/// The bytes of `msg` that a queue's `max_bytes` counts: its body and the headers its sender
/// set (properties, correlation id, group, dedup key), not the fixed record header — the rule
/// of [`crate::QueueOptions::max_bytes`], the same as [`Entry::payload`] of a stored message.
/// Every way into a queue (send, send_batch, async sends, transactions, transfers, topic
/// publishes) measures a new message with it.
pub(crate) fn payload_of(msg: &Message) -> u64 {
    msg.body.len() as u64 + super::record::meta_bytes(&msg.meta)
}

/// What `max_bytes` counts for `count` messages of `payload` bytes in all (bodies and
/// headers, see [`payload_of`]): the larger of `payload` and [`MIN_COUNTED_BYTES`] per message.
pub(crate) fn counted_bytes(count: u64, payload: u64) -> u64 {
    payload.max(count.saturating_mul(MIN_COUNTED_BYTES))
}

impl Entry {
    /// The bytes of the message that `max_bytes` counts: its body and the headers its sender
    /// set (properties, correlation id, group, dedup key), not the fixed record header.
    pub fn payload(&self) -> u64 {
        (self.len as u64).saturating_sub(SEND_OVERHEAD as u64)
    }
}

impl super::queue::QueueState {
    /// Whether `count` more messages of `body` payload bytes in all ([`payload_of`]) fit the
    /// queue's limits (the one check of every way in: send, batch, transaction, transfer,
    /// publish). `max_bytes` counts body bytes and the headers their senders set (see
    /// [`Entry::payload`]), not the fixed record header of each message; a single message
    /// always fits an empty queue.
    ///
    /// The one place `max_bytes` is counted (review r5 #15): the larger of the payload bytes
    /// held (with `body`) and [`MIN_COUNTED_BYTES`] per message (with `count`), so that empty
    /// messages are bounded too: `max_bytes` 1000 holds 1000 empty messages. It depends only on
    /// the queue's message count and record bytes, which recovery recomputes from the journal,
    /// so a reopened queue counts the same.
    pub fn room_for(&self, count: u64, body: u64) -> bool {
        let n = self.count + self.pending_count;
        let held = (self.bytes + self.pending_bytes).saturating_sub(n * SEND_OVERHEAD as u64);
        let counted = counted_bytes(n.saturating_add(count), held.saturating_add(body));
        self.opts.max_messages.is_none_or(|m| n + count <= m)
            && self
                .opts
                .max_bytes
                .is_none_or(|m| counted <= m || (n == 0 && count == 1))
    }

    /// Remembers dedup key `key` for message `id` (its record's segment is set once written).
    pub fn remember_dedup(&mut self, key: &str, id: u64, now: u64) {
        self.dedup.insert(
            key.to_string(),
            DedupEntry {
                id,
                at: now,
                seg: MEM_SEG,
            },
        );
        let order = match super::queue::is_resend_key(key) {
            true => &mut self.resend_order,
            false => &mut self.dedup_order,
        };
        order.push_back((now, key.to_string()));
    }
}

impl Engine {
    /// Stores `msg` in `to` once there is room by the overflow policy of the queue or, for a
    /// publish, of each subscription the message reaches (known only once its selectors are
    /// evaluated, so the publish is tried and tried again after the policy made room). Returns
    /// with the lock held, the message appended but not yet durable.
    fn store_with_room<'a>(
        &'a self,
        mut g: Guard<'a>,
        to: Dest<'_>,
        msg: &Message,
        now: u64,
    ) -> Result<(Guard<'a>, Appended)> {
        if let Dest::Queue(q) = to {
            g = self.wait_room_for(g, q.0, 1, payload_of(msg))?;
        }
        loop {
            g.topics.full = None;
            match g.send_to(to, msg, now) {
                Ok(a) => return Ok((g, a)),
                Err(e) => match g.topics.full.take() {
                    Some(qid) if e.kind() == ErrorKind::QueueFull => {
                        g = self.wait_room_for(g, qid, 1, payload_of(msg))?;
                    }
                    _ => return Err(e),
                },
            }
        }
    }

    /// Waits (per queue `qid`'s overflow policy) until it has room for `count` more messages
    /// of `payload` bytes in all: `Reject` fails with `QueueFull`, `DropOldest` dead-letters
    /// the oldest messages not handed out, prefetched ones included (`QueueFull` when every
    /// message is handed out or not yet due), `Block`
    /// waits up to its timeout (then `QueueFull`). The one overflow rule of sends, batches,
    /// async sends and transactions.
    pub(super) fn wait_room_for<'a>(
        &'a self,
        mut g: Guard<'a>,
        qid: u32,
        count: u64,
        payload: u64,
    ) -> Result<Guard<'a>> {
        let q = QueueId(qid);
        let shared = &self.shared;
        let mut deadline = None;
        while !g.queues[qid as usize].room_for(count, payload) {
            let queue = &g.queues[q.0 as usize];
            let name = queue.name.clone();
            match queue.opts.overflow {
                OverflowPolicy::Reject => {
                    return Err(Error::new(
                        ErrorKind::QueueFull,
                        format!("queue {name:?} is full"),
                    ))
                }
                OverflowPolicy::DropOldest => {
                    // What would not fit even an empty queue drops nothing: dropping every
                    // older message would not make room (review r14 #9: one message over
                    // `max_bytes` sent every held message to the dead-letter queue).
                    let o = &queue.opts;
                    let never = o.max_messages.is_some_and(|m| count > m)
                        || o.max_bytes
                            .is_some_and(|m| counted_bytes(count, payload) > m);
                    if never {
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!(
                                "{} of {payload} bytes is over the limits of queue {name:?} \
                                 (max_messages {}, max_bytes {}; one message over max_bytes is \
                                 taken only into an empty queue): dropping older messages \
                                 would not make room, so none was dropped",
                                if count == 1 {
                                    "a message".to_string()
                                } else {
                                    format!("{count} messages")
                                },
                                o.max_messages.map_or("none".into(), |m| m.to_string()),
                                o.max_bytes.map_or("none".into(), |m| m.to_string()),
                            ),
                        ));
                    }
                    let now = shared.now();
                    if !g.drop_oldest(q.0, now, &shared.opts)? {
                        if g.queues[q.0 as usize].pending_count > 0 {
                            // The oldest are sends not yet committed (earlier messages of this
                            // send_batch, async sends): commit them, then drop them like any.
                            g = self.commit(g)?;
                            continue;
                        }
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!(
                                "queue {name:?} is full and has no message to drop: each one \
                                 it holds is handed out to a consumer (in_flight) or not yet \
                                 due (delayed, waiting for redelivery)"
                            ),
                        ));
                    }
                    // The dropped message leaves the queue once its DEAD record is appended.
                    g = self.finish_moves(g)?;
                }
                OverflowPolicy::Block { timeout } => {
                    // A timeout past what an Instant can hold waits forever (no deadline).
                    let d = *deadline.get_or_insert_with(|| crate::clock::deadline_after(timeout));
                    let left = crate::clock::time_left(d);
                    if left.is_zero() {
                        return Err(Error::new(
                            ErrorKind::QueueFull,
                            format!("queue {name:?} stayed full for {timeout:?}"),
                        ));
                    }
                    g = shared
                        .room
                        .wait_timeout(g, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    g.check()?;
                }
            }
        }
        Ok(g)
    }

    /// Sends `msg` to queue `q` and waits until it is durable (per the queue's durability).
    /// Returns its id (for a dedup hit, the first message's id).
    pub(crate) fn send<'t>(&self, to: impl Into<Dest<'t>>, msg: &Message) -> Result<MessageId> {
        self.send_reached(to.into(), msg).map(|(id, _)| id)
    }

    /// Publishes `msg` to `topic` and waits until it is durable: its id and how many
    /// subscriptions it reached (0: none matched, nothing was stored).
    pub(crate) fn publish(&self, topic: &str, msg: &Message) -> Result<(MessageId, u32)> {
        self.send_reached(Dest::Topic(topic), msg)
    }

    /// [`Engine::send`], also saying how many queues hold the message (see [`Appended`]).
    fn send_reached(&self, to: Dest<'_>, msg: &Message) -> Result<(MessageId, u32)> {
        let shared = &self.shared;
        let g = shared.lock();
        g.check()?;
        let (g, a) = self.store_with_room(g, to, msg, shared.now())?;
        let (id, reached) = (a.id, a.reached);
        if a.in_memory {
            shared.avail.notify_all();
        }
        if !a.journaled {
            return Ok((MessageId(id), reached));
        }
        let mut g = self.commit(g)?;
        if let Some(e) = g.refused.remove(&id) {
            return Err(e);
        }
        Ok((MessageId(id), reached))
    }

    /// Sends many messages with one lock, one record batch and one wait: all are durable when it
    /// returns. If one is refused (a limit, an invalid message) the ones before it are still sent
    /// and the error names its index.
    /// (An iterator, not a `Vec`: the messages are taken one by one, with no copy of the batch.)
    pub(crate) fn send_batch<'t>(
        &self,
        to: impl Into<Dest<'t>>,
        msgs: impl IntoIterator<Item = Message>,
    ) -> Result<Vec<MessageId>> {
        let to = to.into();
        let shared = &self.shared;
        let msgs = msgs.into_iter();
        let mut ids = Vec::with_capacity(msgs.size_hint().0);
        let mut g = shared.lock();
        g.check()?;
        let now = shared.now();
        let mut failure = None;
        let (mut journaled, mut in_memory) = (false, false);
        for (i, m) in msgs.enumerate() {
            let r = match self.store_with_room(g, to, &m, now) {
                Ok((g2, a)) => {
                    g = g2;
                    Ok(a)
                }
                Err(e) => {
                    g = shared.lock();
                    Err(e)
                }
            };
            match r {
                Ok(a) => {
                    ids.push(MessageId(a.id));
                    journaled |= a.journaled;
                    in_memory |= a.in_memory;
                }
                Err(e) => {
                    failure = Some(Error::new(
                        e.kind(),
                        format!("message {i} of the batch: {}", e.message()),
                    ));
                    break;
                }
            }
        }
        if in_memory {
            shared.avail.notify_all();
        }
        if journaled {
            g = self.commit(g)?;
            // Refused for lack of space: the batch's messages shared one write, so all are.
            let refused: Vec<_> = ids
                .iter()
                .filter_map(|id| g.refused.remove(&id.0))
                .collect();
            if let Some(e) = refused.into_iter().next() {
                return Err(e);
            }
        }
        drop(g);
        match failure {
            Some(e) => Err(e),
            None => Ok(ids),
        }
    }

    /// Sends without waiting: `callback` runs exactly once, on the callback thread, with the id
    /// once the message is durable or with the error if it never will be. If this returns an
    /// error, the callback is dropped without being called.
    pub(crate) fn send_async<'t>(
        &self,
        to: impl Into<Dest<'t>>,
        msg: Message,
        callback: Callback,
    ) -> Result<()> {
        let to = to.into();
        let shared = &self.shared;
        let len = msg.body.len();
        let mut g = shared.lock();
        g.check()?;
        g = self.wait_window(g, len)?;
        let (mut g, a) = self.store_with_room(g, to, &msg, shared.now())?;
        let id = a.id;
        if !a.journaled {
            drop(g);
            if a.in_memory {
                shared.avail.notify_all();
            }
            shared.push_callback(callback, Ok(MessageId(id)));
            return Ok(());
        }
        if a.in_memory {
            shared.avail.notify_all();
        }
        g.async_msgs += 1;
        g.async_bytes += len;
        g.pending.async_msgs += 1;
        g.pending.async_bytes += len;
        g.pending.callbacks.push((callback, Ok(MessageId(id))));
        self.kick(&g);
        Ok(())
    }

    /// Waits until the producer window of async sends has room for `len` more bytes.
    fn wait_window<'a>(&'a self, mut g: Guard<'a>, len: usize) -> Result<Guard<'a>> {
        let shared = &self.shared;
        let opts = &shared.opts;
        let mut deadline: Option<Instant> = None;
        while g.async_msgs >= opts.max_pending_messages
            || (g.async_bytes > 0 && g.async_bytes + len > opts.max_pending_bytes)
        {
            if !opts.block_when_window_full {
                return Err(Error::new(
                    ErrorKind::QueueFull,
                    "the producer window of async sends is full",
                ));
            }
            let d = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(3600));
            g = shared
                .room
                .wait_timeout(g, d.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|e| e.into_inner())
                .0;
            g.check()?;
        }
        Ok(g)
    }
}
