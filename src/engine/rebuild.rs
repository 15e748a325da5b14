//! Rebuilding the state on open from the records the journal replays (the journal's own
//! recovery, in `journal/recovery.rs`, decides which bytes are records; this decides what they
//! mean). Messages in flight when the last process ended are held, to fail once their queue is
//! declared with this open's options.

use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap};

use super::queue::{
    DedupEntry, Entry, FailInfo, QueueState, ENTRY_REPEATS, ENTRY_REPEAT_DONE, MEM_SEG,
};
use super::record::{decode, kind, put_queue, DecodeError, Record, SendRec};
use super::State;
use crate::error::{Error, ErrorKind, Result};
use crate::journal::frame::{records, RECORD_HEADER};
use crate::journal::segment_name;
use crate::options::{QueueOptions, Resolved, StoreOptions};

/// The state rebuilt from the journal, record by record.
#[derive(Default)]
pub(crate) struct Rebuild {
    names: BTreeMap<u32, (String, u64)>,
    sends: HashMap<u32, Vec<(Entry, u64)>>,
    /// What later records say, by (queue, id): a published message has the same id in every
    /// subscription it reached.
    changes: FxHashMap<(u32, u64), Change>,
    /// Subscriptions declared (SUBSCRIBE), by queue id; UNSUBSCRIBE removes them.
    subs: BTreeMap<u32, super::topic::SubRecord>,
    dedup: Vec<(u32, String, DedupEntry)>,
    groups: FxHashMap<u64, String>,
    parked: Vec<(u32, String, bool)>,
    max_id: u64,
}

/// What later records say about a message.
#[derive(Debug, Clone, Default)]
struct Change {
    gone: bool,
    count: Option<u32>,
    delivered: bool,
    due: Option<u64>,
    fail: Option<FailInfo>,
}

impl Rebuild {
    /// Applies one replayed record at `off` of segment `seg`. The segment's file name is
    /// formatted only for an error: this runs once per record of the journal.
    pub fn apply(&mut self, seg: u64, off: u64, len: u32, k: u8, body: &[u8]) -> Result<()> {
        let file = || segment_name(seg);
        let r = decode(k, body).map_err(|e| match e {
            DecodeError::Malformed => Error::corrupt(&file(), off, "record does not decode"),
            DecodeError::UnknownKind(k) => {
                Error::corrupt(&file(), off, &format!("unknown record kind {k}"))
            }
        })?;
        match r {
            Record::Queue { qid, name } => {
                self.declare(qid, Err(name.to_string()), seg);
            }
            Record::Send(s) => self.message(seg, off, len, s, None, 1)?,
            Record::Publish { qids, mut send } => {
                let refs = qids.len().min(u16::MAX as usize) as u16;
                for qid in qids {
                    send.h.qid = qid;
                    self.message(seg, off, len, send, None, refs)?;
                }
            }
            Record::Subscribe(s) => {
                self.declare(s.qid, Ok(super::topic::SubRecord::from(&s)), seg);
            }
            Record::Unsubscribe { qid } => {
                // The subscription ends with every message it held (all recorded before this).
                self.subs.remove(&qid);
                self.sends.remove(&qid);
                self.parked.retain(|p| p.0 != qid);
                self.dedup.retain(|d| d.0 != qid);
            }
            Record::Dead {
                from_qid,
                from_id,
                send,
            } => {
                self.changes.entry((from_qid, from_id)).or_default().gone = true;
                self.message(seg, off, len, send, None, 1)?;
            }
            Record::Relocate { state, send } => {
                let ch = Change {
                    gone: false,
                    count: Some(state.count),
                    delivered: state.in_flight,
                    due: Some(state.not_before),
                    fail: (state.first_failure != 0).then(|| FailInfo {
                        first: state.first_failure,
                        last: state.last_failure,
                        reason: state.reason.to_string(),
                    }),
                };
                self.message(seg, off, len, send, Some(ch), 1)?;
            }
            Record::Deliver { qid, items } => {
                for (id, count) in items {
                    let ch = self.changes.entry((qid, id)).or_default();
                    ch.count = Some(count);
                    ch.delivered = true;
                }
            }
            Record::Ack { qid, ids } | Record::Remove { qid, ids, .. } => {
                for id in ids {
                    self.changes.entry((qid, id)).or_default().gone = true;
                }
            }
            Record::Requeue(r) => {
                let ch = self.changes.entry((r.qid, r.id)).or_default();
                ch.count = Some(r.count);
                ch.delivered = false;
                ch.due = Some(r.not_before);
                if r.failed_at != 0 {
                    let first = ch.fail.as_ref().map(|f| f.first).unwrap_or(r.failed_at);
                    ch.fail = Some(FailInfo {
                        first,
                        last: r.failed_at,
                        reason: r.reason.to_string(),
                    });
                }
            }
            Record::Dedup { qid, id, at, key } => {
                let seg = seg as u32;
                self.dedup
                    .push((qid, key.to_string(), DedupEntry { id, at, seg }));
            }
            Record::Pad => {}
            Record::Txn(inner) => self.apply_txn(seg, off, inner)?,
            Record::Group { qid, parked, key } => {
                self.parked.push((qid, key.to_string(), parked));
            }
        }
        Ok(())
    }

