//! The sparse time index of one segment (`{base_offset:020}.timeindex`).
//!
//! File format: a sequence of 12-byte entries, `timestamp i64 BE` then `relative offset u32 BE`.
//! An entry `(T, r)` says: the largest timestamp among the batches appended so far in this
//! segment is `T`, and it is the `maxTimestamp` of the batch whose base offset is
//! `segment base + r`. Entries are added together with offset index entries, and only when `T`
//! grew, so timestamps strictly increase (and relative offsets with them). A last entry covering
//! the whole segment is added when the segment rolls and on close, so the last entry of a
//! segment carries its largest timestamp.
//!
//! Lookup for a target timestamp `ts`: the last entry with `T < ts` proves that every record
//! up to and including the batch at `r` is older than `ts`, so the scan for the first record
//! with a timestamp `>= ts` can start at that batch.

/// Size of one entry on disk.
pub(crate) const ENTRY_LEN: usize = 12;

/// One time index entry; see the module documentation for its meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeIndexEntry {
    pub(crate) timestamp: i64,
    pub(crate) relative_offset: u32,
}

/// In-memory time index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TimeIndex {
    entries: Vec<TimeIndexEntry>,
    max_entries: usize,
}

impl TimeIndex {
    /// An empty index that holds at most `max_bytes / 12` entries.
    pub(crate) fn new(max_bytes: u64) -> TimeIndex {
        TimeIndex {
            entries: Vec::new(),
            max_entries: max_entries(max_bytes),
        }
    }

    /// Decodes a time index file's bytes, checking the format and that timestamps strictly
    /// increase and relative offsets do not decrease. The error says why it cannot be trusted.
    pub(crate) fn from_bytes(bytes: &[u8], max_bytes: u64) -> Result<TimeIndex, String> {
        if bytes.len() % ENTRY_LEN != 0 {
            return Err(format!(
                "length {} is not a multiple of {ENTRY_LEN}",
                bytes.len()
            ));
        }
        let mut index = TimeIndex::new(max_bytes);
        index.entries.reserve(bytes.len() / ENTRY_LEN);
        for c in bytes.chunks_exact(ENTRY_LEN) {
            let entry = TimeIndexEntry {
                timestamp: i64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
                relative_offset: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
            };
            if let Some(last) = index.entries.last() {
                if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset
                {
                    return Err(format!(
                        "entry {entry:?} does not follow {last:?} in increasing order"
                    ));
                }
            }
            index.entries.push(entry);
        }
        Ok(index)
    }

    /// The file contents for these entries.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.entries.len() * ENTRY_LEN);
        for e in &self.entries {
            out.extend_from_slice(&e.timestamp.to_be_bytes());
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
        }
        out
    }

    /// Whether no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Adds the entry if there is room and its timestamp is larger than the last one's (and its
    /// offset not smaller); returns whether it was added. With `force`, room is made by
    /// replacing the last entry when full (used for the final entry of a segment).
    pub(crate) fn maybe_push(&mut self, entry: TimeIndexEntry, force: bool) -> bool {
        if let Some(last) = self.entries.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset {
                return false;
            }
        }
        if self.is_full() {
            if !force {
                return false;
            }
            self.entries.pop();
        }
        self.entries.push(entry);
        true
    }

    /// The last entry whose timestamp is `< timestamp`.
    pub(crate) fn last_below(&self, timestamp: i64) -> Option<TimeIndexEntry> {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Drops the entries naming batches whose relative offset is `>= relative_offset` (the
    /// segment is cut at that batch). The entries kept stay true: each names a batch that is
    /// kept and the largest timestamp up to it.
    pub(crate) fn truncate_to_relative(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    /// The last entry naming a batch whose relative offset is `< relative_offset`.
    pub(crate) fn last_below_relative(&self, relative_offset: u32) -> Option<TimeIndexEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// The last entry (the segment's largest timestamp once the segment is sealed).
    pub(crate) fn last(&self) -> Option<TimeIndexEntry> {
        self.entries.last().copied()
    }

    /// The entries, in order.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[TimeIndexEntry] {
        &self.entries
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn max_entries(max_bytes: u64) -> usize {
    usize::try_from(max_bytes / ENTRY_LEN as u64)
        .unwrap_or(usize::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(timestamp: i64, relative_offset: u32) -> TimeIndexEntry {
        TimeIndexEntry {
            timestamp,
            relative_offset,
        }
    }

    #[test]
    fn lookup_and_round_trip() -> Result<(), String> {
        let mut idx = TimeIndex::new(1200);
        assert!(idx.maybe_push(e(100, 0), false));
        assert!(!idx.maybe_push(e(100, 5), false), "timestamps must grow");
        assert!(idx.maybe_push(e(200, 7), false));
        assert_eq!(idx.last_below(100), None);
        assert_eq!(idx.last_below(101), Some(e(100, 0)));
        assert_eq!(idx.last_below(200), Some(e(100, 0)));
        assert_eq!(idx.last_below(i64::MAX), Some(e(200, 7)));
        let back = TimeIndex::from_bytes(&idx.to_bytes(), 1200)?;
        assert_eq!(back, idx);
        assert!(TimeIndex::from_bytes(&[1; 13], 1200).is_err());
        idx.truncate_to_relative(8);
        assert_eq!(idx.len(), 2);
        idx.truncate_to_relative(7);
        assert_eq!(idx.entries(), [e(100, 0)]);
        idx.truncate_to_relative(0);
        assert!(idx.is_empty());
        Ok(())
    }

    #[test]
    fn forced_push_replaces_last_when_full() {
        let mut idx = TimeIndex::new(24);
        assert!(idx.maybe_push(e(1, 0), false));
        assert!(idx.maybe_push(e(2, 1), false));
        assert!(!idx.maybe_push(e(3, 2), false));
        assert!(idx.maybe_push(e(3, 2), true));
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.last(), Some(e(3, 2)));
    }
}
