//! The leader-epoch cache of one partition and its checkpoint file.
//!
//! ```text
//! <topic>-<partition>/
//!   leader-epoch-checkpoint   0\n<count>\n<epoch> <start offset>\n…   one line per entry
//! ```
//!
//! An entry `(epoch, start offset)` says that the records of the log from `start offset` on,
//! up to the start of the next entry (or the log end offset for the last one), were written
//! while `epoch` was the partition's leader epoch. Entries strictly increase in both epoch and
//! start offset. The leader adds one when it takes over ([`PartitionLog::assign_leader_epoch`],
//! at the log end offset); a follower adds one for the first batch of a newer epoch it copies
//! ([`PartitionLog::append_replica`], at that batch's base offset). Followers ask the leader for
//! the end offset of their latest epoch (Kafka's OffsetForLeaderEpoch, answered by
//! [`LeaderEpochCache::end_offset_for`]) and truncate their log where it diverges.
//!
//! The file has Kafka's `leader-epoch-checkpoint` format: a version line (`0`), the entry count,
//! then one `epoch startOffset` line per entry, oldest first. It is replaced atomically and
//! durably (temporary file, fsync, rename, directory fsync) whenever the entries change, before
//! the data that depends on the change is written. A file that does not parse is ignored with a
//! warning (the cache starts empty); a missing file is an empty cache, and no file is created
//! for a log that never had an entry.
//!
//! [`PartitionLog::assign_leader_epoch`]: super::PartitionLog::assign_leader_epoch
//! [`PartitionLog::append_replica`]: super::PartitionLog::append_replica

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use tracing::warn;

use super::checkpoint;

/// The leader-epoch checkpoint file of a partition directory.
pub(crate) const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

const VERSION: &str = "0";

/// One cache entry: `epoch` started at `start_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EpochEntry {
    pub(crate) epoch: i32,
    pub(crate) start_offset: i64,
}

/// The entries of one partition, oldest first; both columns strictly increase.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Reads the checkpoint of `dir`: empty if there is none, and empty (with a warning) if it
    /// does not parse or its entries do not increase.
    pub(crate) fn load(dir: &Path) -> io::Result<LeaderEpochCache> {
        let path = dir.join(LEADER_EPOCH_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LeaderEpochCache::default()),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                warn!(path = %path.display(), "leader-epoch checkpoint is not text; starting with an empty cache");
                return Ok(LeaderEpochCache::default());
            }
            Err(e) => return Err(e),
        };
        match parse(&text) {
            Ok(entries) => Ok(LeaderEpochCache { entries }),
            Err(reason) => {
                warn!(
                    path = %path.display(),
                    reason,
                    "malformed leader-epoch checkpoint; starting with an empty cache"
                );
                Ok(LeaderEpochCache::default())
            }
        }
    }

    /// Replaces the checkpoint of `dir` with these entries, durably.
    pub(crate) fn persist(&self, dir: &Path) -> io::Result<()> {
        let mut text = String::with_capacity(16 + 24 * self.entries.len());
        // Writing to a String cannot fail.
        let _ = write!(text, "{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            let _ = writeln!(text, "{} {}", e.epoch, e.start_offset);
        }
        checkpoint::write_atomic(dir, LEADER_EPOCH_FILE, text.as_bytes(), true)
    }

    /// The entries, oldest first.
    pub(crate) fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The newest epoch.
    pub(crate) fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Entries that the new one does not follow
    /// (an epoch not older, or a start offset not smaller) are removed first, so the columns
    /// keep increasing; an entry with the same start offset is thus replaced. The latest epoch
    /// again changes nothing. Callers only pass
    /// epochs newer than [`LeaderEpochCache::latest_epoch`] and start offsets at or beyond the
    /// last entry's; anything else is logged. Returns whether the entries changed.
    pub(crate) fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        let entry = EpochEntry {
            epoch,
            start_offset,
        };
        if self.latest_epoch() == Some(epoch) {
            return false;
        }
        while let Some(last) = self.entries.last().copied() {
            if last.epoch < epoch && last.start_offset < start_offset {
                break;
            }
            if last.epoch >= epoch || last.start_offset > start_offset {
                warn!(
                    ?last,
                    ?entry,
                    "leader-epoch entry does not follow the cache; dropping the entry it overlaps"
                );
            }
            self.entries.pop();
        }
        self.entries.push(entry);
        true
    }

    /// Kafka's OffsetForLeaderEpoch answer: the largest cached epoch `<= epoch` and its end
    /// offset (the next entry's start offset, or `log_end_offset` for the newest). `None` if
    /// `epoch` is older than every entry or there are none.
    pub(crate) fn end_offset_for(&self, epoch: i32, log_end_offset: i64) -> Option<(i32, i64)> {
        let after = self.entries.partition_point(|e| e.epoch <= epoch);
        let floor = self.entries.get(after.checked_sub(1)?)?;
        let end = self
            .entries
            .get(after)
            .map_or(log_end_offset, |next| next.start_offset);
        Some((floor.epoch, end))
    }

    /// Removes the entries starting at or after `end_offset` (the log was truncated there, or
    /// recovery ended it there). Returns whether the entries changed.
    pub(crate) fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let keep = self
            .entries
            .partition_point(|e| e.start_offset < end_offset);
        let changed = keep < self.entries.len();
        self.entries.truncate(keep);
        changed
    }

    /// The log start offset moved to `start_offset`: entries wholly below it are removed, and
    /// the newest entry starting below it is kept with its start moved up to it (its epoch still
    /// covers the records from there on). Returns whether the entries changed.
    pub(crate) fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let below = self
            .entries
            .partition_point(|e| e.start_offset <= start_offset);
        let Some(floor) = below.checked_sub(1) else {
            return false;
        };
        let moved = self.entries[floor].start_offset < start_offset;
        self.entries[floor].start_offset = start_offset;
        self.entries.drain(..floor);
        floor > 0 || moved
    }
}