    /// A QUEUE record (`Err(name)`) or a SUBSCRIBE record of queue `qid` in segment `seg`.
    pub(super) fn declare(
        &mut self,
        qid: u32,
        decl: std::result::Result<super::topic::SubRecord, String>,
        seg: u64,
    ) {
        match decl {
            Err(name) => {
                self.names.insert(qid, (name, seg));
            }
            Ok(sub) => {
                self.names.insert(qid, (sub.queue_name(), seg));
                self.subs.insert(qid, sub);
            }
        }
    }

    /// A parked (or unparked) group of queue `qid`, as a GROUP record says.
    pub(super) fn park(&mut self, qid: u32, key: String, parked: bool) {
        self.parked.push((qid, key, parked));
    }

    /// A dedup key of queue `qid`, as a DEDUP record (or a message's own key) says.
    pub(super) fn dedup_key(&mut self, qid: u32, key: String, d: DedupEntry) {
        self.dedup.push((qid, key, d));
    }

    /// Messages with ids below `next_id` existed (an index checkpoint's next id).
    pub(super) fn ids_below(&mut self, next_id: u64) {
        self.max_id = self.max_id.max(next_id.saturating_sub(1));
    }

    /// The records of a TXN record, at their own offsets.
    fn apply_txn(&mut self, seg: u64, off: u64, inner: &[u8]) -> Result<()> {
        let file = || segment_name(seg);
        for r in records(inner) {
            let (at, k2, sub) = r.map_err(|at| {
                Error::corrupt(
                    &file(),
                    off + at as u64,
                    "malformed record in a transaction",
                )
            })?;
            let sub_off = off + (RECORD_HEADER + at) as u64;
            if k2 == kind::TXN {
                return Err(Error::corrupt(
                    &file(),
                    sub_off,
                    "nested transaction record",
                ));
            }
            self.apply(seg, sub_off, (RECORD_HEADER + sub.len()) as u32, k2, sub)?;
        }
        Ok(())
    }

    /// A stored message (SEND, DEAD's copy, RELOCATE's copy with its carried state, one
    /// reference of a PUBLISH shared by `refs` queues).
    fn message(
        &mut self,
        seg: u64,
        off: u64,
        len: u32,
        s: SendRec<'_>,
        state: Option<Change>,
        refs: u16,
    ) -> Result<()> {
        let h = s.h;
        // A message that cannot be decoded can be neither delivered nor dead-lettered; let
        // recovery say so now rather than fail a later open (crash redelivery reads it).
        let meta = s
            .meta()
            .filter(|_| h.priority <= crate::defaults::MAX_PRIORITY);
        let Some(meta) = meta else {
            return Err(Error::corrupt(
                &segment_name(seg),
                off,
                "record does not decode",
            ));
        };
        self.max_id = self.max_id.max(h.id);
        let e = Entry {
            id: h.id,
            expires_at: h.expires_at,
            seg: seg as u32,
            off: off as u32,
            len,
            count: h.delivery_count,
            group: 0,
            priority: h.priority,
            flags: h.flags & ENTRY_REPEATS,
            refs,
        };
        if let Some(g) = meta.group.filter(|_| s.has_group()) {
            self.groups.insert(h.id, g);
        }
        self.sends.entry(h.qid).or_default().push((e, h.deliver_at));
        if state.is_none() {
            // A message back in a queue it left under the same id (dead-lettered, then
            // replayed): what earlier records said of (queue, id) was its earlier stay there.
            self.changes.remove(&(h.qid, h.id));
        }
        if let Some(st) = state {
            self.changes.insert((h.qid, h.id), st);
        } else if let Some(key) = meta.dedup_key.filter(|_| s.has_dedup()) {
            let d = DedupEntry {
                id: h.id,
                at: h.timestamp,
                seg: seg as u32,
            };
            self.dedup.push((h.qid, key, d));
        }
        Ok(())
    }

