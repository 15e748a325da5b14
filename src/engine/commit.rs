//! Group commit: everything pending at one moment is written as one frame and shares one
//! fdatasync; then it is published (sends become visible) and its callbacks completed.
//!
//! The commit is led by whoever holds the `io` lock: the commit thread, or a caller waiting for
//! its own batch while nobody else is writing (leader/follower: no hand-off to another thread
//! and back on the sync-send path). A failed write or fsync is never retried (fsyncgate): the
//! store is poisoned. A panic inside a commit poisons it too, and completes every callback.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use super::batch::{Batch, PendingSend, Restore};
use super::state::poisoned;
use super::{panic_text, Engine, Guard, Shared};
use crate::error::{Error, ErrorKind, Result};
use crate::journal::{Journal, Placed, Written};

/// Longest a leader waits for callers to join its batch ([`Engine::gather`]): about one
/// fdatasync of a fast disk, so a wait that runs out costs at most one fsync's time.
const GATHER_MAX: Duration = Duration::from_micros(100);

/// How often the commit thread runs the timers of every queue (expiry, due delays, ack
/// timeouts), idle or busy; a manual clock's jump runs them at once.
const HOUSEKEEPING_EVERY: Duration = Duration::from_millis(250);

/// Counters of group commit since the store was opened ([`crate::Store::commit_stats`]): how
/// well fsyncs are shared. `sync_callers / syncs` is how many waiting callers (sync sends,
/// `ack_sync`, flushes, transactions …) one fdatasync released on average; with `n` threads
/// each doing sync sends it approaches `n` when group commit shares every fsync among them all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Group commits (journal writes of a batch of records).
    pub commits: u64,
    /// Commits that ended with an fdatasync.
    pub syncs: u64,
    /// Callers that waited for a commit ending with an fdatasync and were released by it.
    pub sync_callers: u64,
}

/// What only the leader of a group commit touches: the journal and the reusable buffers.
pub(crate) struct Io {
    journal: Journal,
    /// The batch being written (swapped with the state's pending batch).
    spare: Batch,
    placed: Vec<Placed>,
    /// When written frames started waiting for an fsync (batched durability).
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

    /// Makes the journal check, before it writes, that the store still lives where it was
    /// opened (see [`Journal::check_home`]).
    pub(crate) fn set_home(&mut self, home: crate::journal::Home) {
        self.journal.set_home(home);
    }

    /// Names the store in every new segment's header (see [`Journal::set_store_id`]).
    pub(crate) fn set_store_id(&mut self, id: &str) {
        self.journal.set_store_id(id);
    }

    /// The journal.
    pub(crate) fn journal(&self) -> &Journal {
        &self.journal
    }

    /// Read access to the segment files.
    pub(crate) fn files(&self) -> crate::journal::Files {
        self.journal.files()
    }

    /// Live segments and their sizes, oldest first.
    pub(crate) fn segments(&self) -> Vec<(u64, u64)> {
        self.journal
            .segments()
            .into_iter()
            .map(|s| (s, self.journal.segment_size(s)))
            .collect()
    }
}

impl Engine {
    /// The group-commit counters since the store was opened.
    pub(crate) fn commit_stats(&self) -> CommitStats {
        self.shared.lock().progress.counters
    }

