//! The store: one directory, its lock, its queues, and the two library threads: the commit
//! thread (group commit: one write + one fdatasync for everything pending) and the callback
//! thread (runs async-send callbacks, never under a lock).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::journal::format::{kind, Cursor};
use crate::journal::{Files, Journal, Placed, RecoveryReport, Written};
use crate::message::{DeadLetterInfo, DeadLetterReason, Message, MessageId};
use crate::options::{Durability, GroupFailurePolicy, QueueOptions, StoreOptions};
use crate::policy::AfterFailure;
use crate::queue::Queue;
use crate::state::*;

/// Identifies one delivery: (consumer, delivery count). `None` matches any.
pub(crate) type Tag = Option<(u64, u32)>;

/// A completion callback of an async send.
pub(crate) type Callback = Box<dyn FnOnce(Result<MessageId>) + Send + 'static>;

thread_local! {
    static LIBRARY_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is one of mqlite's own (commit, callback or listener thread).
pub(crate) fn on_library_thread() -> bool {
    LIBRARY_THREAD.with(|c| c.get())
}

pub(crate) fn mark_library_thread() {
    LIBRARY_THREAD.with(|c| c.set(true));
}

/// Records read from disk: one buffer, one range per record.
pub(crate) struct Records {
    pub buf: Vec<u8>,
    pub ranges: Vec<std::ops::Range<usize>>,
}

impl Records {
    /// The records in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.ranges.iter().map(|r| &self.buf[r.clone()])
    }
}

/// Everything behind the store's one lock.
pub(crate) struct Inner {
    pub queues: Vec<QueueState>,
    pub by_name: HashMap<String, u32>,
    pub next_id: u64,
    pub pending: Batch,
    /// Number of the batch `pending` will be committed as.
    pub batch_no: u64,
    /// Last batch committed (written, and synced where its records needed it).
    pub done_no: u64,
    pub error: Option<Error>,
    /// The commit thread is waiting for work (so a submitter must wake it).
    pub idle: bool,
    /// Written frames await an fsync since then (batched durability), mirrored from [`Io`].
    pub unsynced_since: Option<Instant>,
    /// The shortest batched-durability delay of any queue.
    pub max_delay: Duration,
    /// Callers waiting for a batch to be committed.
    pub waiters: usize,
    pub closing: bool,
    pub closed: bool,
    /// Live items (messages, dedup entries, queue declarations) and bytes per segment.
    pub seg_live: BTreeMap<u64, (u64, u64)>,
    /// Journal segments and sizes, mirrored from the commit thread, oldest first.
    pub segs: Vec<(u64, u64)>,
    pub compacting: Option<u64>,
    pub next_consumer: u64,
    pub async_msgs: usize,
    pub async_bytes: usize,
    pub rng: u64,
    pub files: Files,
    pub max_body: usize,
    /// Sends refused after they were queued (the disk was full): id → error, taken by the waiter.
    pub refused: HashMap<u64, Error>,
    pub clock: Arc<dyn Clock>,
}

pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    /// The commit thread waits here for work.
    pub work: Condvar,
    /// Callers wait here for their batch.
    pub done: Condvar,
    /// Receivers wait here for messages.
    pub avail: Condvar,
    /// Producers wait here for room (queue limits, producer window).
    pub room: Condvar,
    pub callbacks: Mutex<CallbackQueue>,
    pub callbacks_cv: Condvar,
    pub clock: Arc<dyn Clock>,
    pub opts: StoreOptions,
    pub dir: PathBuf,
    /// The directory lock. It lives as long as any library thread (they hold this `Shared`), so
    /// a store dropped from its own callback keeps the lock until its commit thread is done.
    pub lock_file: Mutex<Option<File>>,
    /// The journal side of group commit; its holder leads the next commit.
    pub io: Mutex<Io>,
}

#[derive(Default)]
pub(crate) struct CallbackQueue {
    pub items: VecDeque<(Callback, Result<MessageId>)>,
    pub running: bool,
    pub stop: bool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    /// Waits until batch `no` is committed. The guard is released while waiting.
    pub fn wait_done<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        no: u64,
    ) -> Result<MutexGuard<'a, Inner>> {
        g.waiters += 1;
        self.lead_or_wait(g, no)
    }

    fn lead_or_wait<'a>(
        &'a self,
        mut g: MutexGuard<'a, Inner>,
        no: u64,
    ) -> Result<MutexGuard<'a, Inner>> {
        while g.done_no < no {
            if let Some(e) = g.error.clone() {
                g.waiters -= 1;
                return Err(poisoned(&e));
            }
            // Nobody is writing: lead the commit ourselves instead of handing it to the commit
            // thread and waiting to be woken (two context switches per sync call). try_lock,
            // never lock: we hold `inner`, and the lock order is io before inner.
            g = match self.io.try_lock() {
                Ok(mut io) => {
                    if g.waiters > 1 {
                        // Others wait too, some just woken by the last commit: give them a
                        // moment to append, so this commit carries their records as well.
                        drop(g);
                        std::thread::yield_now();
                        g = self.lock();
                    }
                    commit_once(self, &mut io, g)
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    commit_once(self, &mut p.into_inner(), g)
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    self.done.wait(g).unwrap_or_else(|e| e.into_inner())
                }
            };
        }
        g.waiters -= 1;
        Ok(g)
    }

    /// Wakes the commit thread if it sleeps (a busy one re-checks `pending` under the lock before
    /// it waits again, so a futex wake per call would be wasted).
    pub fn kick(&self, g: &Inner) {
        if g.idle {
            self.work.notify_one();
        }
    }

    /// Waits until everything this caller appended (or depends on, like the original of a
    /// dedup hit) is committed, waking the commit thread if it sleeps.
    pub fn commit<'a>(&'a self, g: MutexGuard<'a, Inner>) -> Result<MutexGuard<'a, Inner>> {
        let no = if g.pending.is_empty() {
            g.batch_no - 1
        } else {
            g.batch_no
        };
        self.wait_done(g, no)
    }

    pub fn wake_all(&self) {
        self.avail.notify_all();
        self.room.notify_all();
        self.work.notify_all();
    }
}

pub(crate) fn poisoned(e: &Error) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        format!("the store is poisoned by an earlier failure ({e}); reopen it"),
    )
}

impl Inner {
    pub fn check(&self) -> Result<()> {
        if self.closed || self.closing {
            return Err(Error::closed());
        }
        if let Some(e) = &self.error {
            return Err(poisoned(e));
        }
        Ok(())
    }

