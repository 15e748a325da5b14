//! Topics: publish/subscribe (the JMS topic model beside the queues' point-to-point one).
//!
//! A **subscription** is a queue (named `$sub.<subscription>`) with a topic pattern and a
//! selector: everything a queue does (prefetch, acks, redelivery policy, dead-letter queue,
//! groups, priority, stats) it does with the queue code. A **publish** evaluates every
//! subscription's pattern (a [`TopicMatcher`] trie) and selector once, at publish time, and
//! writes one PUBLISH record: the body once, a reference per matching durable subscription, all
//! or nothing. Non-durable subscriptions are memory queues (JMS: they exist only while their
//! subscriber does): a publish copies the message into each matching one, and they are gone at
//! restart. A subscription's queue id is declared by its SUBSCRIBE record, which compaction
//! carries forward like a queue's declaration; the queue slot of a subscription that ended is
//! reused by the next one created after a reopen (never within one open, where a handle may
//! still name it).

use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, HashMap};

use super::batch::PendingSend;
use super::queue::{Entry, QueueState, MEM_SEG};
use super::record::{
    put_publish, put_queue, put_subscribe, put_unsubscribe, sub_flag, SendHeader, Subscribe,
};
use super::{Engine, QueueId, State};
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::options::{
    check_name_as, Durability, OverflowPolicy, QueueOptions, Resolved, StoreOptions,
};
use crate::selector::{
    check_topic_name, check_topic_pattern, Selector, SelectorInput, TopicMatcher,
};
use crate::Value;

/// The prefix of a subscription's queue name: `$sub.billing` is subscription `billing`'s queue.
/// A plain queue cannot take such a name.
pub(crate) const SUBSCRIPTION_PREFIX: &str = "$sub.";

/// The queue name of subscription `sub`.
pub(crate) fn queue_name(sub: &str) -> String {
    format!("{SUBSCRIPTION_PREFIX}{sub}")
}

/// Refuses to create a plain queue under a subscription's queue name.
pub(crate) fn refuse_subscription_queue(name: &str) -> Result<()> {
    match name.strip_prefix(SUBSCRIPTION_PREFIX) {
        Some(sub) => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "{name:?} names the queue of subscription {sub:?}, which does not exist; names \
                 starting with {SUBSCRIPTION_PREFIX:?} are reserved for subscriptions"
            ),
        )),
        None => Ok(()),
    }
}

/// What a subscriber asks for: [`crate::Store::subscribe`]'s options.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionOptions {
    /// The subscription's name (1–255 bytes of UTF-8, no control characters). Required for a
    /// durable or shared subscription, which is found again by it; a non-durable unshared
    /// subscription without one gets a unique name.
    pub name: Option<String>,
    /// Durable: keeps collecting messages while no subscriber is attached and across restarts,
    /// until [`crate::Store::unsubscribe`]. Non-durable: receives only while a handle to it is
    /// open, and is gone at restart (JMS).
    pub durable: bool,
    /// Shared: several handles may consume it at once, as competing consumers (JMS 2.0 shared
    /// subscription). An unshared subscription admits one handle at a time.
    pub shared: bool,
    /// A JMS message selector, evaluated when a message is published (see [`crate::selector`]);
    /// `None` or empty: every message.
    pub selector: Option<String>,
    /// The subscription queue's options (prefetch is the consumer's; redelivery policy,
    /// dead-letter strategy, limits, ack timeout). A non-durable subscription is always
    /// memory-only. A publish that would exceed a subscription's limits follows that
    /// subscription's overflow policy, as a send to a queue does: `reject` (the default) refuses
    /// the whole publish (`QueueFull`, nothing stored in any subscription), so one slow
    /// subscriber neither makes a publisher wait nor loses other subscribers' messages;
    /// `drop_oldest` dead-letters the subscription's oldest messages to make room (ActiveMQ's
    /// message eviction for slow topic consumers); `block` makes the publisher wait up to its
    /// timeout (ActiveMQ's producer flow control).
    pub queue: QueueOptions,
}

