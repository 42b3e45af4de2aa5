//! One log segment: a `.log` file of record batches with its in-memory offset and time indexes.
//!
//! The `.log` holds batches exactly as produced, with broker-assigned offsets, back to back.
//! The segment's base offset is in its file name (`{base_offset:020}.log`); every batch in it
//! has a base offset `>= base_offset` and fits a `u32` relative offset, and the file is smaller
//! than 4 GiB so that positions fit a `u32` as well.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;

use super::batch::{self, BatchHeader, HEADER_LEN, LOG_OVERHEAD};
use super::index::{OffsetIndex, OffsetIndexEntry};
use super::region::{batch_size, read_exact_at, FileRegion};
use super::time_index::{TimeIndex, TimeIndexEntry};
use super::txn_index::TxnIndex;
use super::{LogConfig, LogError};

/// Bytes read at a time when walking batch headers (lookups stay within about one index
/// interval of their target, so this usually takes one read).
pub(crate) const HEADER_SCAN_CHUNK: usize = 16 * 1024;

/// Suffix of segment data files.
pub(crate) const LOG_SUFFIX: &str = ".log";
/// Suffix of offset index files.
pub(crate) const INDEX_SUFFIX: &str = ".index";
/// Suffix of time index files.
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Suffix of aborted-transaction index files.
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";

/// `dir/{base_offset:020}{suffix}`.
pub(crate) fn segment_file(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// The base offset encoded in a segment file name with the given suffix, if it is one.
pub(crate) fn parse_segment_file_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// Milliseconds on a process-wide monotonic clock, for recording when a segment file was last
/// used (idle handles are closed).
pub(crate) fn monotonic_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// A file's modification time in milliseconds since the epoch (0 if unknown).
pub(crate) fn mtime_ms(metadata: &std::fs::Metadata) -> i64 {
    metadata
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

/// Milliseconds since the epoch by the system clock.
pub(crate) fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A timestamp and the base offset of the batch whose `maxTimestamp` it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimestampOffset {
    pub(crate) timestamp: i64,
    pub(crate) batch_base_offset: i64,
}

/// How a segment is to be cut, from [`Segment::plan_cut`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentCut {
    /// Byte position of the cut: the start of the first batch removed (the size if none is).
    pub(crate) position: u64,
    /// The offset after the last batch kept; the segment's base offset if none is kept.
    pub(crate) next_offset: i64,
    /// Relative offset of the first batch removed (`u32::MAX` if none is).
    cut_relative: u32,
    /// Largest `maxTimestamp` of the batches kept.
    max_timestamp: Option<TimestampOffset>,
    /// Bytes from the last offset index entry kept to the cut.
    bytes_since_index: u64,
}

/// A segment's files and in-memory state.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base_offset: i64,
    /// Bytes of batches in the `.log` (the file is never longer once opened).
    pub(crate) size: u64,
    pub(crate) offset_index: OffsetIndex,
    pub(crate) time_index: TimeIndex,
    /// The transactions aborted by markers in this segment (its `.txnindex`).
    pub(crate) txn_index: TxnIndex,
    /// Bytes appended since the last offset index entry.
    pub(crate) bytes_since_index: u64,
    /// Largest batch `maxTimestamp` in the segment.
    pub(crate) max_timestamp: Option<TimestampOffset>,
    /// Wall-clock time (ms) the segment received its first batch, or for a segment loaded from
    /// disk its file's modification time: `segment.ms` counts from here.
    pub(crate) roll_base_ms: Option<i64>,
    dir: PathBuf,
    /// Open handle: read-write for the active segment, read-only (opened on first read) for
    /// the others.
    file: OnceLock<Arc<File>>,
    /// [`monotonic_ms`] of the last use of `file`.
    last_used_ms: AtomicU64,
}

