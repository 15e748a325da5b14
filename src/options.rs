//! Options for stores, queues and consumers.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::io::{RealFs, Vfs};
use crate::policy::RedeliveryPolicy;

/// When a send, ack or commit counts as done (SPEC §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// What a send does when its queue is at its backlog limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Where dead letters go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterStrategy {
    /// One queue for the whole store, named `name` (default `DLQ`).
    Shared {
        /// The dead-letter queue's name.
        name: String,
    },
    /// `prefix` + the queue's name (default prefix `DLQ.`).
    Individual {
        /// The prefix.
        prefix: String,
    },
    /// Dropped (and counted in the queue's stats).
    Discard,
}

impl Default for DeadLetterStrategy {
    fn default() -> Self {
        DeadLetterStrategy::Shared { name: "DLQ".into() }
    }
}

/// What happens to a message group when one of its messages fails (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupFailurePolicy {
    /// Retry the failed message in place; the group waits. The default.
    #[default]
    Block,
    /// Dead-letter the failed message and go on with the group.
    Skip,
    /// Dead-letter the failed message and the rest of its group until replayed.
    Park,
}

/// How deliveries are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
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
#[derive(Debug, Clone, Default)]
pub struct QueueOptions {
    /// Overrides the store's durability for this queue.
    pub durability: Option<Durability>,
    /// Most messages held (ready, delayed and in flight); `None` = unbounded.
    pub max_messages: Option<u64>,
    /// Most body bytes held; `None` = unbounded.
    pub max_bytes: Option<u64>,
    /// What a send does at the limit. Default [`OverflowPolicy::Reject`].
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
    /// For a dead-letter queue: dead letters older than this are dropped. Default: kept.
    /// (Retention by count: `max_messages` with [`OverflowPolicy::DropOldest`].)
    pub retention: Option<Duration>,
}

/// Options of a store.
#[derive(Clone)]
pub struct StoreOptions {
    /// Default durability of every queue. Default [`Durability::Sync`].
    pub durability: Durability,
    /// Default redelivery policy.
    pub redelivery: RedeliveryPolicy,
    /// Default dead-letter strategy.
    pub dead_letter: DeadLetterStrategy,
    /// Largest body accepted. Default 16 MiB.
    pub max_body_bytes: usize,
    /// Size of a journal segment. Default 64 MiB.
    pub segment_bytes: u64,
    /// Most bytes of async sends not yet completed, across the store. Default 64 MiB.
    pub max_pending_bytes: usize,
    /// Most async sends not yet completed. Default 1,000,000.
    pub max_pending_messages: usize,
    /// When the producer window is full: block (`true`, the default) or fail with `QueueFull`.
    pub block_when_window_full: bool,
    /// Quarantine damaged journal ranges instead of failing with `Corrupt`. Default false.
    pub repair: bool,
    /// Create the directory if missing. Default true.
    pub create: bool,
    /// The clock every timer reads.
    pub clock: Arc<dyn Clock>,
    /// The file layer (tests inject faults through it).
    pub vfs: Arc<dyn Vfs>,
    /// Compact the oldest segment when its live data is below this fraction. Default 0.25.
    pub compact_below: f64,
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
            .finish_non_exhaustive()
    }
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Sync,
            redelivery: RedeliveryPolicy::default(),
            dead_letter: DeadLetterStrategy::default(),
            max_body_bytes: 16 << 20,
            segment_bytes: 64 << 20,
            max_pending_bytes: 64 << 20,
            max_pending_messages: 1_000_000,
            block_when_window_full: true,
            repair: false,
            create: true,
            clock: Arc::new(SystemClock),
            vfs: Arc::new(RealFs),
            compact_below: 0.25,
        }
    }
}

/// Options of a consumer.
#[derive(Debug, Clone, Default)]
pub struct ConsumerOptions {
    /// How its deliveries are acknowledged.
    pub ack_mode: AckMode,
}
