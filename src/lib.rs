//! # mqlite — SQLite for reliable messaging
//!
//! An embedded, durable message queue. Open a store directory and get persistent queues with
//! no broker to run: sends that return once the message is on disk, async sends whose callback
//! fires once it is durable (or fails — never silently), consumers that ack, nack or reject, a
//! redelivery policy with backoff, and dead-letter queues that say why each message died.
//!
//! ```
//! use mqlite::{Store, StoreOptions, Message};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let orders = store.queue("orders").unwrap();
//! orders.send(Message::new("order #1").property("customer", 42i64)).unwrap();
//!
//! let d = orders.receive(Some(Duration::from_secs(1))).unwrap().expect("a message");
//! assert_eq!(d.body(), b"order #1");
//! d.ack().unwrap(); // durable: it will not be delivered again
//! ```
//!
//! Data flows face (Rust / C / Python) → [`Store`] / [`Queue`] → the engine (one request per
//! operation; state, group commit) → journal → file layer ([`io`]). The durability contract:
//! with [`Durability::Sync`] (the default) a send, ack or commit returns only after its journal
//! record is `fdatasync`'d; everything pending at that moment shares one write and one
//! fdatasync (group commit). The pages of [`docs`] hold the whole contract, the semantics and
//! the test catalogue.
//!
//! ## Cargo features
//! - `capi` (default): the C ABI (`libmqlite.so` / `.a`, `include/mqlite.h`). Turn it off
//!   (`default-features = false`) to link mqlite into a program that exports no `mqlite_*`
//!   symbols, as the Python extension does.
#![deny(missing_docs)]

// The integration tests' fault-injecting file layer is shared with the journal's unit tests,
// and names the crate `mqlite`.
#[cfg(test)]
extern crate self as mqlite;

pub mod clock;
mod compact;
mod defaults;
mod delivery;
pub mod docs;
mod engine;
mod error;
mod inspect;
pub mod io;
pub mod journal;
mod message;
mod options;
pub mod policy;
mod queue;
mod queue_dedup;
pub mod remote;
pub mod selector;
mod store;
mod topic;
mod txn;
pub mod verify;
// The C ABI (libmqlite.so / .a, include/mqlite.h).
#[cfg(feature = "capi")]
mod ffi;

pub use clock::{Clock, ManualClock, SystemClock};
pub use compact::CompactReport;
pub use defaults::{
    DEFAULT_BACKOFF_MULTIPLIER, DEFAULT_BATCHED_MAX_DELAY_MS, DEFAULT_BLOCK_TIMEOUT_MS,
    DEFAULT_COMPACT_BELOW, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_DEAD_LETTER_PREFIX,
    DEFAULT_DEAD_LETTER_QUEUE, DEFAULT_DEDUP_WINDOW_COUNT, DEFAULT_DEDUP_WINDOW_MS,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_PENDING_BYTES, DEFAULT_MAX_PENDING_MESSAGES,
    DEFAULT_MAX_REDELIVERIES, DEFAULT_PREFETCH, DEFAULT_PRIORITY, DEFAULT_REDELIVERY_DELAY_MS,
    DEFAULT_SEGMENT_BYTES, LAZY_ACK_INTERVAL_MS, MAX_BODY_BYTES, MAX_NAME_BYTES, MAX_PREFETCH,
    MAX_PRIORITY, MAX_SEGMENT_BYTES, MIN_CONNECT_TIMEOUT_MS, MIN_COUNTED_BYTES, MIN_SEGMENT_BYTES,
    PREFETCH_MAX_BYTES,
};
pub use delivery::{truncate_reason, Consumer, Delivery, Listener, REASON_ELLIPSIS};
pub use engine::record;
pub use engine::record::MAX_REASON_BYTES;
pub use engine::CommitStats;
pub use error::{Error, ErrorKind, Result};
pub use inspect::{
    is_reserved_dedup_key, validate_queue_name, MessageState, StoredMessage, TransferFilter,
    TransferReport,
};
pub use journal::{Missing, RecoveryReport};
pub use message::{DeadLetterInfo, DeadLetterReason, Message, MessageId, Value};
pub use options::{
    AckDurability, AckMode, ConsumerOptions, DeadLetterStrategy, Durability, GroupFailurePolicy,
    OverflowPolicy, QueueOptions, StoreOptions,
};
pub use policy::RedeliveryPolicy;
pub use queue::{PurgeFilter, PurgeReport, Queue, QueueStats, ReplayFilter};
pub use remote::{OpenAs, Role};
pub use store::Store;
pub use topic::{
    Published, Subscription, SubscriptionInfo, SubscriptionOptions, Topic, TopicStats,
};
pub use txn::Transaction;
pub use verify::{verify, Problem, SegmentInfo, VerifyReport};
