//! Topic and subscription handles: publish/subscribe (JMS topics). Every method is one engine
//! request.
//!
//! ```
//! use mqlite::{Message, Store, StoreOptions, SubscriptionOptions};
//! # let dir = tempfile::tempdir().unwrap();
//! let store = Store::open(dir.path(), StoreOptions::default()).unwrap();
//! let billing = store
//!     .subscribe(
//!         "orders.*.created",
//!         SubscriptionOptions {
//!             name: Some("billing".into()),
//!             durable: true,
//!             selector: Some("amount > 100 AND region = 'eu'".into()),
//!             ..Default::default()
//!         },
//!     )
//!     .unwrap();
//! let orders = store.topic("orders.eu.created").unwrap();
//! orders.publish(Message::new("big").property("amount", 150i64).property("region", "eu")).unwrap();
//! orders.publish(Message::new("small").property("amount", 5i64).property("region", "eu")).unwrap();
//! let d = billing.receive(Some(std::time::Duration::ZERO)).unwrap().expect("the big order");
//! assert_eq!(d.message().body(), b"big");
//! assert_eq!(d.message().topic(), Some("orders.eu.created"));
//! d.ack().unwrap();
//! assert!(billing.receive(Some(std::time::Duration::ZERO)).unwrap().is_none());
//! ```

use std::future::Future;
use std::ops::Deref;
use std::sync::Arc;

use crate::engine::Dest;
use crate::error::{Error, ErrorKind, Result};
use crate::message::{Message, MessageId};
use crate::queue::Queue;
use crate::remote::backend::Backend;
use crate::selector::check_topic_name;

pub use crate::engine::{SubscriptionInfo, SubscriptionOptions, TopicStats};

/// A handle to one topic of a [`crate::Store`]: publishes to every subscription whose pattern
/// and selector match. Cheap to clone; usable from any thread. A topic is no stored object: a
/// handle is only its checked name.
#[derive(Clone)]
pub struct Topic {
    engine: Backend,
    name: Arc<str>,
}

impl std::fmt::Debug for Topic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.name).finish()
    }
}

impl Topic {
    pub(crate) fn new(engine: Backend, name: &str) -> Result<Topic> {
        check_topic_name(name)?;
        Ok(Topic {
            engine,
            name: name.into(),
        })
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn engine(&self) -> &Backend {
        &self.engine
    }

    /// Publishes `msg` to every matching subscription (patterns and selectors evaluated now)
    /// and waits until it is durable in the durable ones. The body is stored once, with one
    /// reference per matching subscription, in one journal record: all of them get it or none.
    /// Returns its id, the same in every subscription (`JMSMessageID`). When no subscription
    /// matches, nothing is stored and [`TopicStats::unrouted`] counts it.
    ///
    /// Errors: `InvalidArgument` for a message with a dedup key or repeats (queue features) or
    /// over the body limit; `QueueFull` naming a subscription at its limit whose overflow
    /// policy is `reject` (nothing is stored), or whose `block` wait timed out. A subscription
    /// with `drop_oldest` dead-letters its oldest messages to make room, as a queue does;
    /// a `reject` subscription is looked at first, so a refused publish dropped nothing;
    /// `Closed`, `Poisoned`, `NoSpace` as for a send.
    pub fn publish(&self, msg: impl Into<Message>) -> Result<MessageId> {
        self.engine.send(Dest::Topic(&self.name), msg.into())
    }

    /// [`Topic::publish`], also saying whether the message reached a subscription: its id and
    /// how many subscriptions' patterns and selectors matched it (0: nothing was stored, as
    /// JMS drops a topic message nobody subscribes to). The count is the publish's own outcome,
    /// evaluated by the store's owner when this process is its client; a publish resent to a new
    /// owner (see [`crate::OpenAs`]) reports the subscriptions that hold it.
    ///
    /// Errors: as [`Topic::publish`].
    pub fn publish_routed(&self, msg: impl Into<Message>) -> Result<Published> {
        let (id, subscriptions) = self.engine.publish(&self.name, msg.into())?;
        Ok(Published { id, subscriptions })
    }

    /// Publishes many messages with one lock, one record batch and one wait. If one is refused
    /// the ones before it are still published and the error names its index.
    pub fn publish_batch<M: Into<Message>>(
        &self,
        msgs: impl IntoIterator<Item = M>,
    ) -> Result<Vec<MessageId>> {
        self.engine
            .send_batch(Dest::Topic(&self.name), msgs.into_iter().map(Into::into))
    }

    /// Publishes without waiting: `callback` runs exactly once, on a library thread, with the
    /// id once the message is durable (or at once when no durable subscription matched), or
    /// with the error if it never will be. If `publish_async` itself returns an error, the
    /// callback is dropped without being called.
    pub fn publish_async<F>(&self, msg: impl Into<Message>, callback: F) -> Result<()>
    where
        F: FnOnce(Result<MessageId>) + Send + 'static,
    {
        self.publish_async_with(msg.into(), crate::engine::Callback::boxed(callback))
    }

    /// [`publish_async`](Topic::publish_async) with a callback already made (the C face's,
    /// which allocates nothing per publish).
    pub(crate) fn publish_async_with(
        &self,
        msg: Message,
        callback: crate::engine::Callback,
    ) -> Result<()> {
        self.engine
            .send_async(Dest::Topic(&self.name), msg, callback)
    }

    /// Publishes and returns a future that resolves once the message is durable.
    pub fn publish_future(
        &self,
        msg: impl Into<Message>,
    ) -> impl Future<Output = Result<MessageId>> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let started = self.publish_async(msg, move |r| {
            let _ = tx.send(r);
        });
        async move {
            started?;
            rx.await
                .map_err(|_| Error::new(ErrorKind::Internal, "the completion was dropped"))?
        }
    }

    /// The topic's counters since the store was opened, and how many subscriptions match it.
    pub fn stats(&self) -> Result<TopicStats> {
        self.engine.topic_stats(&self.name)
    }
}

/// The outcome of one publish ([`Topic::publish_routed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's id (`JMSMessageID`), the same in every subscription that holds it.
    pub id: MessageId,
    /// How many subscriptions stored it; 0 when none matched and nothing was stored.
    pub subscriptions: u32,
}

/// A subscriber's handle to a subscription: a [`Queue`] (it dereferences to one: `receive`,
/// `consumer`, `browse`, `stats`, acks, nack/reject/release, redelivery and dead letters all
/// work as on a queue) that detaches when dropped or [closed](Subscription::close). A
/// non-durable subscription ends when its last handle detaches. Keep the handle while its
/// consumers run: a consumer does not keep a non-durable subscription alive.
pub struct Subscription {
    queue: Queue,
    name: String,
    attached: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .finish()
    }
}

impl Subscription {
    pub(crate) fn new(queue: Queue, name: String) -> Subscription {
        Subscription {
            queue,
            name,
            attached: true,
        }
    }

    /// The subscription's name (given, or made up for an unnamed non-durable one). Its queue's
    /// name, [`Queue::name`], is `$sub.<name>`.
    pub fn subscription_name(&self) -> &str {
        &self.name
    }

    /// The subscription's queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Detaches this subscriber (as dropping it does, but reporting errors); a non-durable
    /// subscription whose last subscriber this was ends, with its messages.
    pub fn close(mut self) -> Result<()> {
        self.attached = false;
        self.queue.engine.close_subscription(self.queue.id)
    }
}

impl Deref for Subscription {
    type Target = Queue;
    fn deref(&self) -> &Queue {
        &self.queue
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.attached {
            let _ = self.queue.engine.close_subscription(self.queue.id);
        }
    }
}
