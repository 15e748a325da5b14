//! Options for stores, queues and consumers, with their defaults and their validation.
//!
//! Every default lives in `src/defaults.rs` and every rule about what an option may be lives here,
//! once: the C and Python faces take both from the core (the C header carries the defaults as
//! `MQLITE_DEFAULT_*` constants), so a value means the same in every face.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::{Clock, SystemClock};
use crate::defaults::*;
use crate::error::{Error, ErrorKind, Result};
use crate::io::{RealFs, Vfs};
use crate::policy::RedeliveryPolicy;
use crate::remote::OpenAs;

/// When a send, ack or commit counts as done (the durability contract: see [`crate::docs::durability`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Durability {
    /// Returns (or fires its callback) only after the record is `fdatasync`'d. The default.
    Sync,
    /// Returns after `write(2)`; fsync at most `max_delay` later. A power failure may lose the
    /// last `max_delay`; a process crash loses nothing.
    Batched {
        /// The longest a written record waits for its fsync.
        max_delay: Duration,
    },
    /// Not persisted at all (JMS NON_PERSISTENT): gone on restart.
    Memory,
}

impl Durability {
    /// Batched durability with the default delay ([`DEFAULT_BATCHED_MAX_DELAY_MS`], 100 ms).
    pub fn batched() -> Self {
        Durability::Batched {
            max_delay: Duration::from_millis(DEFAULT_BATCHED_MAX_DELAY_MS),
        }
    }
}

/// What a send does when its queue is at its backlog limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OverflowPolicy {
    /// Wait up to `timeout` for room, then fail with `QueueFull`.
    Block {
        /// How long to wait.
        timeout: Duration,
    },
    /// Fail at once with `QueueFull`. The default.
    Reject,
    /// Dead-letter the oldest message (reason `overflow`) to make room.
    DropOldest,
}

impl OverflowPolicy {
    /// Block with the default timeout ([`DEFAULT_BLOCK_TIMEOUT_MS`], 30 s).
    pub fn block() -> Self {
        OverflowPolicy::Block {
            timeout: Duration::from_millis(DEFAULT_BLOCK_TIMEOUT_MS),
        }
    }
}

/// Where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterStrategy {
    /// One queue for the whole store, named `name` (default [`DEFAULT_DEAD_LETTER_QUEUE`], `DLQ`).
    Shared {
        /// The dead-letter queue's name.
        name: String,
    },
    /// `prefix` + the queue's name (default prefix [`DEFAULT_DEAD_LETTER_PREFIX`], `DLQ.`).
    Individual {
        /// The prefix.
        prefix: String,
    },
    /// Dropped (and counted in the queue's stats).
    Discard,
}

impl DeadLetterStrategy {
    /// The shared strategy with the default queue name `DLQ` (the default strategy).
    pub fn shared() -> Self {
        DeadLetterStrategy::Shared {
            name: DEFAULT_DEAD_LETTER_QUEUE.into(),
        }
    }

    /// The individual strategy with the default prefix `DLQ.`.
    pub fn individual() -> Self {
        DeadLetterStrategy::Individual {
            prefix: DEFAULT_DEAD_LETTER_PREFIX.into(),
        }
    }

    /// The name of the dead-letter queue of queue `queue` (`None`: discard).
    pub fn target(&self, queue: &str) -> Option<String> {
        match self {
            DeadLetterStrategy::Shared { name } => Some(name.clone()),
            DeadLetterStrategy::Individual { prefix } => Some(format!("{prefix}{queue}")),
            DeadLetterStrategy::Discard => None,
        }
    }

