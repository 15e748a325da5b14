//! Messages: a body, properties and headers.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::defaults::DEFAULT_PRIORITY;
use crate::error::{Error, Result};

/// A store-unique, monotonic message id. Its stable string form is `ID:<decimal>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ID:{}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        s.strip_prefix("ID:")
            .and_then(|n| n.parse().ok())
            .map(MessageId)
            .ok_or_else(|| {
                Error::invalid(format!("not a message id: {s:?} (expected ID:<number>)"))
            })
    }
}

/// A property value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// UTF-8 text.
    Str(String),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// Raw bytes.
    Bytes(Vec<u8>),
}

macro_rules! value_from {
    ($($t:ty => $v:ident $(as $cast:ty)?),*) => {$(
        impl From<$t> for Value {
            fn from(x: $t) -> Self { Value::$v((x $(as $cast)?).into()) }
        }
    )*};
}
value_from!(String => Str, &str => Str, i64 => Int, i32 => Int as i64, u32 => Int as i64,
    f64 => Float, bool => Bool, Vec<u8> => Bytes, &[u8] => Bytes);

/// Why a message was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DeadLetterReason {
    /// It failed more than `max_redeliveries` times.
    MaxRedeliveries,
    /// A consumer rejected it as poison.
    Rejected,
    /// Its time to live ran out before it was delivered.
    Expired,
    /// It was the oldest message of a full queue with the `drop_oldest` overflow policy.
    Overflow,
    /// Its message group was parked (group failure policy `park`) after another message of the
    /// group failed; replaying the group's dead letters unparks it.
    GroupParked,
}

impl DeadLetterReason {
    /// Every reason.
    pub const ALL: [DeadLetterReason; 5] = [
        DeadLetterReason::MaxRedeliveries,
        DeadLetterReason::Rejected,
        DeadLetterReason::Expired,
        DeadLetterReason::Overflow,
        DeadLetterReason::GroupParked,
    ];

    /// The stable name: `max_redeliveries`, `rejected`, `expired`, `overflow` or `group_parked`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::MaxRedeliveries => "max_redeliveries",
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::Overflow => "overflow",
            DeadLetterReason::GroupParked => "group_parked",
        }
    }
}

impl FromStr for DeadLetterReason {
    type Err = Error;
    /// The reason named by its stable name ([`DeadLetterReason::as_str`]).
    fn from_str(s: &str) -> Result<Self> {
        DeadLetterReason::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<String> = DeadLetterReason::ALL
                    .iter()
                    .map(|r| format!("{:?}", r.as_str()))
                    .collect();
                Error::invalid(format!(
                    "reason must be one of {}, not {s:?}",
                    names.join(", ")
                ))
            })
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a dead letter says about why it died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetterInfo {
    /// The queue it was sent to.
    pub original_queue: String,
    /// Its id in that queue.
    pub original_id: MessageId,
    /// Why it was dead-lettered.
    pub reason: DeadLetterReason,
    /// The last failure text given to `nack` or `reject` (empty if none).
    pub last_failure: String,
    /// How many times it had been delivered.
    pub delivery_count: u32,
    /// When it first failed (ms since the epoch; 0 if it never failed, e.g. expired).
    pub first_failure_ms: u64,
    /// When it last failed, or was dead-lettered (ms since the epoch).
    pub last_failure_ms: u64,
}

/// Headers that travel with the body, stored on disk beside it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub properties: Vec<(String, Value)>,
    pub correlation_id: Option<String>,
    pub group: Option<String>,
    pub dedup_key: Option<String>,
    pub dead_letter: Option<DeadLetterInfo>,
    pub repeat: Option<(u64, u32)>,
    /// The topic it was published to (JMSDestination of a topic message). Last, so that a meta
    /// written before topics existed (format version 1) decodes as [`MetaV1`].
    pub topic: Option<String>,
}

/// The meta of format version 1 (no topic): read compatibly.
#[derive(Deserialize)]
pub(crate) struct MetaV1 {
    pub properties: Vec<(String, Value)>,
    pub correlation_id: Option<String>,
    pub group: Option<String>,
    pub dedup_key: Option<String>,
    pub dead_letter: Option<DeadLetterInfo>,
    pub repeat: Option<(u64, u32)>,
}

impl From<MetaV1> for Meta {
    fn from(m: MetaV1) -> Meta {
        Meta {
            properties: m.properties,
            correlation_id: m.correlation_id,
            group: m.group,
            dedup_key: m.dedup_key,
            dead_letter: m.dead_letter,
            repeat: m.repeat,
            topic: None,
        }
    }
}