    fn random(&mut self) -> f64 {
        // xorshift64*: jitter needs no cryptographic randomness.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The queue id of `name`, declaring the queue (a QUEUE record) if it is new.
    pub fn declare(
        &mut self,
        name: &str,
        opts: Option<Resolved>,
        store: &StoreOptions,
    ) -> Result<u32> {
        check_name(name)?;
        if let Some(&qid) = self.by_name.get(name) {
            if let Some(o) = opts {
                self.queues[qid as usize].opts = o;
            }
            // Deliveries in flight when the last process ended fail now, under the options of
            // this open (queue options are not stored, so recovery could not know them).
            let crashed = std::mem::take(&mut self.queues[qid as usize].crashed);
            let now = self.clock.now_ms();
            for id in crashed {
                self.fail(
                    qid,
                    id,
                    "the consumer's process ended without settling it",
                    None,
                    now,
                    None,
                    store,
                )?;
            }
            return Ok(qid);
        }
        let qid = self.queues.len() as u32;
        let opts = opts.unwrap_or_else(|| Resolved::new(store, &QueueOptions::default()));
        self.queues
            .push(QueueState::new(qid, name.to_string(), opts));
        self.by_name.insert(name.to_string(), qid);
        let at = self.pending.buf.len();
        put_queue(&mut self.pending.buf, qid, name);
        self.pending.decls.push((qid, at));
        Ok(qid)
    }

    fn dlq_for(&mut self, qid: u32, store: &StoreOptions) -> Result<Option<u32>> {
        use crate::options::DeadLetterStrategy::*;
        let name = match &self.queues[qid as usize].opts.dead_letter {
            Shared { name } => name.clone(),
            Individual { prefix } => format!("{prefix}{}", self.queues[qid as usize].name),
            Discard => return Ok(None),
        };
        if name == self.queues[qid as usize].name {
            // A dead letter of the dead-letter queue itself is dropped rather than looping.
            return Ok(None);
        }
        let qid = match self.by_name.get(&name) {
            Some(&q) => q,
            None => {
                let mut o = Resolved::new(store, &QueueOptions::default());
                o.dead_letter = crate::options::DeadLetterStrategy::Discard;
                self.declare(&name, Some(o), store)?
            }
        };
        Ok(Some(qid))
    }

    /// Appends a message to queue `qid`. Returns its id and whether it was a dedup hit.
    pub fn send(&mut self, qid: u32, msg: &Message, now: u64) -> Result<(u64, bool)> {
        if msg.body.len() > self.max_body {
            return Err(Error::invalid(format!(
                "message body of {} bytes is over the limit of {} bytes",
                msg.body.len(),
                self.max_body
            )));
        }
        if msg.priority > 9 {
            return Err(Error::invalid(format!(
                "priority {} is out of range 0–9",
                msg.priority
            )));
        }
        let q = &mut self.queues[qid as usize];
        if let Some(key) = &msg.meta.dedup_key {
            q.prune_dedup(now);
            if let Some(d) = q.dedup.get(key) {
                return Ok((d.id, true));
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let expires_at = match msg.keep_times {
            true => msg.expires_at_ms,
            false => msg
                .ttl_ms
                .map(|t| now.saturating_add(t.max(1)))
                .unwrap_or(0),
        };
        let due = match (msg.deliver_at_ms, msg.delay_ms) {
            (Some(at), _) => at,
            (None, Some(d)) => now.saturating_add(d),
            _ => 0,
        };
        let h = crate::journal::format::SendHeader {
            id,
            qid,
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
        let q = &mut self.queues[qid as usize];
        let group = msg
            .meta
            .group
            .as_deref()
            .map(|g| q.group_index(g))
            .unwrap_or(0);
        let mut entry = Entry {
            id,
            expires_at,
            seg: MEM_SEG,
            off: 0,
            len: 0,
            count: 0,
            group,
            priority: msg.priority,
            flags: if msg.meta.repeat.is_some() {
                FLAG_REPEAT
            } else {
                0
            },
        };
        if !q.opts.journaled() {
            let rec = mem_record(h, &msg.meta, &msg.body)?;
            entry.len = rec.len() as u32;
            q.mem.insert(id, rec);
            q.insert(entry, due, now);
            q.counters.enqueued += 1;
            if let Some(key) = &msg.meta.dedup_key {
                q.dedup.insert(
                    key.clone(),
                    DedupEntry {
                        id,
                        at: now,
                        seg: MEM_SEG,
                    },
                );
                q.dedup_order.push_back((now, key.clone()));
            }
            return Ok((id, false));
        }
        let sync = q.opts.needs_sync();
        let start = self.pending.buf.len();
        crate::journal::format::put_record_header(&mut self.pending.buf, kind::SEND, 0);
        if let Err(e) = put_send(&mut self.pending.buf, h, &msg.meta, &msg.body) {
            self.pending.buf.truncate(start);
            return Err(e);
        }
        finish_record(&mut self.pending.buf, start);
        entry.len = (self.pending.buf.len() - start) as u32;
        let q = &mut self.queues[qid as usize];
        q.pending_count += 1;
        q.pending_bytes += entry.len as u64;
        let dedup_key = msg.meta.dedup_key.as_ref().map(|k| {
            q.dedup.insert(
                k.clone(),
                DedupEntry {
                    id,
                    at: now,
                    seg: MEM_SEG,
                },
            );
            q.dedup_order.push_back((now, k.clone()));
            k.clone().into_boxed_str()
        });
        self.pending.needs_sync |= sync;
        self.pending.sends.push(PendingSend {
            qid,
            rec_off: start,
            entry,
            due,
            relocate: false,
            dedup_key,
        });
        Ok((id, false))
    }

    /// Whether queue `qid` has room for a message of `len` body bytes.
    pub fn has_room(&self, qid: u32, len: usize) -> bool {
        let q = &self.queues[qid as usize];
        let n = q.count + q.pending_count;
        let b = q.bytes + q.pending_bytes;
        q.opts.max_messages.is_none_or(|m| n < m)
            && q.opts
                .max_bytes
                .is_none_or(|m| b + (len + SEND_OVERHEAD) as u64 <= m || n == 0)
    }

    /// Reads the stored record of `e`.
    pub fn read_record(&self, qid: u32, e: &Entry) -> Result<Vec<u8>> {
        if e.seg == MEM_SEG {
            return self.queues[qid as usize]
                .mem
                .get(&e.id)
                .cloned()
                .ok_or_else(|| {
                    Error::new(ErrorKind::NotFound, format!("message ID:{} is gone", e.id))
                });
        }
        let mut buf = vec![0u8; e.len as usize];
        self.files.read(e.seg as u64, e.off as u64, &mut buf)?;
        Ok(buf)
    }

    /// Reads many records into one buffer, merging neighbours on disk into one read.
    pub fn read_records(&self, qid: u32, es: &[Entry]) -> Result<Records> {
        let total: usize = es.iter().map(|e| e.len as usize).sum();
        let mut out = Records {
            buf: vec![0u8; total],
            ranges: Vec::with_capacity(es.len()),
        };
        let mut at = 0usize;
        let mut i = 0;
        while i < es.len() {
            let e = &es[i];
            if e.seg == MEM_SEG {
                let rec = self.read_record(qid, e)?;
                out.buf[at..at + rec.len()].copy_from_slice(&rec);
                out.ranges.push(at..at + rec.len());
                at += rec.len();
                i += 1;
                continue;
            }
            let mut j = i + 1;
            let mut end = e.off as u64 + e.len as u64;
            while j < es.len()
                && es[j].seg == e.seg
                && es[j].off as u64 == end
                && end - (e.off as u64) < (4 << 20)
            {
                end += es[j].len as u64;
                j += 1;
            }
            let span = (end - e.off as u64) as usize;
            self.files
                .read(e.seg as u64, e.off as u64, &mut out.buf[at..at + span])?;
            for x in &es[i..j] {
                out.ranges.push(at..at + x.len as usize);
                at += x.len as usize;
            }
            i = j;
        }
        Ok(out)
    }

    /// The message's journal space is no longer live.
    pub fn live_dec(&mut self, e: &Entry) {
        if e.seg != MEM_SEG {
            if let Some(l) = self.seg_live.get_mut(&(e.seg as u64)) {
                l.0 = l.0.saturating_sub(1);
                l.1 = l.1.saturating_sub(e.len as u64);
            }
        }
    }

    fn live_inc(&mut self, seg: u64, len: u64) {
        let l = self.seg_live.entry(seg).or_insert((0, 0));
        l.0 += 1;
        l.1 += len;
    }

    /// Moves due timers, expires ack timeouts. Called before every receive and by the commit thread.
    pub fn tick(&mut self, qid: u32, now: u64, store: &StoreOptions) -> Result<()> {
        let q = &mut self.queues[qid as usize];
        q.release_due(now);
        // Drop expired messages at the head of the queue (dead-letter retention, TTLs), so they
        // do not linger in stats or on disk until a consumer comes by.
        if q.opts.retention_ms.is_some() {
            loop {
                let q = &mut self.queues[qid as usize];
                let Some(head) = q.ready.iter().rev().find_map(|d| d.front().copied()) else {
                    break;
                };
                if head.expires_at == 0 || head.expires_at > now {
                    break;
                }
                let e = q
                    .remove_waiting(head.id, head.priority)
                    .expect("head exists");
                q.hold(e);
                q.counters.expired += 1;
                let process = q.opts.process_expired;
                self.expire(qid, e.id, process, now, store)?;
            }
        }
        let q = &mut self.queues[qid as usize];
        if q.opts.ack_timeout_ms.is_some() && !q.inflight.is_empty() {
            let late: Vec<u64> = q
                .inflight
                .values()
                .filter(|f| f.deadline <= now)
                .map(|f| f.entry.id)
                .collect();
            for id in late {
                self.fail(qid, id, "ack timeout", None, now, None, store)?;
            }
        }
        Ok(())
    }

    /// Takes up to `n` messages for `consumer`, appending the DELIVER (or, for auto-ack, ACK) record.
    /// Returns the entries (with their new counts).
    pub fn take(
        &mut self,
        qid: u32,
        consumer: u64,
        n: usize,
        auto_ack: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<Vec<Entry>> {
        self.tick(qid, now, store)?;
        let mut got = Vec::new();
        let mut txn: Option<usize> = None;
        while got.len() < n {
            let q = &mut self.queues[qid as usize];
            let Some(mut e) = q.pop_next() else { break };
            let parked = e.group != 0 && q.group_state[e.group as usize - 1].parked;
            if parked || (e.expires_at != 0 && e.expires_at <= now) {
                q.hold(e);
                if parked {
                    self.dead_letter(
                        qid,
                        e.id,
                        DeadLetterReason::GroupParked,
                        "its group is parked",
                        now,
                        store,
                    )?;
                } else {
                    let process = q.opts.process_expired;
                    q.counters.expired += 1;
                    self.expire(qid, e.id, process, now, store)?;
                }
                continue;
            }
            e.count += 1;
            if e.count > 1 {
                q.counters.redelivered += 1;
            }
            let deadline = q
                .opts
                .ack_timeout_ms
                .map(|t| now.saturating_add(t))
                .unwrap_or(u64::MAX);
            if e.flags & FLAG_REPEAT != 0 && e.flags & ENTRY_REPEAT_DONE == 0 {
                e.flags |= ENTRY_REPEAT_DONE;
                if q.opts.journaled() && txn.is_none() {
                    txn = Some(self.txn_begin());
                }
                self.schedule_repeat(qid, &e, now)?;
            }
            let q = &mut self.queues[qid as usize];
            q.inflight.insert(
                e.id,
                InFlight {
                    entry: e,
                    consumer,
                    deadline,
                },
            );
            got.push(e);
        }
        let q = &self.queues[qid as usize];
        if !got.is_empty() && q.opts.journaled() {
            let sync = q.opts.needs_sync();
            if auto_ack {
                let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
                put_ids(&mut self.pending.buf, kind::ACK, qid, None, &ids);
            } else {
                let items: Vec<(u64, u32)> = got.iter().map(|e| (e.id, e.count)).collect();
                put_deliver(&mut self.pending.buf, qid, &items);
            }
            self.pending.needs_sync |= sync;
        }
        if let Some(start) = txn {
            self.txn_end(start);
        }
        Ok(got)
    }

    /// Starts a TXN record: the records appended until [`Inner::txn_end`] apply all or nothing.
    pub fn txn_begin(&mut self) -> usize {
        let start = self.pending.buf.len();
        crate::journal::format::put_record_header(&mut self.pending.buf, kind::TXN, 0);
        start
    }

    /// Closes the TXN record begun at `start` (dropping it if it stayed empty).
    pub fn txn_end(&mut self, start: usize) {
        if self.pending.buf.len() == start + crate::journal::format::RECORD_HEADER {
            self.pending.buf.truncate(start);
        } else {
            finish_record(&mut self.pending.buf, start);
        }
    }

    /// Stores the next occurrence of a repeating message (a new message, due one period later).
    fn schedule_repeat(&mut self, qid: u32, e: &Entry, now: u64) -> Result<()> {
        let rec = self.read_record(qid, e)?;
        let Some((_, send)) = send_in_record(&rec) else {
            return Ok(());
        };
        let Some(s) = get_send(&mut Cursor::new(send)) else {
            return Ok(());
        };
        let Some(mut msg) = s.to_message() else {
            return Ok(());
        };
        let Some((period, left)) = msg.meta.repeat else {
            return Ok(());
        };
        let base = if s.h.deliver_at != 0 {
            s.h.deliver_at
        } else {
            s.h.timestamp
        };
        let next = base.saturating_add(period).max(now);
        msg.meta.repeat = (left > 1).then_some((period, left - 1));
        msg.deliver_at_ms = Some(next);
        msg.delay_ms = None;
        msg.ttl_ms = (s.h.expires_at != 0).then(|| s.h.expires_at.saturating_sub(s.h.timestamp));
        // The occurrence is stored "as of" its due time so TTLs count from it.
        self.send(qid, &msg, now)?;
        Ok(())
    }

    /// Removes auto-acked deliveries once their records were read.
    pub fn finish_auto_ack(&mut self, qid: u32, ids: &[u64]) {
        for id in ids {
            let q = &mut self.queues[qid as usize];
            if let Some(f) = q.inflight.remove(id) {
                q.forget(&f.entry);
                q.counters.acked += 1;
                let e = f.entry;
                self.live_dec(&e);
            }
        }
    }

    fn take_inflight(&mut self, qid: u32, id: u64, consumer: Tag) -> Result<InFlight> {
        let q = &mut self.queues[qid as usize];
        match q.inflight.get(&id) {
            Some(f) if consumer.is_none_or(|(c, n)| c == f.consumer && n == f.entry.count) => {
                Ok(q.inflight.remove(&id).expect("checked"))
            }
            _ => Err(Error::new(
                ErrorKind::AlreadySettled,
                format!(
                    "delivery of ID:{id} on queue {:?} is already settled (or timed out)",
                    q.name
                ),
            )),
        }
    }

    /// Acks deliveries; appends one ACK record.
    pub fn ack(&mut self, qid: u32, ids: &[u64], consumer: Tag) -> Result<()> {
        let mut done = Vec::with_capacity(ids.len());
        let mut first_err = None;
        for &id in ids {
            match self.take_inflight(qid, id, consumer) {
                Ok(f) => {
                    let q = &mut self.queues[qid as usize];
                    q.forget(&f.entry);
                    q.counters.acked += 1;
                    self.live_dec(&f.entry);
                    done.push(id);
                }
                Err(e) => first_err = first_err.or(Some(e)),
            }
        }
        let q = &self.queues[qid as usize];
        if !done.is_empty() && q.opts.journaled() {
            let sync = q.opts.needs_sync();
            put_ids(&mut self.pending.buf, kind::ACK, qid, None, &done);
            self.pending.needs_sync |= sync;
        }
        self.pending.needs_sync |= false;
        match first_err {
            Some(e) if done.is_empty() => Err(e),
            _ => Ok(()),
        }
    }

    /// The one failure path (nack, timeout, dropped consumer, crash, rollback): redeliver later
    /// per the policy, or dead-letter. `rec` is the record if the caller has it in memory.
    #[allow(clippy::too_many_arguments)]
    pub fn fail(
        &mut self,
        qid: u32,
        id: u64,
        reason: &str,
        delay: Option<u64>,
        now: u64,
        consumer: Tag,
        store: &StoreOptions,
    ) -> Result<()> {
        let f = self.take_inflight(qid, id, consumer)?;
        let random = self.random();
        let q = &mut self.queues[qid as usize];
        q.note_failure(id, now, reason);
        let group_policy = if f.entry.group != 0 {
            q.opts.group_failure
        } else {
            GroupFailurePolicy::Block
        };
        let outcome = match group_policy {
            GroupFailurePolicy::Block => decide(&q.opts.redelivery, f.entry.count, delay, random),
            GroupFailurePolicy::Skip | GroupFailurePolicy::Park => AfterFailure::DeadLetter,
        };
        if group_policy == GroupFailurePolicy::Park {
            let key = q.group_keys[f.entry.group as usize - 1].clone();
            q.group_state[f.entry.group as usize - 1].parked = true;
            if q.opts.journaled() {
                put_group(&mut self.pending.buf, qid, true, &key);
            }
        }
        let q = &mut self.queues[qid as usize];
        match outcome {
            AfterFailure::Redeliver { delay_ms } => {
                let due = now.saturating_add(delay_ms);
                if q.opts.journaled() {
                    let sync = q.opts.needs_sync();
                    put_requeue(
                        &mut self.pending.buf,
                        qid,
                        id,
                        f.entry.count,
                        due,
                        now,
                        reason,
                    );
                    self.pending.needs_sync |= sync;
                }
                self.queues[qid as usize].requeue(f.entry, due, now);
                Ok(())
            }
            AfterFailure::DeadLetter => {
                let q = &mut self.queues[qid as usize];
                q.inflight.insert(id, f);
                self.dead_letter(
                    qid,
                    id,
                    DeadLetterReason::MaxRedeliveries,
                    reason,
                    now,
                    store,
                )
            }
        }
    }

    /// Gives a delivery back without counting a failure.
    pub fn release(&mut self, qid: u32, id: u64, consumer: Tag, now: u64) -> Result<()> {
        let mut f = self.take_inflight(qid, id, consumer)?;
        f.entry.count = f.entry.count.saturating_sub(1);
        let q = &mut self.queues[qid as usize];
        if q.opts.journaled() {
            let sync = q.opts.needs_sync();
            put_requeue(&mut self.pending.buf, qid, id, f.entry.count, 0, 0, "");
            self.pending.needs_sync |= sync;
        }
        self.queues[qid as usize].requeue(f.entry, 0, now);
        Ok(())
    }

    /// Rejects: straight to the dead-letter queue.
    pub fn reject(
        &mut self,
        qid: u32,
        id: u64,
        reason: &str,
        consumer: Tag,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        let f = self.take_inflight(qid, id, consumer)?;
        let q = &mut self.queues[qid as usize];
        q.note_failure(id, now, reason);
        q.inflight.insert(id, f);
        self.dead_letter(qid, id, DeadLetterReason::Rejected, reason, now, store)
    }

    fn expire(
        &mut self,
        qid: u32,
        id: u64,
        process: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        if process {
            self.dead_letter(qid, id, DeadLetterReason::Expired, "", now, store)
        } else {
            self.drop_inflight(qid, id, why::EXPIRED)
        }
    }

    fn drop_inflight(&mut self, qid: u32, id: u64, code: u8) -> Result<()> {
        let f = self.take_inflight(qid, id, None)?;
        let q = &mut self.queues[qid as usize];
        q.forget(&f.entry);
        q.counters.discarded += 1;
        if q.opts.journaled() {
            let sync = q.opts.needs_sync();
            put_ids(&mut self.pending.buf, kind::REMOVE, qid, Some(code), &[id]);
            self.pending.needs_sync |= sync;
        }
        self.live_dec(&f.entry);
        Ok(())
    }

    /// Moves in-flight message `id` of `qid` to its dead-letter queue: one DEAD record.
    pub fn dead_letter(
        &mut self,
        qid: u32,
        id: u64,
        reason: DeadLetterReason,
        text: &str,
        now: u64,
        store: &StoreOptions,
    ) -> Result<()> {
        let dlq = self.dlq_for(qid, store)?;
        let Some(dlq) = dlq else {
            self.queues[qid as usize].counters.dead_lettered += 1;
            return self.drop_inflight(qid, id, reason_code(reason));
        };
        let f = *self.queues[qid as usize].inflight.get(&id).ok_or_else(|| {
            Error::new(
                ErrorKind::AlreadySettled,
                format!("ID:{id} is not in flight"),
            )
        })?;
        let rec = self.read_record(qid, &f.entry)?;
        let msg = decode_message(&rec).ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                format!("stored record of ID:{id} does not decode"),
            )
        })?;
        let q = &mut self.queues[qid as usize];
        let fi = q.fail.remove(&id).unwrap_or_default();
        let info = DeadLetterInfo {
            original_queue: q.name.clone(),
            original_id: MessageId(id),
            reason,
            last_failure: text.to_string(),
            delivery_count: f.entry.count,
            first_failure_ms: fi.first,
            last_failure_ms: if fi.last == 0 { now } else { fi.last },
        };
        q.inflight.remove(&id);
        q.forget(&f.entry);
        q.counters.dead_lettered += 1;
        let src_journaled = q.opts.journaled();
        self.live_dec(&f.entry);
        let meta = dead_meta(msg.meta, info);
        let retention = self.queues[dlq as usize].opts.retention_ms;
        let expires_at = retention.map(|r| now.saturating_add(r)).unwrap_or(0);
        self.put_move(
            qid,
            id,
            src_journaled,
            dlq,
            &meta,
            &msg.body,
            msg.priority,
            expires_at,
            now,
        )
    }

    /// Stores a copy of a message in `to` (a new id) and removes `from_id` from `from`, as one
    /// DEAD record: the move is atomic. The caller already took `from_id` out of memory.
    #[allow(clippy::too_many_arguments)]
    pub fn put_move(
        &mut self,
        from: u32,
        from_id: u64,
        from_journaled: bool,
        to: u32,
        meta: &crate::message::Meta,
        body: &[u8],
        priority: u8,
        expires_at: u64,
        now: u64,
    ) -> Result<()> {
        let new_id = self.next_id;
        self.next_id += 1;
        let h = crate::journal::format::SendHeader {
            id: new_id,
            qid: to,
            priority,
            flags: 0,
            delivery_count: 0,
            timestamp: now,
            expires_at,
            deliver_at: 0,
            meta_len: 0,
        };
        let d = &mut self.queues[to as usize];
        let group = meta.group.as_deref().map(|g| d.group_index(g)).unwrap_or(0);
        let flags = if meta.repeat.is_some() {
            FLAG_REPEAT
        } else {
            0
        };
        let entry = Entry {
            id: new_id,
            expires_at,
            seg: MEM_SEG,
            off: 0,
            len: 0,
            count: 0,
            group,
            priority,
            flags,
        };
        if !d.opts.journaled() {
            let r = mem_record(h, meta, body)?;
            let d = &mut self.queues[to as usize];
            let entry = Entry {
                len: r.len() as u32,
                ..entry
            };
            d.mem.insert(new_id, r);
            d.insert(entry, 0, now);
            d.counters.enqueued += 1;
            if from_journaled {
                put_ids(
                    &mut self.pending.buf,
                    kind::REMOVE,
                    from,
                    Some(why::DISCARD),
                    &[from_id],
                );
            }
            return Ok(());
        }
        let sync = d.opts.needs_sync() || self.queues[from as usize].opts.needs_sync();
        let start = self.pending.buf.len();
        crate::journal::format::put_record_header(&mut self.pending.buf, kind::DEAD, 0);
        self.pending.buf.extend_from_slice(&from.to_le_bytes());
        self.pending.buf.extend_from_slice(&from_id.to_le_bytes());
        if let Err(e) = put_send(&mut self.pending.buf, h, meta, body) {
            self.pending.buf.truncate(start);
            return Err(e);
        }
        finish_record(&mut self.pending.buf, start);
        let len = (self.pending.buf.len() - start) as u32;
        let d = &mut self.queues[to as usize];
        d.pending_count += 1;
        d.pending_bytes += len as u64;
        self.pending.needs_sync |= sync;
        self.pending.sends.push(PendingSend {
            qid: to,
            rec_off: start,
            entry: Entry { len, ..entry },
            due: 0,
            relocate: false,
            dedup_key: None,
        });
        Ok(())
    }

    /// Drops every waiting message of a queue (not those in flight). Returns how many.
    pub fn purge(&mut self, qid: u32) -> u64 {
        let q = &mut self.queues[qid as usize];
        let mut gone: Vec<Entry> = Vec::new();
        for dq in q.ready.iter_mut() {
            gone.extend(dq.drain(..));
        }
        gone.extend(std::mem::take(&mut q.retry).into_values());
        gone.extend(std::mem::take(&mut q.delayed).into_values());
        q.delayed_due.clear();
        for e in &gone {
            q.forget(e);
        }
        q.counters.discarded += gone.len() as u64;
        let journaled = q.opts.journaled();
        let sync = q.opts.needs_sync();
        for e in &gone {
            self.live_dec(e);
        }
        if journaled && !gone.is_empty() {
            let ids: Vec<u64> = gone.iter().map(|e| e.id).collect();
            put_ids(
                &mut self.pending.buf,
                kind::REMOVE,
                qid,
                Some(why::PURGE),
                &ids,
            );
            self.pending.needs_sync |= sync;
        }
        gone.len() as u64
    }

    /// Makes room in a full queue with `drop_oldest`: dead-letters its oldest waiting message.
    pub fn drop_oldest(&mut self, qid: u32, now: u64, store: &StoreOptions) -> Result<bool> {
        let q = &mut self.queues[qid as usize];
        let oldest = q.ordered_waiting().into_iter().min_by_key(|e| e.id);
        let Some(e) = oldest else { return Ok(false) };
        let q = &mut self.queues[qid as usize];
        let e = q.remove_waiting(e.id, e.priority).expect("listed");
        q.hold(e);
        self.dead_letter(qid, e.id, DeadLetterReason::Overflow, "", now, store)?;
        Ok(true)
    }

    /// Makes batch `sends` visible: called by the commit thread once the batch is committed.
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
                if old != MEM_SEG {
                    if let Some(l) = self.seg_live.get_mut(&(old as u64)) {
                        l.0 = l.0.saturating_sub(1);
                    }
                }
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
                    if old != MEM_SEG {
                        if let Some(l) = self.seg_live.get_mut(&(old as u64)) {
                            l.0 = l.0.saturating_sub(1);
                        }
                    }
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
                q.bytes = q.bytes + e.len as u64 - old.len as u64;
                self.live_dec(&old);
                self.live_inc(seg, e.len as u64);
                continue;
            }
            q.pending_count -= 1;
            q.pending_bytes -= e.len as u64;
            q.counters.enqueued += 1;
            q.insert(e, s.due, now);
            if let Some(k) = s.dedup_key {
                if let Some(d) = q.dedup.get_mut(&*k) {
                    if d.id == e.id {
                        d.seg = e.seg;
                        self.live_inc(seg, 0);
                    }
                }
            }
            self.live_inc(seg, e.len as u64);
        }
    }

    /// Picks the segments that can go (the oldest run with nothing live, never the tail) and,
    /// when the oldest live segment is mostly dead, copies its live items forward.
    pub fn plan_compaction(&mut self, compact_below: f64, now: u64) -> Result<Vec<u64>> {
        let tail = self.segs.last().map(|s| s.0).unwrap_or(0);
        let mut removable = Vec::new();
        let mut head = None;
        for &(seg, size) in &self.segs {
            if seg == tail {
                break;
            }
            let (items, bytes) = self.seg_live.get(&seg).copied().unwrap_or((0, 0));
            if items == 0 {
                removable.push(seg);
            } else {
                head = Some((seg, size, bytes));
                break;
            }
        }
        if let Some((h, size, bytes)) = head {
            if self.compacting.is_none() && (bytes as f64) < compact_below * size as f64 {
                self.relocate(h, now)?;
                self.compacting = Some(h);
            }
        }
        Ok(removable)
    }

    fn relocate(&mut self, h: u64, now: u64) -> Result<()> {
        let h32 = h as u32;
        for qi in 0..self.queues.len() {
            let q = &self.queues[qi];
            let qid = q.qid;
            if q.decl_seg == h32 {
                let name = q.name.clone();
                let at = self.pending.buf.len();
                put_queue(&mut self.pending.buf, qid, &name);
                self.pending.decls.push((qid, at));
            }
            let mut items: Vec<(Entry, bool)> = Vec::new();
            q.for_each(|e, inflight| {
                if e.seg == h32 {
                    items.push((*e, inflight));
                }
            });
            let dedups: Vec<(String, DedupEntry)> = q
                .dedup
                .iter()
                .filter(|(_, d)| d.seg == h32)
                .map(|(k, d)| (k.clone(), d.clone()))
                .collect();
            for (key, d) in dedups {
                let at = self.pending.buf.len();
                put_dedup(&mut self.pending.buf, qid, d.id, d.at, &key);
                self.pending.dedups.push((qid, key.into_boxed_str(), at));
            }
            for (e, inflight) in items {
                let rec = self.read_record(qid, &e)?;
                let Some((_, send)) = send_in_record(&rec) else {
                    continue;
                };
                let q = &self.queues[qi];
                let fi = q.fail.get(&e.id).cloned().unwrap_or_default();
                let due = q.delayed_due.get(&e.id).copied().unwrap_or(0);
                let start = self.pending.buf.len();
                crate::journal::format::put_record_header(&mut self.pending.buf, kind::RELOCATE, 0);
                let b = &mut self.pending.buf;
                let count = e.count | if inflight { 1 << 31 } else { 0 };
                b.extend_from_slice(&count.to_le_bytes());
                b.extend_from_slice(&due.to_le_bytes());
                b.extend_from_slice(&fi.first.to_le_bytes());
                b.extend_from_slice(&fi.last.to_le_bytes());
                b.extend_from_slice(&(fi.reason.len() as u32).to_le_bytes());
                b.extend_from_slice(fi.reason.as_bytes());
                b.extend_from_slice(send);
                finish_record(&mut self.pending.buf, start);
                let len = (self.pending.buf.len() - start) as u32;
                self.pending.sends.push(PendingSend {
                    qid,
                    rec_off: start,
                    entry: Entry { len, ..e },
                    due: 0,
                    relocate: true,
                    dedup_key: None,
                });
            }
        }
        let _ = now;
        self.pending.needs_sync = true;
        Ok(())
    }
}

