//! Delivering: taking messages for a consumer (their delivery counts made durable before
//! hand-over, with one DELIVER record), reading their records outside the lock, and the
//! consumer registry. (Scheduled repeats are the timers' work: [`super::timers`].)

use std::time::{Duration, Instant};

use super::queue::{Entry, InFlight, ENTRY_REPEATS, ENTRY_REPEAT_DONE};
use super::read::Records;
use super::record::{decode_message, put_ack, put_deliver};
use super::{ConsumerId, DeliveryTag, Engine, Guard, QueueId, Received, State};
use crate::defaults::PREFETCH_MAX_BYTES;
use crate::error::{Error, ErrorKind, Result};
use crate::message::DeadLetterReason;
use crate::options::{AckMode, StoreOptions};

/// What [`State::take`] took.
#[derive(Default)]
pub(crate) struct Taken {
    /// The messages, with their new counts and tags.
    pub items: Vec<(Entry, DeliveryTag)>,
    /// Expired messages or messages of parked groups were moved out on the way.
    pub moved: bool,
}

/// Appends the record that makes deliveries durable before hand-over: DELIVER with their
/// counts, or ACK for auto-ack (at-most-once: done on hand-over).
fn put_delivery(buf: &mut Vec<u8>, qid: u32, items: &[(u64, u32)], auto_ack: bool) {
    if auto_ack {
        let ids: Vec<u64> = items.iter().map(|x| x.0).collect();
        put_ack(buf, qid, &ids);
    } else {
        put_deliver(buf, qid, items);
    }
}

impl State {
    /// Takes up to `n` messages for `consumer`, appending one DELIVER (or, for auto-ack, ACK)
    /// record for them. Expired messages and messages of parked groups met on the way are
    /// moved out (dead-lettered or dropped).
    ///
    /// Takes `n` when that many are ready, but stops after `at_least` once the records taken
    /// reach [`PREFETCH_MAX_BYTES`] (a prefetch of large messages stays bounded). Ack deadlines
    /// start at hand-over ([`State::hand_out`]), not here: a prefetched message has none.
    #[allow(clippy::too_many_arguments)]
    pub fn take(
        &mut self,
        qid: u32,
        consumer: u64,
        n: usize,
        at_least: usize,
        auto_ack: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<Taken> {
        self.tick(qid, now, store)?;
        let mut taken = Taken::default();
        let mut bytes = 0u64;
        while taken.items.len() < n && (taken.items.len() < at_least || bytes < PREFETCH_MAX_BYTES)
        {
            let Some(e) = self.queues[qid as usize].pop_next() else {
                break;
            };
            if self.take_one(qid, consumer, e, now, store, &mut taken)? {
                bytes += e.len as u64;
            }
        }
        self.log_taken(qid, &taken, auto_ack);
        Ok(taken)
    }

    /// Takes the messages `ids` (with their priorities) for `consumer` where they still wait
    /// and may be delivered (a selective consumer's choice), as [`State::take`] does.
    pub fn take_ids(
        &mut self,
        qid: u32,
        consumer: ConsumerId,
        ids: &[(u64, u8)],
        auto_ack: bool,
        now: u64,
        store: &StoreOptions,
    ) -> Result<Taken> {
        let mut taken = Taken::default();
        for &(id, priority) in ids {
            if let Some(e) = self.queues[qid as usize].take_waiting(id, priority) {
                self.take_one(qid, consumer.0, e, now, store, &mut taken)?;
            }
        }
        self.log_taken(qid, &taken, auto_ack);
        Ok(taken)
    }

    /// Takes message `e` (just taken from waiting) for consumer `consumer`, or moves it out
    /// when it expired or its group is parked. Returns whether it was taken. Its ack deadline
    /// starts at hand-over ([`State::hand_out`]), not here: a prefetched message has none.
    fn take_one(
        &mut self,
        qid: u32,
        consumer: u64,
        mut e: Entry,
        now: u64,
        store: &StoreOptions,
        taken: &mut Taken,
    ) -> Result<bool> {
        if e.flags & (ENTRY_REPEATS | ENTRY_REPEAT_DONE) == ENTRY_REPEATS {
            // Due, and its next occurrence not made yet (a path that did not tick first): made
            // now, before its delivery record, or a crash after its ack would lose it.
            e = self.make_next_occurrence(qid, e, now)?;
        }
        let q = &mut self.queues[qid as usize];
        let parked = e.group != 0 && q.group_state[e.group as usize - 1].parked;
        if parked || (e.expires_at != 0 && e.expires_at <= now) {
            taken.moved = true;
            q.hold(e);
            if parked {
                let text = "its group is parked";
                self.dead_letter(qid, e.id, DeadLetterReason::GroupParked, text, now, store)?;
            } else {
                let process = q.opts.process_expired;
                q.counters.expired += 1;
                self.expire(qid, e.id, process, now, store)?;
            }
            return Ok(false);
        }
        e.count += 1;
        if e.count > 1 {
            q.counters.redelivered += 1;
        }
        let tag = self.tag();
        let q = &mut self.queues[qid as usize];
        q.inflight.insert(
            e.id,
            InFlight {
                entry: e,
                consumer,
                deadline: None,
                tag: tag.0,
            },
        );
        taken.items.push((e, tag));
        Ok(true)
    }

    /// Appends the one DELIVER (or ACK) record of what was taken.
    fn log_taken(&mut self, qid: u32, taken: &Taken, auto_ack: bool) {
        if self.queues[qid as usize].opts.journaled() {
            let items: Vec<(u64, u32)> = taken.items.iter().map(|(e, _)| (e.id, e.count)).collect();
            if !items.is_empty() {
                self.log(qid, |b| put_delivery(b, qid, &items, auto_ack));
            }
        }
    }

    /// Removes auto-acked deliveries once their records were read.
    fn finish_auto_ack(&mut self, qid: u32, taken: &Taken) {
        for (e, _) in &taken.items {
            let q = &mut self.queues[qid as usize];
            if let Some(f) = q.inflight.remove(&e.id) {
                q.forget(&f.entry);
                q.counters.acked += 1;
                self.live_dec(&f.entry);
            }
        }
    }
}

impl Engine {
    /// Registers a consumer of queue `q` with its ack mode and prefetch (`None`: the queue's).
    pub(crate) fn open_consumer(
        &self,
        q: QueueId,
        mode: AckMode,
        prefetch: Option<u32>,
    ) -> Result<ConsumerId> {
        let mut g = self.shared.lock();
        g.check()?;
        Ok(g.open_consumer(q.0, mode, prefetch))
    }

