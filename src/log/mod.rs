//! The storage engine: one [`PartitionLog`] per partition, an ordered list of segments on disk.
//!
//! It owns everything under a partition directory that concerns records:
//!
//! ```text
//! <topic>-<partition>/
//!   00000000000000000000.log        record batches exactly as produced, offsets assigned
//!   00000000000000000000.index      sparse: (relative offset u32 BE, file position u32 BE)
//!   00000000000000000000.timeindex  sparse: (max timestamp i64 BE, relative offset u32 BE)
//!   00000000000001048576.log        next segment, named by its base offset
//!   …
//! ```
//!
//! - **Produce** ([`PartitionLog::append`]): batches are validated ([`batch::validate`]), their
//!   base offsets rewritten in place, and the bytes written to the active segment's file (the
//!   page cache). Records are not decoded.
//! - **Fetch** ([`PartitionLog::read`]): whole batches, verbatim, found through the sparse
//!   offset index and read with positional reads.
//! - **Durability**: appends never fsync. [`PartitionLog::take_unsynced`] hands the files
//!   written since its last call to the caller, which fsyncs them on a blocking thread and
//!   answers `acks=-1` producers afterwards (group commit); a failed fsync must be reported
//!   with [`PartitionLog::poison`], after which the log refuses appends. [`PartitionLog::close`]
//!   writes the indexes and fsyncs everything for a clean shutdown.
//! - **Recovery** ([`PartitionLog::open`]): after a crash every segment is scanned and CRC-checked
//!   and a torn tail is truncated; after a clean shutdown the index files are trusted.
//!
//! A `PartitionLog` is owned and used by one shard thread; there is no internal locking. Indexes
//! are kept in memory and written whole when a segment rolls and on close. The active segment
//! and the newest inactive one keep their files open; older segments are opened when read and
//! closed again at the next roll.

pub mod batch;
mod index;
mod recovery;
mod segment;
mod time_index;

#[cfg(test)]
mod tests;

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tracing::{debug, error};

use self::batch::BatchHeader;
use self::recovery::push_once;
use self::segment::Segment;

/// Per-partition storage settings (Kafka's topic configs of the same meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// `segment.bytes`: a new segment is started when an append would make the active segment
    /// larger than this (never for an empty segment). Capped at 4 GiB, the index's position range.
    pub segment_bytes: u64,
    /// `index.interval.bytes`: bytes between sparse offset/time index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted, in bytes including its 12-byte prefix.
    pub max_message_bytes: usize,
    /// `segment.index.bytes`: the largest index file; a segment whose index is full rolls.
    pub segment_index_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            segment_index_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A batch failed validation: torn or truncated, bad length, CRC mismatch, bad record count.
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// A batch with a message format other than v2.
    #[error("unsupported record batch magic {0}, only 2 is supported")]
    UnsupportedMagic(i8),
    /// A batch larger than `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    RecordTooLarge {
        /// Size of the offending batch (or append).
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A read outside `[log start offset, log end offset]`.
    #[error(
        "offset {offset} is out of range: log start offset {log_start}, log end offset {log_end}"
    )]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// The first offset held.
        log_start: i64,
        /// The next offset to be written.
        log_end: i64,
    },
    /// An earlier write or fsync failed, so the files may not match what was acknowledged; the
    /// log accepts no more appends until it is reopened (which runs recovery).
    #[error("log is poisoned by an earlier i/o failure and accepts no writes")]
    Poisoned,
}

/// What [`PartitionLog::append`] stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub base_offset: i64,
    /// Offset of the last record appended.
    pub last_offset: i64,
    /// Largest `maxTimestamp` of the appended batches (the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Number of records appended.
    pub record_count: u32,
    /// Number of bytes appended.
    pub bytes: usize,
}

/// What [`PartitionLog::read`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Whole batches, verbatim as stored, possibly starting before the requested offset.
    pub records: Bytes,
    /// The log start offset at the time of the read.
    pub log_start_offset: i64,
    /// The high watermark, equal to the log end offset on a single node.
    pub high_watermark: i64,
}

