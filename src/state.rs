//! In-memory state of the queues, and the records that change it.
//!
//! Bodies stay on disk: a queued message costs one 40-byte [`Entry`] here. Every change to a
//! durable queue is encoded as a journal record into the pending batch *while the lock is held*,
//! so the journal's order is the order of the changes. Sends become visible to consumers only
//! after their batch is committed ([`Inner::publish`]); settles change memory at once and the
//! caller waits for their batch.

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::{
    self, kind, put_record_header, Cursor, SendHeader, RECORD_HEADER, SEND_HEADER,
};
use crate::message::{DeadLetterInfo, DeadLetterReason, Message, MessageId, Meta};
use crate::options::{
    DeadLetterStrategy, Durability, GroupFailurePolicy, OverflowPolicy, QueueOptions, StoreOptions,
};
use crate::policy::{AfterFailure, RedeliveryPolicy};

/// Segment number of messages of memory queues (their records live in [`QueueState::mem`]).
pub(crate) const MEM_SEG: u32 = u32::MAX;
/// Send-header flag: the meta holds a dedup key.
const FLAG_DEDUP: u8 = 1;
/// Send-header flag: the meta holds a group key.
const FLAG_GROUP: u8 = 2;
/// Send-header flag: the meta holds scheduled repeats.
pub(crate) const FLAG_REPEAT: u8 = 4;
/// Entry flag (memory only): this occurrence already scheduled its next repeat.
pub(crate) const ENTRY_REPEAT_DONE: u8 = 8;

/// One message in memory. Its record (headers + body) is at `seg`/`off` on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub id: u64,
    pub expires_at: u64,
    pub seg: u32,
    pub off: u32,
    pub len: u32,
    pub count: u32,
    pub group: u32,
    pub priority: u8,
    pub flags: u8,
}

/// A message handed to a consumer and not yet settled.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    pub entry: Entry,
    pub consumer: u64,
    pub deadline: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct FailInfo {
    pub first: u64,
    pub last: u64,
    pub reason: String,
}

/// Per-queue counters (see [`crate::QueueStats`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub enqueued: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub discarded: u64,
    pub replayed: u64,
}

/// Options with the store's defaults filled in.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub durability: Durability,
    pub max_messages: Option<u64>,
    pub max_bytes: Option<u64>,
    pub overflow: OverflowPolicy,
    pub redelivery: RedeliveryPolicy,
    pub dead_letter: DeadLetterStrategy,
    pub ack_timeout_ms: Option<u64>,
    pub process_expired: bool,
    pub dedup_window_ms: u64,
    pub dedup_count: usize,
    pub group_failure: GroupFailurePolicy,
    pub retention_ms: Option<u64>,
}

impl Resolved {
    pub fn new(store: &StoreOptions, q: &QueueOptions) -> Self {
        Resolved {
            durability: q.durability.unwrap_or(store.durability),
            max_messages: q.max_messages,
            max_bytes: q.max_bytes,
            overflow: q.overflow.unwrap_or(OverflowPolicy::Reject),
            redelivery: q
                .redelivery
                .clone()
                .unwrap_or_else(|| store.redelivery.clone()),
            dead_letter: q
                .dead_letter
                .clone()
                .unwrap_or_else(|| store.dead_letter.clone()),
            ack_timeout_ms: q.ack_timeout.map(|d| d.as_millis() as u64),
            process_expired: q.process_expired.unwrap_or(true),
            dedup_window_ms: q
                .dedup_window
                .map(|d| d.as_millis() as u64)
                .unwrap_or(600_000),
            dedup_count: q.dedup_window_count.unwrap_or(100_000),
            group_failure: q.group_failure.unwrap_or_default(),
            retention_ms: q.retention.map(|d| d.as_millis() as u64),
        }
    }
    pub fn journaled(&self) -> bool {
        !matches!(self.durability, Durability::Memory)
    }
    pub fn needs_sync(&self) -> bool {
        matches!(self.durability, Durability::Sync)
    }
}

