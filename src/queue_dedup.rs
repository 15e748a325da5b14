//! Read-only views of a queue's duplicate detection, for integrations that derive dedup keys
//! from another system's message identity (the bridges in `bindings/bridge` check that the
//! window covers a broker's redelivery horizon, and count the redeliveries it absorbs).

use std::time::Duration;

use crate::error::Result;
use crate::message::MessageId;
use crate::queue::Queue;

impl Queue {
    /// The queue's dedup window as resolved for this open: how long a dedup key is remembered
    /// after the send that stored it, and how many keys are remembered at most (the oldest are
    /// forgotten first). Set through [`crate::QueueOptions::dedup_window`] and
    /// [`crate::QueueOptions::dedup_window_count`]; defaults 10 minutes and 100,000.
    ///
    /// Errors: `Closed` once the store is closed.
    pub fn dedup_window(&self) -> Result<(Duration, usize)> {
        self.engine.dedup_window(self.id)
    }

    /// The id of the message stored under dedup key `key`, if the key is still inside the
    /// queue's dedup window — that is, whether a send with this key now would store nothing and
    /// return that id. Keys past the window are forgotten by this call, as a send would.
    ///
    /// Errors: `Closed` once the store is closed.
    pub fn dedup_lookup(&self, key: &str) -> Result<Option<MessageId>> {
        self.engine.dedup_lookup(self.id, key)
    }
}

#[cfg(test)]
mod tests {
    use crate::{ManualClock, Message, QueueOptions, Store, StoreOptions};
    use std::time::Duration;

    #[test]
    fn lookup_follows_the_window_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(1_000_000);
        let opts = || StoreOptions {
            clock: clock.clone(),
            ..StoreOptions::default()
        };
        let qopts = || QueueOptions {
            dedup_window: Some(Duration::from_secs(60)),
            dedup_window_count: Some(1000),
            ..QueueOptions::default()
        };
        let id = {
            let store = Store::open(dir.path(), opts()).unwrap();
            let q = store.queue_with("in", qopts()).unwrap();
            assert_eq!(q.dedup_window().unwrap(), (Duration::from_secs(60), 1000));
            assert_eq!(q.dedup_lookup("k").unwrap(), None);
            q.send(Message::new("a").dedup_key("k")).unwrap()
        };
        let store = Store::open(dir.path(), opts()).unwrap();
        let q = store.queue_with("in", qopts()).unwrap();
        assert_eq!(q.dedup_lookup("k").unwrap(), Some(id));
        clock.advance(Duration::from_secs(61));
        assert_eq!(q.dedup_lookup("k").unwrap(), None);
        store.close().unwrap();
        assert!(q.dedup_lookup("k").is_err());
    }
}
