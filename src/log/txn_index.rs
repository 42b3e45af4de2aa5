//! The aborted-transaction index of one segment: `{base_offset:020}.txnindex`, in Kafka's
//! layout, holding one entry per aborted transaction whose abort marker lies in the segment.
//!
//! Each entry is 34 bytes, big-endian:
//!
//! | offset | field            | type |
//! |-------:|------------------|------|
//! |      0 | version          | i16 (= 0) |
//! |      2 | producerId       | i64  |
//! |     10 | firstOffset      | i64 (the transaction's first batch) |
//! |     18 | lastOffset       | i64 (the abort marker's offset) |
//! |     26 | lastStableOffset | i64 (the partition's last stable offset once the marker was written) |
//!
//! Entries are appended in marker order, so a segment's entries are sorted by last offset, and
//! so are the segments'. A read-committed fetch asks for the transactions overlapping the range
//! it returns ([`TxnIndex::collect`]); the last stable offset of each entry tells when the
//! search can stop. The entries of every segment are kept in memory (markers are rare next to
//! records); the file is written as markers are appended and read back at a clean open. Used
//! on the shard thread that owns the log.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// Bytes of one entry.
pub const ENTRY_LEN: usize = 34;

/// The only entry version.
const VERSION: i16 = 0;

/// An aborted transaction, as the `.txnindex` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset once the marker was written: the first offset of the earliest
    /// transaction still open, or the offset after the marker. No transaction aborted later
    /// started below it, which bounds a fetch's search.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    /// The entry's 34 bytes.
    pub fn encode(&self) -> [u8; ENTRY_LEN] {
        let mut out = [0u8; ENTRY_LEN];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    /// Parses one entry; `Err` names what is wrong with it.
    pub fn decode(bytes: &[u8; ENTRY_LEN]) -> Result<AbortedTxn, String> {
        let i64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != VERSION {
            return Err(format!("entry version {version}"));
        }
        let entry = AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if entry.first_offset < 0 || entry.first_offset > entry.last_offset {
            return Err(format!(
                "first offset {} after last offset {}",
                entry.first_offset, entry.last_offset
            ));
        }
        Ok(entry)
    }
}

/// A segment's aborted transactions and the handle their file is appended through.
#[derive(Debug, Default)]
pub(crate) struct TxnIndex {
    /// Sorted by last offset.
    entries: Vec<AbortedTxn>,
    /// Write handle, opened by the first append since the segment was opened or cut.
    file: Option<Arc<File>>,
}