/// Delivery state of one message group.
#[derive(Debug, Clone, Default)]
pub(crate) struct GroupState {
    /// The group's message in flight.
    pub inflight: Option<u64>,
    /// A failed message of the group waiting for its redelivery: the group waits for it.
    pub blocked_by: Option<u64>,
    /// Parked: its messages go to the dead-letter queue until replayed.
    pub parked: bool,
    /// Messages of the group held by the queue.
    pub messages: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct DedupEntry {
    pub id: u64,
    pub at: u64,
    pub seg: u32,
}

/// One queue.
pub(crate) struct QueueState {
    pub qid: u32,
    pub name: String,
    pub opts: Resolved,
    pub decl_seg: u32,
    /// Ready messages by priority, each in id order.
    pub ready: [VecDeque<Entry>; 10],
    /// Messages ready again out of id order (after a redelivery delay), by (priority desc, id).
    pub retry: BTreeMap<(Reverse<u8>, u64), Entry>,
    /// Messages waiting for a time, by (due, id).
    pub delayed: BTreeMap<(u64, u64), Entry>,
    pub delayed_due: FxHashMap<u64, u64>,
    pub inflight: FxHashMap<u64, InFlight>,
    pub fail: FxHashMap<u64, FailInfo>,
    pub dedup: HashMap<String, DedupEntry>,
    pub dedup_order: VecDeque<(u64, String)>,
    /// Records of memory-queue messages, by id.
    pub mem: FxHashMap<u64, Vec<u8>>,
    /// Group keys → index + 1 (0 in an entry means no group).
    pub groups: HashMap<String, u32>,
    pub group_keys: Vec<String>,
    pub group_state: Vec<GroupState>,
    /// Messages held that belong to a group (0: skip group bookkeeping on the hot path).
    pub group_msgs: u64,
    pub count: u64,
    pub bytes: u64,
    pub pending_count: u64,
    pub pending_bytes: u64,
    pub counters: Counters,
    /// Messages in flight when the last process ended, failed at the first handle of this open.
    pub crashed: Vec<u64>,
}

impl QueueState {
    pub fn new(qid: u32, name: String, opts: Resolved) -> Self {
        QueueState {
            qid,
            name,
            opts,
            decl_seg: MEM_SEG,
            ready: Default::default(),
            retry: BTreeMap::new(),
            delayed: BTreeMap::new(),
            delayed_due: FxHashMap::default(),
            inflight: FxHashMap::default(),
            fail: FxHashMap::default(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            mem: FxHashMap::default(),
            groups: HashMap::new(),
            group_keys: Vec::new(),
            group_state: Vec::new(),
            group_msgs: 0,
            count: 0,
            bytes: 0,
            pending_count: 0,
            pending_bytes: 0,
            counters: Counters::default(),
            crashed: Vec::new(),
        }
    }

    /// Adds a stored message: ready now, or delayed until `due`.
    pub fn insert(&mut self, e: Entry, due: u64, now: u64) {
        self.count += 1;
        self.bytes += e.len as u64;
        if e.group != 0 {
            self.group_msgs += 1;
            self.group_state[e.group as usize - 1].messages += 1;
        }
        self.place(e, due, now, false);
    }

    /// The index (+1) of group `key`, created if new.
    pub fn group_index(&mut self, key: &str) -> u32 {
        if let Some(&g) = self.groups.get(key) {
            return g;
        }
        self.group_keys.push(key.to_string());
        self.group_state.push(GroupState::default());
        let g = self.group_keys.len() as u32;
        self.groups.insert(key.to_string(), g);
        g
    }

    fn group_mut(&mut self, e: &Entry) -> Option<&mut GroupState> {
        if e.group == 0 {
            return None;
        }
        self.group_state.get_mut(e.group as usize - 1)
    }

    /// Whether `e` may be handed out now (its group has nothing in flight and is not waiting
    /// for another of its messages). Parked groups' messages are taken, to be dead-lettered.
    fn eligible(&self, e: &Entry) -> bool {
        if e.group == 0 {
            return true;
        }
        let g = &self.group_state[e.group as usize - 1];
        g.parked || (g.inflight.is_none() && g.blocked_by.is_none_or(|b| b == e.id))
    }

    /// Takes the next message that may be delivered: highest priority, then lowest id, skipping
    /// messages whose group is busy.
    pub fn pop_next(&mut self) -> Option<Entry> {
        let e = if self.group_msgs == 0 {
            self.pop_ready()?
        } else {
            self.pop_eligible()?
        };
        if let Some(g) = self.group_mut(&e) {
            if !g.parked {
                g.inflight = Some(e.id);
                g.blocked_by = None;
            }
        }
        Some(e)
    }

    fn pop_eligible(&mut self) -> Option<Entry> {
        for p in (0..10u8).rev() {
            let mut found = None;
            {
                let mut ri = self
                    .retry
                    .range((Reverse(p), 0)..=(Reverse(p), u64::MAX))
                    .map(|(_, e)| *e)
                    .peekable();
                let mut di = 0usize;
                loop {
                    let r = ri.peek().copied();
                    let d = self.ready[p as usize].get(di).copied();
                    let (e, from_retry) = match (r, d) {
                        (None, None) => break,
                        (Some(r), None) => (r, true),
                        (None, Some(d)) => (d, false),
                        (Some(r), Some(d)) => {
                            if r.id < d.id {
                                (r, true)
                            } else {
                                (d, false)
                            }
                        }
                    };
                    if self.eligible(&e) {
                        found = Some((e, from_retry, di));
                        break;
                    }
                    if from_retry {
                        ri.next();
                    } else {
                        di += 1;
                    }
                }
            }
            if let Some((e, from_retry, di)) = found {
                return if from_retry {
                    self.retry.remove(&(Reverse(p), e.id))
                } else {
                    self.ready[p as usize].remove(di)
                };
            }
        }
        None
    }

    /// Puts a message (already counted) where it waits: delayed, retry or ready.
    fn place(&mut self, e: Entry, due: u64, now: u64, out_of_order: bool) {
        if due > now {
            self.delayed.insert((due, e.id), e);
            self.delayed_due.insert(e.id, due);
        } else if out_of_order
            || self.ready[e.priority as usize]
                .back()
                .is_some_and(|b| b.id > e.id)
        {
            self.retry.insert((Reverse(e.priority), e.id), e);
        } else {
            self.ready[e.priority as usize].push_back(e);
        }
    }

    /// Holds a message taken from waiting as in flight for no consumer, so that the one settle
    /// path (dead-letter, drop, failure) can move it: expiry, parked groups, overflow, crashes.
    pub fn hold(&mut self, e: Entry) {
        self.inflight.insert(
            e.id,
            InFlight {
                entry: e,
                consumer: 0,
                deadline: u64::MAX,
            },
        );
    }

    /// Records a failed delivery of `id` (first and last failure time, last reason).
    pub fn note_failure(&mut self, id: u64, now: u64, reason: &str) {
        let info = self.fail.entry(id).or_default();
        if info.first == 0 {
            info.first = now;
        }
        info.last = now;
        info.reason = reason.to_string();
    }

    /// Puts a message that was in flight (still counted) back to wait: delayed until `due`, or
    /// ready at once out of id order.
    pub fn requeue(&mut self, e: Entry, due: u64, now: u64) {
        if let Some(g) = self.group_mut(&e) {
            // The group waits for this message: order holds under redelivery.
            if g.inflight == Some(e.id) {
                g.inflight = None;
            }
            g.blocked_by = Some(e.id);
        }
        self.place(e, due, now, true);
    }

    /// Moves delayed messages whose time has come to the ready side.
    pub fn release_due(&mut self, now: u64) {
        while let Some((&(due, id), _)) = self.delayed.first_key_value() {
            if due > now {
                break;
            }
            if let Some(e) = self.delayed.remove(&(due, id)) {
                self.delayed_due.remove(&id);
                self.retry.insert((Reverse(e.priority), e.id), e);
            }
        }
    }

    /// The earliest time a delayed message becomes due.
    pub fn next_due(&self) -> Option<u64> {
        self.delayed.first_key_value().map(|(&(due, _), _)| due)
    }

    /// Takes the next ready message: highest priority, then lowest id.
    pub fn pop_ready(&mut self) -> Option<Entry> {
        let best_ready = (0..10usize).rev().find(|&p| !self.ready[p].is_empty());
        let best_retry = self
            .retry
            .first_key_value()
            .map(|(&(Reverse(p), id), _)| (p, id));
        let take_retry = match (best_ready, best_retry) {
            (None, None) => return None,
            (None, Some(_)) => true,
            (Some(_), None) => false,
            (Some(p), Some((rp, rid))) => {
                let head = self.ready[p].front().map(|e| e.id).unwrap_or(u64::MAX);
                (rp as usize, Reverse(rid)) > (p, Reverse(head))
            }
        };
        if take_retry {
            self.retry.pop_first().map(|(_, e)| e)
        } else {
            best_ready.and_then(|p| self.ready[p].pop_front())
        }
    }

    /// Removes a waiting (not in-flight) message by id.
    pub fn remove_waiting(&mut self, id: u64, priority: u8) -> Option<Entry> {
        if let Some(due) = self.delayed_due.remove(&id) {
            return self.delayed.remove(&(due, id));
        }
        if let Some(e) = self.retry.remove(&(Reverse(priority), id)) {
            return Some(e);
        }
        let dq = &mut self.ready[priority as usize];
        let i = dq.binary_search_by_key(&id, |e| e.id).ok()?;
        dq.remove(i)
    }

    /// Mutable access to a stored message wherever it waits.
    pub fn find_mut(&mut self, id: u64, priority: u8) -> Option<&mut Entry> {
        if let Some(f) = self.inflight.get_mut(&id) {
            return Some(&mut f.entry);
        }
        if let Some(due) = self.delayed_due.get(&id) {
            return self.delayed.get_mut(&(*due, id));
        }
        if self.retry.contains_key(&(Reverse(priority), id)) {
            return self.retry.get_mut(&(Reverse(priority), id));
        }
        let dq = &mut self.ready[priority as usize];
        let i = dq.binary_search_by_key(&id, |e| e.id).ok()?;
        dq.get_mut(i)
    }

    /// Every stored message (any state), for scans.
    pub fn for_each(&self, mut f: impl FnMut(&Entry, bool)) {
        for dq in &self.ready {
            dq.iter().for_each(|e| f(e, false));
        }
        self.retry.values().for_each(|e| f(e, false));
        self.delayed.values().for_each(|e| f(e, false));
        self.inflight.values().for_each(|i| f(&i.entry, true));
    }

    /// Ready + delayed + in-flight ids in delivery order (for browse): ready first.
    pub fn ordered_waiting(&self) -> Vec<Entry> {
        let mut v: Vec<Entry> = Vec::new();
        for dq in &self.ready {
            v.extend(dq.iter().copied());
        }
        v.extend(self.retry.values().copied());
        v.sort_by_key(|e| (Reverse(e.priority), e.id));
        v
    }

    /// Accounts for a message leaving the queue for good.
    pub fn forget(&mut self, e: &Entry) {
        self.count -= 1;
        self.bytes -= e.len as u64;
        if let Some(g) = self.group_mut(e) {
            if g.inflight == Some(e.id) {
                g.inflight = None;
            }
            if g.blocked_by == Some(e.id) {
                g.blocked_by = None;
            }
            g.messages = g.messages.saturating_sub(1);
            self.group_msgs = self.group_msgs.saturating_sub(1);
        }
        self.fail.remove(&e.id);
        if e.seg == MEM_SEG {
            self.mem.remove(&e.id);
        }
    }

    pub fn waiting_count(&self) -> u64 {
        self.ready.iter().map(|d| d.len() as u64).sum::<u64>() + self.retry.len() as u64
    }

    /// Forgets dedup keys past the window.
    pub fn prune_dedup(&mut self, now: u64) {
        while let Some((at, _)) = self.dedup_order.front() {
            let old = *at + self.opts.dedup_window_ms <= now
                || self.dedup_order.len() > self.opts.dedup_count;
            if !old {
                break;
            }
            if let Some((at, key)) = self.dedup_order.pop_front() {
                if self.dedup.get(&key).is_some_and(|d| d.at == at) {
                    self.dedup.remove(&key);
                }
            }
        }
    }
}

/// A send waiting for its batch to be committed.
#[derive(Debug)]
pub(crate) struct PendingSend {
    pub qid: u32,
    pub rec_off: usize,
    pub entry: Entry,
    pub due: u64,
    /// A compaction copy: update the location of an existing message instead of adding one.
    pub relocate: bool,
    pub dedup_key: Option<Box<str>>,
}

/// The records of the next group commit.
#[derive(Default)]
pub(crate) struct Batch {
    pub buf: Vec<u8>,
    pub sends: Vec<PendingSend>,
    pub callbacks: Vec<(crate::store::Callback, Result<MessageId>)>,
    pub needs_sync: bool,
    pub async_msgs: usize,
    pub async_bytes: usize,
    pub decls: Vec<(u32, usize)>,
    pub dedups: Vec<(u32, Box<str>, usize)>,
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
    }
}

/// Validates a queue name (SPEC §9).
pub(crate) fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "queue name must be 1–255 bytes of UTF-8, got {} bytes",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "queue name {name:?} holds the control character U+{:04X}",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A whole SEND record in its own buffer: how memory queues keep their messages.
pub(crate) fn mem_record(h: SendHeader, meta: &Meta, body: &[u8]) -> Result<Vec<u8>> {
    let mut rec = Vec::with_capacity(SEND_OVERHEAD + body.len() + 16);
    put_record_header(&mut rec, kind::SEND, 0);
    put_send(&mut rec, h, meta, body)?;
    finish_record(&mut rec, 0);
    Ok(rec)
}

/// Encodes a SEND body (header, meta, body) into `buf`; returns the header flags.
pub(crate) fn put_send(
    buf: &mut Vec<u8>,
    mut h: SendHeader,
    meta: &Meta,
    body: &[u8],
) -> Result<()> {
    let start = buf.len();
    h.flags = 0;
    if meta.dedup_key.is_some() {
        h.flags |= FLAG_DEDUP;
    }
    if meta.group.is_some() {
        h.flags |= FLAG_GROUP;
    }
    if meta.repeat.is_some() {
        h.flags |= FLAG_REPEAT;
    }
    h.meta_len = 0;
    h.put(buf);
    if *meta != Meta::default() {
        let n = format::put_bincode(buf, meta)?;
        buf[start + 44..start + 48].copy_from_slice(&(n as u32).to_le_bytes());
    }
    buf.extend_from_slice(body);
    Ok(())
}

/// A decoded SEND body.
pub(crate) struct SendRec<'a> {
    pub h: SendHeader,
    pub meta: &'a [u8],
    pub body: &'a [u8],
}

