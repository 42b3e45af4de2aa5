//! Idempotent-producer state of one partition: for every producer id, its epoch and the
//! sequence ranges and offsets of its last five batches, so a retried batch is answered with
//! its original offsets instead of being written twice, and a gap in the sequence is refused.
//! Owned by the partition's shard; rebuilt from batch headers (or a snapshot written at clean
//! shutdown) when the partition is opened.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

/// How many batches per producer are remembered for duplicate detection (Kafka's value;
/// clients keep at most five requests in flight per connection when idempotent).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// File of the snapshot written at clean shutdown.
pub const SNAPSHOT_FILE: &str = "producer.snapshot";

/// One remembered batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    /// First sequence number of the batch.
    pub first_seq: i32,
    /// Last sequence number of the batch.
    pub last_seq: i32,
    /// Offset of the batch's first record.
    pub first_offset: i64,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// The batch's max timestamp.
    pub max_timestamp: i64,
}

/// What a producer has written to the partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// The last batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// When the producer last wrote (ms since epoch), for expiry.
    pub last_write_ms: i64,
}

/// What to do with an incoming idempotent batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A new batch in sequence: append it.
    Append,
    /// A retry of a batch already written: answer with its original offsets.
    Duplicate(BatchMeta),
    /// A sequence gap (or a new epoch not starting at 0).
    OutOfOrder {
        /// The sequence the broker expected.
        expected: i32,
    },
    /// The epoch is older than the producer's current one (a zombie).
    StaleEpoch {
        /// The producer's current epoch.
        current: i16,
    },
}

/// Producer state of one partition.
#[derive(Debug, Default)]
pub struct ProducerState {
    producers: HashMap<i64, ProducerEntry>,
}