/// A message: what is sent, and what a delivery carries.
///
/// ```
/// use mqlite::Message;
/// use std::time::Duration;
/// let m = Message::new("hello").property("kind", "greeting").priority(7).ttl(Duration::from_secs(60));
/// assert_eq!(m.body(), b"hello");
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub(crate) body: Vec<u8>,
    pub(crate) meta: Meta,
    pub(crate) priority: u8,
    pub(crate) ttl_ms: Option<u64>,
    pub(crate) delay_ms: Option<u64>,
    pub(crate) deliver_at_ms: Option<u64>,
    pub(crate) id: Option<MessageId>,
    pub(crate) timestamp_ms: u64,
    pub(crate) expires_at_ms: u64,
    /// Send keeps `timestamp_ms` and `expires_at_ms` as they are (see [`Message::restore_times`]).
    pub(crate) keep_times: bool,
    /// Where a browsed message was in its queue, and its delivery count (`None` otherwise).
    pub(crate) browsed: Option<(crate::engine::MessageState, u32)>,
    /// Key → position in `meta.properties`, derived from it (not stored, not compared).
    #[serde(skip)]
    pub(crate) prop_index: PropIndex,
}

/// Properties from which [`Message::set_property`] keeps a key index: below, a scan of a few
/// keys is cheaper than hashing (and allocates nothing).
const INDEX_FROM: usize = 16;

/// The key index of a message's properties, so that setting N properties costs O(N) in all
/// (issue 15 F2: a linear search per set made it quadratic). It covers the first `covers`
/// properties; when that is not all of them (fewer than [`INDEX_FROM`] so far, or a decode put
/// the properties in place) the next set rebuilds it once. `meta.properties` changes only
/// through `set_property` or by a decode into a fresh message, so a full index stays true.
#[derive(Debug, Clone, Default)]
pub(crate) struct PropIndex {
    map: std::collections::HashMap<String, usize>,
    covers: usize,
}

impl PartialEq for PropIndex {
    /// Derived from the properties, which [`Message`]'s equality compares.
    fn eq(&self, _: &PropIndex) -> bool {
        true
    }
}

impl Message {
    /// A message with `body` and default headers (priority 4, no TTL, no delay).
    pub fn new(body: impl Into<Vec<u8>>) -> Self {
        Message {
            body: body.into(),
            meta: Meta::default(),
            priority: DEFAULT_PRIORITY,
            ttl_ms: None,
            delay_ms: None,
            deliver_at_ms: None,
            id: None,
            timestamp_ms: 0,
            expires_at_ms: 0,
            keep_times: false,
            browsed: None,
            prop_index: PropIndex::default(),
        }
    }