pub(crate) fn get_send<'a>(c: &mut Cursor<'a>) -> Option<SendRec<'a>> {
    let h = SendHeader::get(c)?;
    let meta = c.take(h.meta_len as usize)?;
    let body = c.rest();
    Some(SendRec { h, meta, body })
}

impl<'a> SendRec<'a> {
    pub fn meta(&self) -> Option<Meta> {
        if self.meta.is_empty() {
            Some(Meta::default())
        } else {
            format::get_bincode(self.meta)
        }
    }
    pub fn has_dedup(&self) -> bool {
        self.h.flags & FLAG_DEDUP != 0
    }
    pub fn has_group(&self) -> bool {
        self.h.flags & FLAG_GROUP != 0
    }
    pub fn to_message(&self) -> Option<Message> {
        let mut m = Message::new(self.body);
        m.meta = self.meta()?;
        m.priority = self.h.priority;
        m.id = Some(MessageId(self.h.id));
        m.timestamp_ms = self.h.timestamp;
        m.expires_at_ms = self.h.expires_at;
        Some(m)
    }
}

/// Locates the SEND body inside a whole record of kind SEND, DEAD or RELOCATE.
pub(crate) fn send_in_record(rec: &[u8]) -> Option<(u8, &[u8])> {
    if rec.len() < RECORD_HEADER {
        return None;
    }
    let k = rec[4];
    let body = &rec[RECORD_HEADER..];
    let mut c = Cursor::new(body);
    match k {
        kind::SEND => {}
        kind::DEAD => {
            c.take(12)?;
        }
        kind::RELOCATE => {
            c.take(4 + 8 + 8 + 8)?;
            let n = c.u32()? as usize;
            c.take(n)?;
        }
        _ => return None,
    }
    Some((k, &body[c.pos..]))
}