/// State rebuilt from the journal on open.
#[derive(Default)]
struct Rebuild {
    names: BTreeMap<u32, (String, u64)>,
    sends: HashMap<u32, Vec<(Entry, u64)>>,
    changes: rustc_hash::FxHashMap<u64, Change>,
    dedup: Vec<(u32, String, DedupEntry)>,
    groups: rustc_hash::FxHashMap<u64, String>,
    parked: Vec<(u32, String, bool)>,
    max_id: u64,
}

#[derive(Debug, Clone, Default)]
struct Change {
    gone: bool,
    count: Option<u32>,
    delivered: bool,
    due: Option<u64>,
    fail: Option<FailInfo>,
}

impl Rebuild {
    /// Applies one replayed record. The segment's file name is formatted only for an error:
    /// this runs once per record of the journal.
    fn apply(&mut self, seg: u64, off: u64, len: u32, k: u8, body: &[u8]) -> Result<()> {
        let file = || crate::journal::segment_name(seg);
        let bad = || Error::corrupt(&file(), off, "record does not decode");
        let mut c = Cursor::new(body);
        match k {
            kind::QUEUE => {
                let qid = c.u32().ok_or_else(bad)?;
                let name = std::str::from_utf8(c.rest()).map_err(|_| bad())?;
                self.names.insert(qid, (name.to_string(), seg));
            }
            kind::SEND | kind::DEAD | kind::RELOCATE => {
                let mut relocate_state = None;
                if k == kind::DEAD {
                    let _from_qid = c.u32().ok_or_else(bad)?;
                    let from_id = c.u64().ok_or_else(bad)?;
                    self.changes.entry(from_id).or_default().gone = true;
                }
                if k == kind::RELOCATE {
                    let count = c.u32().ok_or_else(bad)?;
                    let due = c.u64().ok_or_else(bad)?;
                    let first = c.u64().ok_or_else(bad)?;
                    let last = c.u64().ok_or_else(bad)?;
                    let n = c.u32().ok_or_else(bad)? as usize;
                    let reason = String::from_utf8_lossy(c.take(n).ok_or_else(bad)?).into_owned();
                    relocate_state = Some(Change {
                        gone: false,
                        count: Some(count & !(1 << 31)),
                        delivered: count & (1 << 31) != 0,
                        due: Some(due),
                        fail: (first != 0).then_some(FailInfo {
                            first,
                            last,
                            reason,
                        }),
                    });
                }
                let s = get_send(&mut c).ok_or_else(bad)?;
                let h = s.h;
                // A message that cannot be decoded can be neither delivered nor dead-lettered; let
                // recovery say so now rather than fail a later open (crash redelivery reads it).
                if h.priority > 9 || s.meta().is_none() {
                    return Err(bad());
                }
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
                    flags: h.flags & FLAG_REPEAT,
                };
                if s.has_group() {
                    if let Some(g) = s.meta().and_then(|m| m.group) {
                        self.groups.insert(h.id, g);
                    }
                }
                self.sends.entry(h.qid).or_default().push((e, h.deliver_at));
                if let Some(st) = relocate_state {
                    self.changes.insert(h.id, st);
                } else if s.has_dedup() {
                    if let Some(key) = s.meta().and_then(|m| m.dedup_key) {
                        self.dedup.push((
                            h.qid,
                            key,
                            DedupEntry {
                                id: h.id,
                                at: h.timestamp,
                                seg: seg as u32,
                            },
                        ));
                    }
                }
            }
            kind::DELIVER => {
                let _qid = c.u32().ok_or_else(bad)?;
                let n = c.u32().ok_or_else(bad)?;
                for _ in 0..n {
                    let id = c.u64().ok_or_else(bad)?;
                    let count = c.u32().ok_or_else(bad)?;
                    let ch = self.changes.entry(id).or_default();
                    ch.count = Some(count);
                    ch.delivered = true;
                }
            }
            kind::ACK => {
                let _qid = c.u32().ok_or_else(bad)?;
                let n = c.u32().ok_or_else(bad)?;
                for _ in 0..n {
                    let id = c.u64().ok_or_else(bad)?;
                    self.changes.entry(id).or_default().gone = true;
                }
            }
            kind::REMOVE => {
                let _qid = c.u32().ok_or_else(bad)?;
                let _why = c.u8().ok_or_else(bad)?;
                let n = c.u32().ok_or_else(bad)?;
                for _ in 0..n {
                    let id = c.u64().ok_or_else(bad)?;
                    self.changes.entry(id).or_default().gone = true;
                }
            }
            kind::REQUEUE => {
                let _qid = c.u32().ok_or_else(bad)?;
                let id = c.u64().ok_or_else(bad)?;
                let count = c.u32().ok_or_else(bad)?;
                let due = c.u64().ok_or_else(bad)?;
                let failed_at = c.u64().ok_or_else(bad)?;
                let reason = String::from_utf8_lossy(c.rest()).into_owned();
                let ch = self.changes.entry(id).or_default();
                ch.count = Some(count);
                ch.delivered = false;
                ch.due = Some(due);
                if failed_at != 0 {
                    let first = ch.fail.as_ref().map(|f| f.first).unwrap_or(failed_at);
                    ch.fail = Some(FailInfo {
                        first,
                        last: failed_at,
                        reason,
                    });
                }
            }
            kind::DEDUP => {
                let qid = c.u32().ok_or_else(bad)?;
                let id = c.u64().ok_or_else(bad)?;
                let at = c.u64().ok_or_else(bad)?;
                let key = std::str::from_utf8(c.rest())
                    .map_err(|_| bad())?
                    .to_string();
                self.dedup.push((
                    qid,
                    key,
                    DedupEntry {
                        id,
                        at,
                        seg: seg as u32,
                    },
                ));
            }
            kind::PAD => {}
            kind::TXN => {
                for r in crate::journal::format::records(body) {
                    let (at, k2, sub) = r.map_err(|at| {
                        Error::corrupt(
                            &file(),
                            off + at as u64,
                            "malformed record in a transaction",
                        )
                    })?;
                    let sub_off = off + (crate::journal::format::RECORD_HEADER + at) as u64;
                    let sub_len = (crate::journal::format::RECORD_HEADER + sub.len()) as u32;
                    if k2 == kind::TXN {
                        return Err(Error::corrupt(
                            &file(),
                            sub_off,
                            "nested transaction record",
                        ));
                    }
                    self.apply(seg, sub_off, sub_len, k2, sub)?;
                }
            }
            kind::GROUP => {
                let qid = c.u32().ok_or_else(bad)?;
                let parked = c.u8().ok_or_else(bad)? != 0;
                let key = std::str::from_utf8(c.rest())
                    .map_err(|_| bad())?
                    .to_string();
                self.parked.push((qid, key, parked));
            }
            _ => {
                return Err(Error::corrupt(
                    &file(),
                    off,
                    &format!("unknown record kind {k}"),
                ))
            }
        }
        Ok(())
    }
}

