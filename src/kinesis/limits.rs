//! Per-shard throughput limits (`kinesis.enforce.limits`), as AWS applies them to provisioned
//! shards: 1 MiB/s and 1 000 records/s in, 2 MiB/s and 5 GetRecords calls/s out.
//!
//! Each limit is a token bucket holding at most one second's worth. Writes need the tokens up
//! front (a PutRecords group that does not fit is refused whole, per shard); reads are charged
//! after the fact and may drive the byte bucket into debt, so that a 10 MiB GetRecords is
//! followed by about four seconds of throttled reads, as in AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Writes per shard and second.
pub const WRITE_BYTES_PER_SEC: f64 = 1_048_576.0;
/// Records written per shard and second.
pub const WRITE_RECORDS_PER_SEC: f64 = 1000.0;
/// Bytes read per shard and second.
pub const READ_BYTES_PER_SEC: f64 = 2_097_152.0;
/// GetRecords calls per shard and second.
pub const READ_CALLS_PER_SEC: f64 = 5.0;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    rate: f64,
}

impl Bucket {
    fn full(rate: f64) -> Bucket {
        Bucket { tokens: rate, rate }
    }

    fn refill(&mut self, secs: f64) {
        self.tokens = (self.tokens + secs * self.rate).min(self.rate);
    }
}

#[derive(Debug, Clone, Copy)]
struct ShardRate {
    at: Instant,
    write_bytes: Bucket,
    write_records: Bucket,
    read_bytes: Bucket,
    read_calls: Bucket,
}

impl ShardRate {
    fn new(now: Instant) -> ShardRate {
        ShardRate {
            at: now,
            write_bytes: Bucket::full(WRITE_BYTES_PER_SEC),
            write_records: Bucket::full(WRITE_RECORDS_PER_SEC),
            read_bytes: Bucket::full(READ_BYTES_PER_SEC),
            read_calls: Bucket::full(READ_CALLS_PER_SEC),
        }
    }

    fn refill(&mut self, now: Instant) {
        let secs = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        for b in [
            &mut self.write_bytes,
            &mut self.write_records,
            &mut self.read_bytes,
            &mut self.read_calls,
        ] {
            b.refill(secs);
        }
    }
}

/// The buckets of every shard, by (topic id, partition).
#[derive(Debug, Default)]
pub struct Limits {
    shards: Mutex<HashMap<(uuid::Uuid, i32), ShardRate>>,
}

impl Limits {
    fn with<R>(&self, topic: uuid::Uuid, partition: i32, f: impl FnOnce(&mut ShardRate) -> R) -> R {
        let now = Instant::now();
        let mut shards = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        let rate = shards
            .entry((topic, partition))
            .or_insert_with(|| ShardRate::new(now));
        rate.refill(now);
        f(rate)
    }

    /// Takes the tokens for writing `records` records of `bytes` bytes; false (taking
    /// nothing) when the shard cannot take them now.
    pub fn try_write(
        &self,
        topic: uuid::Uuid,
        partition: i32,
        records: usize,
        bytes: usize,
    ) -> bool {
        self.with(topic, partition, |r| {
            let (n, b) = (records as f64, bytes as f64);
            if r.write_records.tokens < n || r.write_bytes.tokens < b {
                return false;
            }
            r.write_records.tokens -= n;
            r.write_bytes.tokens -= b;
            true
        })
    }

    /// Takes a GetRecords call; false when the shard is over its call rate or still in debt
    /// from earlier reads.
    pub fn try_read(&self, topic: uuid::Uuid, partition: i32) -> bool {
        self.with(topic, partition, |r| {
            if r.read_calls.tokens < 1.0 || r.read_bytes.tokens <= 0.0 {
                return false;
            }
            r.read_calls.tokens -= 1.0;
            true
        })
    }

    /// Charges the bytes a GetRecords returned.
    pub fn charge_read(&self, topic: uuid::Uuid, partition: i32, bytes: usize) {
        self.with(topic, partition, |r| r.read_bytes.tokens -= bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_then_refill() {
        let l = Limits::default();
        let t = uuid::Uuid::new_v4();
        assert!(l.try_write(t, 0, 1000, 10));
        // (The buckets refill while the test runs: the refusals ask for 100 ms worth.)
        assert!(!l.try_write(t, 0, 100, 10));
        assert!(
            l.try_write(t, 1, 1, 1 << 20),
            "another shard has its own bucket"
        );
        assert!(!l.try_write(t, 1, 1, 100_000));
        for _ in 0..5 {
            assert!(l.try_read(t, 0));
        }
        assert!(!l.try_read(t, 0));
        l.charge_read(t, 2, 10 << 20);
        assert!(!l.try_read(t, 2));
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(l.try_read(t, 0));
        assert!(l.try_write(t, 0, 200, 10));
    }
}
