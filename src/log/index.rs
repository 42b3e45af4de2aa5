//! The sparse offset index of one segment (`{base_offset:020}.index`).
//!
//! File format: a sequence of 8-byte entries, `relative offset u32 BE` (the batch's base offset
//! minus the segment's base offset) then `position u32 BE` (the batch's byte position in the
//! `.log` file). Both strictly increase. An entry is added for a batch when more than
//! `index.interval.bytes` were appended since the previous entry, so a lookup lands at most one
//! interval (plus one batch) before the wanted batch.
//!
//! The entries live in memory; the file is rewritten whole when the segment rolls and on close.

/// Size of one entry on disk.
pub(crate) const ENTRY_LEN: usize = 8;

/// One offset index entry: the batch whose base offset is `segment base + relative_offset`
/// starts at byte `position` of the segment's `.log`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetIndexEntry {
    pub(crate) relative_offset: u32,
    pub(crate) position: u32,
}

/// In-memory offset index of one segment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OffsetIndex {
    entries: Vec<OffsetIndexEntry>,
    max_entries: usize,
}

impl OffsetIndex {
    /// An empty index that holds at most `max_bytes / 8` entries.
    pub(crate) fn new(max_bytes: u64) -> OffsetIndex {
        OffsetIndex {
            entries: Vec::new(),
            max_entries: max_entries(max_bytes),
        }
    }

    /// Decodes an index file's bytes, checking the format and that both columns strictly
    /// increase. The error says why the file cannot be trusted.
    pub(crate) fn from_bytes(bytes: &[u8], max_bytes: u64) -> Result<OffsetIndex, String> {
        if bytes.len() % ENTRY_LEN != 0 {
            return Err(format!(
                "length {} is not a multiple of {ENTRY_LEN}",
                bytes.len()
            ));
        }
        let mut index = OffsetIndex::new(max_bytes);
        index.entries.reserve(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let entry = OffsetIndexEntry {
                relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
                position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
            };
            if let Some(last) = index.entries.last() {
                if entry.relative_offset <= last.relative_offset || entry.position <= last.position
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
            out.extend_from_slice(&e.relative_offset.to_be_bytes());
            out.extend_from_slice(&e.position.to_be_bytes());
        }
        out
    }

    /// Whether no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Adds an entry if there is room and it follows the last one; returns whether it was added.
    pub(crate) fn push(&mut self, entry: OffsetIndexEntry) -> bool {
        if self.is_full() {
            return false;
        }
        if let Some(last) = self.entries.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return false;
            }
        }
        self.entries.push(entry);
        true
    }

    /// The last entry whose relative offset is `<= relative_offset`: the batch to start scanning
    /// from to find that offset. `None` means scan from position 0.
    pub(crate) fn floor(&self, relative_offset: u32) -> Option<OffsetIndexEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// The last entry whose position is `<= position`: a batch boundary at or before it.
    pub(crate) fn floor_position(&self, position: u64) -> Option<OffsetIndexEntry> {
        let n = self
            .entries
            .partition_point(|e| u64::from(e.position) <= position);
        n.checked_sub(1).and_then(|i| self.entries.get(i)).copied()
    }

    /// Drops the entries of batches at or after byte `position` (the segment is cut there).
    pub(crate) fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|e| u64::from(e.position) < position);
        self.entries.truncate(keep);
    }

    /// The last entry.
    pub(crate) fn last(&self) -> Option<OffsetIndexEntry> {
        self.entries.last().copied()
    }

    /// The entries, in order.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[OffsetIndexEntry] {
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

    fn e(relative_offset: u32, position: u32) -> OffsetIndexEntry {
        OffsetIndexEntry {
            relative_offset,
            position,
        }
    }

    #[test]
    fn floor_and_round_trip() -> Result<(), String> {
        let mut idx = OffsetIndex::new(1024);
        assert_eq!(idx.floor(5), None);
        assert!(idx.push(e(10, 100)));
        assert!(idx.push(e(20, 250)));
        assert!(!idx.push(e(20, 300)), "relative offsets must increase");
        assert!(!idx.push(e(25, 250)), "positions must increase");
        assert_eq!(idx.floor(9), None);
        assert_eq!(idx.floor(10), Some(e(10, 100)));
        assert_eq!(idx.floor(19), Some(e(10, 100)));
        assert_eq!(idx.floor(u32::MAX), Some(e(20, 250)));
        let back = OffsetIndex::from_bytes(&idx.to_bytes(), 1024)?;
        assert_eq!(back, idx);
        idx.truncate_to_position(251);
        assert_eq!(idx.len(), 2);
        idx.truncate_to_position(250);
        assert_eq!(idx.entries(), [e(10, 100)]);
        idx.truncate_to_position(0);
        assert!(idx.is_empty());
        Ok(())
    }

    #[test]
    fn rejects_bad_files() {
        assert!(OffsetIndex::from_bytes(&[0; 7], 1024).is_err());
        let mut idx = OffsetIndex::new(1024);
        idx.push(e(1, 1));
        let mut bytes = idx.to_bytes();
        bytes.extend_from_slice(&idx.to_bytes());
        assert!(OffsetIndex::from_bytes(&bytes, 1024).is_err());
    }

    #[test]
    fn fills_up() {
        let mut idx = OffsetIndex::new(16);
        assert!(idx.push(e(1, 1)));
        assert!(idx.push(e(2, 2)));
        assert!(idx.is_full());
        assert!(!idx.push(e(3, 3)));
        assert_eq!(idx.len(), 2);
    }
}