/// A subscription's SUBSCRIBE record, as recovery found it (and as an index checkpoint keeps
/// it).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct SubRecord {
    flags: u8,
    name: String,
    pattern: String,
    selector: String,
}

impl SubRecord {
    /// The name of the queue the record declares.
    pub fn queue_name(&self) -> String {
        queue_name(&self.name)
    }
}

impl From<&Subscribe<'_>> for SubRecord {
    fn from(s: &Subscribe<'_>) -> SubRecord {
        SubRecord {
            flags: s.flags,
            name: s.name.to_string(),
            pattern: s.pattern.to_string(),
            selector: s.selector.to_string(),
        }
    }
}

/// One subscription.
struct Sub {
    qid: u32,
    pattern: String,
    selector: Selector,
    durable: bool,
    shared: bool,
    /// Open handles (subscribers attached).
    handles: u32,
}

impl Sub {
    fn flags(&self) -> u8 {
        let mut f = 0;
        if self.durable {
            f |= sub_flag::DURABLE;
        }
        if self.shared {
            f |= sub_flag::SHARED;
        }
        f
    }
}

/// Counters of one topic since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicStats {
    /// Messages published that reached at least one subscription.
    pub published: u64,
    /// Messages published while no subscription matched them: stored nowhere (JMS topic
    /// semantics), counted here.
    pub unrouted: u64,
    /// Subscriptions whose pattern matches the topic now.
    pub subscriptions: u64,
}

/// One subscription, as listed by [`crate::Store::subscriptions`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SubscriptionInfo {
    /// Its name.
    pub name: String,
    /// Its topic pattern.
    pub pattern: String,
    /// Its selector text (empty: every message).
    pub selector: String,
    /// Whether it is durable.
    pub durable: bool,
    /// Whether it is shared.
    pub shared: bool,
    /// Handles open on it now.
    pub subscribers: u32,
    /// Its queue's name (`$sub.<name>`), where its dead letters say they come from.
    pub queue: String,
}

/// The topic side of the state.
#[derive(Default)]
pub(crate) struct Topics {
    subs: HashMap<String, Sub>,
    /// Subscription name by queue id.
    names: FxHashMap<u32, String>,
    matcher: TopicMatcher<u32>,
    /// Queue slots of ended subscriptions (carried as empty non-durable declarations).
    tombstones: FxHashSet<u32>,
    /// Tombstones free for a new subscription (found at open).
    free: Vec<u32>,
    counters: HashMap<String, TopicStats>,
    /// Matching subscriptions of the publish under way (reused: no allocation per publish).
    scratch: Vec<u32>,
    durable_scratch: Vec<u32>,
    next_anon: u64,
    /// The subscription whose lack of room refused the last publish, when its overflow policy
    /// can make room (`drop_oldest`, `block`): the engine applies the policy and publishes again.
    pub(super) full: Option<u32>,
}

/// A message being published, as its subscriptions' selectors see it: with the id and send time
/// it is about to be stored with (so `JMSMessageID` and `JMSTimestamp` select as they will read).
struct Publishing<'a> {
    msg: &'a Message,
    id: u64,
    timestamp: u64,
    expires_at: u64,
}

impl SelectorInput for Publishing<'_> {
    fn property_value(&self, name: &str) -> Option<&Value> {
        self.msg.property_value(name)
    }
    fn jms_priority(&self) -> u8 {
        self.msg.jms_priority()
    }
    fn jms_timestamp_ms(&self) -> u64 {
        self.timestamp
    }
    fn jms_correlation_id(&self) -> Option<&str> {
        self.msg.jms_correlation_id()
    }
    fn jms_message_id(&self) -> Option<MessageId> {
        Some(MessageId(self.id))
    }
    fn jms_persistent(&self) -> bool {
        true
    }
    fn jms_redelivered(&self) -> bool {
        false
    }
    fn jms_expiration_ms(&self) -> u64 {
        self.expires_at
    }
    fn jmsx_group_id(&self) -> Option<&str> {
        self.msg.jmsx_group_id()
    }
    fn jmsx_delivery_count(&self) -> u32 {
        0
    }
}