    /// Sets a property (replacing one of the same key).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.set_property(key, value);
        self
    }

    /// Sets a property in place. A key set again keeps its first position and takes the last
    /// value (JMS `setObjectProperty`); new keys go last. Amortised O(1) per call: a message
    /// with N properties is built in O(N).
    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        let props = &mut self.meta.properties;
        if props.len() < INDEX_FROM {
            match props.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => props.push((key, value)),
            }
            return;
        }
        let idx = &mut self.prop_index;
        if idx.covers != props.len() {
            idx.map.clear();
            idx.map.reserve(props.len());
            for (i, (k, _)) in props.iter().enumerate() {
                // First occurrence wins, as the scan in `get_property` finds it.
                idx.map.entry(k.clone()).or_insert(i);
            }
            idx.covers = props.len();
        }
        match idx.map.get(&key) {
            Some(&i) => props[i].1 = value,
            None => {
                idx.map.insert(key.clone(), props.len());
                props.push((key, value));
                idx.covers += 1;
            }
        }
    }

    /// Priority 0–9, higher first (FIFO within a priority). Values above 9 are rejected at send.
    pub fn priority(mut self, p: u8) -> Self {
        self.priority = p;
        self
    }

    /// Time to live: a message not delivered within `ttl` of its send expires and is never
    /// delivered (it is dead-lettered as expired). A `ttl` of zero means the message never
    /// expires, as JMS's `Message.setJMSExpiration` / a producer's time to live of 0; it
    /// clears an earlier `ttl`.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl_ms = (!ttl.is_zero()).then(|| crate::clock::ms_ceil(ttl));
        self
    }

    /// Delivery delay: the message becomes available `delay` after its send.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay_ms = Some(crate::clock::ms_ceil(delay));
        self
    }

    /// Deliver-at time, in ms since the epoch (by the store's clock).
    pub fn deliver_at_ms(mut self, at_ms: u64) -> Self {
        self.deliver_at_ms = Some(at_ms);
        self
    }

    /// Group key (JMSXGroupID): same-key messages are delivered in order, one at a time.
    pub fn group(mut self, key: impl Into<String>) -> Self {
        self.meta.group = Some(key.into());
        self
    }

    /// Dedup key: a second send with the same key within the queue's dedup window stores nothing
    /// and returns the first message's id. Keys beginning with U+0001 `mq` are the form of the
    /// automatic resend keys of client processes (SPEC §10, kept in a window of their own): a
    /// message with such a key is sent as one without a key.
    pub fn dedup_key(mut self, key: impl Into<String>) -> Self {
        self.meta.dedup_key = Some(key.into());
        self
    }

    /// Scheduled repeats (ActiveMQ's AMQ_SCHEDULED_PERIOD / AMQ_SCHEDULED_REPEAT): after its first
    /// delivery time the message is delivered `repeats` more times, `period` apart (rounded up
    /// to whole ms, at least 1 ms), each occurrence a new message with its own id. The store's
    /// timer makes each occurrence when the previous one becomes due, whether or not anyone
    /// receives: occurrences nobody consumes wait in the queue like any message (a TTL counts
    /// from each occurrence's own slot). An occurrence made more than 1 s late (the store was
    /// closed, or the clock jumped) is a misfire, as Quartz's "fire once now": it is delivered
    /// once and the next is due on the first slot after now, the skipped slots using up their
    /// repeats; less late, the schedule catches up slot by slot. A received occurrence whose next one was made reports no repeats
    /// ([`Message::get_repeat`]): the rest of the schedule is the next occurrence's.
    /// Rule: `mqlite::docs::semantics` ("Time"), engine `timers` module.
    pub fn repeat(mut self, period: Duration, repeats: u32) -> Self {
        self.meta.repeat = (repeats > 0).then_some((crate::clock::ms_ceil(period).max(1), repeats));
        self
    }

    /// The scheduled repeats left: (period in ms, repeats).
    pub fn get_repeat(&self) -> Option<(u64, u32)> {
        self.meta.repeat
    }

    /// Correlation id.
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.meta.correlation_id = Some(id.into());
        self
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// A property by key.
    pub fn get_property(&self, key: &str) -> Option<&Value> {
        let props = &self.meta.properties;
        let idx = &self.prop_index;
        if idx.covers == props.len() && !idx.map.is_empty() {
            return idx.map.get(key).map(|&i| &props[i].1);
        }
        props.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// All properties, in the order they were set.
    pub fn properties(&self) -> &[(String, Value)] {
        &self.meta.properties
    }

    /// The priority.
    pub fn get_priority(&self) -> u8 {
        self.priority
    }

    /// The correlation id.
    pub fn get_correlation_id(&self) -> Option<&str> {
        self.meta.correlation_id.as_deref()
    }

    /// The group key.
    pub fn get_group(&self) -> Option<&str> {
        self.meta.group.as_deref()
    }

    /// The dedup key (none for a message sent by a client process without one: the key it
    /// got automatically, to store a resent message once, is not the program's).
    pub fn get_dedup_key(&self) -> Option<&str> {
        self.meta
            .dedup_key
            .as_deref()
            .filter(|k| !k.starts_with(crate::remote::AUTO_KEY_PREFIX))
    }

    /// The id (set on stored and delivered messages).
    pub fn id(&self) -> Option<MessageId> {
        self.id
    }

    /// When it was sent (ms since the epoch, by the store's clock; 0 before it is sent).
    pub fn timestamp_ms(&self) -> u64 {
        self.timestamp_ms
    }

    /// When it expires (ms since the epoch), 0 if never.
    pub fn expires_at_ms(&self) -> u64 {
        self.expires_at_ms
    }

    /// Why it died, on a message read from a dead-letter queue.
    pub fn dead_letter_info(&self) -> Option<&DeadLetterInfo> {
        self.meta.dead_letter.as_ref()
    }

    /// The topic it was published to, on a message received from a subscription (or a dead
    /// letter of one); `None` for a message sent to a queue.
    pub fn topic(&self) -> Option<&str> {
        self.meta.topic.as_deref()
    }
}

impl DeadLetterInfo {
    /// The subscription it died in, when it was received from a subscription (its
    /// `original_queue` is then the subscription's queue, named `$sub.<subscription>`).
    pub fn subscription(&self) -> Option<&str> {
        self.original_queue
            .strip_prefix(crate::engine::SUBSCRIPTION_PREFIX)
    }
}

// ---- What browse tells about a message.
impl Message {
    /// For a message returned by [`crate::Queue::browse`]: where it was in its queue — ready,
    /// delayed (waiting for its delivery time), redelivery wait (waiting out a redelivery delay
    /// after a failed delivery) or in flight (handed to a consumer, not yet settled). `None`
    /// for any other message.
    pub fn state(&self) -> Option<crate::engine::MessageState> {
        self.browsed.map(|(s, _)| s)
    }