    /// Waits until batch `no` is committed. The guard is released while waiting; a caller whose
    /// batch nobody is writing leads the commit itself.
    pub(super) fn wait_done<'a>(&'a self, mut g: Guard<'a>, no: u64) -> Result<Guard<'a>> {
        let shared = &self.shared;
        g.progress.waiters += 1;
        if no == g.progress.batch_no {
            // Whoever leads the next commit must not hold this batch back as lazy.
            g.pending.awaited = true;
            let p = &mut g.progress;
            p.joined += 1;
            if p.gathering && p.joined >= p.expect_joined {
                shared.gather.notify_one();
            }
        }
        while g.progress.done_no < no {
            if let Some(e) = g.error.clone() {
                g.progress.waiters -= 1;
                return Err(poisoned(&e));
            }
            // try_lock, never lock: we hold `state`, and the lock order is io before state.
            g = match shared.io.try_lock() {
                Ok(mut io) => {
                    g = self.gather(g);
                    self.commit_guarded(&mut io, g)
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    self.commit_guarded(&mut p.into_inner(), g)
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    // The holder of `io` is a leader (it wakes us when its commit is done; then
                    // we lead ours) or the commit thread, which after its commit finds our batch
                    // awaited (`Batch::awaited`) and commits it at once (a sleeping one is
                    // woken: it may be waiting out a lazy-ack interval).
                    self.kick(&g);
                    shared.done.wait(g).unwrap_or_else(|e| e.into_inner())
                }
            };
        }
        g.progress.waiters -= 1;
        Ok(g)
    }