    /// Checks that the strategy can work for any queue: the shared queue's name is a valid
    /// queue name, and neither it nor the prefix names a subscription's queue (`$sub.…`,
    /// which only a subscription may create); an individual prefix is not empty (every queue
    /// would be its own dead-letter queue: see [`DeadLetterStrategy::check_for`]).
    ///
    /// Errors: `InvalidName` for a bad shared name; `InvalidArgument` for the others.
    pub fn validate(&self) -> Result<()> {
        let sub = crate::engine::SUBSCRIPTION_PREFIX;
        match self {
            DeadLetterStrategy::Shared { name } => {
                check_name(name)?;
                if name.starts_with(sub) {
                    return Err(Error::invalid(format!(
                        "dead-letter queue {name:?} names a subscription's queue ({sub}…): \
                         dead letters cannot go there"
                    )));
                }
                Ok(())
            }
            DeadLetterStrategy::Individual { prefix } if prefix.is_empty() => Err(Error::invalid(
                "an individual dead-letter strategy with an empty prefix makes every queue \
                     its own dead-letter queue (its failed messages would be discarded); give a \
                     prefix such as \"DLQ.\"",
            )),
            DeadLetterStrategy::Individual { prefix } if prefix.starts_with(sub) => {
                Err(Error::invalid(format!(
                    "dead-letter prefix {prefix:?} names subscriptions' queues ({sub}…): dead \
                     letters cannot go there"
                )))
            }
            DeadLetterStrategy::Individual { .. } | DeadLetterStrategy::Discard => Ok(()),
        }
    }

    /// Checks that the dead-letter queue this strategy gives queue `queue` has a valid name:
    /// `prefix` + a long queue name can pass the 255-byte limit, which would only show at the
    /// first failed message (its dead-lettering refused). A queue whose name starts with the
    /// prefix is taken for a dead-letter queue itself (it is opened to read dead letters) and
    /// is not checked.
    ///
    /// Errors: `InvalidArgument` naming the queue and the length its dead-letter queue's name
    /// would have.
    pub fn check_fits(&self, queue: &str) -> Result<()> {
        let DeadLetterStrategy::Individual { prefix } = self else {
            return Ok(());
        };
        if queue.starts_with(prefix.as_str()) {
            return Ok(());
        }
        let len = prefix.len() + queue.len();
        if len as u64 > MAX_NAME_BYTES {
            return Err(Error::invalid(format!(
                "queue {queue:?} cannot have an individual dead-letter queue: its name \
                 ({prefix:?} + the queue's name) would be {len} bytes, over the limit of \
                 {MAX_NAME_BYTES}; use a shorter name, a shorter prefix or a shared \
                 dead-letter queue"
            )));
        }
        Ok(())
    }

    /// Checks that queue `queue` given this strategy explicitly is not its own dead-letter
    /// queue. A dead-letter queue drops (counts as discarded) a message whose redeliveries run
    /// out in it and refuses `reject`, so a working queue that is its own dead-letter queue
    /// would lose every failed message. (A dead-letter queue opened with the store's strategy,
    /// which names it, is the normal way to read dead letters and is not refused.)
    ///
    /// Errors: `InvalidArgument` naming the queue.
    pub fn check_for(&self, queue: &str) -> Result<()> {
        self.check_fits(queue)?;
        if self.target(queue).as_deref() == Some(queue) {
            return Err(Error::invalid(format!(
                "queue {queue:?} cannot be its own dead-letter queue (its failed messages would \
                 be discarded, and its consumers could not reject): name another queue"
            )));
        }
        Ok(())
    }
}

impl Default for DeadLetterStrategy {
    fn default() -> Self {
        DeadLetterStrategy::shared()
    }
}

/// What happens to a message group when one of its messages fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum GroupFailurePolicy {
    /// Retry the failed message in place; the group waits. The default.
    #[default]
    Block,
    /// Dead-letter the failed message and go on with the group.
    Skip,
    /// Dead-letter the failed message and the rest of its group until replayed.
    Park,
}

/// When an `ack()` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AckDurability {
    /// `ack()` returns once the ack is queued for the next group commit, which follows within
    /// the commit interval (about a millisecond) without waiting for more traffic — as RabbitMQ
    /// consumer acks, JMS `DUPS_OK_ACKNOWLEDGE` or JetStream's plain ack. A crash before that
    /// commit delivers the message again with `redelivered = true`; nothing is lost. An ack is
    /// durable once `ack_sync()` or any later durable call of the same store returned. The
    /// default.
    #[default]
    Lazy,
    /// `ack()` returns only once the ack is fdatasync'd (what `ack_sync()` always does).
    Sync,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AckMode {
    /// Each delivery is settled on its own. The default.
    #[default]
    Explicit,
    /// Acking a delivery acks everything this consumer received before it (CLIENT_ACKNOWLEDGE).
    Cumulative,
    /// Acked on hand-over: at-most-once.
    Auto,
}

