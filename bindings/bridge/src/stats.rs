//! Per-route counters: updated by the route's task, read at any time as [`RouteStats`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

/// A snapshot of one route's counters (since the bridge started), as [`crate::Bridge::stats`]
/// returns them and as the stats file holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RouteStats {
    /// The route's name.
    pub name: String,
    /// `outbound` (mqlite → broker) or `inbound` (broker → mqlite).
    pub direction: &'static str,
    /// `nats` or `rabbitmq`.
    pub broker: &'static str,
    /// Whether the route is connected to its broker now.
    pub connected: bool,
    /// Whether the route's task has ended: after a graceful stop (then `last_error` is
    /// `None`), or for good on an error (`last_error` says why; the bridge then stops too).
    pub stopped: bool,
    /// Messages forwarded: outbound, confirmed by the broker and acked locally; inbound, stored
    /// durably and acked to the broker.
    pub forwarded: u64,
    /// Messages that failed: outbound, refused by the broker (nacked locally under the queue's
    /// redelivery policy, so one message may count several times before it is dead-lettered);
    /// inbound, refused by the store (terminated at the broker).
    pub failed: u64,
    /// Duplicates removed: outbound, publishes the broker reported as duplicates of an earlier
    /// one (JetStream's duplicate window; RabbitMQ has none — and a re-publish after the
    /// stream's `duplicate_window` is stored twice without being counted); inbound, broker
    /// deliveries whose dedup key the queue already held (mqlite's dedup window).
    pub duplicates: u64,
    /// Redeliveries seen: outbound, local deliveries that were redeliveries (a publish that may
    /// have reached the broker before: the route receives without prefetch, so a crash marks
    /// at most its window; a message given back uncounted after a lost connection is not
    /// one); inbound, deliveries the broker marked as redelivered.
    pub redelivered: u64,
    /// Outbound messages given back to the queue unpublished or unconfirmed because the
    /// connection was lost (not counted as failures; published again after reconnecting).
    pub released: u64,
    /// Outbound: local settles that failed without stopping the route — an ack of confirmed
    /// messages or a nack of a refused one whose delivery was handed out by a store owner
    /// process that has since gone away (`delivery_lost`), or whose outcome is unknown. Each
    /// counts one call (an ack covers a batch). The messages not settled come back to the
    /// queue and are published again under the same broker ids (JetStream drops them as
    /// duplicates; a RabbitMQ consumer dedups on `message_id`).
    pub settle_errors: u64,
    /// Outbound publishes the broker refused for lack of room — a JetStream stream at its
    /// limits with `discard: new` (err_code 10077 and the resource-limit codes), a RabbitMQ
    /// queue at its `x-max-length` with `reject-publish` (a nack): given back to the queue,
    /// not counted as failures, published again after a pause with the reconnect backoff.
    /// The route stays `connected`; `last_error` starts with "broker full, waiting".
    pub broker_full: u64,
    /// Publishes awaiting a confirm (outbound) or messages being stored (inbound), now.
    pub in_flight: u64,
    /// Messages waiting to be forwarded: outbound, the local queue's messages not yet acked
    /// (measured when the snapshot is taken, so it holds while the broker is down); inbound,
    /// the broker's messages not yet acknowledged by the bridge, as last measured while
    /// connected. `None` (`null` in the stats file) while it is unknown: an inbound route that
    /// never read its source (a consumer it refuses, a broker never reached) or whose broker
    /// did not answer the last measure (review r9 #7: 0 there read as "nothing waiting").
    pub lag: Option<u64>,
    /// Connections lost since the start (each one is re-established with backoff).
    pub reconnects: u64,
    /// The last error (a refused publish, a lost connection, a missing stream or queue, a
    /// store error). Kept until a message is forwarded after it — not cleared by a reconnect
    /// or a stop, so a confirm that keeps stalling after each reconnect stays visible.
    pub last_error: Option<String>,
    /// When `last_error` happened, in milliseconds since the Unix epoch.
    pub last_error_at_ms: Option<u64>,
}