/// An open store. Dropping it closes it (flushing pending sends and completing every callback).
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let store = mqlite::Store::open(dir.path(), mqlite::StoreOptions::default()).unwrap();
/// let q = store.queue("jobs").unwrap();
/// let id = q.send("hello").unwrap();
/// let d = q.receive(Some(std::time::Duration::ZERO)).unwrap().unwrap();
/// assert_eq!((d.id(), d.body()), (id, &b"hello"[..]));
/// d.ack().unwrap();
/// ```
pub struct Store {
    pub(crate) shared: Arc<Shared>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    report: RecoveryReport,
    _waker: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.shared.dir)
            .finish_non_exhaustive()
    }
}

/// Directories of stores of this process that are closing: their commit thread still runs and
/// holds the lock. Opening such a directory waits for it instead of failing with `Locked` (a
/// store freed from inside its own callback closes in the background).
// A Vec, not a HashSet: a hash table's interior pointer makes valgrind call the static "possibly lost".
fn closing_dirs() -> &'static (Mutex<Vec<PathBuf>>, Condvar) {
    static CLOSING: OnceLock<(Mutex<Vec<PathBuf>>, Condvar)> = OnceLock::new();
    CLOSING.get_or_init(Default::default)
}

fn mark_closing(dir: &Path) {
    closing_dirs()
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_path_buf());
}