/// Options of one queue. Unset fields take the store's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct QueueOptions {
    /// Overrides the store's durability for this queue.
    pub durability: Option<Durability>,
    /// Most messages held (ready, delayed and in flight); `None` = unbounded.
    pub max_messages: Option<u64>,
    /// Most bytes held; `None` = unbounded. The queue counts the larger of (a) its messages'
    /// bodies and the headers their senders set (properties, correlation id, group, dedup key)
    /// as stored — each header's raw bytes plus its small length and type tags (a 1-byte group
    /// counts 9 bytes, one property of an 1-byte key and a 10-byte string value about 21) —
    /// not the fixed per-record header, and (b) [`MIN_COUNTED_BYTES`](crate::MIN_COUNTED_BYTES)
    /// (1 byte) per message, so that empty messages are bounded too: `max_bytes` 1000 holds
    /// 1000 empty messages (review r5 #15). A single message larger than the limit is still
    /// accepted into an empty queue. A message sent from a client process without a dedup key
    /// of its own carries its automatic resend key (at most 36 bytes, SPEC §10) as its dedup
    /// key, and it counts as one: the bytes the store really holds, on disk and in memory.
    pub max_bytes: Option<u64>,
    /// What a send (a batch, an async send, a transaction's send) does at the limit. Default
    /// [`OverflowPolicy::Reject`].
    pub overflow: Option<OverflowPolicy>,
    /// Overrides the store's redelivery policy.
    pub redelivery: Option<RedeliveryPolicy>,
    /// Overrides the store's dead-letter strategy.
    pub dead_letter: Option<DeadLetterStrategy>,
    /// Visibility timeout: a delivery not settled within it counts as failed. Default none.
    pub ack_timeout: Option<Duration>,
    /// Dead-letter expired messages (reason `expired`) rather than dropping them. Default true.
    pub process_expired: Option<bool>,
    /// How long a dedup key is remembered. Default 10 minutes.
    pub dedup_window: Option<Duration>,
    /// How many dedup keys are remembered at most. Default 100,000.
    pub dedup_window_count: Option<usize>,
    /// What happens to a group when one of its messages fails. Default `Block`.
    pub group_failure: Option<GroupFailurePolicy>,
    /// For a dead-letter queue: dead letters older than this are dropped (counted `expired`),
    /// on time, whether or not anyone receives. Default: kept. A letter's age counts from its
    /// dead-letter time ([`DeadLetterInfo::last_failure_ms`](crate::DeadLetterInfo)), and the
    /// queue's retention applies to the letters it already holds: declaring it, changing it
    /// (a shorter one expires at once the letters now past it; a longer one keeps them longer)
    /// or declaring it again after a reopen (queue options are not stored) sets the deadline of
    /// every letter held. A queue opened again without options keeps each letter's deadline as
    /// it was. Messages sent to the queue itself keep their own TTL. (issue 15, review r12 #8.)
    /// (Retention by count: `max_messages`/`max_bytes` with [`OverflowPolicy::DropOldest`],
    /// which discards the oldest dead letters, counted `discarded`; a dead-letter queue with
    /// limits and another overflow policy is `InvalidArgument` at declaration.)
    pub retention: Option<Duration>,
    /// How many messages a consumer of this queue (the plain `receive` of the queue included)
    /// takes at once with one durable delivery-count record, to hand them out one by one (JMS
    /// prefetch). Default 1,000 (ActiveMQ's); 0 and 1 mean no prefetch. Prefetched messages not
    /// yet handed out go back uncounted when their consumer closes, and a consumer that finds
    /// the queue empty takes them from another consumer's buffer. After a crash each prefetched
    /// message counts one failed delivery. Auto-ack consumers never prefetch.
    ///
    /// In a client process (SPEC §10: the store is owned by another process) a consumer in
    /// explicit ack mode, and the plain `receive` of one message, prefetch into their own
    /// process: the owner lends them the prefetched messages with the reply to one receive,
    /// and the next receives are served in the client without a round trip (protocol 8,
    /// issue 10, BENCHMARKS.md W10). The owner's stats count those `prefetched` until the
    /// client hands them out (then `in_flight`, with their ack timeout starting). They go back
    /// uncounted at the consumer's or the store's close, before a `release` or a batch or
    /// selective receive of that consumer, when the owner's clean close takes them back, and
    /// when a competing consumer of the queue waits with nothing ready (the owner recalls
    /// them; a purge does too). A client process killed holding them has each count one
    /// failed delivery, as a crashed prefetching consumer's.
    pub prefetch: Option<u32>,
    /// When `ack()` is durable. Default [`AckDurability::Lazy`].
    pub ack_durability: Option<AckDurability>,
}

