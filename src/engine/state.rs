//! [`State`]: everything behind the state lock, and the helpers every job uses (queue
//! declaration, dead-letter queues, journal space accounting, the consumer registry).

use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::batch::Batch;
use super::commit::CommitStats;
use super::queue::{QueueState, MEM_SEG};
use super::record::put_queue;
use super::{ConsumerId, DeliveryTag};
use crate::clock::Clock;
use crate::error::{Error, ErrorKind, Result};
use crate::message::DeadLetterReason;
use crate::options::{
    check_name, AckMode, DeadLetterStrategy, OverflowPolicy, QueueOptions, Resolved, StoreOptions,
};

/// How far group commit has got, and who waits for it.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Number of the batch `pending` will be committed as.
    pub batch_no: u64,
    /// Last batch committed (written, and synced where its records needed it).
    pub done_no: u64,
    /// Callers waiting for a batch to be committed.
    pub waiters: usize,
    /// Callers waiting for the pending batch (`batch_no`) — they joined it.
    pub joined: usize,
    /// How many callers a leader waits to join its batch before it commits: those who joined
    /// it while the last commit was written plus those that commit released (they are about
    /// to call again; see `Engine::gather`).
    pub expect_joined: usize,
    /// Commits, fdatasyncs and the callers they released, since the store was opened.
    pub counters: CommitStats,
    /// A leader waits on `gather` for callers to join its batch.
    pub gathering: bool,
    /// The commit thread is waiting for work (so a submitter must wake it).
    pub idle: bool,
    /// Written frames await an fsync since then (batched durability), mirrored from [`super::Io`].
    pub unsynced_since: Option<Instant>,
    /// The shortest batched-durability delay of any queue.
    pub max_delay: Duration,
    /// When the commit thread last ran its housekeeping (timers of every queue).
    pub housekept: Instant,
}

/// Journal space: what is live where, for compaction.
#[derive(Debug, Default)]
pub(crate) struct Space {
    /// Live items (messages, dedup entries, queue declarations) and bytes per segment.
    pub seg_live: BTreeMap<u64, (u64, u64)>,
    /// Journal segments and sizes, mirrored from the commit thread, oldest first.
    pub segs: Vec<(u64, u64)>,
    /// The segment whose live items are being copied forward.
    pub compacting: Option<u64>,
    /// Why the last commit that copied live items forward had to drop them (a disk too full
    /// even for a short segment), until a commit copies some: what `compact` reports when it
    /// cannot proceed.
    pub copies_refused: Option<crate::error::Error>,
}

impl Space {
    /// One live item less in segment `seg`.
    pub fn dec_item(&mut self, seg: u32) {
        if seg != MEM_SEG {
            if let Some(l) = self.seg_live.get_mut(&(seg as u64)) {
                l.0 = l.0.saturating_sub(1);
            }
        }
    }
}

/// One consumer (or the plain receive of a queue: see [`State::consumer_for`]).
#[derive(Debug)]
pub(crate) struct ConsumerState {
    pub qid: u32,
    pub mode: AckMode,
    /// Cumulative mode: its unsettled deliveries in the order received.
    pub received: VecDeque<(u64, DeliveryTag)>,
    /// How many messages one take may prefetch (1: none).
    pub prefetch: usize,
    /// Prefetched messages not yet handed out, in delivery order (their counts are durable).
    pub buffer: VecDeque<super::prefetch::Prefetched>,
    /// Prefetched messages lent to a client process's own buffer (see `prefetch::lend`), by
    /// message id: their tag and delivery count. Still `prefetched` (not handed out, no ack
    /// deadline) until the client says it handed them out or gives them back.
    pub lent: std::collections::HashMap<u64, (DeliveryTag, u32)>,
    /// A recall of the lent messages was asked and none was lent since (one recall per wait).
    pub recalled: bool,
}

/// A message held by the engine until its record is read (outside the lock) and its DEAD
/// record appended: see [`super::Engine::finish_moves`].
#[derive(Debug, Clone)]
pub(crate) struct Move {
    pub qid: u32,
    pub id: u64,
    pub reason: DeadLetterReason,
    pub text: String,
    pub now: u64,
    /// A caller waits for the outcome (a reject, a nack): a full disk's refusal is left for
    /// it in `State::refused`.
    pub tell: bool,
}