impl Segment {
    /// In-memory state for a segment with no batches and no open file.
    pub(crate) fn new(dir: &Path, base_offset: i64, config: &LogConfig) -> Segment {
        Segment {
            base_offset,
            size: 0,
            offset_index: OffsetIndex::new(config.segment_index_bytes),
            time_index: TimeIndex::new(config.segment_index_bytes),
            txn_index: TxnIndex::default(),
            bytes_since_index: 0,
            max_timestamp: None,
            roll_base_ms: None,
            dir: dir.to_path_buf(),
            file: OnceLock::new(),
            last_used_ms: AtomicU64::new(monotonic_ms()),
        }
    }

    /// Creates a new, empty segment file (it must not exist) and opens it for writing.
    pub(crate) fn create(dir: &Path, base_offset: i64, config: &LogConfig) -> io::Result<Segment> {
        let segment = Segment::new(dir, base_offset, config);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(segment.path(LOG_SUFFIX))?;
        segment.set_file(Arc::new(file));
        Ok(segment)
    }

    /// The path of this segment's file with the given suffix.
    pub(crate) fn path(&self, suffix: &str) -> PathBuf {
        segment_file(&self.dir, self.base_offset, suffix)
    }

    /// Installs an open handle (replacing none).
    pub(crate) fn set_file(&self, file: Arc<File>) {
        // Only ever called on a segment without a handle; a lost race is impossible on one
        // thread and would leave an equivalent handle in place anyway.
        let _ = self.file.set(file);
    }

    /// The open handle, opening the `.log` read-only if it is not open yet.
    pub(crate) fn file(&self) -> io::Result<&Arc<File>> {
        self.last_used_ms.store(monotonic_ms(), Ordering::Relaxed);
        if let Some(file) = self.file.get() {
            return Ok(file);
        }
        let file = Arc::new(File::open(self.path(LOG_SUFFIX))?);
        self.set_file(file);
        self.file
            .get()
            .ok_or_else(|| io::Error::other("segment file handle vanished"))
    }

    /// The handle if one is open.
    pub(crate) fn open_file(&self) -> Option<&Arc<File>> {
        self.file.get()
    }

    /// Closes this segment's handle (the next read reopens it).
    pub(crate) fn release_file(&mut self) {
        self.file = OnceLock::new();
    }