impl QueueOptions {
    /// Checks every option that is set: `InvalidArgument` naming the first that cannot work.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.redelivery {
            p.validate()?;
        }
        if let Some(d) = &self.dead_letter {
            d.validate()?;
        }
        // Values that cannot work are refused here, once, for every face (a face that spells
        // "unbounded" or "off" as 0 maps it to `None` before this).
        if self.max_messages == Some(0) {
            return Err(Error::invalid(
                "max_messages 0 would refuse every message (unset it for no limit)",
            ));
        }
        if self
            .ack_timeout
            .is_some_and(|t| crate::clock::ms_ceil(t) == 0)
        {
            return Err(Error::invalid(
                "ack_timeout 0 would time out every delivery before it can be acked \
                 (unset it for no timeout)",
            ));
        }
        check_prefetch(self.prefetch)
    }

    /// Whether any option is set (a queue opened with none keeps the options it has).
    pub fn is_empty(&self) -> bool {
        let QueueOptions {
            durability,
            max_messages,
            max_bytes,
            overflow,
            redelivery,
            dead_letter,
            ack_timeout,
            process_expired,
            dedup_window,
            dedup_window_count,
            group_failure,
            retention,
            prefetch,
            ack_durability,
        } = self;
        durability.is_none()
            && max_messages.is_none()
            && max_bytes.is_none()
            && overflow.is_none()
            && redelivery.is_none()
            && dead_letter.is_none()
            && ack_timeout.is_none()
            && process_expired.is_none()
            && dedup_window.is_none()
            && dedup_window_count.is_none()
            && group_failure.is_none()
            && retention.is_none()
            && prefetch.is_none()
            && ack_durability.is_none()
    }
}

