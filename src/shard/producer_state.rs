//! Producer state of one partition: for every producer id, its epoch and the sequence ranges
//! and offsets of its last five batches, so a retried batch is answered with its original
//! offsets instead of being written twice, and a gap in the sequence is refused; and for
//! transactional producers, the first offset of their open transaction (the earliest of which
//! bounds the last stable offset) and the coordinator epoch of their last marker.
//! Owned by the partition's shard; rebuilt from batch headers (or a snapshot written at clean
//! shutdown) when the partition is opened.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::path::Path;

/// How many batches per producer are remembered for duplicate detection (Kafka's value;
/// clients keep at most five requests in flight per connection when idempotent).
pub const BATCHES_PER_PRODUCER: usize = 5;

/// File of the snapshot written at clean shutdown.
pub const SNAPSHOT_FILE: &str = "producer.snapshot";

/// The snapshot format's version tag; a snapshot of another version is ignored (the state is
/// rebuilt from the log). v2 added open transactions and coordinator epochs.
const SNAPSHOT_VERSION: &str = "v2";

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    /// Current epoch.
    pub epoch: i16,
    /// The last batches, oldest first.
    pub batches: VecDeque<BatchMeta>,
    /// When the producer last wrote (ms since epoch), for expiry.
    pub last_write_ms: i64,
    /// Offset of the first batch of the producer's open transaction in this partition.
    pub txn_first_offset: Option<i64>,
    /// Coordinator epoch of the last transaction marker written for the producer (-1: none).
    pub coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> Self {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_write_ms: 0,
            txn_first_offset: None,
            coordinator_epoch: -1,
        }
    }
}

impl ProducerEntry {
    /// Takes `epoch` as the producer's; a new epoch forgets the batches of the old one.
    fn set_epoch(&mut self, epoch: i16) {
        if epoch != self.epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }
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
    /// Open transactions: first offset → producer id.
    open_txns: BTreeMap<i64, i64>,
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