/// Releases the directory lock (called by the commit thread as it ends).
fn release_lock(shared: &Shared) {
    shared
        .lock_file
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    let (set, cv) = closing_dirs();
    set.lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|d| *d != shared.dir);
    cv.notify_all();
}

/// Takes the directory lock, first waiting (up to 10 s) for a closing store of this process.
fn lock_dir_waiting(dir: &Path) -> Result<File> {
    if !on_library_thread() {
        let (set, cv) = closing_dirs();
        let g = set.lock().unwrap_or_else(|e| e.into_inner());
        let _g = cv
            .wait_timeout_while(g, Duration::from_secs(10), |s| s.iter().any(|d| d == dir))
            .unwrap_or_else(|e| e.into_inner());
    }
    lock_dir(dir)
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), &e))?;
    let rc = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let mut s = String::new();
            let _ = f.read_to_string(&mut s);
            let pid = s.trim();
            let pid = if pid.is_empty() { "unknown" } else { pid };
            return Err(Error::new(
                ErrorKind::Locked,
                format!("store {} is locked by pid {pid}", dir.display()),
            ));
        }
        return Err(Error::io(format!("locking {}", path.display()), &err));
    }
    f.set_len(0).map_err(|e| Error::io("truncating LOCK", &e))?;
    f.write_all(std::process::id().to_string().as_bytes())
        .map_err(|e| Error::io("writing LOCK", &e))?;
    Ok(f)
}