    /// The leader of a commit (holding `io`) waits, at most [`GATHER_MAX`], until as many
    /// callers joined its batch as [`committed`](Engine::committed) expects: those who joined
    /// while the last commit was being written, plus those that commit released (they are
    /// about to call again, and on a machine with fewer cores than producer threads they need
    /// a moment to run). Expecting only as many as shared the last fsync (an earlier version)
    /// locks the callers into two halves that take turns (W5: 8 threads, about 3 per fsync):
    /// while one half's batch is written the other half fills the next, whose leader starts
    /// before the first half is back. The expectation is counted afresh at every commit, so
    /// a producer that stopped costs one wait at most, and a lone producer never waits.
    fn gather<'a>(&'a self, mut g: Guard<'a>) -> Guard<'a> {
        let want = g.progress.expect_joined;
        if g.progress.joined < want {
            let deadline = Instant::now() + self.gather_max();
            g.progress.gathering = true;
            while g.progress.joined < want {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                g = self
                    .shared
                    .gather
                    .wait_timeout(g, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            g.progress.gathering = false;
        }
        g
    }

    /// The longest a leader waits in [`gather`](Engine::gather) ([`GATHER_MAX`]; a test may
    /// make it longer).
    fn gather_max(&self) -> Duration {
        #[cfg(test)]
        {
            let ms = self
                .shared
                .test_hooks
                .gather_max_ms
                .load(std::sync::atomic::Ordering::SeqCst);
            if ms > 0 {
                return Duration::from_millis(ms);
            }
        }
        GATHER_MAX
    }

    /// Waits until everything this caller appended (or depends on, like the original of a
    /// dedup hit) is committed.
    pub(super) fn commit<'a>(&'a self, g: Guard<'a>) -> Result<Guard<'a>> {
        let no = if g.pending.is_empty() {
            g.progress.batch_no - 1
        } else {
            g.progress.batch_no
        };
        self.wait_done(g, no)
    }

    /// Wakes the commit thread if it sleeps (a busy one re-checks `pending` under the lock
    /// before it waits again, so a futex wake per call would be wasted).
    pub(super) fn kick(&self, g: &Guard<'_>) {
        if g.progress.idle {
            self.shared.work.notify_one();
        }
    }

    /// Waits until everything sent so far is durable (batched durability included).
    pub(crate) fn flush(&self) -> Result<()> {
        let mut g = self.shared.lock();
        if let Some(e) = &g.error {
            return Err(poisoned(e));
        }
        if !g.pending.is_empty() {
            g.pending.needs_sync = true;
        }
        let _g = self.commit(g)?;
        Ok(())
    }

    /// [`commit_once`](Engine::commit_once), with a panic inside it poisoning the store and
    /// completing every callback (the batch being written, and every pending one).
    fn commit_guarded<'a>(&'a self, io: &mut Io, g: Guard<'a>) -> Guard<'a> {
        match catch_unwind(AssertUnwindSafe(|| self.commit_once(io, g))) {
            Ok(g) => g,
            Err(p) => {
                self.shared
                    .poison_after_panic("a group commit", &*p, Some(&mut io.spare));
                io.spare.clear();
                self.shared.lock()
            }
        }
    }

    /// One group commit: takes everything pending, writes it as frames, fdatasyncs when any
    /// record needs it (or the batched deadline passed), publishes, hands callbacks to the
    /// callback thread. Called with `io` held (the caller is the leader); returns with the
    /// state locked again.
    fn commit_once<'a>(&'a self, io: &mut Io, mut g: Guard<'a>) -> Guard<'a> {
        let shared = &self.shared;
        if let Some(e) = g.error.clone() {
            // Poisoned: fail whatever is pending, never write again.
            let mut b = std::mem::take(&mut g.pending);
            g.progress.batch_no += 1;
            g.progress.unsynced_since = None;
            shared.fail_callbacks(&mut b, &poisoned(&e));
            drop(g);
            shared.done.notify_all();
            return shared.lock();
        }
        let (mut g, removable) = self.prepare_compaction(g);
        std::mem::swap(&mut g.pending, &mut io.spare);
        let no = g.progress.batch_no;
        g.progress.batch_no += 1;
        let released = std::mem::take(&mut g.progress.joined);
        let max_delay = g.progress.max_delay;
        drop(g);

        let (result, refused, synced, copies_refused) = write_and_sync(io, max_delay, &removable);

        let mut g = shared.lock();
        let p = &mut g.progress;
        p.counters.commits += 1;
        if synced {
            p.counters.syncs += 1;
            p.counters.sync_callers += released as u64;
        }
        // The next leader waits for the callers that joined while this batch was written and
        // for the ones it releases now (see `gather`).
        p.expect_joined = (p.joined + released).max(1);
        g.progress.unsynced_since = io.unsynced_since;
        if g.progress.unsynced_since.is_some() && g.progress.idle {
            // Batched writes await their fsync: the commit thread keeps that deadline.
            shared.work.notify_one();
        }
        match result {
            Ok(()) => {
                g.space.copies_refused = copies_refused;
                self.committed(&mut g, io, no, refused)
            }
            Err(e) => {
                // A failed write or fsync is never retried (fsyncgate): poison the store.
                g.error = Some(e.clone());
                g.async_msgs -= io.spare.async_msgs;
                g.async_bytes -= io.spare.async_bytes;
                shared.fail_callbacks(&mut io.spare, &e);
                let mut rest = std::mem::take(&mut g.pending);
                shared.fail_callbacks(&mut rest, &poisoned(&e));
                g.progress.batch_no += 1;
            }
        }
        io.spare.clear();
        // Notify with the lock released: a waiter woken while we hold it would only block
        // again on the mutex (one more futex call and context switch per batch and waiter).
        drop(g);
        shared.done.notify_all();
        shared.avail.notify_all();
        shared.room.notify_all();
        shared.lock()
    }

    /// Applies a batch that was written (and synced as needed): refuses the sends a full disk
    /// did not take, publishes the rest, completes the callbacks.
    fn committed(&self, g: &mut Guard<'_>, io: &mut Io, no: u64, refused: Refused) {
        let now = self.shared.now();
        if !io.journal.dirty() {
            let journal = &io.journal;
            g.space.seg_live.retain(|s, _| journal.segment_size(*s) > 0);
        }
        g.space.segs = io.segments();
        if let Some((sends, restores, e)) = refused {
            refuse_sends(g, sends, &restores, &e, &mut io.spare, now);
        }
        g.publish(&mut io.spare, &io.placed, now);
        g.space.compacting = None;
        g.progress.done_no = no;
        g.async_msgs -= io.spare.async_msgs;
        g.async_bytes -= io.spare.async_bytes;
        let items = std::mem::take(&mut io.spare.callbacks);
        self.shared.push_callbacks(items);
    }

    /// The commit thread: waits for work (or for a batched-fsync deadline, or for its periodic
    /// housekeeping), leads the commit, and at close writes what is left, releases nothing
    /// itself (the caller of this loop releases the directory lock) and stops the callbacks.
    pub(super) fn run_commit_loop(&self) {
        let shared = &self.shared;
        let mut g = shared.lock();
        loop {
            g = self.wait_for_work(g);
            // Lock order: io, then state. Holding io also means no caller is mid-commit.
            drop(g);
            let mut io = shared.io.lock().unwrap_or_else(|e| e.into_inner());
            g = shared.lock();
            if g.pending.is_empty()
                && !g.pending.awaited
                && g.closing
                && g.progress.unsynced_since.is_none()
            {
                if g.takes > 0 {
                    // A take under way (its records being read) gives back what it took for
                    // a buffer when it finds the store closing: those records are still to be
                    // written.
                    drop(io);
                    g = shared
                        .work
                        .wait_timeout(g, Duration::from_millis(10))
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    continue;
                }
                // Everything is written and no caller is writing (we hold io): nothing more
                // will be, as a closing store takes no new records. The index checkpoint
                // saves the next open its replay; it is only an optimisation, so a failure to
                // write it costs the next open a full replay and nothing else.
                if g.error.is_none() {
                    let _ = super::checkpoint::write(io.journal(), &g);
                }
                break;
            }
            let p = &g.progress;
            let deadline = p.unsynced_since.is_some_and(|t| t.elapsed() >= p.max_delay);
            // An empty batch a caller waits for is committed all the same: that caller may have
            // found io held by us and be waiting for our commit's wake-up, and nobody else will
            // commit it (a waiter that finds io held never takes it; see `wait_done`).
            let due = g.pending.awaited || deadline || (g.closing && p.unsynced_since.is_some());
            if g.pending.is_empty() && !due {
                continue; // a caller led the commit while we waited for the io lock
            }
            if g.progress.joined > 0 {
                // Callers wait for this batch: the commit thread leads it as they would, waiting
                // for the callers the last commit released (else whether a batch gathers them
                // depends on which thread won the io lock).
                g = self.gather(g);
            }
            g = self.commit_guarded(&mut io, g);
        }
    }

    /// How long the idle commit thread sleeps before its housekeeping. (A test can make it
    /// sleep for good, so that no periodic wake-up hides a missed one.)
    fn idle_wait(&self) -> Duration {
        #[cfg(test)]
        if self
            .shared
            .test_hooks
            .no_periodic_wake
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Duration::from_secs(3600);
        }
        HOUSEKEEPING_EVERY
    }

    /// How long until the earliest repeating message is due (its next occurrence is made
    /// then: see [`super::timers`]), so that the idle commit thread's housekeeping is not up to
    /// 250 ms late for it (a late timer skips slots). (With a manual clock this is a real wait
    /// for a clock time: harmless, the clock's jump wakes the thread anyway.)
    fn until_next_repeat(g: &Guard<'_>, now: u64) -> Duration {
        g.queues
            .iter()
            .filter_map(|q| q.repeat_due.first().map(|&(due, _, _)| due))
            .min()
            .map_or(Duration::MAX, |due| {
                Duration::from_millis(due.saturating_sub(now))
            })
    }

    /// The commit thread of a store poisoned by repeated panics of its loop: it only fails
    /// what is pending (completing the callbacks), until the store closes.
    pub(crate) fn run_poisoned_commit_thread(&self) {
        let shared = &self.shared;
        let mut g = shared.lock();
        loop {
            if !g.pending.is_empty() {
                let e = g
                    .error
                    .clone()
                    .unwrap_or_else(|| Error::new(ErrorKind::Internal, "the commit thread failed"));
                let mut b = std::mem::take(&mut g.pending);
                shared.fail_callbacks(&mut b, &poisoned(&e));
                g.progress.batch_no += 1;
                shared.done.notify_all();
            }
            if g.closing {
                return;
            }
            g = shared
                .work
                .wait_timeout(g, Duration::from_millis(250))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Waits until there is something to commit, the batched-fsync deadline passed, or the
    /// store is closing; runs the housekeeping every 250 ms while idle.
    /// Lazy acks alone wait up to the lazy-ack interval, so that one commit takes many.
    fn wait_for_work<'a>(&'a self, mut g: Guard<'a>) -> Guard<'a> {
        let shared = &self.shared;
        if g.progress.housekept.elapsed() >= HOUSEKEEPING_EVERY && !g.closing {
            // A busy store (never idle) keeps its timers too.
            g = self.housekeeping(g);
        }
        while !g.closing {
            let lazy_left = g.pending.may_wait(shared.now());
            if lazy_left.is_some_and(|l| l.is_zero()) {
                break;
            }
            let max_delay = g
                .queues
                .iter()
                .filter_map(|q| q.opts.batched_delay())
                .fold(g.progress.max_delay, Duration::min);
            g.progress.max_delay = max_delay;
            let mut wait = match g.progress.unsynced_since {
                Some(t) => {
                    let left = max_delay.saturating_sub(t.elapsed());
                    if left.is_zero() {
                        break;
                    }
                    left
                }
                None => self
                    .idle_wait()
                    .min(Self::until_next_repeat(&g, shared.now())),
            };
            if let Some(l) = lazy_left {
                wait = wait.min(l);
            }
            let idle = g.progress.unsynced_since.is_none() && lazy_left.is_none();
            g.progress.idle = true;
            g = shared
                .work
                .wait_timeout(g, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            g.progress.idle = false;
            if idle {
                // Periodic housekeeping (and after a jump of a manual clock, which wakes us).
                g = self.housekeeping(g);
            }
        }
        g
    }
}

/// Sends a full disk refused, the messages their records had taken out, and the error.
type Refused = Option<(Vec<PendingSend>, Vec<Restore>, Error)>;

/// Writes the batch in `io.spare`, syncs when it needs it, removes `removable` segments once
/// everything is synced. On a full disk the batch's records that carry messages are refused
/// and the rest (settles, which must not fail) goes into the segment's reserve; compaction's
/// copies, which end the batch, go where [`Journal::write_copies`] finds room (a short
/// segment on a disk with less than a segment free) or are dropped.
/// Returns the outcome, the sends a full disk refused, whether it fdatasynced, and why the
/// copies were dropped (if they were).
fn write_and_sync(io: &mut Io, max_delay: Duration, removable: &[u64]) -> Written4 {
    let Io {
        journal,
        spare,
        placed,
        unsynced_since,
    } = io;
    placed.clear();
    let mut refused = None;
    let mut copies_refused = None;
    let copies_at = spare.copies_at.unwrap_or(spare.buf.len());
    let mut result = match journal.write(&spare.buf[..copies_at], placed, false) {
        Ok(Written::All) => Ok(()),
        Ok(Written::NoSpace(e)) => write_after_full(journal, spare, placed, 0, e, &mut refused),
        Ok(Written::Partial(n, e)) => write_after_full(journal, spare, placed, n, e, &mut refused),
        Err(e) => Err(e),
    };
    if let (Ok(()), Some(at)) = (&result, spare.copies_at) {
        result = write_copies(journal, spare, placed, at, &mut copies_refused);
    }
    let deadline_passed = unsynced_since.is_some_and(|t| t.elapsed() >= max_delay);
    let mut synced = false;
    if result.is_ok()
        && (spare.needs_sync || deadline_passed || (spare.buf.is_empty() && journal.dirty()))
    {
        result = journal.sync();
        synced = true;
        *unsynced_since = None;
    } else if result.is_ok() && journal.dirty() && unsynced_since.is_none() {
        *unsynced_since = Some(Instant::now());
    }
    if result.is_ok() && !journal.dirty() {
        for seg in removable {
            if let Err(e) = journal.remove_segment(*seg) {
                result = Err(e);
                break;
            }
        }
    }
    (result, refused, synced, copies_refused)
}

/// What [`write_and_sync`] did: the outcome, the sends a full disk refused, whether it
/// fdatasynced, and the error that made it drop compaction's copies.
type Written4 = (Result<()>, Refused, bool, Option<Error>);

/// Writes compaction's copies, `spare.buf[at..]` (see [`Batch::copies_at`]). Those a full
/// disk did not take are dropped: the segment they copy stays, its items where they were,
/// and the next commit plans it again; `copies_refused` says why (see
/// `Space::copies_refused`). They borrow at most half the reserve, which is sized for settles
/// (see [`Journal::write_copies`]).
fn write_copies(
    journal: &mut Journal,
    spare: &mut Batch,
    placed: &mut Vec<Placed>,
    at: usize,
    copies_refused: &mut Option<Error>,
) -> Result<()> {
    let first = placed.len();
    let r = journal.write_copies(&spare.buf[at..], placed);
    for p in &mut placed[first..] {
        p.buf_start += at;
        p.buf_end += at;
    }
    let (end, e) = match r {
        Ok(Written::All) => return Ok(()),
        Ok(Written::NoSpace(e)) => (at, e),
        Ok(Written::Partial(n, e)) => (at + n, e),
        Err(e) => return Err(e),
    };
    let need = journal.short_segment_bytes(spare.buf.len() - end);
    spare.buf.truncate(end);
    spare.sends.retain(|s| s.rec_off < end);
    spare.decls.retain(|d| d.1 < end);
    spare.dedups.retain(|d| d.2 < end);
    *copies_refused = Some(Error::new(
        ErrorKind::NoSpace,
        format!(
            "compaction cannot copy live messages forward: it needs {need} bytes of free disk \
             for a segment to copy them into ({})",
            e.message()
        ),
    ));
    Ok(())
}

impl Shared {
    /// Poisons the store after a panic (`what` names where) and completes every callback that
    /// is not done: `batch` (one being written, if the panic left it) and every pending one.
    pub(super) fn poison_after_panic(
        &self,
        what: &str,
        payload: &(dyn std::any::Any + Send),
        batch: Option<&mut Batch>,
    ) -> Error {
        let e = Error::new(
            ErrorKind::Internal,
            format!(
                "a bug inside mqlite: {what} panicked ({}); please report it",
                panic_text(payload)
            ),
        );
        // Not `self.lock()`: the panic poisoned the mutex, and this error says more.
        let mut g = self.state.lock().unwrap_or_else(|p| {
            self.state.clear_poison();
            p.into_inner()
        });
        if g.error.is_none() {
            g.error = Some(e.clone());
        }
        let err = poisoned(g.error.as_ref().unwrap_or(&e));
        if let Some(b) = batch {
            g.async_msgs = g.async_msgs.saturating_sub(b.async_msgs);
            g.async_bytes = g.async_bytes.saturating_sub(b.async_bytes);
            self.fail_callbacks(b, &err);
        }
        let mut rest = std::mem::take(&mut g.pending);
        self.fail_callbacks(&mut rest, &err);
        g.progress.batch_no += 1;
        g.progress.unsynced_since = None;
        drop(g);
        self.wake_all();
        e
    }
}

/// The disk filled up after `buf[..n]` was written: that part stays (it is on disk and is synced
/// with the rest); the records after it that carry a message (new messages, dead-letter moves,
/// replays, transactions and transfers with sends) are refused (their callers are told nothing
/// was done: a full disk never poisons the store), and the other records after it (settles,
/// declarations) are written into the reserve kept for them.
fn write_after_full(
    journal: &mut Journal,
    spare: &mut Batch,
    placed: &mut Vec<Placed>,
    n: usize,
    e: Error,
    refused: &mut Refused,
) -> Result<()> {
    let (sends, restores) = strip_new_messages(spare, n);
    *refused = Some((sends, restores, e));
    let first = placed.len();
    // Compaction's copies are written after this (see `write_copies`), not with the settles.
    let end = spare.copies_at.unwrap_or(spare.buf.len());
    let r = journal.write(&spare.buf[n..end], placed, true);
    for p in &mut placed[first..] {
        p.buf_start += n;
        p.buf_end += n;
    }
    match r {
        Ok(Written::All) => Ok(()),
        Ok(Written::NoSpace(e)) | Ok(Written::Partial(_, e)) | Err(e) => Err(e),
    }
}

/// Whether a record of kind `k` (with `body`) carries a message: a new one (SEND, PUBLISH),
/// compaction's optional copies (RELOCATE, DEDUP), a dead-letter move or replay (DEAD: the
/// message's copy), or a transaction holding any of those (TXN: all or nothing). On a full
/// disk such a record is refused rather than written into the reserve, which is sized for
/// settles (an ack or a delivery count is bytes; a moved message may be megabytes).
fn carries_message(k: u8, body: &[u8]) -> bool {
    use super::record::kind;
    use crate::journal::frame::records;
    match k {
        kind::SEND | kind::PUBLISH | kind::RELOCATE | kind::DEDUP | kind::DEAD => true,
        kind::TXN => records(body)
            .flatten()
            .any(|(_, k, b)| carries_message(k, b)),
        _ => false,
    }
}

/// Takes the records that carry a message (see [`carries_message`]) after offset `from` (what
/// the disk took before it filled up) out of a batch that found the disk full, keeping every
/// record before `from` and every other record (declarations, deliveries, settles) with its
/// offsets fixed up. Compaction's copies ([`Batch::copies_at`]) stay, at the end: they are
/// written apart (see [`write_copies`]). Returns the refused sends and the messages the refused
/// records had taken out of their queues (to be put back).
fn strip_new_messages(b: &mut Batch, from: usize) -> (Vec<PendingSend>, Vec<Restore>) {
    use crate::journal::frame::{records, RECORD_HEADER};
    let old = std::mem::take(&mut b.buf);
    let copies_at = b.copies_at.unwrap_or(old.len());
    // (old start, new start, length) of each kept record.
    let mut kept: Vec<(usize, usize, usize)> = Vec::new();
    for (at, k, body) in records(&old).flatten() {
        let len = RECORD_HEADER + body.len();
        if at < from || at >= copies_at || !carries_message(k, body) {
            kept.push((at, b.buf.len(), len));
            b.buf.extend_from_slice(&old[at..at + len]);
        }
    }
    // Offsets may point inside a kept record (the acks of a TXN record).
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
    let restores = std::mem::take(&mut b.restores)
        .into_iter()
        .filter(|r| remap(r.rec_off).is_none())
        .collect();
    // The copies were kept whole and last.
    if b.copies_at.is_some() {
        b.copies_at = Some(b.buf.len() - (old.len() - copies_at));
    }
    (refused, restores)
}

/// Undoes what queuing the refused sends did and puts back the messages the refused records
/// had taken out, and tells their callers: async callbacks get the error, synchronous callers
/// (senders, settles, replays, transfers, transactions) find it in `State::refused` under the
/// message's id when they wake.
fn refuse_sends(
    g: &mut Guard<'_>,
    sends: Vec<PendingSend>,
    restores: &[Restore],
    e: &Error,
    b: &mut Batch,
    now: u64,
) {
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
    let stays = Error::new(
        ErrorKind::NoSpace,
        format!(
            "the disk is full; nothing was moved, the message stays where it was ({})",
            e.message()
        ),
    );
    for r in restores {
        g.restore(r, now);
        // A move's copy has the moved message's id: its caller (if any) is told below.
        ids.remove(&r.entry.id);
        if r.tell {
            g.refused.insert(r.entry.id, stays.clone());
        }
    }
    for id in ids {
        g.refused.insert(id, err.clone());
    }
}