    /// Closes a consumer: its prefetched messages go back uncounted, its unsettled deliveries
    /// return to the queue as failed deliveries. Does not wait for their records (a dropped
    /// handle must not block).
    pub(crate) fn close_consumer(&self, consumer: ConsumerId) {
        let shared = &self.shared;
        let mut g = shared.lock();
        if g.check().is_err() {
            g.consumers.remove(&consumer.0);
            return;
        }
        let now = shared.now();
        g.unbuffer(consumer.0, now);
        let Some(c) = g.consumers.remove(&consumer.0) else {
            return;
        };
        let qid = c.qid;
        let ids: Vec<u64> = g.queues[qid as usize]
            .inflight
            .values()
            .filter(|f| f.consumer == consumer.0)
            .map(|f| f.entry.id)
            .collect();
        for id in ids {
            let text = "the consumer was closed without settling it";
            let _ = g.fail(qid, id, text, None, now, None, &shared.opts);
        }
        if let Ok(g) = self.finish_moves(g) {
            if !g.pending.is_empty() {
                self.kick(&g);
            }
        }
        shared.avail.notify_all();
    }

    /// Receives up to `n` messages of queue `q` for `consumer`, waiting up to `timeout` (`None`:
    /// forever) for the first. Hands out the consumer's prefetched messages first; otherwise
    /// takes up to its prefetch with one delivery record, durable before this returns, and keeps
    /// what is beyond `n` in its buffer; a consumer that finds the queue empty takes from another
    /// consumer's buffer.
    pub(crate) fn receive(
        &self,
        q: QueueId,
        consumer: ConsumerId,
        n: usize,
        timeout: Option<Duration>,
    ) -> Result<Vec<Received>> {
        if n == 0 {
            // Refused in every face alike: a batch of none is a caller's bug, and waiting for
            // "the first of none" would never end.
            // One message naming the valid range, as every face words a range (review r5 #21).
            return Err(Error::invalid(format!(
                "the receive batch size must be an integer from 1 to {}, not 0",
                usize::MAX
            )));
        }
        let shared = &self.shared;
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        // When this receive first asked client processes to give back lent messages.
        let mut recalled: Option<Instant> = None;
        let mut g = shared.lock();
        loop {
            g.check()?;
            let now = shared.now();
            let mode = g.mode_of(consumer);
            let cid = g.consumer_for(q.0, consumer);
            // Messages sent into a parked group are dead-lettered by this tick: a move, made
            // visible below as a receive's own moves are.
            let parked_moved = !g.queues[q.0 as usize].parked_arrivals.is_empty();
            g.tick(q.0, now, &shared.opts)?;
            let mut got = g.pop_buffered(q.0, cid, n, now, &shared.opts)?;
            if !got.is_empty() && got.len() < n && mode != AckMode::Auto {
                // The buffer ran out before the batch was full: fill it from the queue (one
                // delivery record, as a take from an empty buffer), so a batch receive is not
                // cut short by what a previous take happened to leave behind.
                let more = n - got.len();
                let fill = g.fill_size(cid, more);
                // From here on an error must not lose `got` (already handed out): it is
                // returned, and the error shows at the next call.
                let Ok(taken) = g.take(q.0, cid, fill, more, false, now, &shared.opts) else {
                    return Ok(got);
                };
                let Ok(g2) = self.finish_moves(g) else {
                    return Ok(got);
                };
                g = g2;
                if !taken.items.is_empty() {
                    // `hand_over` gives back what it took when it fails.
                    if let Ok(rest) = self.hand_over(g, q, cid, mode, taken, more) {
                        got.extend(rest);
                    }
                    return Ok(got);
                }
            }
            if !got.is_empty() {
                if !g.moves.is_empty() {
                    g = self.finish_moves(g)?;
                }
                // Records nobody waits for (an expired message dropped or moved, a ticked
                // timeout) go out with the commit thread.
                self.kick_unless_lazy(&g);
                return Ok(got);
            }
            let fill = if mode == AckMode::Auto {
                n
            } else {
                g.fill_size(cid, n)
            };
            let auto = mode == AckMode::Auto;
            let taken = g.take(q.0, cid, fill, n, auto, now, &shared.opts)?;
            g = self.finish_moves(g)?;
            if !taken.items.is_empty() {
                return self.hand_over(g, q, cid, mode, taken, n);
            }
            if g.steal(q.0, cid) {
                continue;
            }
            // Messages lent to client processes cannot be stolen (only their client knows
            // whether it handed them out): ask those clients to give back what they did not
            // (issue 14 #1: no consumer waits while another's buffer holds messages).
            let recall = g.recall_targets(q.0, cid);
            if !recall.is_empty() {
                drop(g);
                self.recall(q.0, &recall);
                recalled.get_or_insert_with(Instant::now);
                g = shared.lock();
                continue;
            }
            if g.recalled_lent(q.0, cid) {
                // Recalled by another receive that found the queue empty before this one: the
                // messages are on their way back for this receive too. (Only the receive that
                // sent the recall used to wait; the receives beside it answered "empty" —
                // 2 of 6 competing zero-timeout receives in CI.)
                recalled.get_or_insert_with(Instant::now);
            }
            if recalled.is_some_and(|t| t.elapsed() < super::prefetch::LENT_RECALL_WAIT)
                && g.recalled_lent(q.0, cid)
            {
                // Recalled messages are on their way back (a client process's round trip):
                // the queue is not empty, whatever the deadline says (as for a prefetch under
                // way, below). A client that does not answer in time is not waited for.
                g.queues[q.0 as usize].receivers_waiting += 1;
                g = shared
                    .avail
                    .wait_timeout(g, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                let w = &mut g.queues[q.0 as usize].receivers_waiting;
                *w = w.saturating_sub(1);
                continue;
            }
            if g.queues[q.0 as usize].prefetching > 0 {
                // Another consumer's prefetch is between the queue and its buffer (one read
                // and one fdatasync): the queue is not empty, whatever the deadline says. Wait
                // for the buffer (its hand-over notifies `avail`) and steal from it.
                g = shared
                    .avail
                    .wait_timeout(g, Duration::from_millis(50))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
                continue;
            }
            if taken.moved || parked_moved {
                // Expired or parked messages were moved: wait, so the move is visible (in the
                // dead-letter queue's stats, browse and replay) when this call returns. (Their
                // records may already be in a batch being written: `commit` waits for that too.)
                g = self.commit(g)?;
            }
            let mut wait = match deadline {
                Some(Some(d)) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Vec::new());
                    }
                    left
                }
                _ => Duration::from_secs(3600),
            };
            if let Some(due) = g.queues[q.0 as usize].next_due() {
                wait = wait.min(Duration::from_millis(due.saturating_sub(now).max(1)));
            }
            // While this receive waits, nothing of the queue is lent to a client process.
            g.queues[q.0 as usize].receivers_waiting += 1;
            g = shared
                .avail
                .wait_timeout(g, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            let w = &mut g.queues[q.0 as usize].receivers_waiting;
            *w = w.saturating_sub(1);
        }
    }

