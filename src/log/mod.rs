//! The storage engine: one [`PartitionLog`] per partition, an ordered list of segments on disk.
//!
//! It owns everything under a partition directory that concerns records:
//!
//! ```text
//! <topic>-<partition>/
//!   00000000000000000000.log        record batches exactly as produced, offsets assigned
//!   00000000000000000000.index      sparse: (relative offset u32 BE, file position u32 BE)
//!   00000000000000000000.timeindex  sparse: (max timestamp i64 BE, relative offset u32 BE)
//!   00000000000000000000.txnindex   the transactions aborted by markers in the segment, 34
//!                                   bytes each (module `txn_index`; only once one aborts)
//!   00000000000001048576.log        next segment, named by its base offset
//!   …
//!   log-start-offset                the log start offset, when DeleteRecords moved it inside
//!                                   a segment or a follower restarted the log (fsynced before
//!                                   either is answered)
//!   recovery-point-offset           every offset below it was fsynced (written lazily; durably
//!                                   when a truncation lowers it)
//!   leader-epoch-checkpoint         the leader-epoch cache: `epoch startOffset` per line
//!                                   (only once an epoch was assigned or replicated; fsynced)
//! ```
//!
//! - **Produce** ([`PartitionLog::append`]): batches are validated ([`batch::validate`]), their
//!   base offsets set in patched copies of their 61-byte headers (and, once the log leads an
//!   epoch, their `partitionLeaderEpoch`), and headers and the producer's untouched record bytes
//!   written with one `pwritev` to the active segment's file (the page cache). Records are
//!   neither decoded nor copied. The active segment rolls when full (`segment.bytes`, index
//!   full) and, via the retention pass, when older than `segment.ms`.
//! - **Leader epochs** ([`PartitionLog::assign_leader_epoch`]): the leader stamps its epoch on
//!   every batch it appends and records `(epoch, start offset)` in the leader-epoch cache (module
//!   `leader_epoch`), which answers OffsetForLeaderEpoch
//!   ([`PartitionLog::end_offset_for_epoch`]).
//! - **Follower appends** ([`PartitionLog::append_replica`]): batches copied from the leader are
//!   validated the same way but stored byte for byte, offsets and epochs included (a re-sent
//!   prefix is skipped); a batch of a newer epoch adds a cache entry.
//! - **Truncation** ([`PartitionLog::truncate_to`], [`PartitionLog::truncate_fully_and_start_at`]):
//!   a follower whose log diverged from the leader's cuts it at a batch boundary (later segments
//!   deleted, the segment holding the cut shortened and made active, indexes, recovery point and
//!   epoch cache brought back) or restarts it empty at an offset.
//! - **Fetch** ([`PartitionLog::read`]): whole batches, verbatim, found through the sparse
//!   offset index and read with positional reads; below the log start offset is
//!   [`LogError::OffsetOutOfRange`]. [`PartitionLog::read_records`] finds the same batches but
//!   can leave large ones in the files as regions ([`FileRecords`]) for `sendfile(2)`. Both have
//!   bounded forms ([`PartitionLog::read_upto`], [`PartitionLog::read_records_upto`]) that stop
//!   before the first batch reaching an upper offset (consumers of a replicated partition read
//!   up to the high watermark).
//! - **Retention** ([`PartitionLog::apply_retention`], run by the shard's maintenance tick):
//!   rolls an aged or wholly expired active segment, then deletes whole segments from the oldest
//!   on while they are past `retention.ms`, beyond `retention.bytes` or below the log start
//!   offset. **DeleteRecords** ([`PartitionLog::delete_records_before`]) moves the log start
//!   offset, durably, and deletes the segments wholly below it. Either way the epoch cache drops
//!   the entries below the new log start.
//! - **Transactions** ([`PartitionLog::append_aborted_txn`], [`PartitionLog::read_committed`]):
//!   the owner (the shard, which tracks open transactions) records each aborted transaction
//!   when it appends the abort marker; the entries are written to the segment's `.txnindex`
//!   at once and fsynced with the segment, deleted with it and cut by truncation. A clean open
//!   reads them back; after a crash the owner rebuilds them from a scan
//!   ([`PartitionLog::replace_aborted_txns`]). A read-committed read is bounded by the last
//!   stable offset and lists the aborted transactions overlapping what it returns.
//! - **Durability**: appends never fsync. [`PartitionLog::take_unsynced`] hands the files
//!   written since its last call to the caller, which fsyncs them on blocking threads and
//!   answers `acks=-1` producers afterwards (group commit), then gives the [`SyncToken`] back to
//!   [`PartitionLog::mark_synced`], which moves the recovery point. `flush.messages` /
//!   `flush.ms` say when acks=1 data is due ([`PartitionLog::flush_due`]). A failed fsync must be
//!   reported with [`PartitionLog::poison`], after which the log refuses appends.
//!   [`PartitionLog::close`] writes the indexes, fsyncs everything and records the end as the
//!   recovery point, for a clean shutdown. Truncation hands its changes out the same way.
//! - **Recovery** ([`PartitionLog::open`]): after a clean shutdown the index files are trusted
//!   and nothing is scanned; after a crash the segments wholly below the checkpointed recovery
//!   point are trusted likewise, and every later one is scanned and CRC-checked, a torn or
//!   corrupt tail truncated (and reported with its byte counts), later segments deleted. The
//!   epoch cache then loses the entries at or beyond the recovered log end.
//!
//! A `PartitionLog` is owned and used by one shard thread; there is no internal locking. Indexes
//! are kept in memory and written whole when a segment rolls and on close. Open files: the
//! active segment's, plus inactive segments' while they are read; the newest inactive one stays
//! open after a roll, and [`PartitionLog::close_idle_files`] closes those not read for a while.
//! The partition directory is opened only to fsync it.

pub mod batch;
mod checkpoint;
pub mod cleaner;
pub mod compact;
pub mod disk_full;
mod index;
mod leader_epoch;
mod recovery;
mod region;
mod segment;
mod time_index;
pub mod txn_index;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tracing::{debug, error, info, warn};

use self::batch::BatchHeader;
use self::leader_epoch::LeaderEpochCache;
use self::recovery::{push_once, Recovery};
pub use self::region::{FileRecords, FileRegion, RecordSet};
use self::segment::{Segment, SegmentCut, TXN_INDEX_SUFFIX};
pub use self::txn_index::AbortedTxn;
use self::txn_index::TxnIndex;