/// The outcome of appending a message: its id, whether a record went to the pending batch (the
/// caller waits for the commit), whether a memory queue got it (the caller wakes receivers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    pub id: u64,
    pub journaled: bool,
    pub in_memory: bool,
    /// How many queues hold the message: 1 for a queue send, the matching subscriptions for a
    /// publish (0: no subscription's pattern and selector matched, nothing was stored).
    pub reached: u32,
}

impl State {
    /// Recovery: the subscriptions of the SUBSCRIBE records still in force. Durable ones come
    /// back; non-durable ones and the slots of ended ones become free slots.
    pub fn restore_subscriptions(&mut self, recs: BTreeMap<u32, SubRecord>) -> Result<()> {
        for qid in 0..self.queues.len() as u32 {
            if !self.queues[qid as usize]
                .name
                .starts_with(SUBSCRIPTION_PREFIX)
            {
                continue;
            }
            match recs.get(&qid) {
                Some(r) if r.flags & sub_flag::DURABLE != 0 => {
                    let corrupt = |e: Error| {
                        Error::new(
                            ErrorKind::Corrupt,
                            format!(
                                "the stored subscription {:?} does not parse: {}",
                                r.name,
                                e.message()
                            ),
                        )
                    };
                    let selector = Selector::parse(&r.selector).map_err(corrupt)?;
                    self.topics
                        .matcher
                        .insert(&r.pattern, qid)
                        .map_err(corrupt)?;
                    self.topics.names.insert(qid, r.name.clone());
                    let sub = Sub {
                        qid,
                        pattern: r.pattern.clone(),
                        selector,
                        durable: true,
                        shared: r.flags & sub_flag::SHARED != 0,
                        handles: 0,
                    };
                    self.topics.subs.insert(r.name.clone(), sub);
                }
                _ => {
                    let name = std::mem::take(&mut self.queues[qid as usize].name);
                    self.by_name.remove(&name);
                    self.topics.tombstones.insert(qid);
                    self.topics.free.push(qid);
                }
            }
        }
        // Lowest slot first.
        self.topics.free.reverse();
        Ok(())
    }

    /// The declaration record of queue `qid` as [`State::put_declaration`] would write it:
    /// `Err(name)` for a QUEUE record, `Ok` for a SUBSCRIBE record (a subscription or an ended
    /// one's slot). An index checkpoint keeps it so that loading it declares what a replay would.
    pub fn declaration(&self, qid: u32) -> std::result::Result<SubRecord, String> {
        let t = &self.topics;
        if let Some((name, s)) = t.names.get(&qid).and_then(|n| Some((n, t.subs.get(n)?))) {
            Ok(SubRecord {
                flags: s.flags(),
                name: name.clone(),
                pattern: s.pattern.clone(),
                selector: s.selector.as_str().to_string(),
            })
        } else if t.tombstones.contains(&qid) {
            Ok(SubRecord::from(&tombstone(qid)))
        } else {
            Err(self.queues[qid as usize].name.clone())
        }
    }

    /// Appends the declaration of queue `qid` (compaction carries it forward): a SUBSCRIBE
    /// record for a subscription or an ended one's slot, else a QUEUE record.
    pub fn put_declaration(&mut self, qid: u32) {
        let at = self.pending.buf.len();
        let buf = &mut self.pending.buf;
        let t = &self.topics;
        if let Some(sub) = t.names.get(&qid).and_then(|n| Some((n, t.subs.get(n)?))) {
            let (name, s) = sub;
            let rec = Subscribe {
                qid,
                flags: s.flags(),
                name,
                pattern: &s.pattern,
                selector: s.selector.as_str(),
            };
            put_subscribe(buf, &rec);
        } else if t.tombstones.contains(&qid) {
            put_subscribe(buf, &tombstone(qid));
        } else {
            put_queue(buf, qid, &self.queues[qid as usize].name);
        }
        self.pending.decls.push((qid, at));
    }

