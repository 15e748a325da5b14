//! Look-ups for the owner's server (`src/remote`): whether a resent request already took effect.

use super::{Engine, QueueId};
use crate::message::MessageId;

impl Engine {
    /// The message stored under dedup key `key` in queue `q`, while the key is remembered (the
    /// queue's dedup window). A client whose owner died asks this to learn whether its
    /// transaction was committed.
    pub(crate) fn dedup_lookup(&self, q: QueueId, key: &str) -> Option<MessageId> {
        let g = self.shared.lock();
        let queue = g.queues.get(q.0 as usize)?;
        queue.dedup.get(key).map(|d| MessageId(d.id))
    }

}
