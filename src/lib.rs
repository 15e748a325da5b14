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
//! Data flows face (Rust / C / Python) → [`Store`] / [`Queue`] → journal → file layer ([`io`]).
//! The durability contract: with [`Durability::Sync`] (the default) a send, ack or commit returns
//! only after its journal record is `fdatasync`'d; everything pending at that moment shares one
//! write and one fdatasync (group commit).
#![deny(missing_docs)]

pub mod clock;
mod compact;
mod delivery;
mod error;
mod inspect;
pub mod io;
pub mod journal;
mod message;
mod options;
pub mod policy;
mod queue;
mod queue_dedup;
mod replay;
pub mod selector;
mod state;
mod store;
mod txn;
// The C ABI (libmqlite.so / .a, include/mqlite.h).
mod ffi;

pub use clock::{Clock, ManualClock, SystemClock};
pub use compact::CompactReport;
pub use delivery::{Consumer, Delivery, Listener};
pub use error::{Error, ErrorKind, Result};
pub use inspect::{
    validate_queue_name, MessageState, StoredMessage, TransferFilter, TransferReport,
};
pub use journal::verify::{verify, Problem, SegmentInfo, VerifyReport};
pub use journal::RecoveryReport;
pub use message::{DeadLetterInfo, DeadLetterReason, Message, MessageId, Value, DEFAULT_PRIORITY};
pub use options::{
    AckMode, ConsumerOptions, DeadLetterStrategy, Durability, GroupFailurePolicy, OverflowPolicy,
    QueueOptions, StoreOptions,
};
pub use policy::RedeliveryPolicy;
pub use queue::{Queue, QueueStats};
pub use replay::ReplayFilter;
pub use store::Store;
pub use txn::Transaction;