impl TxnIndex {
    /// The entries, sorted by last offset.
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Reads the index file at `path`: an empty index if there is none, `Ok(Err(reason))` if
    /// it is malformed (a length that is not a multiple of 34, an unknown version, entries out
    /// of order).
    pub(crate) fn load(path: &Path) -> io::Result<Result<TxnIndex, String>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Ok(TxnIndex::default())),
            Err(e) => return Err(e),
        };
        if bytes.len() % ENTRY_LEN != 0 {
            return Ok(Err(format!(
                "{} bytes is not a whole number of entries",
                bytes.len()
            )));
        }
        let mut entries = Vec::with_capacity(bytes.len() / ENTRY_LEN);
        for chunk in bytes.chunks_exact(ENTRY_LEN) {
            let mut raw = [0u8; ENTRY_LEN];
            raw.copy_from_slice(chunk);
            let entry = match AbortedTxn::decode(&raw) {
                Ok(e) => e,
                Err(reason) => return Ok(Err(reason)),
            };
            if entries
                .last()
                .is_some_and(|l: &AbortedTxn| l.last_offset >= entry.last_offset)
            {
                return Ok(Err(format!(
                    "entry for the marker at {} is out of order",
                    entry.last_offset
                )));
            }
            entries.push(entry);
        }
        Ok(Ok(TxnIndex {
            entries,
            file: None,
        }))
    }

    /// Drops the entries outside `[from, until)` (by last offset); returns whether any went.
    pub(crate) fn retain_range(&mut self, from: i64, until: i64) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.last_offset >= from && e.last_offset < until);
        self.entries.len() != before
    }

    /// Appends `entry` (whose marker follows every entry's) and writes it at the end of the
    /// file at `path`, creating the file if needed. Returns the handle to fsync and whether
    /// the file was created. The entry is kept in memory even if the write fails (the caller
    /// then poisons the log).
    pub(crate) fn append(
        &mut self,
        path: &Path,
        entry: AbortedTxn,
    ) -> io::Result<(Arc<File>, bool)> {
        let position = (self.entries.len() * ENTRY_LEN) as u64;
        self.entries.push(entry);
        let mut created = false;
        let file = match &self.file {
            Some(f) => f.clone(),
            None => {
                created = !path.exists();
                // The file holds exactly the entries before this one (written by earlier
                // appends or read at open), so it is extended, not truncated.
                let f = Arc::new(
                    OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .open(path)?,
                );
                self.file = Some(f.clone());
                f
            }
        };
        file.write_all_at(&entry.encode(), position)?;
        Ok((file, created))
    }

    /// Replaces the entries with `entries` (sorted by last offset) and rewrites the file when
    /// its contents change: written whole, or removed when no entry is left. Returns the handle
    /// of a written file (to fsync) and whether the directory changed.
    pub(crate) fn replace(
        &mut self,
        path: &Path,
        entries: Vec<AbortedTxn>,
    ) -> io::Result<(Option<Arc<File>>, bool)> {
        let on_disk = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        self.entries = entries;
        self.file = None;
        if self.entries.is_empty() {
            if on_disk.is_none() {
                return Ok((None, false));
            }
            std::fs::remove_file(path)?;
            return Ok((None, true));
        }
        let bytes: Vec<u8> = self.entries.iter().flat_map(|e| e.encode()).collect();
        if on_disk.as_deref() == Some(&bytes[..]) {
            return Ok((None, false));
        }
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.write_all_at(&bytes, 0)?;
        Ok((Some(Arc::new(file)), on_disk.is_none()))
    }

    /// Keeps the entries whose marker lies below `offset` (a truncation), rewriting the file.
    pub(crate) fn truncate_from(
        &mut self,
        path: &Path,
        offset: i64,
    ) -> io::Result<(Option<Arc<File>>, bool)> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok((None, false));
        }
        let mut entries = std::mem::take(&mut self.entries);
        entries.truncate(keep);
        self.replace(path, entries)
    }

    /// Closes the write handle (the segment stopped being the active one).
    pub(crate) fn release(&mut self) {
        self.file = None;
    }

    /// Adds to `out` the entries of transactions overlapping `[from, upper)`: marker at or
    /// after `from`, first offset below `upper`. Returns true once an entry proves that no
    /// later one (in this segment or the next) can overlap: its marker and its last stable
    /// offset are both at or beyond `upper`, so every transaction aborted after it started at
    /// or beyond `upper`.
    pub(crate) fn collect(&self, from: i64, upper: i64, out: &mut Vec<AbortedTxn>) -> bool {
        let start = self.entries.partition_point(|e| e.last_offset < from);
        for e in &self.entries[start..] {
            if e.first_offset < upper {
                out.push(*e);
            }
            if e.last_offset >= upper && e.last_stable_offset >= upper {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_34_bytes_in_kafkas_layout() {
        let e = txn(0x0102, 5, 9, 10);
        let bytes = e.encode();
        assert_eq!(&bytes[0..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &0x0102i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &9i64.to_be_bytes());
        assert_eq!(AbortedTxn::decode(&bytes), Ok(e));
        let mut bad = bytes;
        bad[1] = 1;
        assert!(AbortedTxn::decode(&bad).is_err());
    }

    #[test]
    fn file_appends_load_truncate_and_replace() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut index = TxnIndex::default();
        let (_, created) = index.append(&path, txn(1, 0, 4, 5))?;
        assert!(created);
        let (_, created) = index.append(&path, txn(2, 3, 8, 9))?;
        assert!(!created);
        let loaded = TxnIndex::load(&path)?.expect("well formed");
        assert_eq!(loaded.entries(), index.entries());

        let (file, dir_changed) = index.truncate_from(&path, 8)?;
        assert!(file.is_some() && !dir_changed);
        assert_eq!(std::fs::metadata(&path)?.len(), ENTRY_LEN as u64);
        let (_, dir_changed) = index.truncate_from(&path, 0)?;
        assert!(dir_changed && !path.exists(), "an empty index has no file");

        std::fs::write(&path, [0u8; ENTRY_LEN + 1])?;
        assert!(TxnIndex::load(&path)?.is_err(), "torn file");
        let (file, _) = index.replace(&path, vec![txn(3, 1, 2, 3)])?;
        assert!(file.is_some());
        let (file, _) = index.replace(&path, vec![txn(3, 1, 2, 3)])?;
        assert!(file.is_none(), "unchanged contents are not rewritten");
        Ok(())
    }

    #[test]
    fn collect_stops_at_an_entry_whose_last_stable_offset_passes_the_bound() {
        let index = TxnIndex {
            entries: vec![
                // Producer 5's transaction is still open at 10.
                txn(1, 0, 10, 5),
                // A long transaction overlapping [12, 20); its entry ends the search.
                txn(5, 5, 30, 31),
                // Started past the bound, never looked at.
                txn(7, 25, 40, 41),
            ],
            file: None,
        };
        let mut out = Vec::new();
        assert!(index.collect(12, 20, &mut out));
        assert_eq!(out, vec![txn(5, 5, 30, 31)]);
        let mut out = Vec::new();
        assert!(!index.collect(0, 100, &mut out));
        assert_eq!(out.len(), 3);
    }
}