    /// For a message returned by [`crate::Queue::browse`]: how many times it has been
    /// delivered (the delivery in progress included while it is in flight), as
    /// `Delivery::delivery_count` counts. 0 for a message never delivered and for any message
    /// not returned by browse.
    pub fn delivery_count(&self) -> u32 {
        self.browsed.map_or(0, |(_, n)| n)
    }
}

// ---- Restoring exported messages (`mqlite import`, backup tools): additive API.
impl Message {
    /// Makes a send store this message with the given send time and expiry (ms since the
    /// epoch; `expires_at_ms` 0 = never) instead of "now" and now + TTL: for restoring a message
    /// exported from a store with its original headers. Any [`ttl`](Message::ttl) is ignored.
    /// A past expiry makes the message expire at once (dead-lettered with reason `expired`,
    /// as any expired message). A dedup key is remembered from the moment of the send, and
    /// after a reopen (as every dedup key) from the stored send time.
    pub fn restore_times(mut self, timestamp_ms: u64, expires_at_ms: u64) -> Self {
        self.timestamp_ms = timestamp_ms;
        self.expires_at_ms = expires_at_ms;
        self.keep_times = true;
        self
    }

    /// Sets the dead-letter information, for restoring an exported dead letter: the message is
    /// then a dead letter like any other (listed, and moved back by [`crate::Queue::replay`]).
    /// Its `original_queue` must follow the queue-name rule ([`crate::validate_queue_name`]):
    /// a send of the message fails with `InvalidName` otherwise.
    pub fn restore_dead_letter_info(mut self, info: DeadLetterInfo) -> Self {
        self.meta.dead_letter = Some(info);
        self
    }

    /// Sets the topic the message was published to, for restoring an exported message of a
    /// subscription (or a dead letter of one): [`Message::topic`] then reads it as on the
    /// original. Sent to a subscription's queue (`$sub.<name>`), it is stored there as the
    /// published message was; nothing is published. The text should follow the topic-name rule
    /// ([`crate::selector::check_topic_name`]); it is stored as given (`mqlite import` checks it).
    pub fn restore_topic(mut self, topic: impl Into<String>) -> Self {
        self.meta.topic = Some(topic.into());
        self
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Self {
        Message::new(b)
    }
}
impl From<&[u8]> for Message {
    fn from(b: &[u8]) -> Self {
        Message::new(b)
    }
}
impl From<&str> for Message {
    fn from(b: &str) -> Self {
        Message::new(b)
    }
}
impl From<String> for Message {
    fn from(b: String) -> Self {
        Message::new(b)
    }
}
impl<const N: usize> From<&[u8; N]> for Message {
    fn from(b: &[u8; N]) -> Self {
        Message::new(&b[..])
    }
}

#[cfg(test)]
mod prop_tests {
    use super::*;

    /// Issue 15 F2: setting N properties is O(N) — past a few keys every set goes through a
    /// key index covering all of them (no scan of the earlier keys), and JMS semantics hold: a
    /// key set twice keeps its first position and the last value.
    #[test]
    fn many_properties_are_indexed_and_a_repeated_key_keeps_its_place() {
        const N: usize = 100_000;
        let mut m = Message::new("x");
        for i in 0..N {
            m.set_property(format!("k{i}"), i as i64);
            assert!(
                i < INDEX_FROM || m.prop_index.covers == i + 1,
                "the index stopped covering the properties at {i}"
            );
        }
        assert_eq!(m.prop_index.map.len(), N);
        m.set_property("k7", "again");
        m.set_property("k99999", -1i64);
        assert_eq!(m.properties().len(), N);
        assert_eq!(m.properties()[7], ("k7".into(), Value::from("again")));
        assert_eq!(m.get_property("k99999"), Some(&Value::Int(-1)));
        assert_eq!(m.get_property("k500"), Some(&Value::Int(500)));
        assert_eq!(m.get_property("missing"), None);
        // Few properties: a plain scan, nothing allocated for an index.
        let small = Message::new("y").property("a", 1i64).property("a", 2i64);
        assert!(small.prop_index.map.is_empty());
        assert_eq!(small.properties(), &[("a".to_string(), Value::Int(2))]);
    }

    /// Properties put in place by a decode (no index yet) are indexed on the next set, which
    /// then replaces, not duplicates, a key already there.
    #[test]
    fn a_set_after_properties_were_put_in_place_rebuilds_the_index() {
        let mut m = Message::new("x");
        m.meta.properties = (0..40).map(|i| (format!("k{i}"), Value::Int(i))).collect();
        m.set_property("k3", 0i64);
        assert_eq!(m.properties().len(), 40);
        assert_eq!(m.get_property("k3"), Some(&Value::Int(0)));
        m.set_property("new", 1i64);
        assert_eq!(m.properties().len(), 41);
        assert_eq!(m.prop_index.covers, 41);
    }
}
