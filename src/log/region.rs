//! Record sets held as regions of segment files instead of bytes in memory, so a fetch on a
//! plaintext connection can hand them to the kernel with `sendfile(2)` and never copy them into
//! user space.
//!
//! A region is an open handle (`Arc<File>`, shared with the segment; it keeps the file's inode
//! alive after the segment is closed as idle or deleted by retention), a position and a length.
//! Regions only ever cover whole batches below the log end offset at the time of the read, and
//! bytes below the log end never change (appends only add; a failed append truncates back to
//! the previous end; retention deletes whole files), so sending them later is safe. The one
//! exception is a follower's truncation (`PartitionLog::truncate_to`), which shortens a file
//! below the old end: a region read before it may then run past the end of the file (the send
//! fails with an end-of-file error and the connection closes) or, once new batches are
//! appended there, carry bytes written after the read. A leader never truncates its log, so
//! only reads served by a replica that is about to follow are exposed to this.
//!
//! Used on the shard thread that reads the log (building regions) and on the connection's
//! writer task (sending or reading them).

use std::fs::File;
use std::io;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::batch::{self, LOG_OVERHEAD};
use super::segment::read_exact_at_append;
use super::LogError;

/// `len` bytes of whole batches at `position` of a segment file.
#[derive(Debug, Clone)]
pub struct FileRegion {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRegion {
    /// A region of `file`. The caller vouches that it holds whole batches that no longer change.
    pub fn new(file: Arc<File>, position: u64, len: usize) -> FileRegion {
        FileRegion {
            file,
            position,
            len,
        }
    }

    /// The open segment file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Byte position of the region in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Drops the first `n` bytes (a partial send).
    pub fn advance(&mut self, n: usize) {
        let n = n.min(self.len);
        self.position += n as u64;
        self.len -= n;
    }

    /// The first `len` bytes of the region (at most all of it).
    pub fn prefix(&self, len: usize) -> FileRegion {
        FileRegion {
            file: self.file.clone(),
            position: self.position,
            len: len.min(self.len),
        }
    }

    /// Appends the region's bytes to `out` (`pread`).
    pub fn read_into(&self, out: &mut BytesMut) -> io::Result<()> {
        let start = out.len();
        let result = read_exact_at_append(&self.file, out, self.len, self.position);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }
}

/// Whole batches in one or more file regions, in log order (a read may span segments).
#[derive(Debug, Clone, Default)]
pub struct FileRecords {
    regions: Vec<FileRegion>,
    len: usize,
}

impl FileRecords {
    /// Appends a region (empty ones are skipped).
    pub fn push(&mut self, region: FileRegion) {
        if !region.is_empty() {
            self.len += region.len();
            self.regions.push(region);
        }
    }

    /// Total length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The regions, in order.
    pub fn regions(&self) -> &[FileRegion] {
        &self.regions
    }

    /// Consumes the set, yielding its regions.
    pub fn into_regions(self) -> Vec<FileRegion> {
        self.regions
    }

    /// Reads every region into one buffer (the path for connections that cannot `sendfile`).
    pub fn read_all(&self) -> io::Result<Bytes> {
        let mut out = BytesMut::with_capacity(self.len);
        for r in &self.regions {
            r.read_into(&mut out)?;
        }
        Ok(out.freeze())
    }

    /// The longest prefix made of whole batches and at most `limit` bytes long. Walks the batch
    /// length fields (12-byte reads at batch boundaries; regions start and end at batch
    /// boundaries).
    pub fn whole_batches_within(&self, limit: usize) -> Result<FileRecords, LogError> {
        let mut out = FileRecords::default();
        for region in &self.regions {
            let budget = limit.saturating_sub(out.len);
            if budget >= region.len {
                out.push(region.clone());
                continue;
            }
            let mut taken = 0usize;
            let mut header = [0u8; LOG_OVERHEAD];
            while taken + LOG_OVERHEAD <= region.len {
                read_exact_at(&region.file, &mut header, region.position + taken as u64)?;
                let size = batch_size(&header, region.position + taken as u64)?;
                if taken + size > region.len || taken + size > budget {
                    break;
                }
                taken += size;
            }
            out.push(region.prefix(taken));
            break;
        }
        Ok(out)
    }
}

/// A fetch's record set: bytes in memory, or regions of segment files.
#[derive(Debug, Clone)]
pub enum RecordSet {
    /// Read into memory.
    Bytes(Bytes),
    /// Left in the segment files.
    File(FileRecords),
}

impl RecordSet {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        match self {
            RecordSet::Bytes(b) => b.len(),
            RecordSet::File(f) => f.len(),
        }
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for RecordSet {
    fn default() -> Self {
        RecordSet::Bytes(Bytes::new())
    }
}

/// The size (length field + 12) of the batch whose first 12 bytes are `overhead`, checked.
pub(crate) fn batch_size(overhead: &[u8; LOG_OVERHEAD], position: u64) -> Result<usize, LogError> {
    let batch_length = i32::from_be_bytes([overhead[8], overhead[9], overhead[10], overhead[11]]);
    if batch_length < batch::MIN_BATCH_LENGTH {
        return Err(LogError::CorruptRecord(format!(
            "batch length {batch_length} at position {position}"
        )));
    }
    Ok(batch_length as usize + LOG_OVERHEAD)
}

/// `pread` of exactly `buf.len()` bytes at `position`.
pub(crate) fn read_exact_at(file: &File, buf: &mut [u8], position: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, position)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn batch(len: usize, fill: u8) -> Vec<u8> {
        let mut b = vec![fill; len];
        b[8..12].copy_from_slice(&((len - 12) as i32).to_be_bytes());
        b
    }

    #[test]
    fn trims_regions_to_whole_batches_and_reads_them_back() {
        let mut f = tempfile::tempfile().expect("tempfile");
        let mut all = Vec::new();
        for (len, fill) in [(100, 1u8), (200, 2), (300, 3)] {
            all.extend(batch(len, fill));
        }
        f.write_all(&all).expect("write");
        let f = Arc::new(f);
        let mut set = FileRecords::default();
        set.push(FileRegion::new(f.clone(), 0, 300));
        set.push(FileRegion::new(f.clone(), 300, 300));
        assert_eq!(set.len(), 600);
        assert_eq!(set.read_all().expect("read")[..], all[..]);
        for (limit, want) in [
            (0, 0),
            (99, 0),
            (100, 100),
            (299, 100),
            (300, 300),
            (599, 300),
            (600, 600),
        ] {
            let t = set.whole_batches_within(limit).expect("trim");
            assert_eq!(t.len(), want, "limit {limit}");
            assert_eq!(t.read_all().expect("read")[..], all[..want]);
        }
    }
}
