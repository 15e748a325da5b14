//! Redelivery policy: pure math, no I/O, no locks. Field names, defaults and the formula follow
//! ActiveMQ's `RedeliveryPolicy`; an explicit list of delays (as NATS JetStream's `backoff`) may
//! replace the formula.

use std::time::Duration;

use crate::defaults::{
    DEFAULT_BACKOFF_MULTIPLIER, DEFAULT_MAX_REDELIVERIES, DEFAULT_REDELIVERY_DELAY_MS,
};
use crate::error::{Error, Result};

/// When and how often a failed message is delivered again, with ActiveMQ's field names and
/// defaults: 6 redeliveries, 1 s apart, exponential backoff (×5) off.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RedeliveryPolicy {
    /// Redeliveries before the message is dead-lettered: −1 = unlimited, 0 = the first failure
    /// dead-letters. Default 6 (so the 7th failure dead-letters).
    pub max_redeliveries: i32,
    /// Delay before the first redelivery. Default 1 s.
    pub initial_redelivery_delay: Duration,
    /// Delay before each later redelivery when backoff is off; with backoff, the delay after a
    /// zero delay (as ActiveMQ: initial 0 with multiplier 2 gives 0, 1, 2, 4 s). Default 1 s.
    pub redelivery_delay: Duration,
    /// Multiply the previous delay by `backoff_multiplier` for each later redelivery. Default off.
    pub use_exponential_backoff: bool,
    /// The backoff factor. Default 5.0.
    pub backoff_multiplier: f64,
    /// Upper bound on any delay. Default none.
    pub maximum_redelivery_delay: Option<Duration>,
    /// Spread delays by ±15 % at random. Default off.
    pub use_collision_avoidance: bool,
    /// An explicit list of delays (NATS-style) used instead of the formula: the n-th redelivery
    /// waits `backoff[n-1]`, or the last entry when n is past the end.
    pub backoff: Vec<Duration>,
}

impl Default for RedeliveryPolicy {
    fn default() -> Self {
        RedeliveryPolicy {
            max_redeliveries: DEFAULT_MAX_REDELIVERIES,
            initial_redelivery_delay: Duration::from_millis(DEFAULT_REDELIVERY_DELAY_MS),
            redelivery_delay: Duration::from_millis(DEFAULT_REDELIVERY_DELAY_MS),
            use_exponential_backoff: false,
            backoff_multiplier: DEFAULT_BACKOFF_MULTIPLIER,
            maximum_redelivery_delay: None,
            use_collision_avoidance: false,
            backoff: Vec::new(),
        }
    }
}

/// What happens to a message after its `delivery_count`-th delivery failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFailure {
    /// Deliver it again once `delay_ms` has passed.
    Redeliver {
        /// The wait before the redelivery.
        delay_ms: u64,
    },
    /// It has failed too often: dead-letter it.
    DeadLetter,
}

impl RedeliveryPolicy {
    /// Checks the policy: `max_redeliveries` is −1 (unlimited) or more, and the backoff
    /// multiplier is a finite number of at least 1 (a smaller one would shrink the delays).
    /// Every face refuses what this refuses, with `InvalidArgument`.
    pub fn validate(&self) -> Result<()> {
        if self.max_redeliveries < -1 {
            return Err(Error::invalid(format!(
                "max_redeliveries {} is below -1 (-1 means unlimited)",
                self.max_redeliveries
            )));
        }
        if !self.backoff_multiplier.is_finite() || self.backoff_multiplier < 1.0 {
            return Err(Error::invalid(format!(
                "backoff_multiplier {} is not a number >= 1",
                self.backoff_multiplier
            )));
        }
        Ok(())
    }

    /// Decides the fate of a message whose `delivery_count`-th delivery (1-based) failed.
    /// `random` is a uniform sample in [0, 1), used only for collision avoidance.
    pub fn after_failure(&self, delivery_count: u32, random: f64) -> AfterFailure {
        // delivery_count deliveries happened: 1 first delivery + (delivery_count - 1) redeliveries.
        // The next one would be redelivery number `delivery_count`.
        if self.max_redeliveries >= 0 && delivery_count as i64 > self.max_redeliveries as i64 {
            return AfterFailure::DeadLetter;
        }
        AfterFailure::Redeliver {
            delay_ms: self.delay_ms(delivery_count.max(1), random),
        }
    }