impl Store {
    /// Opens the store in `dir`, creating it if missing (`options.create`), and recovers its
    /// durable state: a torn tail is cut off; corruption elsewhere is an error of kind `Corrupt`
    /// naming the file and offset (unless `options.repair`).
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let dir = dir.as_ref();
        if !dir.exists() {
            if !options.create {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("no store at {}", dir.display()),
                ));
            }
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
        }
        let dir = dir
            .canonicalize()
            .map_err(|e| Error::io(format!("resolving {}", dir.display()), &e))?;
        if !dir.is_dir() {
            return Err(Error::invalid(format!(
                "{} is not a directory",
                dir.display()
            )));
        }
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
        let lock = lock_dir_waiting(&dir)?;
        let clock = options.clock.clone();
        let mut rb = Rebuild::default();
        let clock2 = clock.clone();
        let (journal, report) = Journal::open(
            options.vfs.clone(),
            &dir,
            options.segment_bytes,
            options.repair,
            Box::new(move || clock2.now_ms()),
            &mut |seg, off, len, k, body| rb.apply(seg, off, len, k, body),
        )?;
        let now = clock.now_ms();
        let mut inner = Inner {
            queues: Vec::new(),
            by_name: HashMap::new(),
            next_id: rb.max_id + 1,
            pending: Batch::default(),
            batch_no: 1,
            done_no: 0,
            error: None,
            idle: false,
            unsynced_since: None,
            waiters: 0,
            max_delay: batched_delay(options.durability).unwrap_or(Duration::from_millis(100)),
            closing: false,
            closed: false,
            seg_live: BTreeMap::new(),
            segs: journal
                .segments()
                .into_iter()
                .map(|s| (s, journal.segment_size(s)))
                .collect(),
            compacting: None,
            next_consumer: 1,
            async_msgs: 0,
            async_bytes: 0,
            rng: now | 1,
            files: journal.files(),
            max_body: options.max_body_bytes,
            refused: HashMap::new(),
            clock: clock.clone(),
        };
        let mut crashed: Vec<(u32, u64)> = Vec::new();
        // Queues in qid order; a gap (impossible unless a record was lost) gets a placeholder name.
        let max_qid = rb.names.keys().next_back().copied();
        if let Some(max) = max_qid {
            // Queue ids are handed out densely, so only lost declarations leave gaps; a huge id
            // is damage, not millions of queues to allocate.
            if max as usize >= rb.names.len() + 4096 {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!(
                        "queue id {max} is out of range: {} queues are declared",
                        rb.names.len()
                    ),
                ));
            }
            for qid in 0..=max {
                let (name, seg) = rb
                    .names
                    .get(&qid)
                    .cloned()
                    .unwrap_or((format!("__lost_queue_{qid}"), MEM_SEG as u64));
                let mut q = QueueState::new(
                    qid,
                    name.clone(),
                    Resolved::new(&options, &QueueOptions::default()),
                );
                q.decl_seg = seg as u32;
                if seg != MEM_SEG as u64 {
                    let l = inner.seg_live.entry(seg).or_insert((0, 0));
                    l.0 += 1;
                }
                inner.by_name.insert(name, qid);
                inner.queues.push(q);
            }
        }
        for (qid, mut v) in rb.sends.drain() {
            if qid as usize >= inner.queues.len() {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    format!("messages for undeclared queue {qid}"),
                ));
            }
            v.sort_by_key(|(e, _)| e.id);
            // Keep the newest copy of each id (compaction's RELOCATE comes after the original).
            let mut dedup: Vec<(Entry, u64)> = Vec::with_capacity(v.len());
            for x in v {
                match dedup.last_mut() {
                    Some(last) if last.0.id == x.0.id => *last = x,
                    _ => dedup.push(x),
                }
            }
            for (mut e, deliver_at) in dedup {
                if let Some(g) = rb.groups.get(&e.id) {
                    e.group = inner.queues[qid as usize].group_index(g);
                }
                let mut due = deliver_at;
                let mut delivered = false;
                if let Some(ch) = rb.changes.get(&e.id) {
                    if ch.gone {
                        continue;
                    }
                    if let Some(c) = ch.count {
                        e.count = c;
                    }
                    if let Some(d) = ch.due {
                        due = d;
                    }
                    delivered = ch.delivered;
                    if let Some(f) = &ch.fail {
                        inner.queues[qid as usize].fail.insert(e.id, f.clone());
                    }
                }
                if e.count > 0 && e.flags & FLAG_REPEAT != 0 {
                    e.flags |= ENTRY_REPEAT_DONE;
                }
                let l = inner.seg_live.entry(e.seg as u64).or_insert((0, 0));
                l.0 += 1;
                l.1 += e.len as u64;
                let q = &mut inner.queues[qid as usize];
                if e.group != 0 && e.count > 0 && !delivered {
                    // A failed message of its group waits for redelivery: the group waits for it.
                    let g = &mut q.group_state[e.group as usize - 1];
                    if g.blocked_by.is_none_or(|b| b > e.id) {
                        g.blocked_by = Some(e.id);
                    }
                }
                if delivered {
                    if e.group != 0 {
                        q.group_state[e.group as usize - 1].messages += 1;
                        q.group_msgs += 1;
                        q.group_state[e.group as usize - 1].inflight = Some(e.id);
                    }
                    q.count += 1;
                    q.bytes += e.len as u64;
                    q.hold(e);
                    crashed.push((qid, e.id));
                } else {
                    q.insert(e, due, now);
                }
            }
        }
        for (qid, key, parked) in rb.parked {
            if let Some(q) = inner.queues.get_mut(qid as usize) {
                let g = q.group_index(&key);
                q.group_state[g as usize - 1].parked = parked;
            }
        }
        for (qid, key, d) in rb.dedup {
            if let Some(q) = inner.queues.get_mut(qid as usize) {
                if d.at + q.opts.dedup_window_ms > now {
                    if d.seg != MEM_SEG {
                        inner.seg_live.entry(d.seg as u64).or_insert((0, 0)).0 += 1;
                    }
                    q.dedup_order.push_back((d.at, key.clone()));
                    q.dedup.insert(key, d);
                }
            }
        }
        for (qid, id) in crashed {
            inner.queues[qid as usize].crashed.push(id);
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            work: Condvar::new(),
            done: Condvar::new(),
            avail: Condvar::new(),
            room: Condvar::new(),
            callbacks: Mutex::new(CallbackQueue::default()),
            callbacks_cv: Condvar::new(),
            clock: clock.clone(),
            opts: options,
            dir,
            lock_file: Mutex::new(Some(lock)),
            io: Mutex::new(Io::new(journal)),
        });
        let weak = Arc::downgrade(&shared);
        let waker: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if let Some(s) = weak.upgrade() {
                let _g = s.lock();
                s.wake_all();
            }
        });
        clock.subscribe(Arc::downgrade(&waker));
        let s1 = shared.clone();
        let commit = std::thread::Builder::new()
            .name("mqlite-commit".into())
            .spawn(move || commit_thread(s1))
            .map_err(|e| Error::io("starting the commit thread", &e))?;
        let s2 = shared.clone();
        let cbs = std::thread::Builder::new()
            .name("mqlite-callbacks".into())
            .spawn(move || callback_thread(s2))
            .map_err(|e| Error::io("starting the callback thread", &e))?;
        let store = Store {
            shared,
            threads: Mutex::new(vec![commit, cbs]),
            report,
            _waker: waker,
        };
        // Make the recovery's own records (crash failures) durable before returning.
        store.flush()?;
        Ok(store)
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.shared.dir
    }

    /// A handle to queue `name` with the store's default options, creating it if new.
    pub fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_impl(name, None)
    }

    /// A handle to queue `name` with `options` (which replace the queue's options for this open).
    pub fn queue_with(&self, name: &str, options: QueueOptions) -> Result<Queue> {
        self.queue_impl(name, Some(options))
    }

    fn queue_impl(&self, name: &str, options: Option<QueueOptions>) -> Result<Queue> {
        let mut g = self.shared.lock();
        g.check()?;
        let resolved = options
            .as_ref()
            .map(|o| Resolved::new(&self.shared.opts, o));
        let qid = g.declare(name, resolved, &self.shared.opts)?;
        // The declaration (and any recovered failures) are durable before the handle is used.
        let _g = self.shared.commit(g)?;
        Ok(Queue {
            shared: self.shared.clone(),
            qid,
            name: name.into(),
        })
    }

    /// The names of all queues, in creation order.
    pub fn queue_names(&self) -> Vec<String> {
        self.shared
            .lock()
            .queues
            .iter()
            .map(|q| q.name.clone())
            .collect()
    }

    /// Waits until everything sent so far is durable.
    pub fn flush(&self) -> Result<()> {
        let mut g = self.shared.lock();
        if let Some(e) = &g.error {
            return Err(poisoned(e));
        }
        if !g.pending.is_empty() {
            g.pending.needs_sync = true;
        }
        let _g = self.shared.commit(g)?;
        Ok(())
    }

    /// Disk bytes used by journal segments.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.lock().segs.iter().map(|s| s.1).sum()
    }

    /// Closes the store: pending sends are flushed, every callback completes, the lock is
    /// released. Later calls on its queues fail with `Closed`. Called from inside one of the
    /// store's own callbacks it fails with `WouldDeadlock` instead of waiting for itself.
    pub fn close(&self) -> Result<()> {
        if on_library_thread() {
            return Err(Error::new(
                ErrorKind::WouldDeadlock,
                "close() called from one of the store's own threads (a callback or listener)",
            ));
        }
        {
            let mut g = self.shared.lock();
            if g.closed {
                return Ok(());
            }
            g.closing = true;
            self.shared.wake_all();
            self.shared.done.notify_all();
        }
        let threads: Vec<_> =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in threads {
            let _ = t.join();
        }
        let err = {
            let mut g = self.shared.lock();
            g.closed = true;
            self.shared.wake_all();
            self.shared.done.notify_all();
            g.error.clone()
        };
        self.shared
            .lock_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match err {
            Some(e) => Err(poisoned(&e)),
            None => Ok(()),
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if on_library_thread() {
            // Dropped inside a callback: stop without joining ourselves. The commit thread
            // flushes, then releases the lock; an open of this directory waits for that.
            let mut g = self.shared.lock();
            if !g.closing && !g.closed {
                mark_closing(&self.shared.dir);
            }
            g.closing = true;
            self.shared.wake_all();
            return;
        }
        let _ = self.close();
    }
}