/// Everything behind the state lock.
pub(crate) struct State {
    pub queues: Vec<QueueState>,
    pub by_name: HashMap<String, u32>,
    pub consumers: FxHashMap<u64, ConsumerState>,
    /// The consumer behind each queue's plain `receive`, by queue (made at its first receive).
    pub plain: FxHashMap<u32, u64>,
    pub next_consumer: u64,
    pub next_tag: u64,
    pub next_id: u64,
    /// The records of the next group commit.
    pub pending: Batch,
    pub progress: Progress,
    pub space: Space,
    /// Dead-letter moves waiting for their record to be read.
    pub moves: Vec<Move>,
    /// Threads reading the records of moves they took (see [`super::Engine::finish_moves`]).
    pub moves_reading: usize,
    /// Set once: the failure that poisoned the store.
    pub error: Option<Error>,
    pub closing: bool,
    /// Takes whose records are being read with the lock released (`Engine::hand_over`). One
    /// that ends after the close gave the prefetch buffers back gives back what it took for a
    /// buffer itself, so a closing store's commit thread waits for them (it writes those
    /// records). Buffered after the close, they stayed in flight, and an owner's close handed
    /// them over as deliveries of a client that never saw them: back only a minute later.
    pub takes: u32,
    /// An owner's clean close is taking back what it lent to client processes: nothing more
    /// is lent (see `prefetch`).
    pub no_lending: bool,
    pub closed: bool,
    /// Async sends (count, body bytes) not yet completed: the producer window.
    pub async_msgs: usize,
    pub async_bytes: usize,
    /// Sends refused after they were queued (the disk was full): id → error, taken by the waiter.
    pub refused: HashMap<u64, Error>,
    pub rng: u64,
    pub max_body: usize,
    pub clock: Arc<dyn Clock>,
    /// Topics: subscriptions, their pattern index, per-topic counters.
    pub topics: super::topic::Topics,
    /// The segment files, for the few records read under the lock (a repeating message's,
    /// once per occurrence: see [`super::timers`]).
    pub files: crate::journal::Files,
}

/// The error every call gets once the store is poisoned by `e`.
pub(crate) fn poisoned(e: &Error) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        format!("the store is poisoned by an earlier failure ({e}); close and reopen it"),
    )
}

/// The error `close()` of a store poisoned by `e` returns: the store *is* closed by then (its
/// lock released, so reopening is the next step), and the message says so rather than asking
/// the caller to do what already happened. A second `close()` returns `Ok`.
pub(crate) fn poisoned_at_close(e: &Error) -> Error {
    Error::new(
        ErrorKind::Poisoned,
        format!(
            "the store is closed; it had been poisoned by an earlier failure ({e}); reopen it \
             to go on with what was durable"
        ),
    )
}

impl State {
    /// The due time of something `delay_ms` after `now` (0: at once): never before the true
    /// time plus the delay, whatever the clock truncated (see [`Clock::slack_ms`]).
    pub fn due_after(&self, now: u64, delay_ms: u64) -> u64 {
        if delay_ms == 0 {
            return now;
        }
        now.saturating_add(delay_ms)
            .saturating_add(self.clock.slack_ms())
    }

    /// An empty state for a store with `opts` whose next message id is `next_id`.
    pub fn new(opts: &StoreOptions, next_id: u64, now: u64) -> State {
        State {
            queues: Vec::new(),
            by_name: HashMap::new(),
            consumers: FxHashMap::default(),
            plain: FxHashMap::default(),
            next_consumer: 1,
            next_tag: 1,
            next_id,
            pending: Batch::default(),
            progress: Progress {
                batch_no: 1,
                done_no: 0,
                waiters: 0,
                joined: 0,
                expect_joined: 1,
                counters: CommitStats::default(),
                gathering: false,
                idle: false,
                unsynced_since: None,
                housekept: Instant::now(),
                max_delay: match opts.durability {
                    crate::options::Durability::Batched { max_delay } => max_delay,
                    _ => Duration::from_millis(crate::defaults::DEFAULT_BATCHED_MAX_DELAY_MS),
                },
            },
            space: Space::default(),
            moves: Vec::new(),
            moves_reading: 0,
            error: None,
            closing: false,
            takes: 0,
            no_lending: false,
            closed: false,
            async_msgs: 0,
            async_bytes: 0,
            refused: HashMap::new(),
            rng: now | 1,
            max_body: opts.max_body_bytes,
            clock: opts.clock.clone(),
            topics: Default::default(),
            files: Default::default(),
        }
    }