    /// The id the next message gets.
    pub fn next_id(&self) -> u64 {
        self.max_id + 1
    }

    /// Builds the state: queues in id order, their messages where the last records left them.
    /// Queues whose declaration was lost (repair) get placeholders, named in `lost`.
    pub fn into_state(
        mut self,
        opts: &StoreOptions,
        segs: Vec<(u64, u64)>,
        now: u64,
        lost: &mut Vec<String>,
    ) -> Result<State> {
        let sends = std::mem::take(&mut self.sends);
        let max_sent = sends.keys().copied().max();
        self.into_state_with(opts, segs, now, lost, max_sent, |rb, st, crashed| {
            for (qid, v) in sends {
                rb.place_messages(st, qid, v, now, crashed);
            }
            Ok(())
        })
    }

    /// [`Rebuild::into_state`] with the messages placed by `place` (which calls
    /// [`Rebuild::place`] for each): from this rebuild's SEND records, or streamed from an
    /// index checkpoint without holding them twice. `max_sent`: the highest queue id holding
    /// messages.
    pub(super) fn into_state_with(
        mut self,
        opts: &StoreOptions,
        segs: Vec<(u64, u64)>,
        now: u64,
        lost: &mut Vec<String>,
        max_sent: Option<u32>,
        place: impl FnOnce(&Self, &mut State, &mut Vec<(u32, u64)>) -> Result<()>,
    ) -> Result<State> {
        let mut st = State::new(opts, self.next_id(), now);
        st.space.segs = segs;
        self.declare_queues(&mut st, opts, max_sent, lost)?;
        let mut crashed: Vec<(u32, u64)> = Vec::new();
        place(&self, &mut st, &mut crashed)?;
        for (qid, key, parked) in std::mem::take(&mut self.parked) {
            if let Some(q) = st.queues.get_mut(qid as usize) {
                let g = q.group_index(&key);
                q.group_state[g as usize - 1].parked = parked;
            }
        }
        for (qid, key, d) in std::mem::take(&mut self.dedup) {
            if let Some(q) = st.queues.get_mut(qid as usize) {
                // A client's resend key is kept by the engine's own window, whatever the
                // queue's: every one is entered here and the window pruned below, once they
                // are in time order (a DEDUP copy compaction moved forward comes later).
                let resend = super::queue::is_resend_key(&key);
                if resend || d.at + q.opts.dedup_window_ms > now {
                    if d.seg != MEM_SEG {
                        st.space.seg_live.entry(d.seg as u64).or_insert((0, 0)).0 += 1;
                    }
                    // A key seen twice (its first record and a DEDUP copy compaction moved
                    // forward): the later record holds it, and only that one stays live, else
                    // the earlier segment would be counted live for ever and never removed.
                    let at = d.at;
                    let old = q.dedup.insert(key.clone(), d);
                    if let Some(old) = &old {
                        st.space.dec_item(old.seg);
                    }
                    if old.is_none_or(|o| o.at != at) {
                        match resend {
                            true => q.resend_order.push_back((at, key)),
                            false => q.dedup_order.push_back((at, key)),
                        }
                    }
                }
            }
        }
        for q in st.queues.iter_mut() {
            if !q.resend_order.is_empty() {
                q.resend_order.make_contiguous().sort_by_key(|(at, _)| *at);
                let space = &mut st.space;
                q.prune_dedup(now, |seg| space.dec_item(seg));
            }
        }
        for (qid, id) in crashed {
            st.queues[qid as usize].crashed.push(id);
        }
        st.restore_subscriptions(std::mem::take(&mut self.subs))?;
        Ok(st)
    }