/// Parses the checkpoint text; the error says what is wrong with it.
fn parse(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    match lines.next() {
        Some(VERSION) => {}
        other => return Err(format!("unsupported version line {other:?}")),
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or("missing or invalid entry count")?;
    let mut entries: Vec<EpochEntry> = Vec::with_capacity(count.min(1024));
    for line in lines.by_ref().take(count) {
        let mut fields = line.split(' ');
        let (Some(epoch), Some(start), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("entry line {line:?} is not `epoch startOffset`"));
        };
        let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), start.parse::<i64>()) else {
            return Err(format!("entry line {line:?} does not hold two integers"));
        };
        if epoch < 0 || start_offset < 0 {
            return Err(format!("entry line {line:?} is negative"));
        }
        let entry = EpochEntry {
            epoch,
            start_offset,
        };
        if let Some(last) = entries.last() {
            if entry.epoch <= last.epoch || entry.start_offset <= last.start_offset {
                return Err(format!("entry {entry:?} does not follow {last:?}"));
            }
        }
        entries.push(entry);
    }
    if entries.len() != count {
        return Err(format!(
            "{count} entries announced, {} present",
            entries.len()
        ));
    }
    if lines.any(|l| !l.is_empty()) {
        return Err("lines after the announced entries".into());
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        LeaderEpochCache {
            entries: entries
                .iter()
                .map(|&(epoch, start_offset)| EpochEntry {
                    epoch,
                    start_offset,
                })
                .collect(),
        }
    }

    fn pairs(c: &LeaderEpochCache) -> Vec<(i32, i64)> {
        c.entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    #[test]
    fn assign_keeps_both_columns_increasing() {
        let mut c = LeaderEpochCache::default();
        assert!(c.assign(1, 0));
        assert!(!c.assign(1, 0), "the same entry again changes nothing");
        assert!(
            !c.assign(1, 5),
            "nor does the latest epoch at a later offset"
        );
        assert!(c.assign(2, 0), "same start offset: replaced");
        assert_eq!(pairs(&c), [(2, 0)]);
        assert!(c.assign(4, 10));
        assert!(
            c.assign(5, 7),
            "an earlier start drops the overlapped entry"
        );
        assert_eq!(pairs(&c), [(2, 0), (5, 7)]);
    }

    #[test]
    fn end_offsets_follow_kafka() {
        let c = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert_eq!(c.end_offset_for(0, 400), None, "older than every epoch");
        assert_eq!(c.end_offset_for(1, 400), Some((1, 100)));
        assert_eq!(
            c.end_offset_for(2, 400),
            Some((1, 100)),
            "between two epochs"
        );
        assert_eq!(c.end_offset_for(3, 400), Some((3, 250)));
        assert_eq!(
            c.end_offset_for(6, 400),
            Some((6, 400)),
            "newest: the log end"
        );
        assert_eq!(c.end_offset_for(9, 400), Some((6, 400)));
        assert_eq!(LeaderEpochCache::default().end_offset_for(1, 5), None);
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = cache(&[(1, 0), (3, 100), (6, 250)]);
        assert!(!c.truncate_from_end(251));
        assert!(c.truncate_from_end(250));
        assert_eq!(pairs(&c), [(1, 0), (3, 100)]);
        assert!(!c.truncate_from_start(0));
        assert!(c.truncate_from_start(50), "the first entry's start moves");
        assert_eq!(pairs(&c), [(1, 50), (3, 100)]);
        assert!(
            c.truncate_from_start(100),
            "an entry starting at the log start stays"
        );
        assert_eq!(pairs(&c), [(3, 100)]);
        assert!(c.truncate_from_start(180));
        assert_eq!(pairs(&c), [(3, 180)]);
        assert!(c.truncate_from_end(0));
        assert!(!c.truncate_from_start(500));
        assert!(c.is_empty());
    }

    #[test]
    fn file_round_trip_and_garbage() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        assert!(LeaderEpochCache::load(dir.path())?.is_empty());
        let c = cache(&[(0, 0), (2, 17), (5, 1_000_000)]);
        c.persist(dir.path())?;
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_FILE))?;
        assert_eq!(text, "0\n3\n0 0\n2 17\n5 1000000\n");
        assert_eq!(LeaderEpochCache::load(dir.path())?, c);
        for garbage in [
            &b""[..],
            b"0\n",
            b"1\n0\n",
            b"0\n2\n1 0\n",
            b"0\n1\n1 0\n2 5\n",
            b"0\n2\n1 5\n2 5\n",
            b"0\n2\n3 0\n2 5\n",
            b"0\n1\n1\t0\n",
            b"0\n1\n-1 0\n",
            b"0\n1\nx 0\n",
            b"\xff\xfe",
        ] {
            std::fs::write(dir.path().join(LEADER_EPOCH_FILE), garbage)?;
            assert!(
                LeaderEpochCache::load(dir.path())?.is_empty(),
                "{:?}",
                String::from_utf8_lossy(garbage)
            );
        }
        std::fs::write(dir.path().join(LEADER_EPOCH_FILE), "0\n0\n")?;
        assert!(LeaderEpochCache::load(dir.path())?.is_empty());
        Ok(())
    }
}