fn next_seq(seq: i32) -> i32 {
    // Sequences wrap from i32::MAX to 0.
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerState {
    /// Decides what to do with a batch `(producer_id, epoch, first_seq, record_count)`.
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, count: i32) -> Verdict {
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its state expired with retention): accept, as Kafka
            // does since KIP-360.
            return Verdict::Append;
        };
        if epoch < entry.epoch {
            return Verdict::StaleEpoch {
                current: entry.epoch,
            };
        }
        if epoch > entry.epoch {
            return if first_seq == 0 {
                Verdict::Append
            } else {
                Verdict::OutOfOrder { expected: 0 }
            };
        }
        let last_seq = first_seq.wrapping_add(count.max(1) - 1);
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return Verdict::Duplicate(*b);
        }
        match entry.batches.back() {
            Some(last) if first_seq != next_seq(last.last_seq) => Verdict::OutOfOrder {
                expected: next_seq(last.last_seq),
            },
            _ => Verdict::Append,
        }
    }

    /// Records a batch that was appended (or found in the log during rebuild).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta, now_ms: i64) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_write_ms = now_ms;
    }

    /// Drops producers idle for longer than `max_idle_ms` (`producer.id.expiration.ms`).
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) {
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_write_ms) <= max_idle_ms);
    }

    /// The producers and their entries (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Writes the state to `dir/producer.snapshot` (text, one batch per line), atomically.
    pub fn write_snapshot(&self, dir: &Path, end_offset: i64) -> std::io::Result<()> {
        let tmp = dir.join("producer.snapshot.tmp");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(f, "v1 {end_offset}")?;
        for (pid, e) in &self.producers {
            for b in &e.batches {
                writeln!(
                    f,
                    "{pid} {} {} {} {} {} {} {}",
                    e.epoch,
                    b.first_seq,
                    b.last_seq,
                    b.first_offset,
                    b.last_offset,
                    b.max_timestamp,
                    e.last_write_ms
                )?;
            }
        }
        let f = f.into_inner().map_err(|e| e.into_error())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(SNAPSHOT_FILE))
    }

    /// Reads a snapshot taken at `end_offset`; `None` if absent, malformed or taken at another
    /// offset (then the caller rebuilds from the log). The file is removed once read, so a
    /// crash later cannot resurrect a stale snapshot.
    pub fn read_snapshot(dir: &Path, end_offset: i64) -> Option<ProducerState> {
        let path = dir.join(SNAPSHOT_FILE);
        let text = std::fs::read_to_string(&path).ok()?;
        let _ = std::fs::remove_file(&path);
        let mut lines = text.lines();
        let header = lines.next()?;
        if header != format!("v1 {end_offset}") {
            return None;
        }
        let mut state = ProducerState::default();
        for line in lines {
            let f: Vec<i64> = line
                .split(' ')
                .map(|x| x.parse::<i64>())
                .collect::<Result<_, _>>()
                .ok()?;
            let [pid, epoch, first_seq, last_seq, first_offset, last_offset, max_ts, last_write] =
                f[..]
            else {
                return None;
            };
            state.record(
                pid,
                i16::try_from(epoch).ok()?,
                BatchMeta {
                    first_seq: i32::try_from(first_seq).ok()?,
                    last_seq: i32::try_from(last_seq).ok()?,
                    first_offset,
                    last_offset,
                    max_timestamp: max_ts,
                },
                last_write,
            );
        }
        Some(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(first_seq: i32, count: i32, first_offset: i64) -> BatchMeta {
        BatchMeta {
            first_seq,
            last_seq: first_seq.wrapping_add(count - 1),
            first_offset,
            last_offset: first_offset + i64::from(count) - 1,
            max_timestamp: 0,
        }
    }

    #[test]
    fn sequences_duplicates_gaps_and_epochs() {
        let mut s = ProducerState::default();
        assert_eq!(s.check(7, 0, 0, 3), Verdict::Append);
        s.record(7, 0, meta(0, 3, 100), 1);
        assert_eq!(s.check(7, 0, 3, 2), Verdict::Append);
        s.record(7, 0, meta(3, 2, 103), 1);
        assert_eq!(s.check(7, 0, 0, 3), Verdict::Duplicate(meta(0, 3, 100)));
        assert_eq!(s.check(7, 0, 3, 2), Verdict::Duplicate(meta(3, 2, 103)));
        assert_eq!(s.check(7, 0, 6, 1), Verdict::OutOfOrder { expected: 5 });
        assert_eq!(s.check(7, -1, 5, 1), Verdict::StaleEpoch { current: 0 });
        assert_eq!(s.check(7, 1, 5, 1), Verdict::OutOfOrder { expected: 0 });
        assert_eq!(s.check(7, 1, 0, 1), Verdict::Append);
        assert_eq!(
            s.check(8, 0, 42, 1),
            Verdict::Append,
            "unknown producers are accepted"
        );
    }

    #[test]
    fn remembers_only_five_batches_and_wraps() {
        let mut s = ProducerState::default();
        for i in 0..7 {
            s.record(1, 0, meta(i, 1, i64::from(i)), 0);
        }
        assert_eq!(s.check(1, 0, 0, 1), Verdict::OutOfOrder { expected: 7 });
        assert_eq!(s.check(1, 0, 2, 1), Verdict::Duplicate(meta(2, 1, 2)));
        let mut w = ProducerState::default();
        w.record(2, 0, meta(i32::MAX, 1, 0), 0);
        assert_eq!(w.check(2, 0, 0, 1), Verdict::Append);
    }

    #[test]
    fn snapshot_round_trip_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.record(1, 2, meta(0, 4, 0), 1000);
        s.record(3, 0, meta(0, 1, 4), 5000);
        s.write_snapshot(dir.path(), 5).unwrap();
        assert!(
            ProducerState::read_snapshot(dir.path(), 6).is_none(),
            "offset mismatch"
        );
        s.write_snapshot(dir.path(), 5).unwrap();
        let mut r = ProducerState::read_snapshot(dir.path(), 5).unwrap();
        assert_eq!(r.check(1, 2, 0, 4), Verdict::Duplicate(meta(0, 4, 0)));
        assert!(!dir.path().join(SNAPSHOT_FILE).exists());
        r.expire(6000, 2000);
        assert_eq!(r.producers().count(), 1);
    }
}
