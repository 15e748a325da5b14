//! What the forwarding loops ([`crate::engine`]) ask of a broker: a [`Sink`] for outbound
//! routes, a [`Source`] for inbound ones, and how a failure is sorted ([`Failure`]).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use mqlite::Message;

/// Why a publish (or a connection) did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The broker (or the mapping) refused this message: nack it under the redelivery policy.
    Refused(String),
    /// The connection is lost or the broker is not ready: give the message back and reconnect.
    Transient(String),
    /// What the route names is missing (a RabbitMQ exchange deleted under it, no JetStream
    /// stream capturing the subject): the message is not at fault, so it is given back, and
    /// the route sets up again after the backoff — where connect finds a missing target and
    /// reports it — without counting a lost connection.
    Target(String),
    /// The broker is up and the target exists, but it has no room for this message now (a
    /// JetStream stream at its limits with `discard: new`, a RabbitMQ queue at its
    /// `x-max-length` with `reject-publish`): the message is given back and the route pauses
    /// receiving with backoff, staying connected — neither a lost connection nor the
    /// message's fault (review r3 #32).
    Full(String),
}

/// What a broker's confirm said about an accepted publish.
pub(crate) struct Confirmed {
    /// The broker recognised the message id as one it already stored.
    pub duplicate: bool,
}

/// A pending broker confirm.
pub(crate) type Confirm = Pin<Box<dyn Future<Output = Result<Confirmed, Failure>> + Send>>;

/// A broker as the target of an outbound route.
pub(crate) trait Sink: Send + 'static {
    /// Connects (or checks that the connection is usable). `Refused` when the broker answers
    /// but the route's target is missing (an exchange): logged as an error every attempt and
    /// retried with backoff, since it may be created later; `Transient` when it is not
    /// reachable.
    fn connect(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Publishes `msg` under the broker-side id `id`; the returned future is its confirm.
    fn publish(
        &mut self,
        msg: &Message,
        id: &str,
    ) -> impl Future<Output = Result<Confirm, Failure>> + Send;
    /// Drops the connection after a transient failure.
    fn disconnect(&mut self);
    /// Whether the connection is usable now (checked between publishes, so that an outage
    /// while the route is idle is noticed and counted as a reconnect): `Transient` when it is
    /// lost, `Target` when the broker closed only the channel over a missing target.
    fn health(&self) -> Result<(), Failure>;
    /// How long a publish, and then its confirm, may take before the connection is presumed
    /// lost (the broker's `ack_timeout`).
    fn ack_timeout(&self) -> Duration;
    /// A confirm did not come within the `ack_timeout`: what explains it, if the broker can
    /// tell (a JetStream stream deleted under the route swallows the publishes it had not
    /// stored: `Target`, review r9 #5); `None` when nothing does, and the connection is
    /// presumed lost.
    fn explain_timeout(&mut self) -> impl Future<Output = Option<Failure>> + Send {
        async { None }
    }
    /// A confirm is overdue (no answer from the broker for `ack_timeout`): whether the broker
    /// shows progress all the same — it stored messages of the route's target since it was
    /// last asked (a JetStream stream's last sequence grew) — so the route waits on, from now,
    /// rather than presume the connection lost and publish the whole window again (review r11
    /// #1: the first confirm of a window of 60,000 came after more than 5 s). A broker that
    /// stores nothing more for `ack_timeout` is still a lost connection. Default: no such sign.
    fn progressing(&mut self) -> impl Future<Output = bool> + Send {
        async { false }
    }
}

/// One broker message as the inbound loop sees it.
pub(crate) struct Incoming {
    /// The message to store.
    pub message: Message,
    /// Its dedup key (from the broker's identity of the message), if it has one.
    pub dedup_key: Option<String>,
    /// The broker marked it as delivered before.
    pub redelivered: bool,
}

/// A broker as the source of an inbound route.
pub(crate) trait Source: Send + 'static {
    /// A delivered broker message.
    type Msg: Send + 'static;
    /// Connects and starts consuming. `Refused` when the broker answers but what the route
    /// names is missing or unfit (a stream, consumer or queue): the route logs it as an error
    /// and retries with backoff, since it may be created later; `Transient` when the broker
    /// is not reachable.
    fn connect(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Whether the connection is up now (checked while waiting for messages, so that an
    /// outage is noticed, counted and shown even when no message is due).
    fn is_connected(&self) -> bool;
    /// Waits for at least one message and returns up to `max` (cancel-safe).
    fn next_batch(
        &mut self,
        max: usize,
    ) -> impl Future<Output = Result<Vec<Self::Msg>, String>> + Send;
    /// The message to store.
    fn incoming(&self, m: &Self::Msg, now_ms: u64) -> Incoming;
    /// Acknowledges messages stored durably.
    fn ack(&mut self, msgs: Vec<Self::Msg>) -> impl Future<Output = Result<(), String>> + Send;
    /// Ends the delivery of a message the store refuses for good.
    fn reject(&mut self, m: Self::Msg) -> impl Future<Output = Result<(), String>> + Send;
    /// Whether [`Source::reject`] keeps the message at the broker (JetStream's `Term` leaves it
    /// in the stream). RabbitMQ's reject deletes a message whose queue has no dead-letter
    /// exchange, so its refused messages are given back instead and the route pauses, an
    /// ERROR naming the cause (review r11 #12: a 17 MiB message vanished). Default true.
    fn reject_keeps(&self) -> bool {
        true
    }
    /// Hands messages back for a later delivery (the store is full or failing for now).
    fn requeue(&mut self, msgs: Vec<Self::Msg>) -> impl Future<Output = Result<(), String>> + Send;
    /// Messages the broker holds for this route and not yet acknowledged, if it can tell.
    fn lag(&mut self) -> impl Future<Output = Option<u64>> + Send;
    /// Drops the connection after a failure.
    fn disconnect(&mut self);
    /// The route stops gracefully: whatever acks the client library still buffers reach the
    /// broker before this returns (within the broker's `ack_timeout`), so messages stored and
    /// acked before the stop are not delivered again after it (review r11 #3). Default: the
    /// acks were awaited one by one already.
    fn flush_acks(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// How long after a delivery the broker delivers an unacknowledged message again while
    /// the bridge stays connected (JetStream's ack wait; zero for RabbitMQ, which redelivers
    /// when the channel closes).
    fn redelivery_delay(&self) -> Duration;
}

impl Failure {
    /// The error's text.
    pub(crate) fn text(self) -> String {
        match self {
            Failure::Refused(t) | Failure::Transient(t) | Failure::Target(t) | Failure::Full(t) => {
                t
            }
        }
    }
}
