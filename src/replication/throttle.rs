//! Replication throttles for replica moves (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate` with the topics' `*.replication.throttled.replicas`):
//! a token bucket per side, refilled at the configured rate (read at each use, so a dynamic
//! change applies at once) with one second of burst. Traffic may go while the bucket is not in
//! debt; what went is charged afterwards, so the long-run rate is the configured one. Only
//! out-of-sync replicas named by their topic are throttled, so the ISR never waits on it.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::Config;

/// Rates at or above this are "unthrottled" (Kafka's default is Long.MAX_VALUE).
const UNLIMITED: i64 = i64::MAX / 2;

/// One side's bucket.
#[derive(Debug)]
pub struct Throttle {
    key: &'static str,
    bucket: Mutex<Option<(f64, Instant)>>,
}

impl Throttle {
    /// A throttle whose rate is the broker key `key` (bytes per second).
    pub const fn new(key: &'static str) -> Throttle {
        Throttle {
            key,
            bucket: Mutex::new(None),
        }
    }

    fn rate(&self, config: &Config) -> Option<f64> {
        let value = config
            .dynamic_value(self.key)
            .or_else(|| config.values.get(self.key).cloned())?;
        let rate: i64 = value.trim().parse().ok()?;
        (rate > 0 && rate < UNLIMITED).then_some(rate as f64)
    }

    /// Tokens now (refilled since the last look), or None when unthrottled.
    fn refill(&self, config: &Config, charge: f64) -> Option<f64> {
        let rate = self.rate(config)?;
        let now = Instant::now();
        let mut b = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, last) = b.unwrap_or((rate, now));
        let tokens = (tokens + rate * now.duration_since(last).as_secs_f64()).min(rate) - charge;
        *b = Some((tokens, now));
        Some(tokens)
    }

    /// Whether throttled traffic may go now.
    pub fn permits(&self, config: &Config) -> bool {
        self.refill(config, 0.0).map_or(true, |t| t > 0.0)
    }

    /// Charges `bytes` of throttled traffic that went.
    pub fn record(&self, config: &Config, bytes: usize) {
        self.refill(config, bytes as f64);
    }
}

/// The leader's and the follower's throttles of one broker.
#[derive(Debug)]
pub struct Throttles {
    /// What a leader sends to throttled, out-of-sync followers.
    pub leader: Throttle,
    /// What a follower fetches for its throttled, out-of-sync replicas.
    pub follower: Throttle,
}

impl Default for Throttles {
    fn default() -> Self {
        Throttles {
            leader: Throttle::new("leader.replication.throttled.rate"),
            follower: Throttle::new("follower.replication.throttled.rate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_goes_into_debt_and_refills() {
        let mut config = Config::default();
        let t = Throttle::new("leader.replication.throttled.rate");
        assert!(t.permits(&config), "unthrottled by default");
        config
            .values
            .insert("leader.replication.throttled.rate", "1000".into());
        assert!(t.permits(&config));
        t.record(&config, 5_000);
        assert!(!t.permits(&config), "4 s of debt");
        // A dynamic change applies at once.
        config
            .dynamic
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .per_broker
            .insert(
                "leader.replication.throttled.rate".into(),
                "9223372036854775807".into(),
            );
        assert!(t.permits(&config));
    }
}