/// Per-partition storage settings (Kafka's topic configs of the same meaning). Every partition
/// log holds its own copy, replaceable at run time with [`PartitionLog::set_config`]; the
/// broker-wide defaults come from `Config::log_config` and a topic's overrides are layered on
/// with [`LogConfig::set_topic_config`].
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// `segment.bytes`: a new segment is started when an append would make the active segment
    /// larger than this (never for an empty segment). Capped at 4 GiB, the index's position range.
    pub segment_bytes: u64,
    /// `segment.ms`: a non-empty active segment older than this (counted from its first append,
    /// or the file's modification time after a restart) is rolled by the next retention pass.
    pub segment_ms: u64,
    /// `index.interval.bytes`: bytes between sparse offset/time index entries.
    pub index_interval_bytes: u64,
    /// `max.message.bytes`: the largest batch accepted, in bytes including its 12-byte prefix.
    pub max_message_bytes: usize,
    /// `segment.index.bytes`: the largest index file; a segment whose index is full rolls.
    pub segment_index_bytes: u64,
    /// `retention.ms`: inactive segments whose largest timestamp is older than this are
    /// deleted (`None`: -1, kept forever).
    pub retention_ms: Option<u64>,
    /// `retention.bytes`: the oldest inactive segments are deleted while the log is larger than
    /// this (`None`: -1, no limit).
    pub retention_bytes: Option<u64>,
    /// `flush.messages`: data not acknowledged with acks=-1 is fsynced once this many offsets
    /// were appended since the last fsync (`None`: Long.MAX, never by count).
    pub flush_interval_messages: Option<u64>,
    /// `flush.ms`: such data is fsynced once this long has passed since the last fsync, checked
    /// by the shard's maintenance tick (`None`: Long.MAX, never by time).
    pub flush_interval_ms: Option<u64>,
    /// `cleanup.policy` includes `compact`: the log cleaner keeps the latest record of each key
    /// (module `cleaner`) and appends of records without a key are refused.
    pub compact: bool,
    /// `min.cleanable.dirty.ratio`.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`.
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms` (`None`: Long.MAX, no bound); also rolls the active segment of
    /// a compacted log once it is this old.
    pub max_compaction_lag_ms: Option<u64>,
    /// `delete.retention.ms`: how long tombstones and markers stay in the clean part.
    pub delete_retention_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1024 * 1024 * 1024,
            segment_ms: 7 * 24 * 3_600_000,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            segment_index_bytes: 10 * 1024 * 1024,
            retention_ms: Some(7 * 24 * 3_600_000),
            retention_bytes: None,
            flush_interval_messages: None,
            flush_interval_ms: None,
            compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
            delete_retention_ms: 86_400_000,
        }
    }
}

impl LogConfig {
    /// Sets the field that the Kafka topic config `key` names from its integer value, with
    /// Kafka's conventions (negative retention = unlimited, `Long.MAX` flush settings = never).
    /// Returns false, changing nothing, if `key` is not a log setting.
    pub fn set_topic_config(&mut self, key: &str, value: i64) -> bool {
        let positive = u64::try_from(value.max(1)).unwrap_or(1);
        let non_negative = u64::try_from(value.max(0)).unwrap_or(0);
        let unless_max = |v: i64| (v != i64::MAX).then(|| u64::try_from(v.max(0)).unwrap_or(0));
        match key {
            "segment.bytes" => self.segment_bytes = positive,
            "segment.ms" => self.segment_ms = positive,
            "index.interval.bytes" => self.index_interval_bytes = non_negative,
            "segment.index.bytes" => self.segment_index_bytes = positive,
            "max.message.bytes" => {
                self.max_message_bytes = usize::try_from(non_negative).unwrap_or(usize::MAX)
            }
            "retention.ms" => self.retention_ms = u64::try_from(value).ok(),
            "retention.bytes" => self.retention_bytes = u64::try_from(value).ok(),
            "flush.messages" => self.flush_interval_messages = unless_max(value.max(1)),
            "flush.ms" => self.flush_interval_ms = unless_max(value),
            "min.compaction.lag.ms" => self.min_compaction_lag_ms = non_negative,
            "max.compaction.lag.ms" => self.max_compaction_lag_ms = unless_max(value.max(1)),
            "delete.retention.ms" => self.delete_retention_ms = non_negative,
            _ => return false,
        }
        true
    }
}

/// Where a log reads the time (milliseconds since the epoch): the system clock, or a clock a
/// test controls.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> i64 + Send + Sync>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(Arc::new(segment::wall_clock_ms))
    }

    /// A clock reading `f`.
    pub fn new(f: impl Fn() -> i64 + Send + Sync + 'static) -> Clock {
        Clock(Arc::new(f))
    }

    /// The current time in milliseconds since the epoch.
    pub fn now_ms(&self) -> i64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// What opening a log found and did (after an unclean shutdown: how much was scanned).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenStats {
    /// Segments in the log once opened.
    pub segments: usize,
    /// Segments scanned batch by batch (after a crash, those from the recovery point on, or any
    /// whose index files were unusable).
    pub segments_scanned: usize,
    /// Bytes of those segments that were valid.
    pub bytes_scanned: u64,
    /// Bytes cut off torn or corrupt tails.
    pub bytes_truncated: u64,
    /// Segments deleted because an earlier one was truncated or they overlapped it.
    pub segments_deleted: usize,
}

/// What a retention pass ([`PartitionLog::apply_retention`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Whether the active segment was rolled (past `segment.ms`, or wholly past `retention.ms`).
    pub rolled: bool,
    /// Segments deleted.
    pub deleted_segments: usize,
    /// Bytes deleted.
    pub deleted_bytes: u64,
}

/// Proof that the data of one log up to an offset was handed out for fsync; give it back to
/// [`PartitionLog::mark_synced`] once the files are synced to move the recovery point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncToken {
    instance: u64,
    up_to: i64,
}

impl SyncToken {
    /// Every offset below this is durable once the files are synced.
    pub fn up_to(&self) -> i64 {
        self.up_to
    }
}

/// Files to fsync, from [`PartitionLog::take_unsynced`].
#[derive(Debug)]
pub struct Unsynced {
    /// The files (segments, indexes, the partition directory); possibly none.
    pub files: Vec<Arc<File>>,
    /// What the fsync makes durable.
    pub token: SyncToken,
}

/// Distinguishes log instances, so a sync token of a deleted partition is not applied to a new
/// partition of the same name. A truncation gives its log a new instance too, so tokens for
/// data it removed are not applied to data written in its place.
static NEXT_INSTANCE: AtomicU64 = AtomicU64::new(1);

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A batch failed validation: torn or truncated, bad length, CRC mismatch, bad record count.
    #[error("corrupt record batch: {0}")]
    CorruptRecord(String),
    /// A record the topic's settings refuse (a record without a key on a compacted topic):
    /// Kafka's INVALID_RECORD.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
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
    /// A replicated batch does not continue the log: it starts below the log end offset (and
    /// does not wholly precede it), or below the offset after the previous batch of the append.
    #[error("record batch with base offset {got} does not continue the log: expected an offset of at least {expected}")]
    OffsetMismatch {
        /// The smallest base offset that would have been accepted.
        expected: i64,
        /// The batch's base offset.
        got: i64,
    },
    /// [`PartitionLog::assign_leader_epoch`] with an epoch older than the newest one the log
    /// has seen (a deposed leader).
    #[error("leader epoch {epoch} is older than the latest leader epoch {latest} of the log")]
    StaleEpoch {
        /// The epoch given.
        epoch: i32,
        /// The newest epoch in the leader-epoch cache.
        latest: i32,
    },
    /// A negative leader epoch given to [`PartitionLog::assign_leader_epoch`].
    #[error("leader epoch {0} is negative")]
    InvalidEpoch(i32),
}

impl LogError {
    /// Whether this is a write that failed because the file system is full (ENOSPC, EDQUOT).
    pub fn is_out_of_space(&self) -> bool {
        matches!(self, LogError::Io(e) if disk_full::is_out_of_space(e))
    }
}

/// What [`PartitionLog::append`] (or [`PartitionLog::append_replica`]) stored.
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

/// What [`PartitionLog::read`] (records as [`Bytes`]) or [`PartitionLog::read_records`] (as a
/// [`RecordSet`]) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult<R = Bytes> {
    /// Whole batches, verbatim as stored, possibly starting before the requested offset.
    pub records: R,
    /// The log start offset at the time of the read.
    pub log_start_offset: i64,
    /// The log end offset at the time of the read: the high watermark on a single node. A
    /// replicated partition's caller substitutes its own high watermark.
    pub high_watermark: i64,
}

/// Where a read starts (segment index, byte position of the first batch) and, for a bounded
/// read, the segment index and byte position it must not pass (`None`: the log end).
#[derive(Debug, Clone, Copy)]
struct ReadSpan {
    index: usize,
    position: u64,
    end: Option<(usize, u64)>,
}

impl ReadSpan {
    /// How far segment `index` may be read; `None` once past the bound.
    fn until(&self, index: usize, segment: &Segment) -> Option<u64> {
        match self.end {
            Some((end_index, _)) if index > end_index => None,
            Some((end_index, position)) if index == end_index => Some(position),
            _ => Some(segment.size),
        }
    }
}

/// The log of one partition: its segments, the active one last.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Sorted by base offset; never empty; the last is the active segment.
    segments: Vec<Segment>,
    /// The first offset readable: at least the first segment's base offset, moved further by
    /// DeleteRecords (then persisted in the `log-start-offset` checkpoint).
    log_start_offset: i64,
    log_end_offset: i64,
    /// Every offset below this is fsynced (persisted lazily in `recovery-point-offset`).
    recovery_point: i64,
    /// The recovery point last written to its checkpoint file.
    recovery_point_written: Option<i64>,
    instance: u64,
    /// Files changed and not yet handed out by `take_unsynced` (rolled segments and their
    /// indexes, segments recovered at open), besides the active segment.
    unsynced: Vec<Arc<File>>,
    /// Whether files were created or deleted in the directory since the last `take_unsynced`.
    dir_dirty: bool,
    /// Whether the active segment was written since the last `take_unsynced`.
    active_dirty: bool,
    /// The log end offset at the last `take_unsynced` (for `flush.messages`).
    flushed_offset: i64,
    /// When `take_unsynced` was last called (for `flush.ms`).
    last_flush_ms: i64,
    clock: Clock,
    open_stats: OpenStats,
    /// Nothing changed since the last successful close (or a clean open): closing again has
    /// nothing to write or fsync.
    closed: bool,
    poisoned: bool,
    /// The leader-epoch cache, as in its checkpoint file.
    epochs: LeaderEpochCache,
    /// The epoch stamped on appended batches while this log leads (set by
    /// `assign_leader_epoch`, cleared by the follower-side operations); `None`: batches are
    /// stored with the producer's field.
    leader_epoch: Option<i32>,
    /// The aborted-transaction index files were read at a clean open and all were well
    /// formed (otherwise the owner rebuilds them: [`PartitionLog::replace_aborted_txns`]).
    txn_index_trusted: bool,
    /// The cleaner's checkpoints as last read or written (`None`: not read yet).
    cleaner_marks: Option<cleaner::Marks>,
}

impl PartitionLog {
    /// Opens (creating if absent) the partition directory `dir`.
    ///
    /// If `clean_shutdown` is true, the index files are trusted (only the tail of the last
    /// segment after its last index entry is read, to find the log end offset); a segment whose
    /// index files are missing or implausible is scanned. If it is false, recovery runs:
    /// segments wholly below the recovery point (from the `recovery-point-offset` checkpoint) are
    /// trusted in the same way, and every later segment is scanned batch by batch (framing,
    /// magic, CRC-32C, increasing offsets); at the first torn or corrupt batch the segment is
    /// truncated there and later segments deleted, with a warning giving the byte counts;
    /// indexes are rebuilt and rewritten where they differ.
    ///
    /// The log start offset is the larger of the first segment's base offset and the
    /// `log-start-offset` checkpoint. Should it lie beyond the recovered log end offset (records
    /// deleted by DeleteRecords were also lost in the crash), the log is emptied and restarts at
    /// the log start offset, so no offset is handed out twice.
    ///
    /// The leader-epoch cache is read from `leader-epoch-checkpoint` (a malformed file is
    /// ignored with a warning); entries starting at or beyond the recovered log end offset are
    /// dropped, and entries below the log start offset as after retention. Appends are not
    /// stamped with an epoch until [`PartitionLog::assign_leader_epoch`] is called again.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        clean_shutdown: bool,
    ) -> Result<PartitionLog, LogError> {
        let mut dir_dirty = false;
        match std::fs::metadata(dir) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                // The new directory's entry in its parent must reach the disk too.
                if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                    File::open(parent)?.sync_all()?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        let recovery = if clean_shutdown {
            Recovery::Clean
        } else {
            Recovery::From(checkpoint::read(dir, checkpoint::RECOVERY_POINT_FILE)?.unwrap_or(0))
        };
        let opened = recovery::open_segments(dir, &config, recovery)?;
        dir_dirty |= opened.dir_dirty;
        let mut epochs = LeaderEpochCache::load(dir)?;
        let mut epochs_changed = epochs.truncate_from_end(opened.log_end_offset);
        let clock = Clock::system();
        let mut log = PartitionLog {
            dir: dir.to_path_buf(),
            config,
            log_start_offset: opened.segments.first().map_or(0, |s| s.base_offset),
            segments: opened.segments,
            log_end_offset: opened.log_end_offset,
            recovery_point: match recovery {
                Recovery::Clean => opened.log_end_offset,
                Recovery::From(point) => point.min(opened.log_end_offset),
            },
            recovery_point_written: None,
            instance: NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed),
            unsynced: opened.unsynced,
            dir_dirty,
            active_dirty: false,
            flushed_offset: opened.log_end_offset,
            last_flush_ms: clock.now_ms(),
            clock,
            open_stats: opened.stats,
            closed: false,
            poisoned: false,
            epochs,
            leader_epoch: None,
            txn_index_trusted: false,
            cleaner_marks: None,
        };
        log.load_txn_indexes(clean_shutdown)?;
        log.closed = clean_shutdown && !log.has_unsynced();
        if let Some(start) = checkpoint::read(dir, checkpoint::LOG_START_FILE)? {
            if start > log.log_end_offset {
                warn!(
                    dir = %dir.display(),
                    log_end_offset = log.log_end_offset,
                    log_start_offset = start,
                    "the log start offset lies beyond the recovered log; restarting the log there"
                );
                log.restart_at(start)?;
            }
            log.log_start_offset = log.log_start_offset.max(start);
        }
        epochs_changed |= log.epochs.truncate_from_start(log.log_start_offset);
        if epochs_changed {
            log.epochs.persist(dir)?;
        }
        Ok(log)
    }

    /// Reads every segment's `.txnindex`, keeping the entries whose marker lies inside the
    /// segment and below the log end (rewriting a file that held others, as after a recovery
    /// that cut the log). A malformed file is removed with a warning; the index is then not
    /// trusted ([`PartitionLog::txn_index_trusted`]), nor is it after an unclean shutdown.
    fn load_txn_indexes(&mut self, clean_shutdown: bool) -> Result<(), LogError> {
        let mut trusted = clean_shutdown;
        for i in 0..self.segments.len() {
            let until = self
                .segments
                .get(i + 1)
                .map_or(self.log_end_offset, |next| next.base_offset);
            let segment = &mut self.segments[i];
            let path = segment.path(TXN_INDEX_SUFFIX);
            let entries = match TxnIndex::load(&path)? {
                Ok(mut index) => {
                    if !index.retain_range(segment.base_offset, until) {
                        segment.txn_index = index;
                        continue;
                    }
                    index.entries().to_vec()
                }
                Err(reason) => {
                    warn!(
                        path = %path.display(),
                        reason,
                        "aborted-transaction index is malformed; removing it"
                    );
                    trusted = false;
                    Vec::new()
                }
            };
            let (file, dir_changed) = segment.txn_index.replace(&path, entries)?;
            if let Some(file) = file {
                push_once(&mut self.unsynced, &file);
            }
            self.dir_dirty |= dir_changed;
        }
        self.txn_index_trusted = trusted;
        Ok(())
    }

    /// Whether the aborted-transaction index was read from files written before a clean
    /// shutdown, all well formed. After an unclean shutdown the owner rebuilds it from the
    /// log ([`PartitionLog::replace_aborted_txns`]), as it rebuilds the producers' state.
    pub fn txn_index_trusted(&self) -> bool {
        self.txn_index_trusted
    }

    /// Records a transaction aborted by the marker just appended at `txn.last_offset` (in the
    /// active segment, after every recorded marker): kept in memory and written at the end of
    /// the segment's `.txnindex`, which the next [`PartitionLog::take_unsynced`] hands out for
    /// fsync with the marker. A marker outside the active segment is
    /// [`LogError::OffsetMismatch`]; a failed write poisons the log.
    pub fn append_aborted_txn(&mut self, txn: AbortedTxn) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let active = self.active();
        let after = active
            .txn_index
            .entries()
            .last()
            .map_or(active.base_offset, |e| e.last_offset + 1);
        if txn.last_offset < after || txn.last_offset >= self.log_end_offset {
            return Err(LogError::OffsetMismatch {
                expected: after,
                got: txn.last_offset,
            });
        }
        let active = self.active_mut();
        let path = active.path(TXN_INDEX_SUFFIX);
        match active.txn_index.append(&path, txn) {
            Ok((file, created)) => {
                push_once(&mut self.unsynced, &file);
                self.dir_dirty |= created;
                self.closed = false;
                Ok(())
            }
            Err(e) => {
                error!(
                    path = %path.display(),
                    %e,
                    "cannot write the aborted-transaction index; poisoning the log"
                );
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    /// The aborted transactions overlapping `[from, upper)`: marker at or after `from`, first
    /// offset below `upper`, in marker order. Looks at the segments from the one holding `from`
    /// on and stops at the first entry that rules out every later one (see the `txn_index`
    /// module).
    pub fn aborted_txns(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let start = self
            .segments
            .partition_point(|s| s.base_offset <= from)
            .saturating_sub(1);
        for segment in &self.segments[start..] {
            if segment.txn_index.collect(from, upper, &mut out) {
                break;
            }
        }
        out
    }

    /// Replaces the whole aborted-transaction index with `txns` (sorted by marker offset), as
    /// rebuilt from a scan of the log: each entry goes to the segment holding its marker
    /// (entries outside the log are dropped), and the files that change are rewritten (or
    /// removed) and handed out by the next [`PartitionLog::take_unsynced`]. The index is
    /// trusted afterwards.
    pub fn replace_aborted_txns(&mut self, mut txns: Vec<AbortedTxn>) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let log_end = self.log_end_offset;
        txns.retain(|t| t.last_offset < log_end);
        let mut rest = txns.as_slice();
        for i in 0..self.segments.len() {
            let until = self
                .segments
                .get(i + 1)
                .map_or(log_end, |next| next.base_offset);
            let base = self.segments[i].base_offset;
            let below = rest.partition_point(|t| t.last_offset < base);
            let (mine, later) =
                rest[below..].split_at(rest[below..].partition_point(|t| t.last_offset < until));
            rest = later;
            let segment = &mut self.segments[i];
            let path = segment.path(TXN_INDEX_SUFFIX);
            let (file, dir_changed) = segment.txn_index.replace(&path, mine.to_vec())?;
            if let Some(file) = file {
                push_once(&mut self.unsynced, &file);
                self.closed = false;
            }
            if dir_changed {
                self.dir_dirty = true;
                self.closed = false;
            }
        }
        self.txn_index_trusted = true;
        Ok(())
    }

    /// Replaces the log's clock (tests drive time with it).
    pub fn set_clock(&mut self, clock: Clock) {
        self.last_flush_ms = clock.now_ms();
        self.clock = clock;
    }

    /// The log's settings.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the log's settings (a topic config changed). Size limits apply from the next
    /// append, index sizes to segments created from now on, retention and `segment.ms` from the
    /// next retention pass.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// What opening the log found (how much recovery scanned and truncated).
    pub fn open_stats(&self) -> OpenStats {
        self.open_stats
    }

    /// Empties the log and starts it again at `offset`: every segment is deleted and a new one
    /// created. Checkpoints and the epoch cache are the caller's business.
    fn restart_at(&mut self, offset: i64) -> Result<(), LogError> {
        self.clamp_cleaner_checkpoint(offset)?;
        for segment in &mut self.segments {
            segment.release_file();
            segment.delete_files()?;
        }
        self.segments.clear();
        self.segments
            .push(Segment::create(&self.dir, offset, &self.config)?);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.recovery_point = self.recovery_point.min(offset);
        self.flushed_offset = offset;
        self.unsynced.clear();
        self.dir_dirty = true;
        self.closed = false;
        Ok(())
    }

    /// Appends one or more concatenated v2 batches, exactly as a producer sent them.
    ///
    /// Every batch is validated first (magic 2, length consistent with the buffer, CRC-32C,
    /// `recordsCount == lastOffsetDelta + 1 > 0`, size `<= max_message_bytes`); if any is
    /// invalid nothing is written. Then each batch gets consecutive offsets from the log end
    /// offset and is written to the active segment (page cache only, no fsync), rolling first
    /// if the segment would grow past `segment_bytes` or its index is full.
    ///
    /// The producer's bytes are not copied or modified: each batch's 61-byte header is patched
    /// in a copy (the base offset is outside the CRC) and one `pwritev` writes the patched
    /// headers interleaved with the untouched record bytes.
    ///
    /// `log_append_time` is `Some(now_ms)` for topics with `message.timestamp.type=LogAppendTime`:
    /// each batch then gets the timestamp-type attribute bit and `maxTimestamp = now_ms`, and its
    /// CRC is recomputed (as Kafka does; `baseTimestamp` is left alone).
    ///
    /// While the log leads an epoch ([`PartitionLog::assign_leader_epoch`]), each header copy
    /// also gets that epoch as its `partitionLeaderEpoch` (outside the CRC). Otherwise the field
    /// is stored as the producer sent it.
    pub fn append(
        &mut self,
        records: impl Into<Bytes>,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo, LogError> {
        let records: Bytes = records.into();
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let stamp = self.leader_epoch;
        let offset_count = self.validate_batches(&records)?;
        let bytes = records.len();
        let base_offset = self.log_end_offset;
        let last_offset = base_offset
            .checked_add(offset_count - 1)
            .ok_or_else(|| LogError::CorruptRecord("offsets overflow".into()))?;
        self.maybe_roll(bytes, base_offset, last_offset)?;

        // Assign offsets (and the append time) in copies of the headers.
        let mut next_offset = base_offset;
        let mut max_timestamp = batch::NO_TIMESTAMP;
        let mut record_count: u32 = 0;
        let mut headers: Vec<(usize, [u8; batch::HEADER_LEN], BatchHeader)> = Vec::new();
        let mut pos = 0;
        while pos < bytes {
            let header = BatchHeader::parse(&records[pos..])?;
            let size = header.total_size();
            let mut patched =
                batch::patched_header(&records[pos..pos + size], next_offset, log_append_time)
                    .ok_or_else(|| LogError::CorruptRecord("truncated batch".into()))?;
            if let Some(epoch) = stamp {
                batch::set_partition_leader_epoch(&mut patched, epoch);
            }
            let header = BatchHeader::parse(&patched)?;
            max_timestamp = max_timestamp.max(header.max_timestamp);
            record_count = record_count.saturating_add(header.records_count.unsigned_abs());
            next_offset += i64::from(header.last_offset_delta) + 1;
            headers.push((pos, patched, header));
            pos += size;
        }
        let mut slices: Vec<&[u8]> = Vec::with_capacity(2 * headers.len());
        for (pos, patched, header) in &headers {
            slices.push(&patched[..]);
            slices.push(&records[pos + batch::HEADER_LEN..pos + header.total_size()]);
        }

        let position = self.write_active(&slices)?;
        drop(slices);

        let interval = self.config.index_interval_bytes;
        let now_ms = self.clock.now_ms();
        let segment = self.active_mut();
        for (pos, _, header) in &headers {
            segment.on_batch(header, position + *pos as u64, interval);
        }
        if segment.size == 0 {
            segment.roll_base_ms = Some(now_ms);
        }
        segment.size += bytes as u64;
        self.log_end_offset = next_offset;
        self.active_dirty = true;
        self.closed = false;
        Ok(AppendInfo {
            base_offset,
            last_offset: next_offset - 1,
            max_timestamp,
            record_count,
            bytes,
        })
    }

    /// Leader side: from now on appends are stamped with `epoch` in each batch header's
    /// `partitionLeaderEpoch` (bytes 12..16, outside the CRC, patched in the header copy like
    /// the base offset). An epoch newer than the cache's latest is recorded as
    /// `(epoch, log end offset)` in the leader-epoch cache, whose checkpoint is fsynced before
    /// this returns; the latest epoch again only resumes stamping (after a reopen, say). An
    /// older epoch is [`LogError::StaleEpoch`], a negative one [`LogError::InvalidEpoch`];
    /// neither changes anything.
    ///
    /// Stamping lasts until the log is used as a follower: [`PartitionLog::append_replica`],
    /// [`PartitionLog::truncate_to`] and [`PartitionLog::truncate_fully_and_start_at`] end it,
    /// as does reopening the log.
    pub fn assign_leader_epoch(&mut self, epoch: i32) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if epoch < 0 {
            return Err(LogError::InvalidEpoch(epoch));
        }
        match self.epochs.latest_epoch() {
            Some(latest) if epoch < latest => {
                return Err(LogError::StaleEpoch { epoch, latest });
            }
            Some(latest) if epoch == latest => {}
            _ => {
                let mut epochs = self.epochs.clone();
                epochs.assign(epoch, self.log_end_offset);
                epochs.persist(&self.dir)?;
                self.epochs = epochs;
                info!(
                    dir = %self.dir.display(),
                    epoch,
                    start_offset = self.log_end_offset,
                    "leading a new leader epoch"
                );
            }
        }
        self.leader_epoch = Some(epoch);
        Ok(())
    }

    /// The newest epoch in the leader-epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.latest_epoch()
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch`: the largest cached epoch `<= epoch`
    /// and the end offset of that epoch (the start offset of the next newer cached epoch, or
    /// the log end offset if it is the newest). `None` when `epoch` is older than every cached
    /// epoch or the cache is empty (the caller answers UNDEFINED, -1/-1).
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        self.epochs.end_offset_for(epoch, self.log_end_offset)
    }

    /// The leader-epoch cache entries `(epoch, start offset)`, oldest first.
    pub fn epoch_entries(&self) -> Vec<(i32, i64)> {
        self.epochs
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    }

    /// Follower side: appends batches exactly as the leader stored them, offsets and every
    /// header byte kept (nothing patched, one `pwritev` of the bytes as received).
    ///
    /// Every batch is validated as [`PartitionLog::append`] does (framing, magic 2, CRC-32C,
    /// record counts) except for `max.message.bytes`, which the leader enforced. Whole batches
    /// whose last offset is below the log end offset are skipped (a re-sent prefix); the first
    /// batch kept must start at or after the log end offset, and every batch after the previous
    /// one's last offset (gaps are allowed, as compaction leaves them); otherwise the append is
    /// [`LogError::OffsetMismatch`] and nothing is written. A kept batch whose
    /// `partitionLeaderEpoch` is newer than the cache's latest epoch adds
    /// `(epoch, base offset)` to the leader-epoch cache, fsynced before the bytes are written
    /// (and taken back if the write fails). The active segment rolls as for `append`, the new
    /// segment starting at the first kept batch's base offset. Ends stamping (see
    /// [`PartitionLog::assign_leader_epoch`]).
    ///
    /// Returns what was written: the first kept batch's base offset, the last kept offset, their
    /// largest `maxTimestamp`, record count and bytes. With nothing new (empty `records`, or
    /// every batch skipped) nothing is written and the result is `base_offset` = log end offset,
    /// `last_offset` = log end offset - 1, `max_timestamp` -1, `record_count` 0, `bytes` 0.
    pub fn append_replica(&mut self, records: Bytes) -> Result<AppendInfo, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.leader_epoch = None;
        let log_end = self.log_end_offset;
        let mut skip = 0usize;
        let mut first_offset: Option<i64> = None;
        let mut next_offset: Option<i64> = None;
        let mut max_timestamp = batch::NO_TIMESTAMP;
        let mut record_count: u32 = 0;
        let mut latest_epoch = self.epochs.latest_epoch();
        let mut new_epochs: Vec<(i32, i64)> = Vec::new();
        let mut pos = 0;
        while pos < records.len() {
            let header = batch::validate_stored(&records[pos..])?;
            let next = header
                .base_offset
                .checked_add(i64::from(header.last_offset_delta) + 1)
                .ok_or_else(|| {
                    LogError::CorruptRecord(format!(
                        "batch with base offset {} overflows the offset range",
                        header.base_offset
                    ))
                })?;
            if let Some(expected) = next_offset {
                if header.base_offset < expected {
                    return Err(LogError::OffsetMismatch {
                        expected,
                        got: header.base_offset,
                    });
                }
            }
            next_offset = Some(next);
            pos += header.total_size();
            if first_offset.is_none() {
                if next <= log_end {
                    skip = pos;
                    continue;
                }
                if header.base_offset < log_end {
                    return Err(LogError::OffsetMismatch {
                        expected: log_end,
                        got: header.base_offset,
                    });
                }
                first_offset = Some(header.base_offset);
            }
            max_timestamp = max_timestamp.max(header.max_timestamp);
            record_count = record_count.saturating_add(header.records_count.unsigned_abs());
            let epoch = header.partition_leader_epoch;
            if epoch >= 0 && latest_epoch.map_or(true, |latest| epoch > latest) {
                new_epochs.push((epoch, header.base_offset));
                latest_epoch = Some(epoch);
            }
        }
        let (Some(first_offset), Some(next_offset)) = (first_offset, next_offset) else {
            return Ok(AppendInfo {
                base_offset: log_end,
                last_offset: log_end - 1,
                max_timestamp: batch::NO_TIMESTAMP,
                record_count: 0,
                bytes: 0,
            });
        };
        let kept = &records[skip..];
        let bytes = kept.len();
        self.maybe_roll(bytes, first_offset, next_offset - 1)?;

        let previous_epochs = if new_epochs.is_empty() {
            None
        } else {
            let mut epochs = self.epochs.clone();
            for &(epoch, start_offset) in &new_epochs {
                epochs.assign(epoch, start_offset);
            }
            epochs.persist(&self.dir)?;
            Some(std::mem::replace(&mut self.epochs, epochs))
        };
        let position = match self.write_active(&[kept]) {
            Ok(position) => position,
            Err(e) => {
                if let Some(previous) = previous_epochs {
                    self.epochs = previous;
                    if let Err(persist_error) = self.epochs.persist(&self.dir) {
                        // Harmless: entries beyond the log end are dropped at the next open,
                        // and replaced when the batches are appended again.
                        warn!(
                            dir = %self.dir.display(),
                            %persist_error,
                            "could not take back the leader-epoch checkpoint after a failed append"
                        );
                    }
                }
                return Err(e);
            }
        };

        let interval = self.config.index_interval_bytes;
        let now_ms = self.clock.now_ms();
        let segment = self.active_mut();
        let mut at = 0;
        while at < bytes {
            let header = BatchHeader::parse(&kept[at..])?;
            segment.on_batch(&header, position + at as u64, interval);
            at += header.total_size();
        }
        if segment.size == 0 {
            segment.roll_base_ms = Some(now_ms);
        }
        segment.size += bytes as u64;
        self.log_end_offset = next_offset;
        self.active_dirty = true;
        self.closed = false;
        Ok(AppendInfo {
            base_offset: first_offset,
            last_offset: next_offset - 1,
            max_timestamp,
            record_count,
            bytes,
        })
    }

    /// Removes every record at or after `offset`, for a follower whose log diverged from the
    /// leader's; returns the new log end offset.
    ///
    /// The cut is at a batch boundary: the start of the first batch whose last offset is
    /// `>= offset` (so a batch holding `offset` goes whole), and the new log end offset is the
    /// offset after the last batch kept (the segment's base offset if the segment holding the
    /// cut keeps none; never more than `offset`). Nothing happens when `offset` is at or beyond
    /// the log end offset. Below the log start offset this is
    /// [`PartitionLog::truncate_fully_and_start_at`]`(offset)`; so it is, at the log start
    /// offset, if the cut would leave nothing readable (the batch holding the log start offset
    /// is cut).
    ///
    /// The recovery point drops to the new end if it was beyond (its checkpoint rewritten and
    /// fsynced first, so that a crash cannot trust later data on the old one's word), epoch
    /// cache entries starting at or after the new end are removed (checkpoint fsynced), then
    /// segments wholly past the cut are deleted and the segment holding it is shortened and
    /// becomes the active one (its index entries past the cut dropped, its aborted
    /// transactions with markers past it too, its largest timestamp recomputed). The files
    /// changed and the directory are handed out by the next
    /// [`PartitionLog::take_unsynced`]; sync tokens taken before are void. An i/o failure while
    /// the segments change poisons the log. Ends stamping, even when nothing is removed.
    pub fn truncate_to(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.leader_epoch = None;
        if offset >= self.log_end_offset {
            return Ok(self.log_end_offset);
        }
        if offset < self.log_start_offset {
            self.truncate_fully_and_start_at(offset)?;
            return Ok(offset);
        }
        // `offset >= log start >= the first segment's base`, so a segment holds it.
        let index = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        let segment = &self.segments[index];
        let position = segment.locate(offset)?.map_or(segment.size, |(p, _)| p);
        let cut = segment.plan_cut(position)?;
        let new_end = cut.next_offset;
        if new_end < self.log_start_offset {
            let start = self.log_start_offset;
            self.truncate_fully_and_start_at(start)?;
            return Ok(start);
        }
        self.lower_recovery_point(new_end)?;
        let mut epochs = self.epochs.clone();
        if epochs.truncate_from_end(new_end) {
            epochs.persist(&self.dir)?;
            self.epochs = epochs;
        }
        let old_end = self.log_end_offset;
        let old_size = self.size_bytes();
        let deleted = self.segments.len() - index - 1;
        if let Err(e) = self.cut_segments(index, &cut) {
            error!(
                dir = %self.dir.display(),
                %e,
                "truncation failed part way; poisoning the log"
            );
            self.poisoned = true;
            return Err(e);
        }
        info!(
            dir = %self.dir.display(),
            offset,
            old_log_end_offset = old_end,
            log_end_offset = new_end,
            deleted_segments = deleted,
            removed_bytes = old_size - self.size_bytes(),
            "truncated the log"
        );
        self.clamp_cleaner_checkpoint(new_end)?;
        Ok(new_end)
    }

    /// Deletes the segments after `index` and cuts segment `index` as planned, making it the
    /// active segment.
    fn cut_segments(&mut self, index: usize, cut: &SegmentCut) -> Result<(), LogError> {
        self.closed = false;
        self.instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let removed = self.segments.split_off(index + 1);
        if !removed.is_empty() {
            self.dir_dirty = true;
        }
        for mut segment in removed {
            segment.release_file();
            segment.delete_files()?;
        }
        self.segments[index].apply_cut(cut)?;
        let segment = &mut self.segments[index];
        let path = segment.path(TXN_INDEX_SUFFIX);
        let (file, dir_changed) = segment.txn_index.truncate_from(&path, cut.next_offset)?;
        if let Some(file) = file {
            push_once(&mut self.unsynced, &file);
        }
        self.dir_dirty |= dir_changed;
        self.log_end_offset = cut.next_offset;

        self.flushed_offset = self.flushed_offset.min(cut.next_offset);
        self.active_dirty = true;
        Ok(())
    }

    /// Deletes every segment and restarts the log empty at `offset` (log start = log end =
    /// `offset`), for a follower whose log has nothing in common with the leader's (or lies
    /// wholly below the leader's log start). The epoch cache is emptied (checkpoint fsynced
    /// first), the segments deleted and a new one created, the directory fsynced, and then the
    /// new log start offset written to the `log-start-offset` checkpoint and fsynced, as
    /// DeleteRecords does; the recovery point drops to `offset` if it was beyond. A crash part
    /// way leaves either the old log or an empty one. A negative `offset` is
    /// [`LogError::OffsetOutOfRange`]. Sync tokens taken before are void; an i/o failure once
    /// segments are being deleted poisons the log. Ends stamping.
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        self.leader_epoch = None;
        if offset < 0 {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        self.lower_recovery_point(offset)?;
        if !self.epochs.is_empty() {
            let empty = LeaderEpochCache::default();
            empty.persist(&self.dir)?;
            self.epochs = empty;
        }
        let old_end = self.log_end_offset;
        self.instance = NEXT_INSTANCE.fetch_add(1, Ordering::Relaxed);
        let restarted = self.restart_at(offset).and_then(|()| {
            File::open(&self.dir)?.sync_all()?;
            checkpoint::write(&self.dir, checkpoint::LOG_START_FILE, offset, true)?;
            Ok(())
        });
        if let Err(e) = restarted {
            error!(
                dir = %self.dir.display(),
                %e,
                "restarting the log failed part way; poisoning the log"
            );
            self.poisoned = true;
            return Err(e);
        }
        info!(
            dir = %self.dir.display(),
            old_log_end_offset = old_end,
            log_start_offset = offset,
            "truncated the whole log and restarted it"
        );
        Ok(())
    }

    /// Moves the recovery point down to `offset` if it (or the value in its checkpoint file)
    /// is beyond, rewriting the checkpoint durably first: the old value names data about to be
    /// removed, and data written there later must not be trusted on its word after a crash.
    fn lower_recovery_point(&mut self, offset: i64) -> Result<(), LogError> {
        let file_beyond = self.recovery_point_written.map_or(true, |w| w > offset);
        if self.recovery_point > offset || file_beyond {
            let point = self.recovery_point.min(offset);
            checkpoint::write(&self.dir, checkpoint::RECOVERY_POINT_FILE, point, true)?;
            self.recovery_point = point;
            self.recovery_point_written = Some(point);
        }
        Ok(())
    }

    /// Writes `slices` back to back at the end of the active segment with one `pwritev` and
    /// returns the position they start at. On failure, whatever part was written is cut off
    /// again; if even that fails the file no longer matches the log end offset and the log is
    /// poisoned.
    fn write_active(&mut self, slices: &[&[u8]]) -> Result<u64, LogError> {
        let segment = self.active();
        let position = segment.size;
        let Some(file) = segment.open_file().cloned() else {
            return Err(io::Error::other("active segment has no open file").into());
        };
        if let Err(e) = segment::write_all_vectored_at(&file, slices, position) {
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
        Ok(position)
    }

    /// Validates every batch of an append; returns the number of offsets they span.
    /// How old the active segment may get: `segment.ms`, or for a compacted log
    /// `max.compaction.lag.ms` if smaller (its records must become cleanable in time).
    fn roll_after_ms(&self) -> u64 {
        match (self.config.compact, self.config.max_compaction_lag_ms) {
            (true, Some(lag)) => self.config.segment_ms.min(lag),
            _ => self.config.segment_ms,
        }
    }

    fn validate_batches(&self, records: &[u8]) -> Result<i64, LogError> {
        if records.is_empty() {
            return Err(LogError::CorruptRecord("no record batches".into()));
        }
        let mut pos = 0;
        let mut offset_count: i64 = 0;
        while pos < records.len() {
            let header = batch::validate(&records[pos..])?;
            let size = header.total_size();
            if self.config.compact {
                compact::check_keys(&records[pos..pos + size])?;
            }
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

    /// Rolls the active segment if an append of `bytes` from `first_offset` (the log end offset,
    /// or beyond it for a follower's append after a gap) to `last_offset` does not fit. The new
    /// segment starts at `first_offset`. An empty active segment is rolled only when the append
    /// starts beyond a gap that its relative offsets cannot span.
    fn maybe_roll(
        &mut self,
        bytes: usize,
        first_offset: i64,
        last_offset: i64,
    ) -> Result<(), LogError> {
        let max_position = u64::from(u32::MAX);
        if bytes as u64 > max_position {
            return Err(LogError::RecordTooLarge {
                size: bytes,
                max: u32::MAX as usize,
            });
        }
        let limit = self.config.segment_bytes.min(max_position);
        let active = self.active();
        let must_roll = (active.size > 0
            && (active.size + bytes as u64 > limit
                || active.offset_index.is_full()
                || active.time_index.is_full()
                || active.relative(last_offset).is_none()))
            || (active.relative(last_offset).is_none() && first_offset > active.base_offset);
        if must_roll {
            self.roll_active(first_offset)?;
        }
        if self.active().relative(last_offset).is_none() {
            return Err(LogError::CorruptRecord(format!(
                "an append ending at offset {last_offset} spans more offsets than a segment holds"
            )));
        }
        Ok(())
    }

    /// Rolls the active segment now unless it is empty; returns whether it rolled.
    pub fn roll(&mut self) -> Result<bool, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.active().size == 0 {
            return Ok(false);
        }
        self.roll_active(self.log_end_offset)?;
        Ok(true)
    }

    /// Seals the active segment (final time index entry, index files written) and starts a new
    /// one at `base` (the log end offset, or beyond it for a follower's append after a gap, in
    /// which case the log end offset moves there: the offsets of the gap are never written, and
    /// recovery would put the end at the new segment's base too). The sealed segment's files
    /// join the unsynced set, so the next fsync (acks=-1, `flush.*`, or the shard's background
    /// sync after a roll) makes it durable.
    fn roll_active(&mut self, base: i64) -> Result<(), LogError> {
        let new_base = base.max(self.log_end_offset);
        let active = self.active_mut();
        active.seal();
        active.txn_index.release();
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
        self.dir_dirty = true;
        self.closed = false;
        self.active_dirty = false;
        self.segments.push(segment);
        self.log_end_offset = new_base;
        // Keep files open for the active segment and the newest inactive one only; the idle
        // policy (`close_idle_files`) closes the latter later.
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
    /// [`LogError::OffsetOutOfRange`]. This is [`PartitionLog::read_upto`] up to the log end.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, LogError> {
        self.read_upto(offset, max_bytes, self.log_end_offset)
    }

    /// [`PartitionLog::read`] bounded above: only batches whose last offset is below `upper`
    /// (clamped to the log end offset) are returned; a batch reaching `upper` and everything
    /// after it is left out. An `offset` in `[upper, log end]` gives empty records; outside
    /// `[log start, log end]` is [`LogError::OffsetOutOfRange`]. The result's `high_watermark`
    /// is still the log end offset.
    pub fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
    ) -> Result<ReadResult, LogError> {
        self.read_upto_stopping(offset, max_bytes, upper, &mut None)
    }

    /// [`PartitionLog::read_upto`], also saying where the read stopped: the segment index and
    /// byte position after the last batch returned (`None` when nothing was).
    fn read_upto_stopping(
        &self,
        offset: i64,
        max_bytes: usize,
        upper: i64,
        stop: &mut Option<(usize, u64)>,
    ) -> Result<ReadResult, LogError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset);
        let mut out = BytesMut::new();
        if let Some(span) = self.read_span(offset, upper)? {
            let (mut index, mut position) = (span.index, span.position);
            while let Some(segment) = self.segments.get(index) {
                let Some(until) = span.until(index, segment) else {
                    break;
                };
                let budget = max_bytes.saturating_sub(out.len());
                let at_least_one = out.is_empty();
                let before = out.len();
                let reached_end =
                    segment.read_batches(position, until, budget, at_least_one, &mut out)?;
                if out.len() > before {
                    *stop = Some((index, position + (out.len() - before) as u64));
                }
                if !reached_end || out.len() >= max_bytes {
                    break;
                }
                index += 1;
                position = 0;
            }
        }
        Ok(ReadResult {
            records: out.freeze(),
            log_start_offset: log_start,
            high_watermark: log_end,
        })
    }

    /// [`PartitionLog::read`] for a fetch that can send file regions: the same batches, but
    /// left in the segment files ([`RecordSet::File`]) when the read could return at least
    /// `file_min_bytes` (the smaller of `max_bytes` and what the log holds from the start
    /// batch on), and read into memory otherwise. This is [`PartitionLog::read_records_upto`]
    /// up to the log end.
    pub fn read_records(
        &self,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
    ) -> Result<ReadResult<RecordSet>, LogError> {
        self.read_records_upto(offset, max_bytes, file_min_bytes, self.log_end_offset)
    }

    /// [`PartitionLog::read_records`] bounded above by `upper` as [`PartitionLog::read_upto`]
    /// is: the same batches, as file regions or in memory by the same rule.
    pub fn read_records_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        upper: i64,
    ) -> Result<ReadResult<RecordSet>, LogError> {
        self.read_records_stopping(offset, max_bytes, file_min_bytes, upper, &mut None)
    }

    /// A read-committed fetch's read: [`PartitionLog::read_records_upto`] bounded by `upper`
    /// (the last stable offset), with the aborted transactions overlapping what it returns,
    /// `[offset, offset after the last batch returned)`, in marker order (none when it returns
    /// nothing). Answered by the aborted-transaction index; when that has candidates, one
    /// 8-byte read finds the base offset of the batch after the read, so that a transaction
    /// starting beyond the returned batches is left out.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        upper: i64,
    ) -> Result<(ReadResult<RecordSet>, Vec<AbortedTxn>), LogError> {
        let mut stop = None;
        let read =
            self.read_records_stopping(offset, max_bytes, file_min_bytes, upper, &mut stop)?;
        let Some(stop) = stop else {
            return Ok((read, Vec::new()));
        };
        let mut aborted = self.aborted_txns(offset, upper.min(self.log_end_offset));
        if !aborted.is_empty() {
            let end = self.offset_after(stop)?;
            aborted.retain(|t| t.first_offset < end);
        }
        Ok((read, aborted))
    }

    /// Where a read that stopped at byte `position` of segment `index` ended, as an offset no
    /// smaller than the one after its last batch and such that no batch starts in between:
    /// the base offset of the next batch of the segment, else the next segment's base offset,
    /// else the log end offset.
    fn offset_after(&self, (index, position): (usize, u64)) -> Result<i64, LogError> {
        let Some(segment) = self.segments.get(index) else {
            return Ok(self.log_end_offset);
        };
        if position < segment.size {
            let mut base = [0u8; 8];
            region::read_exact_at(segment.file()?, &mut base, position)?;
            return Ok(i64::from_be_bytes(base));
        }
        Ok(self
            .segments
            .get(index + 1)
            .map_or(self.log_end_offset, |next| next.base_offset))
    }

    /// [`PartitionLog::read_records_upto`], also saying where the read stopped (see
    /// [`PartitionLog::read_upto_stopping`]).
    fn read_records_stopping(
        &self,
        offset: i64,
        max_bytes: usize,
        file_min_bytes: usize,
        upper: i64,
        stop: &mut Option<(usize, u64)>,
    ) -> Result<ReadResult<RecordSet>, LogError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset);
        let Some(span) = self.read_span(offset, upper)? else {
            return Ok(ReadResult {
                records: RecordSet::default(),
                log_start_offset: log_start,
                high_watermark: log_end,
            });
        };
        // Bytes from the start batch to the bound, counted only as far as the threshold.
        let wanted = max_bytes.min(file_min_bytes) as u64;
        let mut available = 0u64;
        for (index, segment) in self.segments.iter().enumerate().skip(span.index) {
            if available >= wanted.saturating_add(span.position) {
                break;
            }
            let Some(until) = span.until(index, segment) else {
                break;
            };
            available += until;
        }
        let available = available.saturating_sub(span.position);
        if (available.min(max_bytes as u64) as usize) < file_min_bytes {
            return self
                .read_upto_stopping(offset, max_bytes, upper, stop)
                .map(|r| ReadResult {
                    records: RecordSet::Bytes(r.records),
                    log_start_offset: r.log_start_offset,
                    high_watermark: r.high_watermark,
                });
        }
        let mut out = FileRecords::default();
        let (mut index, mut position) = (span.index, span.position);
        while let Some(segment) = self.segments.get(index) {
            let Some(until) = span.until(index, segment) else {
                break;
            };
            let budget = max_bytes.saturating_sub(out.len());
            let at_least_one = out.is_empty();
            let (region, reached_end) =
                segment.region_of_batches(position, until, budget, at_least_one)?;
            if let Some(region) = region {
                *stop = Some((index, position + region.len() as u64));
                out.push(region);
            }

            if !reached_end || out.len() >= max_bytes {
                break;
            }
            index += 1;
            position = 0;
        }
        Ok(ReadResult {
            records: RecordSet::File(out),
            log_start_offset: log_start,
            high_watermark: log_end,
        })
    }

    /// Where a read at `offset` bounded by `upper` starts and stops; `None` if it has nothing
    /// to return (`offset` at or beyond the bound, or no batch after it).
    fn read_span(&self, offset: i64, upper: i64) -> Result<Option<ReadSpan>, LogError> {
        let (log_start, log_end) = (self.log_start_offset, self.log_end_offset);
        if offset < log_start || offset > log_end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let upper = upper.min(log_end);
        if offset >= upper {
            return Ok(None);
        }
        let Some((index, position)) = self.locate_batch(offset)? else {
            return Ok(None);
        };
        // Up to the log end every batch qualifies: no bound to look up.
        let end = if upper == log_end {
            None
        } else {
            let end_index = self
                .segments
                .partition_point(|s| s.base_offset <= upper)
                .saturating_sub(1);
            let segment = &self.segments[end_index];
            let end_position = segment.locate(upper)?.map_or(segment.size, |(p, _)| p);
            Some((end_index, end_position))
        };
        Ok(Some(ReadSpan {
            index,
            position,
            end,
        }))
    }

    /// The segment index and byte position of the first batch whose last offset is
    /// `>= offset`; `None` if there is none.
    fn locate_batch(&self, offset: i64) -> Result<Option<(usize, u64)>, LogError> {
        let mut index = self
            .segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1);
        while let Some(segment) = self.segments.get(index) {
            if let Some((position, _)) = segment.locate(offset)? {
                return Ok(Some((index, position)));
            }
            index += 1;
        }
        Ok(None)
    }

    /// The first offset readable (Kafka's log start offset): the first segment's base offset,
    /// or more after DeleteRecords.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The offset the next record will get: the last record's offset + 1 (the high watermark on
    /// a single node).
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Every offset below this is known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Total bytes of the segment files' batches.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The base offsets of the segments, oldest first.
    pub fn segment_base_offsets(&self) -> Vec<i64> {
        self.segments.iter().map(|s| s.base_offset).collect()
    }

    /// Number of segment files currently open (the active one and recently read ones).
    pub fn open_file_count(&self) -> usize {
        self.segments
            .iter()
            .filter(|s| s.open_file().is_some())
            .count()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// ListOffsets by timestamp: `(offset, timestamp)` of the first record at or after the log
    /// start offset whose timestamp is `>= ts`. Uncompressed CreateTime batches are walked
    /// record by record for the exact answer; for compressed batches the answer is the batch's
    /// base offset (or the log start offset, if larger) and `maxTimestamp`, and for
    /// LogAppendTime batches (where all records carry the append time) the base offset. `None`
    /// if no record is that recent (Kafka answers offset -1).
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, LogError> {
        for segment in &self.segments {
            if segment.max_timestamp.map_or(true, |m| m.timestamp < ts) {
                continue;
            }
            if let Some(found) = segment.find_timestamp(ts, self.log_start_offset)? {
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

    /// One retention pass at time `now_ms`, as Kafka's log retention thread does it:
    ///
    /// 1. The active segment is rolled if it is non-empty and older than `segment.ms`, or if
    ///    all of it is older than `retention.ms` (so idle partitions expire too).
    /// 2. Inactive segments are deleted from the oldest on while any of these holds for the
    ///    oldest: it lies wholly below the log start offset; its largest timestamp is more than
    ///    `retention.ms` before `now_ms`; the log would still hold at least `retention.bytes`
    ///    without it. The active segment is never deleted.
    ///
    /// The log start offset moves up to the new first segment's base offset, and the epoch
    /// cache follows it.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<RetentionOutcome, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let mut outcome = RetentionOutcome::default();
        let active = self.active();
        let aged = active.roll_base_ms.is_some_and(|t| {
            now_ms.saturating_sub(t) >= i64::try_from(self.roll_after_ms()).unwrap_or(i64::MAX)
        });
        let expired = active.size > 0 && self.is_expired(active, now_ms)?;
        if active.size > 0 && (aged || expired) {
            self.roll_active(self.log_end_offset)?;
            outcome.rolled = true;
        }

        let mut size = self.size_bytes();
        let mut count = 0;
        while count + 1 < self.segments.len() {
            let segment = &self.segments[count];
            let next_base = self.segments[count + 1].base_offset;
            let below_start = next_base <= self.log_start_offset;
            let too_big = self
                .config
                .retention_bytes
                .is_some_and(|limit| size.saturating_sub(segment.size) >= limit);
            if !(below_start || too_big || self.is_expired(segment, now_ms)?) {
                break;
            }
            size -= segment.size;
            count += 1;
        }
        if count > 0 {
            outcome.deleted_segments = count;
            outcome.deleted_bytes = self.delete_oldest(count, "retention")?;
            self.trim_epochs_to_log_start()?;
        }
        Ok(outcome)
    }

    /// Whether a segment's largest timestamp is more than `retention.ms` before `now_ms`.
    fn is_expired(&self, segment: &Segment, now_ms: i64) -> Result<bool, LogError> {
        let Some(retention) = self.config.retention_ms else {
            return Ok(false);
        };
        let retention = i64::try_from(retention).unwrap_or(i64::MAX);
        Ok(now_ms.saturating_sub(segment.largest_timestamp()?) > retention)
    }

    /// Deletes the `count` oldest segments (never the active one) and their files, moving the
    /// log start offset to the new first segment if it was below; returns the bytes deleted.
    fn delete_oldest(&mut self, count: usize, reason: &'static str) -> Result<u64, LogError> {
        let count = count.min(self.segments.len() - 1);
        let mut bytes = 0;
        let first = self.segments.first().map_or(0, |s| s.base_offset);
        for _ in 0..count {
            let mut segment = self.segments.remove(0);
            segment.release_file();
            self.dir_dirty = true;
            self.closed = false;
            segment.delete_files()?;
            bytes += segment.size;
            self.log_start_offset = self.log_start_offset.max(self.segments[0].base_offset);
        }
        info!(
            dir = %self.dir.display(),
            reason,
            segments = count,
            first_base_offset = first,
            bytes,
            log_start_offset = self.log_start_offset,
            "deleted old segments"
        );
        Ok(bytes)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (`-1`: the high watermark) and
    /// deletes the segments wholly below it; returns the new log start offset (the low
    /// watermark). An offset below the current start moves nothing; one above the high
    /// watermark (or negative other than -1) is [`LogError::OffsetOutOfRange`]. The new start is
    /// fsynced in the `log-start-offset` checkpoint before this returns; the epoch cache drops
    /// the entries below it.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<i64, LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        let offset = if offset == -1 {
            self.log_end_offset
        } else {
            offset
        };
        if offset < 0 || offset > self.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset,
                log_end: self.log_end_offset,
            });
        }
        if offset > self.log_start_offset {
            checkpoint::write(&self.dir, checkpoint::LOG_START_FILE, offset, true)?;
            self.log_start_offset = offset;
        }
        let start = self.log_start_offset;
        let count = self
            .segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= start)
            .count();
        if count > 0 {
            self.delete_oldest(count, "DeleteRecords")?;
        }
        self.trim_epochs_to_log_start()?;
        Ok(self.log_start_offset)
    }

    /// Drops the epoch cache entries wholly below the log start offset and moves the start of
    /// the newest one below it up to it (Kafka's truncation from the start), rewriting the
    /// checkpoint if that changed anything.
    fn trim_epochs_to_log_start(&mut self) -> Result<(), LogError> {
        if self.epochs.is_empty() {
            return Ok(());
        }
        let mut epochs = self.epochs.clone();
        if epochs.truncate_from_start(self.log_start_offset) {
            epochs.persist(&self.dir)?;
            self.epochs = epochs;
        }
        Ok(())
    }

    /// The files written since the last call (the active segment if appended to, segments
    /// rolled or recovered since and their index files, the directory after files were created
    /// or deleted), for the caller to `fdatasync` on a blocking thread before acknowledging
    /// `acks=-1` producers; then [`PartitionLog::mark_synced`] with the token moves the recovery
    /// point. If an fsync fails, call [`PartitionLog::poison`] instead.
    pub fn take_unsynced(&mut self) -> Result<Unsynced, LogError> {
        let mut files = Vec::new();
        if self.dir_dirty {
            files.push(Arc::new(File::open(&self.dir)?));
            self.dir_dirty = false;
        }
        for file in std::mem::take(&mut self.unsynced) {
            push_once(&mut files, &file);
        }
        if self.active_dirty {
            if let Some(file) = self.active().open_file() {
                push_once(&mut files, file);
            }
            self.active_dirty = false;
        }
        self.flushed_offset = self.log_end_offset;
        self.last_flush_ms = self.clock.now_ms();
        Ok(Unsynced {
            files,
            token: SyncToken {
                instance: self.instance,
                up_to: self.log_end_offset,
            },
        })
    }

    /// Records that the files handed out with `token` were fsynced: the recovery point moves
    /// up to the token's offset. Tokens of another log instance are ignored.
    pub fn mark_synced(&mut self, token: SyncToken) {
        if token.instance == self.instance && !self.poisoned {
            self.recovery_point = self
                .recovery_point
                .max(token.up_to.min(self.log_end_offset));
        }
    }

    /// Whether anything was written since the last [`PartitionLog::take_unsynced`].
    pub fn has_unsynced(&self) -> bool {
        self.active_dirty || self.dir_dirty || !self.unsynced.is_empty()
    }

    /// Whether files other than the active segment wait for an fsync (a segment rolled or
    /// recovered, files created or deleted): Kafka flushes a rolled segment in the background
    /// right away, so the recovery point moves past it.
    pub fn needs_background_sync(&self) -> bool {
        self.dir_dirty || !self.unsynced.is_empty()
    }

    /// Whether `flush.messages` or `flush.ms` asks for an fsync now.
    pub fn flush_due(&self, now_ms: i64) -> bool {
        if !self.has_unsynced() {
            return false;
        }
        let by_count = self.config.flush_interval_messages.is_some_and(|n| {
            u64::try_from(self.log_end_offset - self.flushed_offset).unwrap_or(0) >= n
        });
        let by_time = self.config.flush_interval_ms.is_some_and(|ms| {
            now_ms.saturating_sub(self.last_flush_ms) >= i64::try_from(ms).unwrap_or(i64::MAX)
        });
        by_count || by_time
    }

    /// Writes the recovery point to its checkpoint file if it moved since the last write;
    /// returns whether it wrote. Not fsynced (see the `checkpoint` module).
    pub fn checkpoint_recovery_point(&mut self) -> Result<bool, LogError> {
        if self.recovery_point_written == Some(self.recovery_point) {
            return Ok(false);
        }
        checkpoint::write(
            &self.dir,
            checkpoint::RECOVERY_POINT_FILE,
            self.recovery_point,
            false,
        )?;
        self.recovery_point_written = Some(self.recovery_point);
        Ok(true)
    }

    /// Closes the handles of inactive segments not read for `idle`; returns how many.
    pub fn close_idle_files(&mut self, idle: Duration) -> usize {
        let now = segment::monotonic_ms();
        let idle_ms = idle.as_millis() as u64;
        let last = self.segments.len() - 1;
        let mut closed = 0;
        for segment in &mut self.segments[..last] {
            if segment.is_idle(now, idle_ms) {
                segment.release_file();
                closed += 1;
            }
        }
        closed
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

    /// Clean shutdown: writes the active segment's indexes, fsyncs every file written since
    /// the last sync, and records the log end offset as the recovery point. Only after this
    /// succeeds may the next open pass `clean_shutdown = true`. The log stays usable afterwards.
    pub fn close(&mut self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned);
        }
        if self.closed {
            return Ok(());
        }
        let active = self.active_mut();
        active.seal();
        let index_files = active.write_indexes()?;
        let active_file = active.open_file().cloned();
        let Unsynced { mut files, token } = self.take_unsynced()?;
        if let Some(file) = &active_file {
            push_once(&mut files, file);
        }
        for file in &index_files {
            push_once(&mut files, file);
        }
        let synced = files
            .iter()
            .try_for_each(|file| file.sync_all())
            .and_then(|()| {
                self.recovery_point = token.up_to;
                self.checkpoint_recovery_point()
                    .map_err(|e| io::Error::other(e.to_string()))?;
                File::open(&self.dir)?.sync_all()
            });
        if let Err(e) = synced {
            error!(dir = %self.dir.display(), %e, "fsync failed on close; poisoning the log");
            self.poisoned = true;
            return Err(e.into());
        }
        self.closed = true;
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

    /// Checks the in-memory state against the files: every offset index entry points at the
    /// start of a batch with that base offset, time index entries record running maxima of the
    /// batches' timestamps, sizes and offsets are contiguous. Panics on a violation.
    #[cfg(test)]
    pub(crate) fn check_consistency(&self) {
        self.check_consistency_inner(true);
    }

    /// [`PartitionLog::check_consistency`] for a follower's log, whose offsets may have gaps.
    #[cfg(test)]
    pub(crate) fn check_consistency_allowing_gaps(&self) {
        self.check_consistency_inner(false);
    }

    #[cfg(test)]
    fn check_consistency_inner(&self, contiguous: bool) {
        let mut expected_next: Option<i64> = None;
        for (i, segment) in self.segments.iter().enumerate() {
            let file = segment.file().expect("segment file");
            let len = file.metadata().expect("metadata").len();
            assert_eq!(len, segment.size, "segment {} size", segment.base_offset);
            let mut scanner =
                segment::SegmentScanner::new(file, segment.size, segment::HEADER_SCAN_CHUNK);
            let mut position = 0;
            let mut max_ts = i64::MIN;
            let mut batch_starts = std::collections::HashMap::new();
            let mut running_max = Vec::new();
            while position < segment.size {
                let header = scanner.header_at(position).expect("header");
                if let Some(next) = expected_next {
                    if contiguous {
                        assert_eq!(header.base_offset, next, "offsets are contiguous");
                    } else {
                        assert!(header.base_offset >= next, "offsets increase");
                    }
                }
                assert!(header.base_offset >= segment.base_offset);
                expected_next = Some(header.next_offset());
                max_ts = max_ts.max(header.max_timestamp);
                running_max.push((header.base_offset, max_ts));
                batch_starts.insert(position, header.base_offset);
                position += header.total_size() as u64;
            }
            if i + 1 == self.segments.len() {
                assert_eq!(
                    expected_next
                        .unwrap_or(segment.base_offset)
                        .max(segment.base_offset),
                    self.log_end_offset
                );
            }
            for entry in segment.offset_index.entries() {
                let base = batch_starts.get(&u64::from(entry.position));
                assert_eq!(
                    base.copied(),
                    Some(segment.base_offset + i64::from(entry.relative_offset)),
                    "offset index entry {entry:?} of segment {}",
                    segment.base_offset
                );
            }
            for entry in segment.time_index.entries() {
                let offset = segment.base_offset + i64::from(entry.relative_offset);
                let max_up_to = running_max
                    .iter()
                    .filter(|(base, _)| *base <= offset)
                    .map(|(_, ts)| *ts)
                    .max();
                assert_eq!(
                    max_up_to,
                    Some(entry.timestamp),
                    "time index entry {entry:?} of segment {}",
                    segment.base_offset
                );
            }
            if segment.size > 0 {
                assert_eq!(
                    segment.max_timestamp.map(|m| m.timestamp),
                    Some(max_ts),
                    "largest timestamp of segment {}",
                    segment.base_offset
                );
            }
        }
        assert!(self.log_start_offset >= self.segments[0].base_offset);
        assert!(self.log_start_offset <= self.log_end_offset);
    }
}
