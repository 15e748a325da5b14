//! Conformance: the semantics suites run once more, every call made through a client of the
//! store's owner (over the store's socket and the wire protocol) instead of in-process. The
//! suites are the same files as their in-process runs; `common::client_role()` sees this
//! binary's name and makes `Env::open` hand out clients (see `tests/common/mod.rs`).

// Each suite declares `mod common;` as it does in its own test binary: the helpers are compiled
// once per suite here, unchanged.
#![allow(clippy::duplicate_mod)]

#[path = "browse.rs"]
mod browse_suite;
#[path = "core.rs"]
mod core_suite;
#[path = "groups_txn.rs"]
mod groups_txn_suite;
#[path = "identity.rs"]
mod identity_suite;
#[path = "redelivery.rs"]
mod redelivery_suite;
#[path = "settle.rs"]
mod settle_suite;
#[path = "topics.rs"]
mod topics_suite;