/// The live counters of one route.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub forwarded: AtomicU64,
    pub failed: AtomicU64,
    pub duplicates: AtomicU64,
    pub redelivered: AtomicU64,
    pub released: AtomicU64,
    pub settle_errors: AtomicU64,
    pub broker_full: AtomicU64,
    pub in_flight: AtomicU64,
    pub lag: AtomicU64,
    /// `lag` holds a measure (see [`RouteStats::lag`]).
    pub lag_known: AtomicBool,
    pub reconnects: AtomicU64,
    pub connected: AtomicBool,
    pub stopped: AtomicBool,
    /// The route stopped on an error (not by a graceful stop).
    pub fatal: AtomicBool,
    /// The last error and when it happened (ms since the Unix epoch).
    pub last_error: Mutex<Option<(String, u64)>>,
    /// Whether `last_error` is set: forwarding checks this, not the mutex, per message.
    pub has_error: AtomicBool,
}

impl Counters {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Relaxed);
    }

    pub fn set(c: &AtomicU64, n: u64) {
        c.store(n, Relaxed);
    }

    /// The route's lag was measured: `Some(n)`, or could not be (`None`: shown as unknown).
    pub fn set_lag(&self, n: Option<u64>) {
        if let Some(n) = n {
            Self::set(&self.lag, n);
        }
        self.lag_known.store(n.is_some(), Relaxed);
    }

    pub fn error(&self, e: impl Into<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((e.into(), crate::mapping::now_ms()));
        self.has_error.store(true, Relaxed);
    }

    /// `n` messages were forwarded: the last error, if any, is over (a reconnect alone does
    /// not say so — the next publish may stall again).
    pub fn forwarded(&self, n: u64) {
        if n == 0 {
            return;
        }
        Self::add(&self.forwarded, n);
        if self.has_error.load(Relaxed) && !self.fatal.load(Relaxed) {
            self.has_error.store(false, Relaxed);
            *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
    }

    /// The route is connected.
    pub fn up(&self) {
        self.connected.store(true, Relaxed);
    }

    /// The route lost its connection (it reconnects with backoff).
    pub fn down(&self) {
        self.connected.store(false, Relaxed);
        Self::add(&self.reconnects, 1);
    }

    /// The route is not connected, but not because the connection was lost (a channel the
    /// broker closed over a missing target): not counted as a reconnect.
    pub fn offline(&self) {
        self.connected.store(false, Relaxed);
    }

    /// The route stopped for good on `e`.
    pub fn fail(&self, e: impl Into<String>) {
        self.error(e);
        self.fatal.store(true, Relaxed);
        self.stopped.store(true, Relaxed);
    }

    /// The route's task ended (a graceful stop, or after [`Counters::fail`]).
    pub fn ended(&self) {
        self.connected.store(false, Relaxed);
        self.stopped.store(true, Relaxed);
    }

    pub fn snapshot(
        &self,
        name: &str,
        direction: &'static str,
        broker: &'static str,
    ) -> RouteStats {
        let last = self
            .last_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        RouteStats {
            name: name.to_string(),
            direction,
            broker,
            connected: self.connected.load(Relaxed),
            stopped: self.stopped.load(Relaxed),
            forwarded: self.forwarded.load(Relaxed),
            failed: self.failed.load(Relaxed),
            duplicates: self.duplicates.load(Relaxed),
            redelivered: self.redelivered.load(Relaxed),
            released: self.released.load(Relaxed),
            settle_errors: self.settle_errors.load(Relaxed),
            broker_full: self.broker_full.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            lag: self.lag_known.load(Relaxed).then(|| self.lag.load(Relaxed)),
            reconnects: self.reconnects.load(Relaxed),
            last_error: last.as_ref().map(|l| l.0.clone()),
            last_error_at_ms: last.map(|l| l.1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_error_outlives_reconnects_and_stops_until_a_message_is_forwarded() {
        let c = Counters::default();
        c.error("no confirm within the ack_timeout of 2s");
        let at = c.snapshot("r", "outbound", "nats").last_error_at_ms;
        assert!(at.is_some_and(|t| t > 1_600_000_000_000), "{at:?}");
        c.down();
        c.up();
        c.forwarded(0);
        c.ended();
        let s = c.snapshot("r", "outbound", "nats");
        assert_eq!(
            s.last_error.as_deref(),
            Some("no confirm within the ack_timeout of 2s")
        );
        assert_eq!(s.last_error_at_ms, at);
        c.forwarded(3);
        let s = c.snapshot("r", "outbound", "nats");
        assert_eq!(
            (s.last_error, s.last_error_at_ms, s.forwarded),
            (None, None, 3)
        );
        // An error the route stopped on stays.
        c.fail("store closed");
        c.forwarded(1);
        assert!(c.snapshot("r", "outbound", "nats").last_error.is_some());
    }
}