    /// The epoch check alone, for batches without sequence numbers (base sequence -1) and
    /// transaction markers: `Err(current epoch)` when `epoch` is older than the producer's.
    pub fn check_epoch(&self, producer_id: i64, epoch: i16) -> Result<(), i16> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(e.epoch),
            _ => Ok(()),
        }
    }

    /// The coordinator-epoch check of a transaction marker: `Err(last coordinator epoch)` when
    /// `coordinator_epoch` is older than the one of the producer's last marker (a deposed
    /// coordinator still sending markers).
    pub fn check_coordinator_epoch(
        &self,
        producer_id: i64,
        coordinator_epoch: i32,
    ) -> Result<(), i32> {
        match self.producers.get(&producer_id) {
            Some(e) if coordinator_epoch < e.coordinator_epoch => Err(e.coordinator_epoch),
            _ => Ok(()),
        }
    }

    /// Records a batch that was appended (or found in the log during rebuild).
    pub fn record(&mut self, producer_id: i64, epoch: i16, batch: BatchMeta, now_ms: i64) {
        let entry = self.producers.entry(producer_id).or_default();
        entry.set_epoch(epoch);
        if entry.batches.len() == BATCHES_PER_PRODUCER {
            entry.batches.pop_front();
        }
        entry.batches.push_back(batch);
        entry.last_write_ms = now_ms;
    }

    /// Records a batch without sequence numbers (a transactional offset commit the group
    /// coordinator wrote): only the epoch and the time of the write.
    pub fn record_unsequenced(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        let entry = self.producers.entry(producer_id).or_default();
        entry.set_epoch(epoch);
        entry.last_write_ms = now_ms;
    }

    /// A transactional batch of the producer was appended at `first_offset`: it opens the
    /// producer's transaction there unless one is open.
    pub fn begin_txn(&mut self, producer_id: i64, first_offset: i64) {
        let entry = self.producers.entry(producer_id).or_default();
        if entry.txn_first_offset.is_none() {
            entry.txn_first_offset = Some(first_offset);
            self.open_txns.insert(first_offset, producer_id);
        }
    }

    /// A marker of `epoch` (not older than the producer's: see [`ProducerState::check_epoch`])
    /// closed the producer's transaction: the epoch becomes the producer's and the coordinator
    /// epoch is remembered. Returns the first offset of the transaction it closed, `None` if
    /// none was open.
    pub fn end_txn(
        &mut self,
        producer_id: i64,
        epoch: i16,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Option<i64> {
        let entry = self.producers.entry(producer_id).or_default();
        entry.set_epoch(epoch);
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_write_ms = now_ms;
        let first = entry.txn_first_offset.take()?;
        self.open_txns.remove(&first);
        Some(first)
    }

    /// The first offset of the earliest open transaction: the last stable offset is the
    /// smaller of it and the high watermark.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.open_txns.keys().next().copied()
    }

    /// Drops producers idle for longer than `max_idle_ms` (`producer.id.expiration.ms`),
    /// except those with an open transaction.
    pub fn expire(&mut self, now_ms: i64, max_idle_ms: i64) {
        self.producers.retain(|_, e| {
            e.txn_first_offset.is_some() || now_ms.saturating_sub(e.last_write_ms) <= max_idle_ms
        });
    }

    /// The producers and their entries (DescribeProducers).
    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Writes the state to `dir/producer.snapshot` atomically. Text: a header line
    /// `v2 <end offset>`, then per producer a line `p <id> <epoch> <last write ms> <open
    /// transaction's first offset or -1> <coordinator epoch>` followed by a line `b <first seq>
    /// <last seq> <first offset> <last offset> <max timestamp>` per remembered batch.
    pub fn write_snapshot(&self, dir: &Path, end_offset: i64) -> std::io::Result<()> {
        let tmp = dir.join("producer.snapshot.tmp");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(f, "{SNAPSHOT_VERSION} {end_offset}")?;
        for (pid, e) in &self.producers {
            writeln!(
                f,
                "p {pid} {} {} {} {}",
                e.epoch,
                e.last_write_ms,
                e.txn_first_offset.unwrap_or(-1),
                e.coordinator_epoch
            )?;
            for b in &e.batches {
                writeln!(
                    f,
                    "b {} {} {} {} {}",
                    b.first_seq, b.last_seq, b.first_offset, b.last_offset, b.max_timestamp,
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
        if header != format!("{SNAPSHOT_VERSION} {end_offset}") {
            return None;
        }
        let mut state = ProducerState::default();
        let mut current: Option<i64> = None;
        for line in lines {
            let (kind, rest) = line.split_once(' ')?;
            let f: Vec<i64> = rest
                .split(' ')
                .map(|x| x.parse::<i64>())
                .collect::<Result<_, _>>()
                .ok()?;
            match (kind, &f[..]) {
                ("p", &[pid, epoch, last_write, txn_first, coordinator_epoch]) => {
                    let entry = ProducerEntry {
                        epoch: i16::try_from(epoch).ok()?,
                        last_write_ms: last_write,
                        txn_first_offset: (txn_first >= 0).then_some(txn_first),
                        coordinator_epoch: i32::try_from(coordinator_epoch).ok()?,
                        ..ProducerEntry::default()
                    };
                    if txn_first >= 0 {
                        state.open_txns.insert(txn_first, pid);
                    }
                    state.producers.insert(pid, entry);
                    current = Some(pid);
                }
                ("b", &[first_seq, last_seq, first_offset, last_offset, max_timestamp]) => {
                    let entry = state.producers.get_mut(&current?)?;
                    if entry.batches.len() == BATCHES_PER_PRODUCER {
                        return None;
                    }
                    entry.batches.push_back(BatchMeta {
                        first_seq: i32::try_from(first_seq).ok()?,
                        last_seq: i32::try_from(last_seq).ok()?,
                        first_offset,
                        last_offset,
                        max_timestamp,
                    });
                }
                _ => return None,
            }
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

    #[test]
    fn transactions_bound_the_first_unstable_offset() {
        let mut s = ProducerState::default();
        assert_eq!(s.first_unstable_offset(), None);
        s.begin_txn(1, 10);
        s.begin_txn(2, 12);
        s.begin_txn(1, 15);
        assert_eq!(
            s.first_unstable_offset(),
            Some(10),
            "a second batch keeps the start"
        );
        assert_eq!(s.check_epoch(1, 0), Ok(()));
        assert_eq!(s.end_txn(1, 1, 4, 100), Some(10));
        assert_eq!(
            s.check_epoch(1, 0),
            Err(1),
            "the marker's epoch is the producer's"
        );
        assert_eq!(s.first_unstable_offset(), Some(12));
        assert_eq!(s.end_txn(1, 1, 4, 100), None, "nothing left open");
        s.expire(1_000_000, 10);
        assert_eq!(
            s.producers().count(),
            1,
            "an open transaction keeps its producer"
        );
        assert_eq!(s.end_txn(2, 0, 5, 100), Some(12));
        assert_eq!(s.first_unstable_offset(), None);
    }

    #[test]
    fn snapshot_keeps_open_transactions_and_ignores_old_versions() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = ProducerState::default();
        s.record(1, 0, meta(0, 2, 0), 1000);
        s.begin_txn(1, 0);
        s.record_unsequenced(2, 3, 1000);
        s.end_txn(2, 3, 9, 1000);
        s.write_snapshot(dir.path(), 3).unwrap();
        let r = ProducerState::read_snapshot(dir.path(), 3).unwrap();
        assert_eq!(r.first_unstable_offset(), Some(0));
        let entries: HashMap<i64, ProducerEntry> =
            r.producers().map(|(id, e)| (*id, e.clone())).collect();
        assert_eq!(entries[&1].txn_first_offset, Some(0));
        assert_eq!(entries[&1].batches.len(), 1);
        assert_eq!(
            (entries[&2].epoch, entries[&2].coordinator_epoch),
            (3, 9),
            "a producer without batches is kept"
        );
        std::fs::write(dir.path().join(SNAPSHOT_FILE), "v1 3\n1 0 0 1 0 1 0 1000\n").unwrap();
        assert!(ProducerState::read_snapshot(dir.path(), 3).is_none());
    }
}