    /// Subscribes (see [`SubscriptionOptions`]); returns the subscription's queue and name.
    fn subscribe(
        &mut self,
        o: &SubscriptionOptions,
        pattern: &str,
        mut opts: Resolved,
        store: &StoreOptions,
    ) -> Result<(u32, String)> {
        check_topic_pattern(pattern)?;
        let selector = Selector::parse(o.selector.as_deref().unwrap_or(""))?;
        if !o.durable {
            opts.durability = Durability::Memory;
        }
        let name = match &o.name {
            Some(n) => {
                check_name_as("subscription name", n)?;
                n.clone()
            }
            None if o.durable || o.shared => {
                return Err(Error::invalid(
                    "a durable or shared subscription needs a name, by which it is found again",
                ))
            }
            None => self.anonymous_name(),
        };
        if let Some(s) = self.topics.subs.get_mut(&name) {
            let same = s.pattern == pattern && s.selector == selector && s.durable == o.durable;
            if s.handles > 0 && !(same && s.shared && o.shared) {
                return Err(Error::invalid(format!(
                    "subscription {name:?} is in use by {} subscriber(s){}; JMS allows a second \
                     subscriber only on a shared subscription with the same pattern and selector",
                    s.handles,
                    if same {
                        ""
                    } else {
                        " with another pattern or selector"
                    }
                )));
            }
            if same {
                s.handles += 1;
                s.shared = o.shared;
                let qid = s.qid;
                self.queues[qid as usize].opts = opts;
                self.fail_crashed(qid, store)?;
                return Ok((qid, name));
            }
            // JMS: a durable subscription re-created with another topic or selector is the old
            // one deleted (with its messages) and a new one created.
            let qid = s.qid;
            self.end_subscription(&name);
            self.create_subscription(qid, &name, pattern, selector, o, opts)?;
            return Ok((qid, name));
        }
        let qid = match self.topics.free.pop() {
            Some(q) => q,
            None => self.queues.len() as u32,
        };
        self.create_subscription(qid, &name, pattern, selector, o, opts)?;
        Ok((qid, name))
    }

    /// A unique name for an unnamed non-durable subscription.
    fn anonymous_name(&mut self) -> String {
        loop {
            self.topics.next_anon += 1;
            let n = format!("~anonymous.{}", self.topics.next_anon);
            if !self.topics.subs.contains_key(&n) {
                return n;
            }
        }
    }

    /// Creates subscription `name` in queue slot `qid` (a new one, or a free one) with one
    /// handle, and appends its SUBSCRIBE record.
    fn create_subscription(
        &mut self,
        qid: u32,
        name: &str,
        pattern: &str,
        selector: Selector,
        o: &SubscriptionOptions,
        opts: Resolved,
    ) -> Result<()> {
        self.topics.matcher.insert(pattern, qid)?;
        let qname = queue_name(name);
        let mut q = QueueState::new(qid, qname.clone(), opts);
        if (qid as usize) < self.queues.len() {
            q.decl_seg = self.queues[qid as usize].decl_seg;
            self.queues[qid as usize] = q;
        } else {
            self.queues.push(q);
        }
        self.by_name.insert(qname, qid);
        self.topics.tombstones.remove(&qid);
        self.topics.names.insert(qid, name.to_string());
        let sub = Sub {
            qid,
            pattern: pattern.to_string(),
            selector,
            durable: o.durable,
            shared: o.shared,
            handles: 1,
        };
        self.topics.subs.insert(name.to_string(), sub);
        self.put_declaration(qid);
        self.pending.needs_sync = true;
        Ok(())
    }

    /// Ends subscription `name`: its messages go, an UNSUBSCRIBE record says so, and its queue
    /// slot stays as a tombstone (declared as an ended subscription).
    fn end_subscription(&mut self, name: &str) {
        let Some(s) = self.topics.subs.remove(name) else {
            return;
        };
        let qid = s.qid;
        self.topics.matcher.remove(&s.pattern, &qid);
        self.topics.names.remove(&qid);
        self.topics.tombstones.insert(qid);
        let q = &self.queues[qid as usize];
        let mut held: Vec<Entry> = Vec::new();
        q.for_each(|e, _| held.push(*e));
        for e in &held {
            self.live_dec(e);
        }
        // Its dedup entries (publishes' keys) go with it.
        let q = &mut self.queues[qid as usize];
        for (_, d) in q.dedup.drain() {
            self.space.dec_item(d.seg);
        }
        let q = &mut self.queues[qid as usize];
        self.by_name.remove(&q.name);
        let decl_seg = q.decl_seg;
        let mut fresh = QueueState::new(qid, String::new(), q.opts.clone());
        fresh.decl_seg = decl_seg;
        *q = fresh;
        self.consumers.retain(|_, c| c.qid != qid);
        put_unsubscribe(&mut self.pending.buf, qid);
        self.pending.needs_sync = true;
    }