    /// Reads and decodes the records of what was taken (with the lock released), makes their
    /// delivery record durable, hands over the first `n` and buffers the rest for consumer
    /// `cid`. (Over 80 lines: the error paths must give back exactly what was taken.)
    pub(super) fn hand_over(
        &self,
        mut g: Guard<'_>,
        q: QueueId,
        cid: u64,
        mode: AckMode,
        taken: Taken,
        n: usize,
    ) -> Result<Vec<Received>> {
        let shared = &self.shared;
        // Counted while the lock is released (see `State::takes` and
        // `QueueState::prefetching`); the counts are given back on every way out, errors
        // included.
        let prefetch = taken.items.len() > n;
        g.takes += 1;
        if prefetch {
            g.queues[q.0 as usize].prefetching += 1;
        }
        let _under_way = TakeUnderWay {
            engine: self,
            q,
            prefetch,
        };
        let snap = g.snapshot(&shared.files, taken.items.iter().map(|&(e, _)| (q.0, e)));
        drop(g);
        #[cfg(test)]
        if let Some((reached, go)) = shared.test_hooks.pause_take.lock().unwrap().take() {
            let _ = reached.send(());
            let _ = go.recv();
        }
        let recs = snap.and_then(|s| s.read());
        let msgs = match &recs {
            Ok(r) => decode_all(r),
            Err(e) => Err(e.clone()),
        };
        let mut g = shared.lock();
        // The delivery records are durable before hand-over. While the lock was released a
        // leader may have taken them into a batch it is writing, so `pending` may be empty:
        // `commit` then waits for that batch.
        if !g.pending.is_empty() || taken.moved || g.queues[q.0 as usize].opts.journaled() {
            g = self.commit(g)?;
        }
        if mode == AckMode::Auto {
            g.finish_auto_ack(q.0, &taken);
        }
        let msgs = match msgs {
            Ok(m) => m,
            Err(e) => {
                // Nothing was handed over: give the messages back (not a failed delivery),
                // or they would stay in flight with no delivery to settle them until reopen.
                if mode != AckMode::Auto {
                    let (now, was_empty) = (shared.now(), g.pending.is_empty());
                    for (x, tag) in &taken.items {
                        let _ = g.release(q.0, x.id, Some(*tag), now);
                    }
                    if was_empty && !g.pending.is_empty() {
                        shared.work.notify_one();
                    }
                    shared.avail.notify_all();
                }
                return Err(e);
            }
        };
        let now = shared.now();
        let mut out = Vec::with_capacity(n.min(taken.items.len()));
        let mut rest = Vec::new();
        for (&(e, tag), message) in taken.items.iter().zip(msgs) {
            if out.len() < n {
                g.hand_out(q.0, cid, &e, tag, now);
                out.push(Received {
                    message,
                    tag,
                    count: e.count,
                });
            } else {
                rest.push(super::prefetch::Prefetched {
                    id: e.id,
                    tag,
                    count: e.count,
                    message,
                });
            }
        }
        if !rest.is_empty() {
            let closing = g.closing;
            match g.consumers.get_mut(&cid).filter(|_| !closing) {
                Some(c) => c.buffer.extend(rest),
                None => {
                    // The consumer, or the store, closed while its records were read: they go
                    // back uncounted. (A closing store gave its buffers back before this take
                    // could fill one: buffered now, they stayed in flight, and an owner's close
                    // handed them over as deliveries of a client that never saw them.)
                    for p in rest {
                        let _ = g.release(q.0, p.id, Some(p.tag), now);
                    }
                    if closing {
                        // The commit thread may have ended already (this take's count came
                        // after its records were taken, and a dead-letter move in between can
                        // release the lock: review r15 #1): write the releases here, as any
                        // caller may lead a commit.
                        shared.avail.notify_all();
                        drop(self.commit(g));
                        return Ok(out);
                    }
                    self.kick(&g);
                }
            }
            // A competing consumer waiting for the queue may take from this buffer.
            shared.avail.notify_all();
        }
        Ok(out)
    }
}