/// Options of a store. A process that opens the store as a client (see
/// [`Store::role`](crate::Store::role)) uses its owner's `durability`, `redelivery`,
/// `dead_letter`, `max_body_bytes`, `segment_bytes` and `compact_below` (what it gives for
/// them has no effect), refuses `clock` and `repair` (`InvalidArgument`), and applies its own
/// producer window, `create`, `open_as` and `connect_timeout`.
#[derive(Clone)]
pub struct StoreOptions {
    /// Default durability of every queue. Default [`Durability::Sync`].
    pub durability: Durability,
    /// Default redelivery policy.
    pub redelivery: RedeliveryPolicy,
    /// Default dead-letter strategy.
    pub dead_letter: DeadLetterStrategy,
    /// Largest body accepted, at most [`MAX_BODY_BYTES`]. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Size of a journal segment, [`MIN_SEGMENT_BYTES`]..=[`MAX_SEGMENT_BYTES`]. Default 64 MiB.
    pub segment_bytes: u64,
    /// Most bytes of async sends not yet completed, across the store. Default 64 MiB.
    pub max_pending_bytes: usize,
    /// Most async sends not yet completed. Default 1,000,000.
    pub max_pending_messages: usize,
    /// When the producer window is full: block (`true`, the default) or fail with `QueueFull`.
    pub block_when_window_full: bool,
    /// Quarantine damaged journal ranges instead of failing with `Corrupt`. Default false. Only
    /// an owner recovers: an open that becomes a client refuses it (`InvalidArgument`).
    pub repair: bool,
    /// Create the directory if missing. Default true.
    pub create: bool,
    /// The clock every timer reads. Default the system clock. A client runs on its owner's
    /// clock: an open that becomes a client refuses any other (`InvalidArgument`).
    pub clock: Arc<dyn Clock>,
    /// The file layer (tests inject faults through it).
    pub vfs: Arc<dyn Vfs>,
    /// Compact the oldest segment when its live data is below this fraction (0–1). Default 0.25.
    pub compact_below: f64,
    /// Which roles `open` may take when several processes open the store: owner or client
    /// ([`OpenAs::Any`], the default), owner only, or client only.
    pub open_as: OpenAs,
    /// How long a client waits for an owner to serve: at open, and after its owner went away
    /// (while another process takes over and recovers). Default 30 s; then `OwnerLost`. At
    /// least [`MIN_CONNECT_TIMEOUT_MS`] (10 ms), else `InvalidArgument`.
    pub connect_timeout: Duration,
    /// Open the store only to read it (default false): for a store this process cannot or must
    /// not write — on a read-only file system, a snapshot, a directory of another user — as
    /// `mqlite verify` reads one. Such an open takes no lock, joins no owner and writes nothing
    /// in the directory: recovery runs in memory (a torn tail is cut off there, not on disk),
    /// and every call that would change the store (send, receive, settle, purge, replay,
    /// transfer, compact, subscribe, a queue not in the store) fails with
    /// [`ReadOnly`](crate::ErrorKind::ReadOnly). `create` is ignored (nothing is created);
    /// so is `vfs`: the store's real files are read.
    /// If a live owner holds the store (see [`Store::read_only_owner`](crate::Store)), what
    /// this open shows is the durable state as it read it, which that owner may since have
    /// changed. `InvalidArgument` with `repair` (a repair writes) or with
    /// [`OpenAs::Client`] (a client reads through an owner, which may write).
    pub read_only: bool,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreOptions")
            .field("durability", &self.durability)
            .field("redelivery", &self.redelivery)
            .field("dead_letter", &self.dead_letter)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("segment_bytes", &self.segment_bytes)
            .field("repair", &self.repair)
            .field("read_only", &self.read_only)
            .finish_non_exhaustive()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Sync,
            redelivery: RedeliveryPolicy::default(),
            dead_letter: DeadLetterStrategy::default(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES as usize,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES as usize,
            max_pending_messages: DEFAULT_MAX_PENDING_MESSAGES as usize,
            block_when_window_full: true,
            repair: false,
            create: true,
            clock: Arc::new(SystemClock),
            vfs: Arc::new(RealFs),
            compact_below: DEFAULT_COMPACT_BELOW,
            open_as: OpenAs::Any,
            connect_timeout: Duration::from_millis(DEFAULT_CONNECT_TIMEOUT_MS),
            read_only: false,
        }
    }
}

impl StoreOptions {
    /// Checks every option: `InvalidArgument` naming the first that cannot work. `Store::open`
    /// calls it before it touches the directory.
    pub fn validate(&self) -> Result<()> {
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return Err(Error::invalid(format!(
                "segment_bytes {} is outside {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES} \
                 (offsets inside a segment are 32-bit)",
                self.segment_bytes
            )));
        }
        if self.max_body_bytes as u64 > MAX_BODY_BYTES {
            return Err(Error::invalid(format!(
                "max_body_bytes {} is over the limit of {MAX_BODY_BYTES} (a record's length is 32-bit)",
                self.max_body_bytes
            )));
        }
        if !(0.0..=1.0).contains(&self.compact_below) {
            return Err(Error::invalid(format!(
                "compact_below {} is not a fraction between 0 and 1",
                self.compact_below
            )));
        }
        if self.max_pending_messages == 0 || self.max_pending_bytes == 0 {
            return Err(Error::invalid(format!(
                "the producer window of async sends must admit at least one message and one \
                 byte (max_pending_messages {}, max_pending_bytes {}): a zero window would \
                 block every send_async for good",
                self.max_pending_messages, self.max_pending_bytes
            )));
        }
        if self.read_only && self.repair {
            return Err(Error::invalid(
                "read_only with repair: a repair rewrites the journal; open without read_only \
                 on a writable copy to repair it",
            ));
        }
        if self.read_only && self.open_as == OpenAs::Client {
            return Err(Error::invalid(
                "read_only with open_as Client: a read-only open reads the store's files \
                 itself, it is nobody's client",
            ));
        }
        if self.connect_timeout < Duration::from_millis(MIN_CONNECT_TIMEOUT_MS) {
            return Err(Error::invalid(format!(
                "connect_timeout {:?} is below the minimum of {MIN_CONNECT_TIMEOUT_MS} ms: a client \
                 could never hear a healthy owner, whose answer may wait for a group commit's \
                 fdatasync",
                self.connect_timeout
            )));
        }
        self.redelivery.validate()?;
        self.dead_letter.validate()
    }
}