    /// Queues in id order, up to the highest id declared or holding messages. A queue whose
    /// declaration was lost (only damage cut out by a repair does that) gets a placeholder name,
    /// declared again durably (a QUEUE record in the first commit), so that its messages are
    /// kept and the next plain open finds the queue.
    fn declare_queues(
        &mut self,
        st: &mut State,
        opts: &StoreOptions,
        max_sent: Option<u32>,
        lost: &mut Vec<String>,
    ) -> Result<()> {
        let Some(max) = self.names.keys().next_back().copied().max(max_sent) else {
            return Ok(());
        };
        // Queue ids are handed out densely, so only lost declarations leave gaps; a huge id is
        // damage, not millions of queues to allocate.
        if max as usize >= self.names.len() + 4096 {
            return Err(Error::new(
                ErrorKind::Corrupt,
                format!(
                    "queue id {max} is out of range: {} queues are declared",
                    self.names.len()
                ),
            ));
        }
        for qid in 0..=max {
            let (name, seg) = self
                .names
                .get(&qid)
                .cloned()
                .unwrap_or((format!("__lost_queue_{qid}"), MEM_SEG as u64));
            if seg == MEM_SEG as u64 {
                let at = st.pending.buf.len();
                put_queue(&mut st.pending.buf, qid, &name);
                st.pending.decls.push((qid, at));
                st.pending.needs_sync = true;
                lost.push(name.clone());
            }
            let resolved = Resolved::new(opts, &QueueOptions::default());
            let mut q = QueueState::new(qid, name.clone(), resolved);
            q.decl_seg = seg as u32;
            q.retention_known = false;
            if seg != MEM_SEG as u64 {
                st.space.seg_live.entry(seg).or_insert((0, 0)).0 += 1;
            }
            st.by_name.insert(name, qid);
            st.queues.push(q);
        }
        Ok(())
    }

    /// Places the messages of queue `qid`: the newest copy of each (compaction's RELOCATE comes
    /// after the original), with the count, due time and failures later records gave it.
    fn place_messages(
        &self,
        st: &mut State,
        qid: u32,
        mut v: Vec<(Entry, u64)>,
        now: u64,
        crashed: &mut Vec<(u32, u64)>,
    ) {
        v.sort_by_key(|(e, _)| e.id);
        let mut newest: Vec<(Entry, u64)> = Vec::with_capacity(v.len());
        for x in v {
            match newest.last_mut() {
                Some(last) if last.0.id == x.0.id => *last = x,
                _ => newest.push(x),
            }
        }
        for (mut e, deliver_at) in newest {
            let group = self.groups.get(&e.id).map(|g| g.as_str());
            let mut due = deliver_at;
            let mut delivered = false;
            let mut fail = None;
            if let Some(ch) = self.changes.get(&(qid, e.id)) {
                if ch.gone {
                    if let Some(g) = group {
                        // A group index is made for it all the same (as ever: harmless).
                        st.queues[qid as usize].group_index(g);
                    }
                    continue;
                }
                e.count = ch.count.unwrap_or(e.count);
                due = ch.due.unwrap_or(due);
                delivered = ch.delivered;
                fail = ch.fail.clone();
            }
            st.live_inc(e.seg as u64, e.live_bytes());
            Self::place(st, qid, e, group, due, delivered, fail, now, crashed);
        }
    }

    /// Places one message of queue `qid` (messages of a queue come in id order), as the last
    /// records left it: its count (`e.count`), due time, whether it was in flight, its failures.
    /// The caller counts its journal space live (`State::live_inc`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn place(
        st: &mut State,
        qid: u32,
        mut e: Entry,
        group: Option<&str>,
        due: u64,
        delivered: bool,
        fail: Option<FailInfo>,
        now: u64,
        crashed: &mut Vec<(u32, u64)>,
    ) {
        {
            if let Some(g) = group {
                e.group = st.queues[qid as usize].group_index(g);
            }
            if let Some(f) = fail {
                st.queues[qid as usize].fail.insert(e.id, f);
            }
            if e.count > 0 && e.flags & ENTRY_REPEATS != 0 {
                e.flags |= ENTRY_REPEAT_DONE;
            }
            let q = &mut st.queues[qid as usize];
            if e.group != 0 && e.count > 0 && !delivered {
                // A failed message of its group waits for redelivery: the group waits for it.
                let g = &mut q.group_state[e.group as usize - 1];
                if g.blocked_by.is_none_or(|b| b > e.id) {
                    g.blocked_by = Some(e.id);
                }
            }
            if delivered {
                if e.group != 0 {
                    let g = &mut q.group_state[e.group as usize - 1];
                    g.messages += 1;
                    g.inflight = Some(e.id);
                    q.group_msgs += 1;
                }
                q.count += 1;
                q.bytes += e.len as u64;
                q.track_expiry(&e);
                q.hold(e);
                crashed.push((qid, e.id));
            } else {
                q.insert(e, due, now);
            }
        }
    }
}