    /// The delay before the n-th redelivery (n ≥ 1), in ms.
    pub fn delay_ms(&self, n: u32, random: f64) -> u64 {
        // From whole nanoseconds, so that 1,001 ms is 1001.0 exactly (not 1000.999…, which
        // truncated to 1,000 ms and delivered early); the result is rounded up.
        let ms = |d: Duration| d.as_nanos() as f64 / 1e6;
        let mut delay = if !self.backoff.is_empty() {
            ms(self.backoff[(n as usize - 1).min(self.backoff.len() - 1)])
        } else if n == 1 {
            ms(self.initial_redelivery_delay)
        } else if self.use_exponential_backoff {
            // As ActiveMQ's RedeliveryPolicy.getNextRedeliveryDelay: each delay is the previous
            // one × multiplier, except after a zero delay, which is followed by
            // `redelivery_delay` (so initial 0 gives 0, redelivery_delay, × multiplier, …).
            // Capped at each step so it cannot overflow.
            let cap = self.maximum_redelivery_delay.map(ms).unwrap_or(f64::MAX);
            let mut d = ms(self.initial_redelivery_delay);
            for _ in 1..n {
                d = if d > 0.0 {
                    (d * self.backoff_multiplier).min(cap)
                } else {
                    ms(self.redelivery_delay).min(cap)
                };
            }
            d
        } else {
            ms(self.redelivery_delay)
        };
        if let Some(max) = self.maximum_redelivery_delay {
            delay = delay.min(ms(max));
        }
        if self.use_collision_avoidance {
            delay *= 1.0 + 0.15 * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        }
        delay.ceil().max(0.0).min(u64::MAX as f64 / 2.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_activemq() {
        let p = RedeliveryPolicy::default();
        for n in 1..=6 {
            assert_eq!(
                p.after_failure(n, 0.5),
                AfterFailure::Redeliver { delay_ms: 1000 }
            );
        }
        assert_eq!(p.after_failure(7, 0.5), AfterFailure::DeadLetter);
    }

    #[test]
    fn exponential_backoff_with_cap() {
        let p = RedeliveryPolicy {
            use_exponential_backoff: true,
            maximum_redelivery_delay: Some(Duration::from_secs(100)),
            ..Default::default()
        };
        let d: Vec<u64> = (1..=5).map(|n| p.delay_ms(n, 0.5)).collect();
        assert_eq!(d, vec![1000, 5000, 25000, 100000, 100000]);
    }

    #[test]
    fn zero_initial_delay_is_followed_by_redelivery_delay_then_multiplies() {
        // As ActiveMQ: [0, 1, 2, 4] s, not [0, 0, 0, 0] (a poison message would reach the
        // dead-letter queue in milliseconds).
        let p = RedeliveryPolicy {
            initial_redelivery_delay: Duration::ZERO,
            redelivery_delay: Duration::from_secs(1),
            use_exponential_backoff: true,
            backoff_multiplier: 2.0,
            ..Default::default()
        };
        let d: Vec<u64> = (1..=4).map(|n| p.delay_ms(n, 0.5)).collect();
        assert_eq!(d, vec![0, 1000, 2000, 4000]);
    }

    #[test]
    fn redelivery_delay_used_even_when_initial_is_nonzero() {
        let p = RedeliveryPolicy {
            initial_redelivery_delay: Duration::from_millis(10),
            redelivery_delay: Duration::from_millis(300),
            ..Default::default()
        };
        assert_eq!(p.delay_ms(1, 0.5), 10);
        assert_eq!(p.delay_ms(2, 0.5), 300);
    }

    #[test]
    fn jitter_stays_within_15_percent() {
        let p = RedeliveryPolicy {
            use_collision_avoidance: true,
            ..Default::default()
        };
        assert_eq!(p.delay_ms(1, 0.0), 850);
        assert_eq!(p.delay_ms(1, 0.999_999), 1150);
    }

    #[test]
    fn zero_and_unlimited() {
        let zero = RedeliveryPolicy {
            max_redeliveries: 0,
            ..Default::default()
        };
        assert_eq!(zero.after_failure(1, 0.0), AfterFailure::DeadLetter);
        let inf = RedeliveryPolicy {
            max_redeliveries: -1,
            ..Default::default()
        };
        assert!(matches!(
            inf.after_failure(1_000_000, 0.0),
            AfterFailure::Redeliver { .. }
        ));
    }

    #[test]
    fn explicit_list() {
        let p = RedeliveryPolicy {
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
            ],
            ..Default::default()
        };
        let d: Vec<u64> = (1..=5).map(|n| p.delay_ms(n, 0.5)).collect();
        assert_eq!(d, vec![1000, 5000, 30000, 30000, 30000]);
    }
}
