//! Reading and moving stored messages, for operators' tools (`mqlite browse`, `export`,
//! `dlq list`, `move`, `copy`): every stored message of a queue in pages, with its delivery
//! state, and atomic moves and copies between queues that keep every header. Each call is one
//! engine request.

use crate::error::Result;
use crate::message::MessageId;
use crate::queue::Queue;

pub use crate::engine::{MessageState, StoredMessage, TransferFilter, TransferReport};

/// Whether `key` has the reserved form of the automatic dedup keys that client processes give
/// their sends (a leading control character, U+0001, then `mq`). No face stores such a key a
/// program gives (a send drops it; [`Message::get_dedup_key`](crate::Message::get_dedup_key)
/// hides them): tools restoring messages refuse it rather than drop it unseen.
pub fn is_reserved_dedup_key(key: &str) -> bool {
    crate::engine::is_resend_key(key)
}

/// Checks a queue name without creating the queue: 1–255 bytes of UTF-8, no NUL, no control
/// characters (the rule [`crate::Store::queue`] applies). Errors: `InvalidName`, naming it.
pub fn validate_queue_name(name: &str) -> Result<()> {
    crate::options::check_name(name)
}

impl Queue {
    /// Up to `max` stored messages with ids ≥ `from` — ready, delayed, prefetched and in flight — in id
    /// (send) order, without consuming them; reads only their records. Page through a queue by
    /// passing the last id + 1 as the next `from`.
    pub fn browse_stored(&self, from: MessageId, max: usize) -> Result<Vec<StoredMessage>> {
        self.engine.browse_stored(self.id, from, max)
    }

    /// Moves (or with `filter.copy`, copies) the messages of this queue a purge would take —
    /// ready, delayed, and prefetched by a consumer but not handed out (taken back from its
    /// buffer first, uncounted); never those in flight — to queue `filter.to`, lowest ids first. Each keeps its body, properties,
    /// headers (send time, expiry, deliver-at, priority, correlation id, group, dedup key,
    /// repeats) and dead-letter information, and gets a new id in the target; delivery counts
    /// start again at 0. Everything one call stores and removes is one journal record: a crash
    /// loses and doubles nothing.
    ///
    /// Errors: `InvalidName` for a bad target name, `InvalidArgument` if the target is this
    /// queue, `QueueFull` if the target's limits leave no room for all of them (then nothing is
    /// done), `NoSpace` if the disk is full (nothing done: the one record is refused whole),
    /// `Corrupt` if a stored record does not decode, `Closed`/`Poisoned`.
    pub fn transfer(&self, filter: &TransferFilter) -> Result<TransferReport> {
        self.engine.transfer(self.id, filter)
    }
}
