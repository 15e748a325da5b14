//! Every default and every limit of mqlite's options, written once (their validation is in
//! `options`).
//!
//! The core's option types take their defaults from here; `build.rs` includes this file and
//! writes each constant into `include/mqlite.h` as `MQLITE_<NAME>` (so the C face shows the same
//! values), and the Python face reads them from the core. Keep it plain constants: `build.rs`
//! compiles it on its own.

/// Declares the constants and [`c_defines`], the table `build.rs` writes into the C header.
macro_rules! constants {
    ($($(#[doc = $doc:literal])+ pub const $name:ident: $t:ty = $v:expr;)+) => {
        $($(#[doc = $doc])+ pub const $name: $t = $v;)+

        /// Every constant as (name, C literal, doc) for `include/mqlite.h`.
        #[allow(dead_code)]
        pub(crate) fn c_defines() -> Vec<(&'static str, String, &'static str)> {
            vec![$((stringify!($name), CLiteral::c_literal(&$name), concat!($($doc, "\n"),+))),+]
        }
    };
}

/// How a constant is written in C.
#[allow(dead_code)]
pub(crate) trait CLiteral {
    /// The C literal.
    fn c_literal(&self) -> String;
}

impl CLiteral for u64 {
    fn c_literal(&self) -> String {
        format!("{self}ULL")
    }
}

impl CLiteral for i32 {
    fn c_literal(&self) -> String {
        format!("{self}")
    }
}

impl CLiteral for u8 {
    fn c_literal(&self) -> String {
        format!("{self}")
    }
}

impl CLiteral for f64 {
    fn c_literal(&self) -> String {
        format!("{self:?}")
    }
}

impl CLiteral for &str {
    fn c_literal(&self) -> String {
        format!("{self:?}")
    }
}

constants! {
    /// Largest message body accepted by default, in bytes (16 MiB).
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 << 20;
    /// The largest `max_body_bytes` a store accepts, in bytes (2 GiB): a record's length and its
    /// offset inside a segment are 32-bit, and an oversized record gets a segment of its own.
    pub const MAX_BODY_BYTES: u64 = 2 << 30;
    /// Size of a journal segment by default, in bytes (64 MiB).
    pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;
    /// The smallest `segment_bytes` a store accepts (4 KiB).
    pub const MIN_SEGMENT_BYTES: u64 = 4 << 10;
    /// The largest `segment_bytes` a store accepts (4 GiB): offsets inside a segment are 32-bit.
    pub const MAX_SEGMENT_BYTES: u64 = 4 << 30;
    /// The least a held message counts toward its queue's `max_bytes`, in bytes: the queue
    /// counts the larger of its messages' body and header bytes and this many bytes per
    /// message, so that empty messages are bounded too: a queue never holds more messages
    /// than its `max_bytes` (review r5 #15).
    pub const MIN_COUNTED_BYTES: u64 = 1;
    /// Most bytes of async sends not yet completed, across the store, by default (64 MiB).
    pub const DEFAULT_MAX_PENDING_BYTES: u64 = 64 << 20;
    /// Most async sends not yet completed, across the store, by default.
    pub const DEFAULT_MAX_PENDING_MESSAGES: u64 = 1_000_000;
    /// The longest a written record waits for its fdatasync under batched durability when no
    /// delay is given, in ms.
    pub const DEFAULT_BATCHED_MAX_DELAY_MS: u64 = 100;
    /// How long a send waits for room in a full queue with the `block` overflow policy when no
    /// timeout is given, in ms.
    pub const DEFAULT_BLOCK_TIMEOUT_MS: u64 = 30_000;
    /// How long a dedup key is remembered by default, in ms (10 minutes).
    pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 600_000;
    /// How many dedup keys a queue remembers at most by default.
    pub const DEFAULT_DEDUP_WINDOW_COUNT: u64 = 100_000;
    /// Redeliveries before a message is dead-lettered, by default (ActiveMQ's 6: the 7th failure
    /// dead-letters). −1 means unlimited, 0 that the first failure dead-letters.
    pub const DEFAULT_MAX_REDELIVERIES: i32 = 6;
    /// Delay before the first redelivery, and before each later one without backoff, by
    /// default, in ms (ActiveMQ's 1 s).
    pub const DEFAULT_REDELIVERY_DELAY_MS: u64 = 1_000;
    /// The exponential backoff factor by default (ActiveMQ's 5).
    pub const DEFAULT_BACKOFF_MULTIPLIER: f64 = 5.0;
    /// A message's priority when none is set (JMS's 4); priorities are 0–9, higher first.
    pub const DEFAULT_PRIORITY: u8 = 4;
    /// The highest priority.
    pub const MAX_PRIORITY: u8 = 9;
    /// How many messages a consumer takes at once with one durable delivery-count record and
    /// then hands out one by one, by default (JMS prefetch; ActiveMQ's queue default of 1000).
    /// 0 and 1 both mean no prefetch.
    pub const DEFAULT_PREFETCH: u64 = 1_000;
    /// The largest prefetch accepted.
    pub const MAX_PREFETCH: u64 = 1 << 20;
    /// Most record bytes one prefetch takes beyond what the receive asked for (4 MiB), so a
    /// prefetch of large messages stays bounded in memory.
    pub const PREFETCH_MAX_BYTES: u64 = 4 << 20;
    /// The commit interval of lazy acks, in ms: a lazy ack is written and fdatasync'd at most
    /// this long after `ack()` returned, with no further traffic needed.
    pub const LAZY_ACK_INTERVAL_MS: u64 = 1;
    /// Compact the oldest segment when its live data falls below this fraction, by default.
    pub const DEFAULT_COMPACT_BELOW: f64 = 0.25;
    /// The name of the store's one dead-letter queue with the shared strategy, by default.
    pub const DEFAULT_DEAD_LETTER_QUEUE: &str = "DLQ";
    /// The prefix put before a queue's name with the individual dead-letter strategy, by default.
    pub const DEFAULT_DEAD_LETTER_PREFIX: &str = "DLQ.";
    /// The longest queue name, in bytes of UTF-8.
    pub const MAX_NAME_BYTES: u64 = 255;
    /// How long a client process waits for a store's owner to serve, by default, in ms: at open
    /// and while another process takes over after the owner went away (30 s).
    pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 30_000;
    /// The least connect timeout, in ms (10): an owner's answer can wait for a group commit's
    /// fdatasync (milliseconds on a slow disk), so a shorter wait would take a healthy owner
    /// for a hung one.
    pub const MIN_CONNECT_TIMEOUT_MS: u64 = 10;
}