/// One take under way (`State::takes`; with `prefetch`, also `QueueState::prefetching`),
/// given back when dropped: after the hand-over's guard is released (it is declared before that
/// guard), so it takes the lock itself.
struct TakeUnderWay<'a> {
    engine: &'a Engine,
    q: QueueId,
    prefetch: bool,
}

impl Drop for TakeUnderWay<'_> {
    fn drop(&mut self) {
        let shared = &self.engine.shared;
        let mut g = shared.lock();
        g.takes = g.takes.saturating_sub(1);
        if self.prefetch {
            let p = &mut g.queues[self.q.0 as usize].prefetching;
            *p = p.saturating_sub(1);
        }
        let closing = g.closing;
        drop(g);
        if closing {
            // A closing store's commit thread waits for the last take (see
            // `run_commit_loop`). Only then: an idle one woken per receive would run its
            // housekeeping each time (review r15 #3).
            shared.work.notify_all();
        }
        shared.avail.notify_all();
    }
}

/// Decodes every record read for a take.
fn decode_all(recs: &Records) -> Result<Vec<crate::message::Message>> {
    recs.iter()
        .map(|r| {
            decode_message(r)
                .ok_or_else(|| Error::new(ErrorKind::Corrupt, "a stored record does not decode"))
        })
        .collect()
}