    /// `Ok` while the store is open and not poisoned.
    pub fn check(&self) -> Result<()> {
        if self.closed || self.closing {
            return Err(Error::closed());
        }
        if let Some(e) = &self.error {
            return Err(poisoned(e));
        }
        Ok(())
    }

    /// A uniform sample in [0, 1) for collision avoidance (xorshift64*: jitter needs no
    /// cryptographic randomness).
    pub fn random(&mut self) -> f64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A new delivery tag.
    pub fn tag(&mut self) -> DeliveryTag {
        let t = DeliveryTag(self.next_tag);
        self.next_tag += 1;
        t
    }

    /// The queue id of `name`, declaring the queue (a QUEUE record) if it is new. With `opts`
    /// the queue takes them for this open. Deliveries in flight when the last process ended
    /// fail now, under this open's options (queue options are not stored, so recovery could not
    /// know them).
    pub fn declare(
        &mut self,
        name: &str,
        opts: Option<Resolved>,
        store: &StoreOptions,
    ) -> Result<u32> {
        if let Some(&qid) = self.by_name.get(name) {
            if let Some(o) = opts {
                self.queues[qid as usize].opts = o;
            }
            self.fail_crashed(qid, store)?;
            return Ok(qid);
        }
        check_name(name)?;
        // A subscription's queue is created by subscribing; one that is gone cannot come back
        // as a plain queue (a replay of its dead letters, say).
        super::topic::refuse_subscription_queue(name)?;
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

    /// Fails the deliveries of queue `qid` that were in flight when the last process ended,
    /// under this open's options (once: at the queue's first declaration in this open).
    pub fn fail_crashed(&mut self, qid: u32, store: &StoreOptions) -> Result<()> {
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
        Ok(())
    }

    /// Whether queue `qid` is a dead-letter queue: its own strategy names itself, another
    /// queue's strategy names it, or the store's default strategy does (`DLQ`, `DLQ.<queue>`
    /// with the defaults). Its messages are dead letters already: a reject of one is refused
    /// ([`dead_letter_reject_refused`]), and one whose redeliveries run out stays in it
    /// (`settle::DEAD_LETTER_KEPT_RETRY_MS`).
    pub fn is_dead_letter_queue(&self, qid: u32, store: &StoreOptions) -> bool {
        self.names_dead_letter_queue(&self.queues[qid as usize].name, store)
    }

    /// Refuses declaring queue `name` with dead-letter strategy `strategy` (its own, or the
    /// store's) when that closes a dead-letter cycle through queues already declared: `name`'s
    /// dead-letter queue, or that queue's (and so on), is `name` again. A cycle ping-pongs
    /// failed messages between working queues, overwrites their original queue and takes
    /// `reject` away from the other queue's consumers (review r10 #4). A queue that is its own
    /// dead-letter queue (as a dead-letter queue opened with the store's strategy is) ends a
    /// chain; one that is explicitly is refused by [`DeadLetterStrategy::check_for`].
    ///
    /// Errors: `InvalidArgument` naming the cycle (`a -> b -> a`).
    pub fn check_dead_letter_cycle(&self, name: &str, strategy: &DeadLetterStrategy) -> Result<()> {
        let mut chain = vec![name.to_string()];
        let mut next = strategy.target(name);
        while let Some(to) = next {
            if to == *chain.last().expect("never empty") {
                return Ok(());
            }
            if to == name {
                chain.push(to);
                return Err(Error::invalid(format!(
                    "dead-letter cycle: {}: each queue's failed messages would go to the next, \
                     and back; give one of them another dead-letter queue (or discard)",
                    chain
                        .iter()
                        .map(|n| format!("{n:?}"))
                        .collect::<Vec<_>>()
                        .join(" -> ")
                )));
            }
            if chain.contains(&to) {
                return Ok(()); // a cycle not through `name`: refused when it was declared
            }
            let Some(&qid) = self.by_name.get(&to) else {
                return Ok(());
            };
            next = self.queues[qid as usize].opts.dead_letter.target(&to);
            chain.push(to);
        }
        Ok(())
    }

    /// Whether a queue named `name` is (or, declared, would be) a dead-letter queue, as
    /// [`State::is_dead_letter_queue`] tells for a declared one.
    pub fn names_dead_letter_queue(&self, name: &str, store: &StoreOptions) -> bool {
        let names = |s: &DeadLetterStrategy, of: Option<&str>| match s {
            DeadLetterStrategy::Shared { name: n } => n == name,
            DeadLetterStrategy::Individual { prefix } => match of {
                Some(of) => name.strip_prefix(prefix.as_str()) == Some(of),
                None => name.len() > prefix.len() && name.starts_with(prefix.as_str()),
            },
            DeadLetterStrategy::Discard => false,
        };
        names(&store.dead_letter, None)
            || self
                .queues
                .iter()
                .any(|q| names(&q.opts.dead_letter, Some(q.name.as_str())))
    }

    /// Whether a queue named `name` is a dead-letter queue for the operations that must not
    /// turn a dead letter into a plain message: a move's or copy's source and target, and a
    /// replay's target. One rule for all of them (review r14 #1, #3): the store's strategies
    /// ([`State::names_dead_letter_queue`]), or the names of the default ones
    /// (`DLQ`, `DLQ.<queue>`), which the `dlq` commands list whatever the strategies say. Two
    /// rules let `move DLQ DLQ.x` then `move DLQ.x q` take dead letters out of their queue.
    pub fn is_dead_letter_name(&self, name: &str, store: &StoreOptions) -> bool {
        self.names_dead_letter_queue(name, store)
            || name == crate::DEFAULT_DEAD_LETTER_QUEUE
            || name.starts_with(crate::DEFAULT_DEAD_LETTER_PREFIX)
    }

    /// Refuses limits a dead-letter queue cannot keep (review r5 #23): `max_messages` or
    /// `max_bytes` with `overflow` reject or block (the default is reject) on queue `name` when
    /// it is a dead-letter queue, or on the existing queue that `options`' own dead-letter
    /// strategy names. A dead letter is never refused or kept waiting for room (its queue's
    /// failure would have nowhere to go); with `drop_oldest` the oldest dead letters are
    /// discarded to make room (counted `discarded`), which is retention by count.
    ///
    /// Errors: `InvalidArgument` naming the queue and pointing at `drop_oldest` and `retention`.
    pub fn check_dead_letter_limits(
        &self,
        name: &str,
        options: &QueueOptions,
        store: &StoreOptions,
    ) -> Result<()> {
        let refused = |max_messages: Option<u64>, max_bytes: Option<u64>, o: OverflowPolicy| {
            (max_messages.is_some() || max_bytes.is_some()) && o != OverflowPolicy::DropOldest
        };
        let overflow = options.overflow.unwrap_or(OverflowPolicy::Reject);
        if refused(options.max_messages, options.max_bytes, overflow)
            && self.names_dead_letter_queue(name, store)
        {
            return Err(dead_letter_limits_refused(name));
        }
        let target = options.dead_letter.as_ref().and_then(|d| d.target(name));
        if let Some(&qid) = target.and_then(|t| self.by_name.get(&t)) {
            let o = &self.queues[qid as usize].opts;
            if refused(o.max_messages, o.max_bytes, o.overflow) {
                return Err(dead_letter_limits_refused(&self.queues[qid as usize].name));
            }
        }
        Ok(())
    }

    /// The dead-letter queue of `qid` (declared if new), or `None` when its dead letters are
    /// dropped (the discard strategy, or the queue is its own dead-letter queue).
    pub fn dlq_for(&mut self, qid: u32, store: &StoreOptions) -> Result<Option<u32>> {
        let q = &self.queues[qid as usize];
        let name = match &q.opts.dead_letter {
            DeadLetterStrategy::Shared { name } => name.clone(),
            DeadLetterStrategy::Individual { prefix } => format!("{prefix}{}", q.name),
            DeadLetterStrategy::Discard => return Ok(None),
        };
        if name == q.name {
            // A dead letter of the dead-letter queue itself is dropped rather than looping.
            return Ok(None);
        }
        let qid = match self.by_name.get(&name) {
            Some(&q) => q,
            None => {
                let mut o = Resolved::new(store, &QueueOptions::default());
                o.dead_letter = DeadLetterStrategy::Discard;
                self.declare(&name, Some(o), store)?
            }
        };
        Ok(Some(qid))
    }

    /// Appends a record of queue `qid` with `put` if the queue is journaled (memory queues write
    /// nothing); the queue's need of an fdatasync joins the batch's.
    pub fn log(&mut self, qid: u32, put: impl FnOnce(&mut Vec<u8>)) {
        let q = &self.queues[qid as usize];
        if q.opts.journaled() {
            let sync = q.opts.needs_sync();
            put(&mut self.pending.buf);
            self.pending.needs_sync |= sync;
        }
    }

    /// The message's journal space is no longer live.
    pub fn live_dec(&mut self, e: &super::queue::Entry) {
        if e.seg != MEM_SEG {
            if let Some(l) = self.space.seg_live.get_mut(&(e.seg as u64)) {
                l.0 = l.0.saturating_sub(1);
                l.1 = l.1.saturating_sub(e.live_bytes());
            }
        }
    }

    /// One more live item of `len` bytes in segment `seg`.
    pub fn live_inc(&mut self, seg: u64, len: u64) {
        let l = self.space.seg_live.entry(seg).or_insert((0, 0));
        l.0 += 1;
        l.1 += len;
    }

    /// One live item less in segment `seg` (a declaration or dedup entry that moved).
    pub fn live_dec_item(&mut self, seg: u32) {
        self.space.dec_item(seg);
    }

    /// Forgets queue `qid`'s dedup keys past its window (their segments' live counts with them).
    pub fn prune_dedup(&mut self, qid: u32, now: u64) {
        let space = &mut self.space;
        self.queues[qid as usize].prune_dedup(now, |seg| space.dec_item(seg));
    }

    /// Registers a consumer of `qid`; `prefetch` `None` takes the queue's. Auto-ack consumers
    /// never prefetch (a prefetched message would be acked before it was handed over).
    pub fn open_consumer(&mut self, qid: u32, mode: AckMode, prefetch: Option<u32>) -> ConsumerId {
        let id = self.next_consumer;
        self.next_consumer += 1;
        let prefetch = match mode {
            AckMode::Auto => 1,
            _ => prefetch.map_or(self.queues[qid as usize].opts.prefetch, |p| p as usize),
        };
        self.consumers.insert(
            id,
            ConsumerState {
                qid,
                mode,
                received: VecDeque::new(),
                prefetch: prefetch.max(1),
                buffer: VecDeque::new(),
                lent: Default::default(),
                recalled: false,
            },
        );
        ConsumerId(id)
    }

    /// The ack mode of `consumer` (a plain receive: explicit).
    pub fn mode_of(&self, consumer: ConsumerId) -> AckMode {
        if consumer == ConsumerId::NONE {
            return AckMode::Explicit;
        }
        self.consumers
            .get(&consumer.0)
            .map_or(AckMode::Explicit, |c| c.mode)
    }

    /// Forgets a delivery in its cumulative consumer's list (it was settled on its own).
    pub fn forget_received(&mut self, consumer: ConsumerId, id: u64, tag: DeliveryTag) {
        if consumer == ConsumerId::NONE {
            return; // a plain receive: no consumer keeps a list
        }
        if let Some(c) = self.consumers.get_mut(&consumer.0) {
            if c.mode == AckMode::Cumulative {
                c.received.retain(|&(i, t)| !(i == id && t == tag));
            }
        }
    }
}

/// The error of [`State::check_dead_letter_limits`].
pub fn dead_letter_limits_refused(queue: &str) -> Error {
    Error::invalid(format!(
        "queue {queue:?} is a dead-letter queue: max_messages/max_bytes there need overflow \
         drop_oldest (the oldest dead letters are discarded to make room); reject or block \
         would refuse dead letters, which have nowhere else to go. To bound it by age, use \
         retention"
    ))
}

/// The error of a reject of a message held from a dead-letter queue (review r4 #16). The
/// message is a dead letter already; dead-lettering it again could only drop it (its queue is
/// its own dead-letter queue, or a discarding one), a silent delete. Refused before anything
/// changes: the delivery stays held, to be acked (deleted), released, or replayed later.
pub fn dead_letter_reject_refused(queue: &str) -> Error {
    Error::invalid(format!(
        "a dead letter cannot be dead-lettered again: queue {queue:?} is a dead-letter queue; \
         ack it to delete it, or replay it (the delivery is still held)"
    ))
}