/// What only the thread doing a group commit touches: the journal and the reusable buffers.
/// Whoever holds this lock is the leader of the next group commit: the commit thread, or a
/// caller waiting for its own batch while nobody else is writing (no hand-off to another thread
/// and back on the sync-send path). Lock order: `io` before `inner`.
pub(crate) struct Io {
    journal: Journal,
    spare: Batch,
    placed: Vec<Placed>,
    unsynced_since: Option<Instant>,
}

impl Io {
    pub(crate) fn new(journal: Journal) -> Io {
        Io {
            journal,
            spare: Batch::default(),
            placed: Vec::new(),
            unsynced_since: None,
        }
    }
}

fn batched_delay(d: Durability) -> Option<Duration> {
    match d {
        Durability::Batched { max_delay } => Some(max_delay),
        _ => None,
    }
}

fn commit_thread(shared: Arc<Shared>) {
    mark_library_thread();
    let mut g = shared.lock();
    loop {
        // Wait for work, or for the batched-fsync deadline.
        while g.pending.is_empty() && !g.closing {
            let mut max_delay = g.max_delay;
            for q in &g.queues {
                if let Some(d) = batched_delay(q.opts.durability) {
                    max_delay = max_delay.min(d);
                }
            }
            g.max_delay = max_delay;
            match g.unsynced_since {
                Some(t) => {
                    let left = max_delay.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    g.idle = true;
                    g = shared
                        .work
                        .wait_timeout(g, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    g.idle = false;
                }
                None => {
                    g.idle = true;
                    g = shared
                        .work
                        .wait_timeout(g, Duration::from_millis(250))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    g.idle = false;
                    // Periodic housekeeping: ack timeouts and due timers wake receivers.
                    let now = shared.now();
                    for qid in 0..g.queues.len() as u32 {
                        if g.queues[qid as usize].opts.ack_timeout_ms.is_some() {
                            let _ = g.tick(qid, now, &shared.opts);
                        }
                    }
                    shared.avail.notify_all();
                }
            }
        }
        // Lock order: io, then inner. Holding io also means no caller is mid-commit.
        drop(g);
        let mut io = shared.io.lock().unwrap_or_else(|e| e.into_inner());
        g = shared.lock();
        if g.pending.is_empty() && g.closing && g.unsynced_since.is_none() {
            // Everything is written and no caller is writing (we hold io): nothing more will be,
            // as a closing store takes no new records. Let the next opener in.
            drop(g);
            release_lock(&shared);
            drop(io);
            g = shared.lock();
            break;
        }
        let deadline = g.unsynced_since.is_some_and(|t| t.elapsed() >= g.max_delay);
        if g.pending.is_empty() && !deadline && !(g.closing && g.unsynced_since.is_some()) {
            continue; // a caller led the commit while we waited for the io lock
        }
        g = commit_once(&shared, &mut io, g);
    }
    drop(g);
    let mut cq = shared.callbacks.lock().unwrap_or_else(|e| e.into_inner());
    cq.stop = true;
    shared.callbacks_cv.notify_all();
}

/// One group commit: takes everything pending, writes it as frames, fdatasyncs when any record
/// needs it (or the batched deadline passed), publishes, hands callbacks to the callback thread.
/// Called with `io` held (the caller is the leader); returns with `inner` locked again.
pub(crate) fn commit_once<'a>(
    shared: &'a Shared,
    io: &mut Io,
    mut g: MutexGuard<'a, Inner>,
) -> MutexGuard<'a, Inner> {
    let Io {
        journal,
        spare,
        placed,
        unsynced_since,
    } = io;
    if g.error.is_some() {
        // Poisoned: fail whatever is pending, never write again.
        let err = g
            .error
            .clone()
            .map(|e| poisoned(&e))
            .unwrap_or_else(Error::closed);
        let mut b = std::mem::take(&mut g.pending);
        g.batch_no += 1;
        fail_callbacks(shared, &mut b, &err);
        g.unsynced_since = None;
        drop(g);
        shared.done.notify_all();
        return shared.lock();
    }
    let max_delay = g.max_delay;
    let now = shared.now();
    let removable = g
        .plan_compaction(shared.opts.compact_below, now)
        .unwrap_or_default();
    std::mem::swap(&mut g.pending, spare);
    let no = g.batch_no;
    g.batch_no += 1;
    drop(g);

    placed.clear();
    let mut refused = (Vec::new(), None);
    let mut result = match journal.write(&spare.buf, placed, false) {
        Ok(Written::All) => Ok(()),
        Ok(Written::NoSpace(e)) => {
            // Disk full and nothing written: refuse the batch's new messages and write the
            // rest (settles, which must not fail) into the segment's reserve (SPEC §1).
            refused = (strip_new_messages(spare), Some(e));
            placed.clear();
            match journal.write(&spare.buf, placed, true) {
                Ok(Written::All) => Ok(()),
                Ok(Written::NoSpace(e)) | Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    let deadline_passed = unsynced_since.is_some_and(|t| t.elapsed() >= max_delay);
    if result.is_ok()
        && (spare.needs_sync || deadline_passed || (spare.buf.is_empty() && journal.dirty()))
    {
        result = journal.sync();
        *unsynced_since = None;
    } else if result.is_ok() && journal.dirty() && unsynced_since.is_none() {
        *unsynced_since = Some(Instant::now());
    }
    if result.is_ok() && !journal.dirty() {
        for seg in &removable {
            if let Err(e) = journal.remove_segment(*seg) {
                result = Err(e);
                break;
            }
        }
    }

    g = shared.lock();
    g.unsynced_since = *unsynced_since;
    if g.unsynced_since.is_some() && g.idle {
        // Batched writes await their fsync: the commit thread keeps that deadline.
        shared.work.notify_one();
    }
    match result {
        Ok(()) => {
            let now = shared.now();
            if !journal.dirty() {
                g.seg_live.retain(|s, _| journal.segment_size(*s) > 0);
            }
            g.segs = journal
                .segments()
                .into_iter()
                .map(|s| (s, journal.segment_size(s)))
                .collect();
            if let (sends, Some(e)) = std::mem::take(&mut refused) {
                refuse_sends(&mut g, sends, &e, spare);
            }
            g.publish(spare, placed, now);
            if g.compacting.is_some() {
                g.compacting = None;
            }
            g.done_no = no;
            g.async_msgs -= spare.async_msgs;
            g.async_bytes -= spare.async_bytes;
            let items = std::mem::take(&mut spare.callbacks);
            if !items.is_empty() {
                let mut cq = shared.callbacks.lock().unwrap_or_else(|e| e.into_inner());
                cq.items.extend(items);
                shared.callbacks_cv.notify_one();
            }
        }
        Err(e) => {
            // A failed write or fsync is never retried (fsyncgate): poison the store.
            g.error = Some(e.clone());
            g.async_msgs -= spare.async_msgs;
            g.async_bytes -= spare.async_bytes;
            fail_callbacks(shared, spare, &e);
            let mut rest = std::mem::take(&mut g.pending);
            fail_callbacks(shared, &mut rest, &poisoned(&e));
            g.batch_no += 1;
        }
    }
    spare.clear();
    // Notify with the lock released: a waiter woken while we hold it would only block
    // again on the mutex (one more futex call and context switch per batch and waiter).
    drop(g);
    shared.done.notify_all();
    shared.avail.notify_all();
    shared.room.notify_all();
    shared.lock()
}

fn fail_callbacks(shared: &Shared, b: &mut Batch, e: &Error) {
    let items: Vec<_> = b
        .callbacks
        .drain(..)
        .map(|(cb, _)| (cb, Err(e.clone())))
        .collect();
    if !items.is_empty() {
        let mut cq = shared.callbacks.lock().unwrap_or_else(|e| e.into_inner());
        cq.items.extend(items);
        shared.callbacks_cv.notify_one();
    }
}

fn callback_thread(shared: Arc<Shared>) {
    mark_library_thread();
    let mut batch: Vec<(Callback, Result<MessageId>)> = Vec::new();
    loop {
        {
            let mut cq = shared.callbacks.lock().unwrap_or_else(|e| e.into_inner());
            cq.running = false;
            while cq.items.is_empty() && !cq.stop {
                cq = shared
                    .callbacks_cv
                    .wait(cq)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if cq.items.is_empty() && cq.stop {
                return;
            }
            batch.extend(cq.items.drain(..));
            cq.running = true;
        }
        for (cb, r) in batch.drain(..) {
            // A panicking callback must not take the library down, nor skip the others.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || cb(r)));
        }
    }
}

// ---- Accessor for the Python binding (bindings/python): fork safety. Not part of the
// ---- store's semantics; it only exposes a file descriptor the store already holds.
impl Store {
    /// The file descriptor that holds the store's exclusive lock (`None` once closed).
    ///
    /// A `fork()` child inherits this descriptor and with it the lock (a `flock` belongs to the
    /// open file description), so a parent that closes the store could not reopen it while the
    /// child lives. The Python module closes it in the child, where the store is unusable anyway.
    #[doc(hidden)]
    pub fn lock_fd(&self) -> Option<std::os::unix::io::RawFd> {
        self.shared
            .lock_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|f| f.as_raw_fd())
    }
}

/// Takes the new messages (top-level SEND records) and compaction's optional copies (RELOCATE,
/// DEDUP) out of a batch that found the disk full, keeping every other record (declarations,
/// deliveries, settles, dead-letter moves, transactions) with its offsets fixed up. Returns the
/// refused sends.
fn strip_new_messages(b: &mut Batch) -> Vec<PendingSend> {
    use crate::journal::format::{records, RECORD_HEADER};
    let old = std::mem::take(&mut b.buf);
    // (old start, new start, length) of each kept record.
    let mut kept: Vec<(usize, usize, usize)> = Vec::new();
    for (at, k, body) in records(&old).flatten() {
        let len = RECORD_HEADER + body.len();
        if !matches!(k, kind::SEND | kind::RELOCATE | kind::DEDUP) {
            kept.push((at, b.buf.len(), len));
            b.buf.extend_from_slice(&old[at..at + len]);
        }
    }
    // Offsets may point inside a kept record (the sends of a TXN record).
    let remap = |off: usize| {
        let i = kept.partition_point(|k| k.0 <= off).checked_sub(1)?;
        let (from, to, len) = kept[i];
        (off < from + len).then(|| to + (off - from))
    };
    let mut refused = Vec::new();
    for s in std::mem::take(&mut b.sends) {
        match remap(s.rec_off) {
            Some(rec_off) => b.sends.push(PendingSend { rec_off, ..s }),
            None if !s.relocate => refused.push(s),
            None => {}
        }
    }
    b.decls
        .retain_mut(|(_, at)| remap(*at).map(|n| *at = n).is_some());
    b.dedups
        .retain_mut(|(_, _, at)| remap(*at).map(|n| *at = n).is_some());
    refused
}

/// Undoes what queuing the refused sends did, and tells their callers: async callbacks get the
/// error, synchronous senders find it in `Inner::refused` when they wake.
fn refuse_sends(g: &mut Inner, sends: Vec<PendingSend>, e: &Error, b: &mut Batch) {
    let err = Error::new(
        ErrorKind::NoSpace,
        format!(
            "the disk is full; the message was not stored ({})",
            e.message()
        ),
    );
    let mut ids = std::collections::HashSet::new();
    for s in sends {
        let q = &mut g.queues[s.qid as usize];
        q.pending_count -= 1;
        q.pending_bytes -= s.entry.len as u64;
        if let Some(k) = &s.dedup_key {
            if q.dedup.get(&**k).is_some_and(|d| d.id == s.entry.id) {
                q.dedup.remove(&**k);
            }
        }
        ids.insert(s.entry.id);
    }
    for (_, r) in b.callbacks.iter_mut() {
        if let Ok(id) = r {
            if ids.remove(&id.0) {
                *r = Err(err.clone());
            }
        }
    }
    for id in ids {
        g.refused.insert(id, err.clone());
    }
}
