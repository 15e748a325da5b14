//! One queue's state: its messages by state (ready, waiting for a retry, delayed, in flight),
//! the order they are handed out in, message groups, dedup keys and counters.
//!
//! Bodies stay on disk: a queued message costs one 40-byte [`Entry`] here. Ordering: highest
//! priority first, then lowest id (FIFO within a priority); a message that is ready again after
//! a redelivery delay takes its place by id among the ready ones (in `retry`), so it never
//! blocks the messages behind it; a group hands out one message at a time, in order.

use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use super::record::flag;
use crate::options::Resolved;

/// Segment number of messages of memory queues (their records live in [`QueueState::mem`]).
pub(crate) const MEM_SEG: u32 = u32::MAX;
/// Entry flag: the message repeats ([`flag::REPEAT`] of its send header).
pub(crate) const ENTRY_REPEATS: u8 = flag::REPEAT;
/// Entry flag (memory only, never on disk): this occurrence already made its next one (the
/// record that made it may still be in the pending batch: while [`ENTRY_REPEATS`] is set too,
/// its stored record is the one that still carries the repeat).
pub(crate) const ENTRY_REPEAT_DONE: u8 = 8;
/// Entry flag (memory only): the record that made its next occurrence (rewriting this one
/// without its repeat) is in the pending batch; cleared when that batch is written. Compaction
/// does not copy such a message meanwhile: its copy of the older record, written after the
/// rewrite, would make the next occurrence again at recovery.
pub(crate) const ENTRY_REPEAT_WRITING: u8 = 16;

/// How long the engine remembers a client process's automatic resend key (10 minutes), apart
/// from the queue's dedup window: a send whose answer was lost with its owner, resent to the
/// next owner within this time, is stored once whatever the queue's dedup options (SPEC §10).
pub(crate) const RESEND_WINDOW_MS: u64 = 10 * 60 * 1000;
/// How many automatic resend keys a queue keeps at least, however old (the window is the
/// larger of [`RESEND_WINDOW_MS`] and this many keys).
pub(crate) const RESEND_WINDOW_KEYS: usize = 100_000;

/// Whether dedup key `key` is a client process's automatic resend key (producer id and
/// sequence, `remote::AUTO_KEY_PREFIX`). A program's own key never is: the faces drop a key
/// of that form a program gives (`remote::drop_reserved_key`).
pub(crate) fn is_resend_key(key: &str) -> bool {
    key.starts_with(crate::remote::AUTO_KEY_PREFIX)
}

/// Whether a resend key remembered at `at` (ms) is still inside the engine's window at `now`,
/// `newer` keys having been remembered after it in its queue.
pub(crate) fn resend_key_kept(at: u64, now: u64, newer: usize) -> bool {
    at.saturating_add(RESEND_WINDOW_MS) > now || newer < RESEND_WINDOW_KEYS
}

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
    /// How many queues hold a reference to its record (1; n for a message published to n
    /// subscriptions): each accounts for `len / refs` live journal bytes, so a body stored once
    /// is counted once.
    pub refs: u16,
}

impl Entry {
    /// The journal bytes this reference keeps live.
    pub fn live_bytes(&self) -> u64 {
        self.len as u64 / self.refs.max(1) as u64
    }
}

/// A message handed to a consumer and not yet settled, or held by the engine on its way out
/// (`tag` 0: no delivery can settle it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct InFlight {
    pub entry: Entry,
    /// The consumer it was handed to (0: a plain receive of the queue, or held).
    pub consumer: u64,
    /// When it times out (ms of the store's clock); `None`: never (no ack timeout, or one past
    /// the clock's range: see [`crate::clock::due_after`]).
    pub deadline: Option<u64>,
    /// The delivery's tag, unique in the store: a settle must name it.
    pub tag: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct FailInfo {
    pub first: u64,
    pub last: u64,
    pub reason: String,
}