    /// Whether the handle is open and unused for at least `idle_ms` as of `now_ms`
    /// ([`monotonic_ms`]).
    pub(crate) fn is_idle(&self, now_ms: u64, idle_ms: u64) -> bool {
        self.file.get().is_some()
            && now_ms.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)) >= idle_ms
    }

    /// The segment's largest timestamp as retention sees it (Kafka's `largestTimestamp`): the
    /// largest record timestamp, or the file's modification time if no batch carries one.
    pub(crate) fn largest_timestamp(&self) -> io::Result<i64> {
        match self.max_timestamp {
            Some(m) if m.timestamp >= 0 => Ok(m.timestamp),
            _ => Ok(mtime_ms(&std::fs::metadata(self.path(LOG_SUFFIX))?)),
        }
    }

    /// `offset - base_offset` if it fits the index's `u32`.
    pub(crate) fn relative(&self, offset: i64) -> Option<u32> {
        offset
            .checked_sub(self.base_offset)
            .and_then(|r| u32::try_from(r).ok())
    }

    /// Updates the indexes and the largest timestamp for a batch just written at `position`.
    /// Used by append and by recovery, so that rebuilt indexes equal the original ones.
    pub(crate) fn on_batch(&mut self, header: &BatchHeader, position: u64, interval_bytes: u64) {
        if self
            .max_timestamp
            .map_or(true, |m| header.max_timestamp > m.timestamp)
        {
            self.max_timestamp = Some(TimestampOffset {
                timestamp: header.max_timestamp,
                batch_base_offset: header.base_offset,
            });
        }
        if self.bytes_since_index > interval_bytes {
            if let (Some(relative_offset), Ok(position)) =
                (self.relative(header.base_offset), u32::try_from(position))
            {
                self.offset_index.push(OffsetIndexEntry {
                    relative_offset,
                    position,
                });
                self.push_time_entry(false);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += header.total_size() as u64;
    }

    fn push_time_entry(&mut self, force: bool) {
        if let Some(max) = self.max_timestamp {
            if let Some(relative_offset) = self.relative(max.batch_base_offset) {
                self.time_index.maybe_push(
                    TimeIndexEntry {
                        timestamp: max.timestamp,
                        relative_offset,
                    },
                    force,
                );
            }
        }
    }

    /// Adds the time index entry that records the segment's largest timestamp, so it can be
    /// read back from the file without a scan. Done on roll and on close.
    pub(crate) fn seal(&mut self) {
        self.push_time_entry(true);
    }

    /// Restores the largest timestamp from the last time index entry (clean open).
    pub(crate) fn max_timestamp_from_index(&mut self) {
        self.max_timestamp = self.time_index.last().map(|e| TimestampOffset {
            timestamp: e.timestamp,
            batch_base_offset: self.base_offset + i64::from(e.relative_offset),
        });
    }

    /// Writes both index files whole and returns their handles (for fsync).
    pub(crate) fn write_indexes(&self) -> io::Result<[Arc<File>; 2]> {
        let index = write_file(&self.path(INDEX_SUFFIX), &self.offset_index.to_bytes())?;
        let time_index = write_file(&self.path(TIME_INDEX_SUFFIX), &self.time_index.to_bytes())?;
        Ok([index, time_index])
    }

    /// Like [`Segment::write_indexes`] but skips files whose contents are already right.
    pub(crate) fn write_indexes_if_changed(&self) -> io::Result<Vec<Arc<File>>> {
        let mut written = Vec::new();
        for (suffix, bytes) in [
            (INDEX_SUFFIX, self.offset_index.to_bytes()),
            (TIME_INDEX_SUFFIX, self.time_index.to_bytes()),
        ] {
            let path = self.path(suffix);
            match std::fs::read(&path) {
                Ok(existing) if existing == bytes => {}
                Ok(_) => written.push(write_file(&path, &bytes)?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    written.push(write_file(&path, &bytes)?)
                }
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    /// Deletes the segment's files (missing ones are fine).
    pub(crate) fn delete_files(&self) -> io::Result<()> {
        for suffix in [
            LOG_SUFFIX,
            INDEX_SUFFIX,
            TIME_INDEX_SUFFIX,
            TXN_INDEX_SUFFIX,
        ] {
            match std::fs::remove_file(self.path(suffix)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Works out how to cut the segment at byte `position` (a batch boundary; the size for
    /// nothing cut): the offset after the last batch kept, the largest timestamp of the kept
    /// batches and the bytes since the last index entry kept. Reads the headers from the batch
    /// of the last time index entry kept (the largest timestamp up to there) to the cut, so
    /// usually little more than an index interval. Changes nothing; see [`Segment::apply_cut`].
    pub(crate) fn plan_cut(&self, position: u64) -> Result<SegmentCut, LogError> {
        let position = position.min(self.size);
        let file = self.file()?;
        let cut_relative = if position < self.size {
            let mut scanner = SegmentScanner::new(file, self.size, HEADER_SCAN_CHUNK);
            let header = scanner.header_at(position)?;
            // A batch below the segment's base cannot be; drop every time entry if one is.
            self.relative(header.base_offset).unwrap_or(0)
        } else {
            u32::MAX
        };
        let mut start = 0;
        if let Some(entry) = self.time_index.last_below_relative(cut_relative) {
            if let Some((p, _)) =
                self.locate(self.base_offset + i64::from(entry.relative_offset))?
            {
                start = p.min(position);
            }
        }
        let mut scanner = SegmentScanner::new(file, position, HEADER_SCAN_CHUNK);
        let mut max_timestamp: Option<TimestampOffset> = None;
        let mut next_offset = self.base_offset;
        let mut at = start;
        while at < position {
            let header = scanner.header_at(at)?;
            if max_timestamp.map_or(true, |m| header.max_timestamp > m.timestamp) {
                max_timestamp = Some(TimestampOffset {
                    timestamp: header.max_timestamp,
                    batch_base_offset: header.base_offset,
                });
            }
            next_offset = header.next_offset();
            at += header.total_size() as u64;
        }
        let last_entry = position
            .checked_sub(1)
            .and_then(|p| self.offset_index.floor_position(p));
        Ok(SegmentCut {
            position,
            next_offset,
            cut_relative,
            max_timestamp,
            bytes_since_index: position - last_entry.map_or(0, |e| u64::from(e.position)),
        })
    }

    /// Cuts the segment as planned by [`Segment::plan_cut`]: the file is shortened, the index
    /// entries of the batches removed are dropped, and a read-write handle is installed (the
    /// segment becomes the active one). Its index files are left as they are: they are
    /// rewritten when it rolls or the log closes, and a crash makes recovery scan it (the
    /// recovery point is at or below the cut).
    pub(crate) fn apply_cut(&mut self, cut: &SegmentCut) -> io::Result<()> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.path(LOG_SUFFIX))?;
        let metadata = file.metadata()?;
        if self.roll_base_ms.is_none() && cut.position > 0 {
            self.roll_base_ms = Some(mtime_ms(&metadata));
        }
        if metadata.len() > cut.position {
            file.set_len(cut.position)?;
        }
        self.offset_index.truncate_to_position(cut.position);
        self.time_index.truncate_to_relative(cut.cut_relative);
        self.size = cut.position;
        self.max_timestamp = cut.max_timestamp;
        self.bytes_since_index = cut.bytes_since_index;
        if cut.position == 0 {
            self.roll_base_ms = None;
        }
        self.release_file();
        self.set_file(Arc::new(file));
        Ok(())
    }

    /// Finds the batch containing `offset` or, if `offset` falls in a gap, the first batch
    /// after it: the first batch whose last offset is `>= offset`. Starts from the offset
    /// index's floor entry. `None` if no batch of this segment qualifies.
    pub(crate) fn locate(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let relative = match offset.checked_sub(self.base_offset) {
            Some(r) if r < 0 => None,
            Some(r) => Some(u32::try_from(r).unwrap_or(u32::MAX)),
            None => None,
        };
        let start = relative
            .and_then(|r| self.offset_index.floor(r))
            .map_or(0, |e| u64::from(e.position));
        let mut scanner = SegmentScanner::new(self.file()?, self.size, HEADER_SCAN_CHUNK);
        let mut pos = start;
        while pos < self.size {
            let header = scanner.header_at(pos)?;
            if header.last_offset() >= offset {
                return Ok(Some((pos, header)));
            }
            pos += header.total_size() as u64;
        }
        Ok(None)
    }

    /// Appends to `out` the whole batches starting at `position` and ending at or before byte
    /// `until` (a batch boundary; the segment's size for no bound), as many as fit in `budget`
    /// bytes; with `at_least_one`, the first batch is taken even if it is larger. Returns
    /// whether everything up to `until` was taken (so a read may go on into the next segment).
    pub(crate) fn read_batches(
        &self,
        position: u64,
        until: u64,
        budget: usize,
        at_least_one: bool,
        out: &mut BytesMut,
    ) -> Result<bool, LogError> {
        let until = until.min(self.size);
        let available = usize::try_from(until.saturating_sub(position)).unwrap_or(usize::MAX);
        if available == 0 {
            return Ok(true);
        }
        let want = if at_least_one {
            budget.max(HEADER_LEN)
        } else {
            budget
        }
        .min(available);
        if want == 0 {
            return Ok(false);
        }
        let file = self.file()?;
        let start = out.len();
        if let Err(e) = read_exact_at_append(file, out, want, position) {
            out.truncate(start);
            return Err(e.into());
        }
        // Keep only whole batches.
        let mut taken = 0usize;
        let mut first_size = None;
        while let Some(len_bytes) = out.get(start + taken + 8..start + taken + LOG_OVERHEAD) {
            let batch_length =
                i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
            if batch_length < batch::MIN_BATCH_LENGTH {
                out.truncate(start);
                return Err(LogError::CorruptRecord(format!(
                    "batch length {batch_length} at position {} of segment {}",
                    position + taken as u64,
                    self.base_offset
                )));
            }
            let size = batch_length as usize + LOG_OVERHEAD;
            first_size.get_or_insert(size);
            if taken + size > want {
                break;
            }
            taken += size;
        }
        if taken == 0 && at_least_one {
            // The first batch is larger than the budget: fetch all of it (KIP-74).
            let size = first_size.unwrap_or(0);
            if size == 0 || size > available {
                out.truncate(start);
                return Err(LogError::CorruptRecord(format!(
                    "torn batch at position {position} of segment {}",
                    self.base_offset
                )));
            }
            if let Err(e) = read_exact_at_append(file, out, size - want, position + want as u64) {
                out.truncate(start);
                return Err(e.into());
            }
            taken = size;
        }
        out.truncate(start + taken);
        Ok(taken == available)
    }

    /// Like [`Segment::read_batches`] but leaves the bytes in the file: the region of the whole
    /// batches starting at `position` and ending at or before `until` that fit in `budget` bytes
    /// (with `at_least_one`, the first batch even if larger), found by walking batch length
    /// fields from the offset index's last entry within the budget. Returns the region (if any
    /// bytes) and whether it reaches `until`.
    pub(crate) fn region_of_batches(
        &self,
        position: u64,
        until: u64,
        budget: usize,
        at_least_one: bool,
    ) -> Result<(Option<FileRegion>, bool), LogError> {
        let until = until.min(self.size);
        if position >= until {
            return Ok((None, true));
        }
        let file = self.file()?;
        let limit = position.saturating_add(budget as u64).min(until);
        // Index entries are batch starts: every batch between `position` and the entry fits.
        let mut end = match self.offset_index.floor_position(limit) {
            Some(e) if u64::from(e.position) > position => u64::from(e.position),
            _ => position,
        };
        let mut overhead = [0u8; LOG_OVERHEAD];
        let mut first_size = None;
        while end + LOG_OVERHEAD as u64 <= until {
            read_exact_at(file, &mut overhead, end)?;
            let size = batch_size(&overhead, end)? as u64;
            if end + size > until {
                return Err(LogError::CorruptRecord(format!(
                    "batch at position {end} of segment {} needs {size} bytes, only {} remain",
                    self.base_offset,
                    until - end
                )));
            }
            first_size.get_or_insert(size);
            if end + size > limit {
                break;
            }
            end += size;
        }
        if end == position && at_least_one {
            // The first batch is larger than the budget: send all of it (KIP-74).
            end = position + first_size.unwrap_or(0);
        }
        let region = usize::try_from(end - position)
            .ok()
            .filter(|&len| len > 0)
            .map(|len| FileRegion::new(file.clone(), position, len));
        Ok((region, end == until))
    }

    /// The first record at or after offset `min_offset` (the log start offset) whose timestamp
    /// is `>= target`, as `(offset, timestamp)`. Starts at the batch named by the time index's
    /// last entry older than `target`, then walks batch headers (and the records of the first
    /// uncompressed CreateTime batch whose `maxTimestamp >= target`).
    pub(crate) fn find_timestamp(
        &self,
        target: i64,
        min_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut position = 0;
        if let Some(entry) = self.time_index.last_below(target) {
            let offset = self.base_offset + i64::from(entry.relative_offset);
            if let Some((p, _)) = self.locate(offset)? {
                position = p;
            }
        }
        let mut scanner = SegmentScanner::new(self.file()?, self.size, HEADER_SCAN_CHUNK);
        while position < self.size {
            let header = scanner.header_at(position)?;
            if header.max_timestamp >= target && header.last_offset() >= min_offset {
                if let Some(found) =
                    first_record_matching(&mut scanner, position, &header, min_offset, |t| {
                        t >= target
                    })?
                {
                    return Ok(Some(found));
                }
            }
            position += header.total_size() as u64;
        }
        Ok(None)
    }

    /// `(offset, timestamp)`: the segment's largest timestamp and the offset of the first record
    /// carrying it (the batch's base offset where records cannot be walked or on any read
    /// failure).
    pub(crate) fn resolve_max_timestamp(&self) -> Option<(i64, i64)> {
        let max = self.max_timestamp?;
        let fallback = (max.batch_base_offset, max.timestamp);
        let exact = || -> Result<Option<(i64, i64)>, LogError> {
            let Some((position, header)) = self.locate(max.batch_base_offset)? else {
                return Ok(None);
            };
            let mut scanner = SegmentScanner::new(self.file()?, self.size, HEADER_SCAN_CHUNK);
            first_record_matching(&mut scanner, position, &header, i64::MIN, |t| {
                t == max.timestamp
            })
        };
        match exact() {
            Ok(Some(found)) => Some(found),
            _ => Some(fallback),
        }
    }
}

/// In a batch at `position`: the first record at or after `min_offset` whose timestamp
/// satisfies `wanted`, as `(offset, timestamp)`. Compressed and LogAppendTime batches answer for
/// the whole batch (base offset, or `min_offset` if larger, and maxTimestamp) if `maxTimestamp`
/// is wanted; so does an uncompressed batch whose records do not decode.
fn first_record_matching(
    scanner: &mut SegmentScanner<'_>,
    position: u64,
    header: &BatchHeader,
    min_offset: i64,
    wanted: impl Fn(i64) -> bool,
) -> Result<Option<(i64, i64)>, LogError> {
    let whole_batch = if wanted(header.max_timestamp) {
        Some((header.base_offset.max(min_offset), header.max_timestamp))
    } else {
        None
    };
    if header.compression() != 0 || header.is_log_append_time() {
        return Ok(whole_batch);
    }
    let (_, bytes) = scanner.batch_at(position)?;
    let Ok(records) = batch::records(bytes) else {
        return Ok(whole_batch);
    };
    for record in records {
        let Ok(record) = record else {
            return Ok(whole_batch);
        };
        let timestamp = header.base_timestamp.saturating_add(record.timestamp_delta);
        let offset = header.base_offset + i64::from(record.offset_delta);
        if offset >= min_offset && wanted(timestamp) {
            return Ok(Some((offset, timestamp)));
        }
    }
    Ok(None)
}

/// Writes `bytes` as the whole contents of `path` and returns the handle.
/// Appends `len` bytes read at `position` to `out`, reading straight into its spare capacity
/// (`pread`): a fetch's buffer is not zero-filled before the page cache overwrites it. On error
/// `out` may hold part of the bytes; the caller truncates it.
pub(crate) fn read_exact_at_append(
    file: &File,
    out: &mut BytesMut,
    len: usize,
    position: u64,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    out.reserve(len);
    let mut done = 0usize;
    while done < len {
        let spare = out.spare_capacity_mut();
        let want = (len - done).min(spare.len());
        let offset = libc::off_t::try_from(position + done as u64)
            .map_err(|_| io::Error::other("file position out of range"))?;
        // SAFETY: `spare` is writable, uninitialised memory of at least `want` bytes owned by
        // `out`; the kernel writes at most `want` bytes into it.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast::<libc::c_void>(),
                want,
                offset,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let n = n as usize;
        // SAFETY: the kernel initialised the `n` bytes after the current length.
        unsafe { out.set_len(out.len() + n) };
        done += n;
    }
    Ok(())
}

/// Writes `bufs` back to back at `position` with positional vectored writes (`pwritev`),
/// retrying short writes and `EINTR`, so an append goes from the request's buffers to the page
/// cache in one system call without being gathered into one buffer first.
pub(crate) fn write_all_vectored_at(file: &File, bufs: &[&[u8]], position: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // Well under IOV_MAX (1024 on Linux).
    const MAX_IOV: usize = 512;
    let mut index = 0; // first buffer not completely written
    let mut skip = 0; // bytes of bufs[index] already written
    let mut position = position;
    while index < bufs.len() {
        let iov: Vec<libc::iovec> = bufs[index..]
            .iter()
            .take(MAX_IOV)
            .enumerate()
            .map(|(i, b)| {
                let b = if i == 0 { &b[skip..] } else { b };
                libc::iovec {
                    iov_base: b.as_ptr() as *mut libc::c_void,
                    iov_len: b.len(),
                }
            })
            .collect();
        let offset = libc::off_t::try_from(position)
            .map_err(|_| io::Error::other("file position out of range"))?;
        // SAFETY: every iovec points into a live slice of `bufs` for its full length, and the
        // kernel only reads from them; the count fits in a c_int.
        let written = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                iov.as_ptr(),
                iov.len() as libc::c_int,
                offset,
            )
        };
        if written < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut n = written as usize;
        if n == 0 && bufs[index..].iter().any(|b| !b.is_empty()) {
            return Err(io::ErrorKind::WriteZero.into());
        }
        position += n as u64;
        while index < bufs.len() && n >= bufs[index].len() - skip {
            n -= bufs[index].len() - skip;
            index += 1;
            skip = 0;
        }
        skip += n;
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> io::Result<Arc<File>> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all_at(bytes, 0)?;
    Ok(Arc::new(file))
}

/// Reads a segment file in chunks and hands out batch headers and whole batches by position,
/// checking framing: a header must be complete and a batch must end within `size`.
pub(crate) struct SegmentScanner<'f> {
    file: &'f File,
    size: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_position: u64,
}

impl<'f> SegmentScanner<'f> {
    /// A scanner over the first `size` bytes of `file` reading `chunk` bytes at a time.
    pub(crate) fn new(file: &'f File, size: u64, chunk: usize) -> SegmentScanner<'f> {
        SegmentScanner {
            file,
            size,
            chunk,
            buf: Vec::new(),
            buf_position: 0,
        }
    }

    fn ensure(&mut self, position: u64, len: usize) -> io::Result<&[u8]> {
        let in_buffer = position >= self.buf_position
            && position + len as u64 <= self.buf_position + self.buf.len() as u64;
        if !in_buffer {
            let remaining = usize::try_from(self.size - position).unwrap_or(usize::MAX);
            let n = len.max(self.chunk).min(remaining);
            self.buf.clear();
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.buf_position = position;
        }
        let from = (position - self.buf_position) as usize;
        self.buf
            .get(from..from + len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "short segment read"))
    }

    /// The header of the batch at `position`, checked to be complete and to end within the
    /// segment.
    pub(crate) fn header_at(&mut self, position: u64) -> Result<BatchHeader, LogError> {
        let remaining = self.size.saturating_sub(position);
        if remaining < HEADER_LEN as u64 {
            return Err(LogError::CorruptRecord(format!(
                "{remaining} bytes at position {position} are too few for a batch header"
            )));
        }
        let header = BatchHeader::parse(self.ensure(position, HEADER_LEN)?)?;
        if header.total_size() as u64 > remaining {
            return Err(LogError::CorruptRecord(format!(
                "batch at position {position} needs {} bytes, only {remaining} remain",
                header.total_size()
            )));
        }
        Ok(header)
    }

    /// The header and the bytes of the whole batch at `position`.
    pub(crate) fn batch_at(&mut self, position: u64) -> Result<(BatchHeader, &[u8]), LogError> {
        let header = self.header_at(position)?;
        let bytes = self.ensure(position, header.total_size())?;
        Ok((header, bytes))
    }
}