    /// Appends a message published to `topic`: one PUBLISH record referenced by every matching
    /// durable subscription, a copy in every matching non-durable one. Nothing is stored when
    /// nothing matches (counted as unrouted).
    ///
    /// A message with a client's automatic dedup key (a producer id and sequence, see
    /// [`crate::remote`]) already held under that key by a subscription its topic matches is
    /// not stored again: its first id is returned. So a publish resent after its owner died is
    /// stored once. The key enters each subscription's dedup window (with its queue options'
    /// window), and recovery rebuilds those windows from the PUBLISH records' keys.
    pub fn publish_to(&mut self, topic: &str, msg: &Message, now: u64) -> Result<Appended> {
        self.check_publish_message(topic, msg)?;
        let key = msg.meta.dedup_key.as_deref();
        if let Some((id, reached)) = key.and_then(|k| self.published_under(topic, k, now)) {
            return Ok(Appended {
                id,
                journaled: false,
                in_memory: false,
                reached,
            });
        }
        let (h, due) = self.new_header(msg, now);
        let input = Publishing {
            msg,
            id: h.id,
            timestamp: h.timestamp,
            expires_at: h.expires_at,
        };
        let mut matched = std::mem::take(&mut self.topics.scratch);
        let mut durable = std::mem::take(&mut self.topics.durable_scratch);
        matched.clear();
        durable.clear();
        let t = &self.topics;
        t.matcher.for_each_match(topic, |&qid| {
            let sel = t.names.get(&qid).and_then(|n| t.subs.get(n));
            if sel.is_some_and(|s| s.selector.matches(&input)) {
                matched.push(qid);
            }
        });
        // A subscription matched by two of its patterns cannot happen (one pattern each), but
        // keep the reference list a set all the same.
        matched.sort_unstable();
        matched.dedup();
        let r = self.append_publish(topic, msg, h, due, &matched, &mut durable, now);
        self.topics.scratch = matched;
        self.topics.durable_scratch = durable;
        let appended = r?;
        let c = match self.topics.counters.get_mut(topic) {
            Some(c) => c,
            None => self.topics.counters.entry(topic.to_string()).or_default(),
        };
        if appended.journaled || appended.in_memory {
            c.published += 1;
        } else {
            c.unrouted += 1;
        }
        Ok(appended)
    }

    /// The id a publish with automatic dedup key `key` was stored under, if a subscription
    /// that `topic` matches still holds the key in its dedup window, and how many such
    /// subscriptions hold it.
    pub(super) fn published_under(
        &mut self,
        topic: &str,
        key: &str,
        now: u64,
    ) -> Option<(u64, u32)> {
        let mut matched = std::mem::take(&mut self.topics.scratch);
        matched.clear();
        self.topics
            .matcher
            .for_each_match(topic, |&qid| matched.push(qid));
        let mut found = None;
        let mut holders = 0u32;
        for &qid in &matched {
            self.prune_dedup(qid, now);
            if let Some(d) = self.queues[qid as usize].dedup.get(key) {
                found = found.or(Some(d.id));
                holders += 1;
            }
        }
        self.topics.scratch = matched;
        found.map(|id| (id, holders))
    }