/// Per-queue counters (see [`QueueStats`](super::QueueStats)).
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub enqueued: u64,
    pub acked: u64,
    pub redelivered: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub discarded: u64,
    pub replayed: u64,
    pub replayed_out: u64,
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
    /// Messages held that expire (TTL, or a dead-letter queue's retention), by (expires_at, id,
    /// priority): the timers expire them on time, without a consumer coming by.
    pub expiring: BTreeSet<(u64, u64, u8)>,
    /// Repeating messages whose next occurrence is still to be made, by (due, id, priority):
    /// the timers make it when the message becomes due, whether or not anyone receives
    /// ([`super::timers`]). An entry may outlive its message (purged): the timer skips it.
    pub repeat_due: BTreeSet<(u64, u64, u8)>,
    pub inflight: FxHashMap<u64, InFlight>,
    pub fail: FxHashMap<u64, FailInfo>,
    /// Dedup keys → the message stored under each: the program's keys and, apart from them,
    /// the automatic resend keys of client processes (see [`is_resend_key`]).
    pub dedup: HashMap<String, DedupEntry>,
    /// The program's keys in the order remembered (the queue's dedup window prunes them).
    pub dedup_order: VecDeque<(u64, String)>,
    /// The automatic resend keys in the order remembered: pruned by the engine's own window
    /// ([`RESEND_WINDOW_MS`], [`RESEND_WINDOW_KEYS`]), never by the queue's.
    pub resend_order: VecDeque<(u64, String)>,
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
    /// Prefetches under way: messages taken for a consumer's buffer whose records are being
    /// read and whose delivery record is being made durable (the state lock released). They
    /// are neither ready nor in a buffer yet, so a competing receive that finds the queue empty
    /// waits for them rather than report an empty queue (see `Engine::receive`).
    pub prefetching: u32,
    /// Receives of this queue waiting for a message (in `Engine::receive`): while one waits, no
    /// consumer's prefetch is lent to a client process (see `prefetch::lend`).
    pub receivers_waiting: u32,
    pub counters: Counters,
    /// Messages that arrived in a parked group (sent after it was parked), by (id, priority):
    /// the next tick of the queue dead-letters them (`group_parked`), as parking did the
    /// group's earlier messages, instead of leaving them `ready` until a receive reaches them
    /// (a send into a parked group is never delivered before a replay unparks it).
    pub parked_arrivals: Vec<(u64, u8)>,
    /// Messages in flight when the last process ended, failed at the first handle of this open.
    pub crashed: Vec<u64>,
    /// Deliveries handed over by the previous owner's clean close are held until then (ms);
    /// those not settled by then fail (see `handover`).
    pub handover_until: Option<u64>,
    /// Whether the deadlines of the dead letters held follow `opts.retention_ms` (issue 15,
    /// review r12 #8). True for a queue declared in this open: every dead letter arriving takes
    /// the queue's retention, and a declaration that changes it sets the deadlines of those
    /// held (`Engine::apply_retention`). False after recovery: queue options are not stored,
    /// so the deadlines are the ones their records were written with, until a declaration
    /// with options sets them by its retention.
    pub retention_known: bool,
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
            expiring: BTreeSet::new(),
            repeat_due: BTreeSet::new(),
            inflight: FxHashMap::default(),
            fail: FxHashMap::default(),
            dedup: HashMap::new(),
            dedup_order: VecDeque::new(),
            resend_order: VecDeque::new(),
            mem: FxHashMap::default(),
            groups: HashMap::new(),
            group_keys: Vec::new(),
            group_state: Vec::new(),
            group_msgs: 0,
            count: 0,
            bytes: 0,
            pending_count: 0,
            pending_bytes: 0,
            prefetching: 0,
            receivers_waiting: 0,
            counters: Counters::default(),
            parked_arrivals: Vec::new(),
            crashed: Vec::new(),
            handover_until: None,
            retention_known: true,
        }
    }

    /// Adds a stored message: ready now, or delayed until `due`.
    pub fn insert(&mut self, e: Entry, due: u64, now: u64) {
        self.count += 1;
        self.bytes += e.len as u64;
        self.track_expiry(&e);
        if e.flags & (ENTRY_REPEATS | ENTRY_REPEAT_DONE) == ENTRY_REPEATS {
            self.repeat_due.insert((due, e.id, e.priority));
        }
        if e.group != 0 {
            self.group_msgs += 1;
            let g = &mut self.group_state[e.group as usize - 1];
            g.messages += 1;
            if g.parked {
                self.parked_arrivals.push((e.id, e.priority));
            }
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

    /// Takes waiting message `id` back into flight whatever its group's state (a refused
    /// settle puts back a delivery: [`super::batch::Restore`]).
    pub fn take_back(&mut self, id: u64, priority: u8) -> Option<Entry> {
        let e = self.remove_waiting(id, priority)?;
        if let Some(g) = self.group_mut(&e) {
            g.inflight = Some(e.id);
        }
        Some(e)
    }

    /// Takes waiting (ready, not delayed) message `id` if it may be delivered now, as
    /// [`QueueState::pop_next`] would (its group's bookkeeping included).
    pub fn take_waiting(&mut self, id: u64, priority: u8) -> Option<Entry> {
        if self.delayed_due.contains_key(&id) {
            return None;
        }
        let e = match self.retry.get(&(Reverse(priority), id)) {
            Some(e) => *e,
            None => {
                let dq = &self.ready[priority as usize];
                *dq.get(dq.binary_search_by_key(&id, |e| e.id).ok()?)?
            }
        };
        if !self.eligible(&e) {
            return None;
        }
        let e = self.remove_waiting(id, priority)?;
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
                deadline: None,
                tag: 0,
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

    /// Enters a message that expires into the expiry index (see [`QueueState::expiring`]).
    pub fn track_expiry(&mut self, e: &Entry) {
        if e.expires_at != 0 {
            self.expiring.insert((e.expires_at, e.id, e.priority));
        }
    }

    /// Gives message `id` (of `priority`, waiting or in flight) the expiry `at` (0: never),
    /// keeping the expiry index in step. `false`: the queue no longer holds it.
    pub fn set_expiry(&mut self, id: u64, priority: u8, at: u64) -> bool {
        let Some(e) = self.find_mut(id, priority) else {
            return false;
        };
        let old = std::mem::replace(&mut e.expires_at, at);
        if old != 0 {
            self.expiring.remove(&(old, id, priority));
        }
        if at != 0 {
            self.expiring.insert((at, id, priority));
        }
        true
    }

    /// Accounts for a message leaving the queue for good.
    pub fn forget(&mut self, e: &Entry) {
        self.count -= 1;
        self.bytes -= e.len as u64;
        if e.expires_at != 0 {
            self.expiring.remove(&(e.expires_at, e.id, e.priority));
        }
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

    /// Forgets dedup keys past the window; `freed` gets the segment of each entry forgotten
    /// (an entry counts as a live item of the segment holding its record).
    pub fn prune_dedup(&mut self, now: u64, mut freed: impl FnMut(u32)) {
        while let Some((at, _)) = self.resend_order.front() {
            if resend_key_kept(*at, now, self.resend_order.len() - 1) {
                break;
            }
            if let Some((at, key)) = self.resend_order.pop_front() {
                if self.dedup.get(&key).is_some_and(|d| d.at == at) {
                    if let Some(d) = self.dedup.remove(&key) {
                        freed(d.seg);
                    }
                }
            }
        }
        while let Some((at, _)) = self.dedup_order.front() {
            let old = *at + self.opts.dedup_window_ms <= now
                || self.dedup_order.len() > self.opts.dedup_count;
            if !old {
                break;
            }
            if let Some((at, key)) = self.dedup_order.pop_front() {
                if self.dedup.get(&key).is_some_and(|d| d.at == at) {
                    if let Some(d) = self.dedup.remove(&key) {
                        freed(d.seg);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{QueueOptions, StoreOptions};

    fn queue() -> QueueState {
        let o = Resolved::new(&StoreOptions::default(), &QueueOptions::default());
        QueueState::new(0, "q".into(), o)
    }

    fn entry(id: u64, priority: u8) -> Entry {
        Entry {
            id,
            expires_at: 0,
            seg: 1,
            off: 0,
            len: 10,
            count: 0,
            group: 0,
            priority,
            flags: 0,
            refs: 1,
        }
    }

    fn drain(q: &mut QueueState) -> Vec<u64> {
        std::iter::from_fn(|| q.pop_next()).map(|e| e.id).collect()
    }

    #[test]
    fn priority_first_then_fifo() {
        let mut q = queue();
        for (id, p) in [(1, 4), (2, 9), (3, 4), (4, 0), (5, 9)] {
            q.insert(entry(id, p), 0, 100);
        }
        assert_eq!(drain(&mut q), vec![2, 5, 1, 3, 4]);
    }

    #[test]
    fn a_redelivered_message_takes_its_place_by_id() {
        let mut q = queue();
        for id in 1..=4 {
            q.insert(entry(id, 4), 0, 100);
        }
        let first = q.pop_next().unwrap();
        let second = q.pop_next().unwrap();
        q.hold(first);
        q.hold(second);
        // 2 fails and is ready again at once; 1 fails with a delay: 2 comes before 3, and 1
        // does not block anything while it waits.
        let e2 = q.inflight.remove(&2).unwrap().entry;
        q.requeue(e2, 0, 100);
        let e1 = q.inflight.remove(&1).unwrap().entry;
        q.requeue(e1, 150, 100);
        assert_eq!(q.next_due(), Some(150));
        assert_eq!(drain(&mut q), vec![2, 3, 4]);
        q.release_due(149);
        assert_eq!(drain(&mut q), Vec::<u64>::new());
        q.release_due(150);
        assert_eq!(drain(&mut q), vec![1]);
    }

    #[test]
    fn delayed_messages_wait_for_their_time() {
        let mut q = queue();
        q.insert(entry(1, 4), 200, 100);
        q.insert(entry(2, 4), 0, 100);
        q.insert(entry(3, 9), 300, 100);
        assert_eq!(q.waiting_count(), 1);
        assert_eq!(drain(&mut q), vec![2]);
        q.release_due(300);
        assert_eq!(
            drain(&mut q),
            vec![3, 1],
            "priority first once both are due"
        );
    }

    #[test]
    fn a_group_hands_out_one_message_at_a_time_in_order() {
        let mut q = queue();
        let g = q.group_index("g");
        for id in 1..=3 {
            q.insert(
                Entry {
                    group: g,
                    ..entry(id, 4)
                },
                0,
                100,
            );
        }
        q.insert(entry(4, 4), 0, 100);
        let a = q.pop_next().unwrap();
        assert_eq!(a.id, 1);
        q.hold(a);
        assert_eq!(
            q.pop_next().map(|e| e.id),
            Some(4),
            "the group's next waits"
        );
        assert!(q.pop_next().is_none());
        // 1 fails and waits for its redelivery: the group waits for it (order holds).
        let e1 = q.inflight.remove(&1).unwrap().entry;
        q.requeue(e1, 500, 100);
        assert!(q.pop_next().is_none());
        q.release_due(500);
        assert_eq!(q.pop_next().map(|e| e.id), Some(1));
        let e1 = q.inflight.remove(&1).map(|f| f.entry).unwrap_or(e1);
        q.forget(&e1);
        assert_eq!(q.pop_next().map(|e| e.id), Some(2));
    }

    #[test]
    fn forget_and_remove_waiting_keep_the_counts() {
        let mut q = queue();
        for id in 1..=3 {
            q.insert(entry(id, 4), if id == 3 { 900 } else { 0 }, 100);
        }
        assert_eq!((q.count, q.bytes), (3, 30));
        let e = q.remove_waiting(3, 4).expect("delayed");
        q.forget(&e);
        let e = q.remove_waiting(1, 4).expect("ready");
        q.forget(&e);
        assert_eq!((q.count, q.bytes, q.waiting_count()), (1, 10, 1));
        assert!(q.delayed.is_empty() && q.delayed_due.is_empty());
        assert_eq!(
            q.ordered_waiting().iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![2]
        );
    }
}