/// The log of one partition: its segments, the active one last.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last is the active segment.
    segments: Vec<Segment>,
    log_end_offset: i64,
    dir_handle: Arc<File>,
    /// Files changed and not yet handed out by `take_unsynced` (rolled segments, their
    /// indexes, the directory), besides the active segment.
    unsynced: Vec<Arc<File>>,
    /// Whether the active segment was written since the last `take_unsynced`.
    active_dirty: bool,
    poisoned: bool,
}

impl PartitionLog {
    /// Opens (creating if absent) the partition directory `dir`.
    ///
    /// If `clean_shutdown` is false, runs recovery: every segment is scanned batch by batch
    /// (framing, magic, CRC-32C, increasing offsets); at the first torn or corrupt batch the
    /// segment is truncated there and later segments deleted, with a warning giving the byte
    /// counts; indexes are rebuilt and rewritten where they differ. If `clean_shutdown` is true,
    /// the index files are trusted (only the tail of the last segment after its last index entry
    /// is read, to find the log end offset); a segment whose index files are missing or
    /// implausible is scanned as in recovery.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        let mut unsynced = Vec::new();
        match std::fs::metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    unsynced.push(Arc::new(File::open(parent)?));
                }
            }
            Err(e) => return Err(e.into()),
        }
        let dir_handle = Arc::new(File::open(dir)?);
        let opened = recovery::open_segments(dir, &config, clean_shutdown, &dir_handle)?;
        for file in &opened.unsynced {
            push_once(&mut unsynced, file);
        }
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments: opened.segments,
            log_end_offset: opened.log_end_offset,
            dir_handle,
            unsynced,
            active_dirty: false,
            poisoned: false,
        })
    }

    /// Appends one or more concatenated v2 batches, exactly as a producer sent them.
    ///
    /// Every batch is validated first (magic 2, length consistent with the buffer, CRC-32C,
    /// `recordsCount == lastOffsetDelta + 1 > 0`, size `<= max_message_bytes`); if any is
    /// invalid nothing is written. Then each batch's base offset is rewritten in place to
    /// consecutive offsets from the log end offset, and the bytes are written to the active
    /// segment (page cache only, no fsync), rolling first if the segment would grow past
    /// `segment_bytes` or its index is full.
    ///
    /// `log_append_time` is `Some(now_ms)` for topics with `message.timestamp.type=LogAppendTime`:
    /// each batch then gets the timestamp-type attribute bit and `maxTimestamp = now_ms`, and its
    /// CRC is recomputed (as Kafka does; `baseTimestamp` is left alone).
    pub fn append(
        &mut self,
        mut records: BytesMut,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let offset_count = self.validate_batches(&records)?;
        let bytes = records.len();
        let base_offset = self.log_end_offset;
        let last_offset = base_offset
            .checked_add(offset_count - 1)
            .ok_or_else(|| LogError::CorruptRecord("offsets overflow".into()))?;
        self.maybe_roll(bytes, last_offset)?;

        // Assign offsets (and the append time).
        let mut next_offset = base_offset;
        let mut max_timestamp = batch::NO_TIMESTAMP;
        let mut record_count: u32 = 0;
        let mut pos = 0;
        while pos < bytes {
            let header = BatchHeader::parse(&records[pos..])?;
            let size = header.total_size();
            let bytes_of_batch = &mut records[pos..pos + size];
            batch::set_base_offset(bytes_of_batch, next_offset);
            let batch_max = match log_append_time {
                Some(now) => {
                    batch::set_log_append_time(bytes_of_batch, now);
                    now
                }
                None => header.max_timestamp,
            };
            max_timestamp = max_timestamp.max(batch_max);
            record_count = record_count.saturating_add(header.records_count.unsigned_abs());
            next_offset += i64::from(header.last_offset_delta) + 1;
            pos += size;
        }

        let segment = self.active_mut();
        let position = segment.size;
        let Some(file) = segment.open_file().cloned() else {
            return Err(io::Error::other("active segment has no open file").into());
        };
        if let Err(e) = file.write_all_at(&records, position) {
            // Cut off whatever part was written; if even that fails the file no longer matches
            // the log end offset.
            if let Err(truncate_error) = file.set_len(position) {
                error!(
                    dir = %self.dir.display(),
                    %e,
                    %truncate_error,
                    "append failed and the partial write could not be removed; poisoning the log"
                );
                self.poisoned = true;
            }
            return Err(e.into());
        }

        let interval = self.config.index_interval_bytes;
        let segment = self.active_mut();
        let mut pos = 0;
        while pos < bytes {
            // Parsed successfully twice above; a failure here cannot happen.
            let Ok(header) = BatchHeader::parse(&records[pos..]) else {
                break;
            };
            segment.on_batch(&header, position + pos as u64, interval);
            pos += header.total_size();
        }
        segment.size += bytes as u64;
        self.log_end_offset = next_offset;
        self.active_dirty = true;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp,
            record_count,
            bytes,
        })
    }

    /// Validates every batch of an append; returns the number of offsets they span.
    fn validate_batches(&self, records: &[u8]) -> Result<i64, LogError> {
        if records.is_empty() {
            return Err(LogError::CorruptRecord("no record batches".into()));
        }
        let mut pos = 0;
        let mut offset_count: i64 = 0;
        while pos < records.len() {
            let header = batch::validate(&records[pos..])?;
            let size = header.total_size();
            if size > self.config.max_message_bytes {
                return Err(LogError::RecordTooLarge {
                    size,
                    max: self.config.max_message_bytes,
                });
            }
            offset_count += i64::from(header.last_offset_delta) + 1;
            pos += size;
        }
        Ok(offset_count)
    }

    /// Rolls the active segment if an append of `bytes` ending at `last_offset` does not fit.
    fn maybe_roll(&mut self, bytes: usize, last_offset: i64) -> Result<(), LogError> {
        let max_position = u64::from(u32::MAX);
        if bytes as u64 > max_position {
            return Err(LogError::RecordTooLarge {
                size: bytes,
                max: u32::MAX as usize,
            });
        }
        let limit = self.config.segment_bytes.min(max_position);
        let active = self.active();
        let must_roll = active.size > 0
            && (active.size + bytes as u64 > limit
                || active.offset_index.is_full()
                || active.time_index.is_full()
                || active.relative(last_offset).is_none());
        if must_roll {
            self.roll()?;
        }
        if self.active().relative(last_offset).is_none() {
            return Err(LogError::CorruptRecord(format!(
                "an append ending at offset {last_offset} spans more offsets than a segment holds"
            )));
        }
        Ok(())
    }

    /// Seals the active segment (final time index entry, index files written) and starts a new
    /// one at the log end offset.
    fn roll(&mut self) -> Result<(), LogError> {
        let new_base = self.log_end_offset;
        let active = self.active_mut();
        active.seal();
        let index_files = active.write_indexes()?;
        let old_file = active.open_file().cloned();
        let old_base = active.base_offset;
        let old_size = active.size;
        let segment = Segment::create(&self.dir, new_base, &self.config)?;
        if self.active_dirty {
            if let Some(file) = &old_file {
                push_once(&mut self.unsynced, file);
            }
        }
        for file in &index_files {
            push_once(&mut self.unsynced, file);
        }
        let dir_handle = Arc::clone(&self.dir_handle);
        push_once(&mut self.unsynced, &dir_handle);
        self.active_dirty = false;
        self.segments.push(segment);
        // Keep files open for the active segment and the newest inactive one only.
        let keep_from = self.segments.len().saturating_sub(2);
        for old in &mut self.segments[..keep_from] {
            old.release_file();
        }
        debug!(
            dir = %self.dir.display(),
            old_base,
            old_size,
            new_base,
            "rolled segment"
        );
        Ok(())
    }

    /// Reads whole batches starting with the batch that contains `offset`, up to `max_bytes`
    /// in total but always at least one whole batch if there is one at or after `offset`
    /// (KIP-74); never a partial batch. May continue into later segments. `offset` equal to the
    /// log end offset gives empty records; outside `[log start, log end]` gives
    /// [`LogError::OffsetOutOfRange`].
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset;
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let mut out = BytesMut::new();
        if offset < log_end {
            let mut index = self
                .segments
                .partition_point(|s| s.base_offset <= offset)
                .saturating_sub(1);
            let mut start = None;
            while let Some(segment) = self.segments.get(index) {
                if let Some((position, _)) = segment.locate(offset)? {
                    start = Some(position);
                    break;
                }
                index += 1;
            }
            if let Some(mut position) = start {
                while let Some(segment) = self.segments.get(index) {
                    let budget = max_bytes.saturating_sub(out.len());
                    let at_least_one = out.is_empty();
                    let reached_end =
                        segment.read_batches(position, budget, at_least_one, &mut out)?;
                    if !reached_end || out.len() >= max_bytes {
                        break;
                    }
                    index += 1;
                    position = 0;
                }
            }
        }
        Ok(ReadResult {
            records: out.freeze(),
            log_start_offset: log_start,
            high_watermark: log_end,
        })
    }

    /// The first offset held (the base offset of the first segment).
    pub fn log_start_offset(&self) -> i64 {
        self.segments.first().map_or(0, |s| s.base_offset)
    }

    /// The offset the next record will get: the last record's offset + 1 (the high watermark on
    /// a single node).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Total bytes of the segment files' batches.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// ListOffsets by timestamp: `(offset, timestamp)` of the first record whose timestamp is
    /// `>= ts`. Uncompressed CreateTime batches are walked record by record
    /// for the exact answer; for compressed batches the answer is the batch's base offset and
    /// `maxTimestamp`, and for LogAppendTime batches (where all records carry the append time)
    /// the base offset. `None` if no record is that recent (Kafka answers offset -1).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in &self.segments {
            if segment.max_timestamp.map_or(true, |m| m.timestamp < ts) {
                continue;
            }
            if let Some(found) = segment.find_timestamp(ts)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// ListOffsets -3 (KIP-734): `(timestamp, offset)` — note the order, the reverse of
    /// [`PartitionLog::offset_for_timestamp`] — of the largest timestamp in the log, the offset
    /// being that of the first record carrying it (the batch's base offset for compressed
    /// batches). `None` if the log is empty.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let mut best: Option<&Segment> = None;
        for segment in &self.segments {
            let Some(max) = segment.max_timestamp else {
                continue;
            };
            if best
                .and_then(|b| b.max_timestamp)
                .map_or(true, |b| max.timestamp > b.timestamp)
            {
                best = Some(segment);
            }
        }
        best.and_then(Segment::resolve_max_timestamp)
            .map(|(offset, timestamp)| (timestamp, offset))
    }

    /// The files written since the last call (the active segment if appended to, segments
    /// rolled since and their index files, the directory after files were created or deleted),
    /// for the caller to `fdatasync` on a blocking thread before acknowledging `acks=-1`
    /// producers. If an fsync fails, call [`PartitionLog::poison`].
    pub fn take_unsynced(&mut self) -> Vec<Arc<File>> {
        let mut files = std::mem::take(&mut self.unsynced);
        if self.active_dirty {
            if let Some(file) = self.active().open_file() {
                push_once(&mut files, file);
            }
            self.active_dirty = false;
        }
        files
    }

    /// Marks the log as failed after an fsync of its files failed: what was acknowledged may
    /// not be on disk, so no further appends are accepted until the log is reopened (and
    /// recovered).
    pub fn poison(&mut self) {
        self.poisoned = true;
    }

    /// Whether the log refuses appends after an i/o failure.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Clean shutdown: writes the active segment's indexes and fsyncs every file written since
    /// the last sync (and the directory). Only after this succeeds may the next open pass
    /// `clean_shutdown = true`. The log stays usable afterwards.
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let active = self.active_mut();
        active.seal();
        let index_files = active.write_indexes()?;
        let active_file = active.open_file().cloned();
        let mut files = self.take_unsynced();
        if let Some(file) = &active_file {
            push_once(&mut files, file);
        }
        for file in &index_files {
            push_once(&mut files, file);
        }
        push_once(&mut files, &self.dir_handle);
        for file in &files {
            if let Err(e) = file.sync_all() {
                error!(dir = %self.dir.display(), %e, "fsync failed on close; poisoning the log");
                self.poisoned = true;
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty: open creates a first segment and nothing removes the last.
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }
}