/// Decodes a whole stored record into a message.
pub(crate) fn decode_message(rec: &[u8]) -> Option<Message> {
    let (_, send) = send_in_record(rec)?;
    let s = get_send(&mut Cursor::new(send))?;
    s.to_message()
}

/// Builds the message that a dead-letter queue receives.
pub(crate) fn dead_meta(mut meta: Meta, info: DeadLetterInfo) -> Meta {
    meta.dead_letter = Some(info);
    meta
}

/// What to do with a message whose delivery failed.
pub(crate) fn decide(
    policy: &RedeliveryPolicy,
    count: u32,
    extra_delay: Option<u64>,
    random: f64,
) -> AfterFailure {
    match (policy.after_failure(count, random), extra_delay) {
        (AfterFailure::Redeliver { .. }, Some(d)) => AfterFailure::Redeliver { delay_ms: d },
        (x, _) => x,
    }
}

/// Appends a QUEUE record.
pub(crate) fn put_queue(buf: &mut Vec<u8>, qid: u32, name: &str) {
    put_record_header(buf, kind::QUEUE, 4 + name.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(name.as_bytes());
}

/// Appends an ACK or REMOVE-like id list record.
pub(crate) fn put_ids(buf: &mut Vec<u8>, k: u8, qid: u32, why: Option<u8>, ids: &[u64]) {
    let extra = if why.is_some() { 1 } else { 0 };
    put_record_header(buf, k, 4 + extra + 4 + 8 * ids.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    if let Some(w) = why {
        buf.push(w);
    }
    buf.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        buf.extend_from_slice(&id.to_le_bytes());
    }
}

/// Appends a DELIVER record.
pub(crate) fn put_deliver(buf: &mut Vec<u8>, qid: u32, items: &[(u64, u32)]) {
    put_record_header(buf, kind::DELIVER, 8 + 12 * items.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for (id, c) in items {
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&c.to_le_bytes());
    }
}

/// Appends a REQUEUE record.
pub(crate) fn put_requeue(
    buf: &mut Vec<u8>,
    qid: u32,
    id: u64,
    count: u32,
    not_before: u64,
    failed_at: u64,
    reason: &str,
) {
    put_record_header(buf, kind::REQUEUE, 4 + 8 + 4 + 8 + 8 + reason.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&count.to_le_bytes());
    buf.extend_from_slice(&not_before.to_le_bytes());
    buf.extend_from_slice(&failed_at.to_le_bytes());
    buf.extend_from_slice(reason.as_bytes());
}

/// Appends a GROUP record.
pub(crate) fn put_group(buf: &mut Vec<u8>, qid: u32, parked: bool, key: &str) {
    put_record_header(buf, kind::GROUP, 4 + 1 + key.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.push(parked as u8);
    buf.extend_from_slice(key.as_bytes());
}

/// Appends a DEDUP record.
pub(crate) fn put_dedup(buf: &mut Vec<u8>, qid: u32, id: u64, at: u64, key: &str) {
    put_record_header(buf, kind::DEDUP, 4 + 8 + 8 + key.len());
    buf.extend_from_slice(&qid.to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&at.to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
}

/// Patches the length field of a record that began at `start` once its body is complete.
pub(crate) fn finish_record(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start - 4) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Reason codes of REMOVE records.
pub(crate) mod why {
    pub const PURGE: u8 = 1;
    pub const EXPIRED: u8 = 2;
    pub const DISCARD: u8 = 3;
}

/// Why-code of a dead-letter reason, for the counters of a discard.
pub(crate) fn reason_code(r: DeadLetterReason) -> u8 {
    match r {
        DeadLetterReason::Expired => why::EXPIRED,
        _ => why::DISCARD,
    }
}

pub(crate) const SEND_OVERHEAD: usize = RECORD_HEADER + SEND_HEADER;