    /// Stores a published message in the subscriptions `matched` (checked for room first: all
    /// or none).
    // Eight arguments: the parts of one publish, split from `publish` only to keep the scratch
    // vectors' take-and-give-back in one place.
    #[allow(clippy::too_many_arguments)]
    fn append_publish(
        &mut self,
        topic: &str,
        msg: &Message,
        h: SendHeader,
        due: u64,
        matched: &[u32],
        durable: &mut Vec<u32>,
        now: u64,
    ) -> Result<Appended> {
        // A full subscription that refuses (`reject`) is looked for first, then one that waits
        // (`block`), and one that drops (`drop_oldest`) last: a publish that fails has dropped
        // nothing for it, unless a wait timed out after another drop made room.
        let payload = super::send::payload_of(msg);
        let rank = |p: OverflowPolicy| match p {
            OverflowPolicy::Reject => 0,
            OverflowPolicy::Block { .. } => 1,
            OverflowPolicy::DropOldest => 2,
        };
        let full = matched
            .iter()
            .copied()
            .filter(|&qid| !self.has_room(qid, payload))
            .min_by_key(|&qid| rank(self.queues[qid as usize].opts.overflow));
        if let Some(qid) = full {
            let name = self.topics.names.get(&qid).cloned().unwrap_or_default();
            let policy = self.queues[qid as usize].opts.overflow;
            self.topics.full = (policy != OverflowPolicy::Reject).then_some(qid);
            return Err(Error::new(
                ErrorKind::QueueFull,
                format!("subscription {name:?} is full; the message was not published"),
            ));
        }
        let mut in_memory = false;
        let mut sync = false;
        for &qid in matched {
            let q = &self.queues[qid as usize];
            if q.opts.journaled() {
                sync |= q.opts.needs_sync();
                durable.push(qid);
                continue;
            }
            let mut rec = Vec::new();
            let len = put_publish(&mut rec, &[qid], topic, h, &msg.meta, &msg.body)?;
            let entry = self.entry_for(qid, msg, h.id, h.expires_at, len, 1);
            let q = &mut self.queues[qid as usize];
            q.mem.insert(h.id, rec);
            q.insert(entry, due, now);
            q.counters.enqueued += 1;
            if let Some(key) = &msg.meta.dedup_key {
                q.remember_dedup(key, h.id, now);
            }
            in_memory = true;
        }
        let reached = matched.len().min(u32::MAX as usize) as u32;
        if durable.is_empty() {
            return Ok(Appended {
                id: h.id,
                journaled: false,
                in_memory,
                reached,
            });
        }
        let start = self.pending.buf.len();
        let len = put_publish(
            &mut self.pending.buf,
            durable,
            topic,
            h,
            &msg.meta,
            &msg.body,
        )?;
        let refs = durable.len().min(u16::MAX as usize) as u16;
        for &qid in durable.iter() {
            let mut entry = self.entry_for(qid, msg, h.id, h.expires_at, len, refs);
            entry.seg = MEM_SEG;
            let q = &mut self.queues[qid as usize];
            q.pending_count += 1;
            q.pending_bytes += len as u64;
            let dedup_key = msg.meta.dedup_key.as_ref().map(|k| {
                q.remember_dedup(k, h.id, now);
                k.clone().into_boxed_str()
            });
            self.pending.sends.push(PendingSend {
                qid,
                rec_off: start,
                entry,
                due,
                relocate: false,
                replay: false,
                dedup_key,
            });
        }
        self.pending.needs_sync |= sync;
        Ok(Appended {
            id: h.id,
            journaled: true,
            in_memory,
            reached,
        })
    }

    /// Checks a message to publish to `topic`.
    fn check_publish_message(&self, topic: &str, msg: &Message) -> Result<()> {
        check_topic_name(topic)?;
        self.check_message(msg)?;
        // A client's automatic key (producer id and sequence) is the one dedup key a publish
        // carries: it makes a resend after an owner's death store nothing twice.
        let own_key = msg
            .meta
            .dedup_key
            .as_deref()
            .is_some_and(|k| !k.starts_with(crate::remote::AUTO_KEY_PREFIX));
        if own_key || msg.meta.repeat.is_some() {
            return Err(Error::invalid(
                "a message published to a topic cannot carry a dedup key or scheduled repeats \
                 (they are queue features)",
            ));
        }
        Ok(())
    }

    /// Checks a message to publish to `topic` (in a transaction) and returns the queues of the
    /// subscriptions whose pattern matches it: where it may be stored at commit.
    pub fn check_publish(&self, topic: &str, msg: &Message) -> Result<Vec<u32>> {
        self.check_publish_message(topic, msg)?;
        let mut v = Vec::new();
        self.topics.matcher.for_each_match(topic, |&q| v.push(q));
        Ok(v)
    }