/// Options of a consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerOptions {
    /// How its deliveries are acknowledged.
    pub ack_mode: AckMode,
    /// Its prefetch (see [`QueueOptions::prefetch`]); `None` takes the queue's.
    pub prefetch: Option<u32>,
}

impl ConsumerOptions {
    /// Checks the options: `InvalidArgument` naming the first that cannot work.
    pub fn validate(&self) -> Result<()> {
        check_prefetch(self.prefetch)
    }
}

/// A prefetch is at most [`MAX_PREFETCH`].
fn check_prefetch(p: Option<u32>) -> Result<()> {
    match p {
        Some(p) if p as u64 > MAX_PREFETCH => Err(Error::invalid(format!(
            "prefetch {p} is over the limit of {MAX_PREFETCH} messages"
        ))),
        _ => Ok(()),
    }
}

/// Validates a message priority: 0–9, as JMS's JMSPriority (higher is delivered first).
pub(crate) fn check_priority(priority: u8) -> Result<()> {
    if priority > MAX_PRIORITY {
        return Err(Error::invalid(format!(
            "priority {priority} is out of range 0–{MAX_PRIORITY}"
        )));
    }
    Ok(())
}

/// Validates a queue name: 1–255 bytes of UTF-8 without control characters (names never
/// become paths, so anything else is allowed).
pub(crate) fn check_name(name: &str) -> Result<()> {
    check_name_as("queue name", name)
}

/// The rules every name in a store follows (queues, topics, patterns, subscriptions): 1–255
/// bytes of UTF-8 without control characters. `what` names the kind in the error.
pub(crate) fn check_name_as(what: &str, name: &str) -> Result<()> {
    if name.is_empty() || name.len() as u64 > MAX_NAME_BYTES {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{what} must be 1–{MAX_NAME_BYTES} bytes of UTF-8, got {} bytes",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(Error::new(
            ErrorKind::InvalidName,
            format!(
                "{what} {name:?} holds the control character U+{:04X}",
                c as u32
            ),
        ));
    }
    Ok(())
}

/// A queue's options with the store's defaults filled in.
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
    pub prefetch: usize,
    pub ack_durability: AckDurability,
}

impl Resolved {
    pub fn new(store: &StoreOptions, q: &QueueOptions) -> Self {
        let ms = crate::clock::ms_ceil;
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
            ack_timeout_ms: q.ack_timeout.map(ms),
            process_expired: q.process_expired.unwrap_or(true),
            dedup_window_ms: q.dedup_window.map(ms).unwrap_or(DEFAULT_DEDUP_WINDOW_MS),
            dedup_count: q
                .dedup_window_count
                .unwrap_or(DEFAULT_DEDUP_WINDOW_COUNT as usize),
            group_failure: q.group_failure.unwrap_or_default(),
            retention_ms: q.retention.map(ms),
            prefetch: q.prefetch.map_or(DEFAULT_PREFETCH as usize, |p| p as usize),
            ack_durability: q.ack_durability.unwrap_or_default(),
        }
    }

    /// Whether the queue's records go to the journal (every durability but memory).
    pub fn journaled(&self) -> bool {
        !matches!(self.durability, Durability::Memory)
    }

    /// Whether the queue's records must be fdatasync'd before their call returns.
    pub fn needs_sync(&self) -> bool {
        matches!(self.durability, Durability::Sync)
    }

    /// The batched-durability delay, if the queue is batched.
    pub fn batched_delay(&self) -> Option<Duration> {
        match self.durability {
            Durability::Batched { max_delay } => Some(max_delay),
            _ => None,
        }
    }
}