    fn topic_stats(&self, topic: &str) -> TopicStats {
        let mut s = self.topics.counters.get(topic).copied().unwrap_or_default();
        s.subscriptions = 0;
        self.topics
            .matcher
            .for_each_match(topic, |_| s.subscriptions += 1);
        s
    }
}

/// The declaration of an ended subscription's queue slot.
fn tombstone(qid: u32) -> Subscribe<'static> {
    Subscribe {
        qid,
        flags: 0,
        name: "",
        pattern: "",
        selector: "",
    }
}

impl Engine {
    /// Subscribes to topics matching `pattern` (see [`SubscriptionOptions`]): creates the
    /// subscription, attaches to an existing one of the same name, or replaces one whose pattern
    /// or selector differs. Durable when it returns. Returns its queue and name.
    pub(crate) fn subscribe(
        &self,
        pattern: &str,
        o: &SubscriptionOptions,
    ) -> Result<(QueueId, String)> {
        o.queue.validate()?;
        let shared = &self.shared;
        if let Some(name) = &o.name {
            // The subscription's dead letters need a valid dead-letter queue name too.
            let queue = queue_name(name);
            let strategy = o
                .queue
                .dead_letter
                .as_ref()
                .unwrap_or(&shared.opts.dead_letter);
            strategy.check_for(&queue)?;
        }
        let mut g = shared.lock();
        g.check()?;
        let resolved = Resolved::new(&shared.opts, &o.queue);
        let (qid, name) = g.subscribe(o, pattern, resolved, &shared.opts)?;
        g = self.finish_moves(g)?;
        let _g = self.commit(g)?;
        Ok((QueueId(qid), name))
    }

    /// A subscriber detaches from the subscription of queue `q`: a non-durable subscription
    /// ends with its last subscriber (its messages with it).
    pub(crate) fn close_subscription(&self, q: QueueId) -> Result<()> {
        let mut g = self.shared.lock();
        if g.check().is_err() {
            // Closed (or poisoned): nothing more is written; a non-durable subscription is
            // gone with the process anyway.
            return Ok(());
        }
        let Some(name) = g.topics.names.get(&q.0).cloned() else {
            return Ok(());
        };
        let Some(s) = g.topics.subs.get_mut(&name) else {
            return Ok(());
        };
        s.handles = s.handles.saturating_sub(1);
        if s.handles == 0 && !s.durable {
            g.end_subscription(&name);
            let _g = self.commit(g)?;
        }
        Ok(())
    }

    /// Ends subscription `name` and every message it holds (JMS `unsubscribe`). Refused while a
    /// subscriber is attached, as JMS says.
    pub(crate) fn unsubscribe(&self, name: &str) -> Result<()> {
        let mut g = self.shared.lock();
        g.check()?;
        let Some(s) = g.topics.subs.get(name) else {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("no subscription named {name:?}"),
            ));
        };
        if s.handles > 0 {
            return Err(Error::invalid(format!(
                "subscription {name:?} has {} subscriber(s) attached; close them first (JMS)",
                s.handles
            )));
        }
        g.end_subscription(name);
        let _g = self.commit(g)?;
        Ok(())
    }

    /// Counters of topic `topic` since the store was opened.
    pub(crate) fn topic_stats(&self, topic: &str) -> Result<TopicStats> {
        check_topic_name(topic)?;
        let g = self.shared.lock();
        g.check()?;
        Ok(g.topic_stats(topic))
    }

    /// Every subscription, by name.
    pub(crate) fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        let g = self.shared.lock();
        let mut v: Vec<SubscriptionInfo> = g
            .topics
            .subs
            .iter()
            .map(|(name, s)| SubscriptionInfo {
                name: name.clone(),
                pattern: s.pattern.clone(),
                selector: s.selector.as_str().to_string(),
                durable: s.durable,
                shared: s.shared,
                subscribers: s.handles,
                queue: queue_name(name),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}
