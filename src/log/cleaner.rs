//! Log compaction for one partition log: which part of a compacted log is cleanable and how
//! dirty it is, the cleaning pass itself, and the crash-safe swap of cleaned segments.
//!
//! The rules are Kafka's. The *clean* part of a log (from the log start to the cleaner
//! checkpoint) was compacted before; the *dirty* part follows, up to the first uncleanable
//! offset: the active segment's base, the segment holding the last stable offset (an open
//! transaction is never cleaned), or the first segment with records newer than
//! `min.compaction.lag.ms`. A pass:
//!
//! 1. builds an offset map (key hash → latest offset) over the dirty segments, as many whole
//!    segments as fit in the map (`log.cleaner.dedupe.buffer.size`), skipping control batches
//!    and the batches of aborted transactions ([`run`], on a blocking thread, reading the files
//!    by path; the shard keeps serving the log meanwhile);
//! 2. rewrites every segment from the log start to the end of the mapped part, grouped so that
//!    each group of sources fits one segment (`segment.bytes`), keeping a record only if it is
//!    the latest of its key; a tombstone (null value) or a transaction marker is kept until it
//!    has been in the clean part for `delete.retention.ms`; aborted transactions' records are
//!    dropped; a batch emptied of records stays as a header if it is the last batch of its
//!    idempotent producer (the producer's sequence survives); a marker stays while any record
//!    of its transaction does;
//! 3. swaps each group in ([`PartitionLog::commit_clean`], on the shard thread): the cleaned
//!    `.log` (and `.txnindex`) are written as `<base>.log.cleaned` / `<base>.txnindex.cleaned`
//!    and fsynced; renaming `<base>.log.cleaned` to `<base>.log.swap` is the commit point; then
//!    the source segments' files are deleted, the `.txnindex` renamed into place and the swap
//!    renamed to `<base>.log`. [`complete_interrupted`] (run when a log is opened) deletes
//!    `.cleaned` files and finishes a swap that was committed, so a crash at any step leaves
//!    either the old segments or the new one, never both or neither.
//!
//! A cleaned segment's modification time is the time its oldest content was first cleaned;
//! that is the clock `delete.retention.ms` runs on (persisted with the file, so it survives
//! restarts). The cleaner checkpoint (`cleaner-offset-checkpoint`) and the time the next
//! tombstone may go (`cleaner-tombstones-due`) are kept per partition directory.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::batch::{self, BatchHeader};
use super::checkpoint;
use super::compact::{self, Filtered};
use super::recovery;
use super::segment::{
    mtime_ms, parse_segment_file_name, segment_file, Segment, SegmentScanner, LOG_SUFFIX,
    TXN_INDEX_SUFFIX,
};
use super::txn_index::AbortedTxn;
use super::{LogConfig, LogError, PartitionLog};

/// Where the first dirty offset is checkpointed in the partition directory.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";
/// When the oldest tombstone or marker of the clean part may be removed (ms since the epoch).
pub(crate) const TOMBSTONES_DUE_FILE: &str = "cleaner-tombstones-due";
/// Suffix of a cleaned file not yet committed.
const CLEANED: &str = ".cleaned";
/// Suffix of a committed cleaned `.log` not yet renamed into place.
const SWAP: &str = ".swap";
/// Bytes Kafka counts per offset map entry (a 16-byte hash and an 8-byte offset).
pub const BYTES_PER_MAP_ENTRY: u64 = 24;
/// Read chunk of the cleaner's scans.
const SCAN_CHUNK: usize = 1024 * 1024;

/// How dirty a compacted log is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dirtiness {
    /// The first offset not yet cleaned.
    pub first_dirty: i64,
    /// The first uncleanable offset (a segment boundary).
    pub end: i64,
    /// Bytes of the clean part.
    pub clean_bytes: u64,
    /// Bytes of the cleanable dirty part.
    pub dirty_bytes: u64,
    /// `dirty / (clean + dirty)`.
    pub ratio: f64,
    /// Whether a pass is due: the ratio reached `min.cleanable.dirty.ratio`, a dirty record is
    /// older than `max.compaction.lag.ms`, or a tombstone's time is up.
    pub due: bool,
}

/// A segment as the plan sees it.
#[derive(Debug, Clone)]
struct Source {
    base: i64,
    size: u64,
    path: PathBuf,
    /// In the clean part (already cleaned once).
    clean: bool,
    /// Modification time of the file (ms).
    mtime_ms: i64,
}

/// Everything a cleaning pass needs, taken from the log on its shard; [`run`] needs nothing
/// else, so it can run on another thread.
#[derive(Debug)]
pub struct CleanPlan {
    dir: PathBuf,
    instance: u64,
    config: LogConfig,
    sources: Vec<Source>,
    end: i64,
    now_ms: i64,
    aborted: Vec<AbortedTxn>,
    /// Base offset of each producer's last data batch (it survives, emptied if need be).
    last_batches: HashMap<i64, i64>,
    map_capacity: usize,
}

impl CleanPlan {
    /// Bytes of the segments the pass may read.
    pub fn bytes(&self) -> u64 {
        self.sources.iter().map(|s| s.size).sum()
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// One cleaned group: the sources it replaces and the file written for them.
#[derive(Debug)]
struct Group {
    base: i64,
    /// (base offset, size) of the replaced segments, in order.
    sources: Vec<(i64, u64)>,
    /// A txn index was written (`<base>.txnindex.cleaned`).
    txn_index: bool,
    /// Earliest time one of the group's kept tombstones or markers may go.
    tombstones_due: Option<i64>,
}

/// What [`run`] produced, to be committed with [`PartitionLog::commit_clean`] (or dropped with
/// [`CleanedSegments::discard`]).
#[derive(Debug)]
pub struct CleanedSegments {
    dir: PathBuf,
    instance: u64,
    groups: Vec<Group>,
    /// The end of the mapped part: the new cleaner checkpoint.
    pass_end: i64,
    /// Earliest time a tombstone or marker kept in a segment not rewritten may go.
    untouched_due: Option<i64>,
    /// Statistics.
    pub stats: CleanStats,
}

/// Figures of one pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Bytes of the segments read.
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Records removed.
    pub records_removed: u64,
    /// Records kept in the rewritten segments.
    pub records_kept: u64,
    /// Distinct keys in the offset map.
    pub keys: u64,
    /// Segments replaced.
    pub segments_replaced: u64,
    /// Segments written.
    pub segments_written: u64,
}

impl CleanedSegments {
    /// Deletes the uncommitted files (a pass that was not committed).
    pub fn discard(&self) {
        for g in &self.groups {
            for path in cleaned_paths(&self.dir, g.base) {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

fn cleaned_paths(dir: &Path, base: i64) -> [PathBuf; 2] {
    [
        with_suffix(segment_file(dir, base, LOG_SUFFIX), CLEANED),
        with_suffix(segment_file(dir, base, TXN_INDEX_SUFFIX), CLEANED),
    ]
}

fn with_suffix(path: PathBuf, suffix: &str) -> PathBuf {
    let mut s = path.into_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// A bounded map from key hashes to the latest offset of the key.
struct OffsetMap {
    map: HashMap<u128, i64>,
    capacity: usize,
}

impl OffsetMap {
    fn put(&mut self, key: &[u8], offset: i64) {
        self.map.insert(key_hash(key), offset);
    }

    fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&key_hash(key)).copied()
    }

    fn full(&self) -> bool {
        self.map.len() >= self.capacity
    }
}

/// A 128-bit hash of a key (two SipHash runs), so collisions are as unlikely as with Kafka's
/// MD5 map.
fn key_hash(key: &[u8]) -> u128 {
    let mut a = std::collections::hash_map::DefaultHasher::new();
    0u8.hash(&mut a);
    key.hash(&mut a);
    let mut b = std::collections::hash_map::DefaultHasher::new();
    1u8.hash(&mut b);
    key.hash(&mut b);
    (u128::from(a.finish()) << 64) | u128::from(b.finish())
}

/// The cleaner's two checkpoints of a log, cached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Marks {
    first_dirty: Option<i64>,
    tombstones_due: Option<i64>,
}

impl Marks {
    fn read(dir: &Path) -> Marks {
        Marks {
            first_dirty: checkpoint::read(dir, CLEANER_CHECKPOINT_FILE)
                .ok()
                .flatten(),
            tombstones_due: checkpoint::read(dir, TOMBSTONES_DUE_FILE).ok().flatten(),
        }
    }
}

impl PartitionLog {
    fn marks(&self) -> Marks {
        self.cleaner_marks.unwrap_or_else(|| Marks::read(&self.dir))
    }

    /// The cleaner checkpoint, clamped to the log (the log start if none was written or the
    /// log no longer reaches it).
    fn first_dirty_offset(&self) -> i64 {
        let stored = self.marks().first_dirty.unwrap_or(0);
        if stored > self.log_end_offset {
            self.log_start_offset
        } else {
            stored.max(self.log_start_offset)
        }
    }

    /// After a truncation to `end`: a cleaner checkpoint beyond it comes back to it (records
    /// written there later are dirty).
    pub(crate) fn clamp_cleaner_checkpoint(&mut self, end: i64) -> Result<(), LogError> {
        let mut marks = self.marks();
        if marks.first_dirty.is_some_and(|d| d > end) {
            marks.first_dirty = Some(end);
            checkpoint::write(&self.dir, CLEANER_CHECKPOINT_FILE, end, true)?;
        }
        self.cleaner_marks = Some(marks);
        Ok(())
    }

    /// How dirty this log is, given its last stable offset; `None` for a log that is not
    /// compacted (`cleanup.policy` without `compact`) or is poisoned.
    pub fn dirtiness(&mut self, now_ms: i64, last_stable_offset: i64) -> Option<Dirtiness> {
        if !self.config.compact || self.poisoned {
            return None;
        }
        if self.cleaner_marks.is_none() {
            self.cleaner_marks = Some(Marks::read(&self.dir));
        }
        let first_dirty = self.first_dirty_offset();
        let min_lag = i64::try_from(self.config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let max_lag = self
            .config
            .max_compaction_lag_ms
            .map(|l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut end = self.log_start_offset;
        let (mut clean_bytes, mut dirty_bytes) = (0u64, 0u64);
        let mut overdue = false;
        let inactive = self.segments.len().saturating_sub(1);
        for (i, s) in self.segments[..inactive].iter().enumerate() {
            let next_base = self.segments[i + 1].base_offset;
            if next_base <= first_dirty {
                clean_bytes += s.size;
                end = next_base;
                continue;
            }
            let newest = s.max_timestamp.map_or(i64::MIN, |t| t.timestamp);
            if next_base > last_stable_offset
                || (min_lag > 0 && newest > now_ms.saturating_sub(min_lag))
            {
                break;
            }
            if let Some(max_lag) = max_lag {
                if dirty_bytes == 0 && s.size > 0 && newest < now_ms.saturating_sub(max_lag) {
                    overdue = true;
                }
            }
            dirty_bytes += s.size;
            end = next_base;
        }
        let total = clean_bytes + dirty_bytes;
        let ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        let tombstones_due = self.marks().tombstones_due.is_some_and(|due| due <= now_ms);
        let due = (dirty_bytes > 0 && (ratio >= self.config.min_cleanable_dirty_ratio || overdue))
            || (tombstones_due && clean_bytes > 0);
        Some(Dirtiness {
            first_dirty,
            end,
            clean_bytes,
            dirty_bytes,
            ratio,
            due,
        })
    }

    /// A cleaning pass over this log, if one is due. `last_batches` maps each producer id to
    /// the base offset of its last data batch; `map_capacity` bounds the offset map (entries).
    pub fn plan_clean(
        &mut self,
        now_ms: i64,
        last_stable_offset: i64,
        last_batches: HashMap<i64, i64>,
        map_capacity: usize,
    ) -> Option<CleanPlan> {
        let d = self.dirtiness(now_ms, last_stable_offset)?;
        if !d.due || d.end <= self.log_start_offset {
            return None;
        }
        let mut sources = Vec::new();
        for (i, s) in self.segments.iter().enumerate() {
            if s.base_offset >= d.end {
                break;
            }
            // Wholly below the checkpoint (which a crash may leave inside a merged segment).
            let next_base = self.segments.get(i + 1).map_or(i64::MAX, |n| n.base_offset);
            let path = s.path(LOG_SUFFIX);
            let mtime = std::fs::metadata(&path).map_or(now_ms, |m| mtime_ms(&m));
            sources.push(Source {
                base: s.base_offset,
                size: s.size,
                path,
                clean: next_base <= d.first_dirty,
                mtime_ms: mtime,
            });
        }
        Some(CleanPlan {
            dir: self.dir.clone(),
            instance: self.instance,
            config: self.config.clone(),
            sources,
            end: d.end,
            now_ms,
            aborted: self.aborted_txns(self.log_start_offset, d.end),
            last_batches,
            map_capacity: map_capacity.max(1),
        })
    }

    /// Swaps the groups of a finished pass in (see the module documentation), replaces their
    /// segments in memory and moves the cleaner checkpoint. If the log changed meanwhile
    /// (segments deleted by retention, truncated, or the log reopened), the pass is discarded
    /// and `Ok(None)` returned.
    pub fn commit_clean(&mut self, done: CleanedSegments) -> Result<Option<CleanStats>, LogError> {
        if self.poisoned || done.instance != self.instance || done.dir != self.dir {
            done.discard();
            return Ok(None);
        }
        let active_base = self.active().base_offset;
        let still_there = done.groups.iter().all(|g| {
            g.sources.iter().all(|&(base, size)| {
                base < active_base
                    && self
                        .segments
                        .binary_search_by_key(&base, |s| s.base_offset)
                        .is_ok_and(|i| self.segments[i].size == size)
            })
        });
        if !still_there {
            done.discard();
            return Ok(None);
        }
        // Commit point of every group: the `.swap` names, made durable together.
        for g in &done.groups {
            let [log, _] = cleaned_paths(&self.dir, g.base);
            std::fs::rename(&log, swap_path(&self.dir, g.base))?;
        }
        fsync_dir(&self.dir)?;
        let mut due = done.untouched_due;
        for g in &done.groups {
            let first = self
                .segments
                .binary_search_by_key(&g.base, |s| s.base_offset)
                .map_err(|_| LogError::CorruptRecord("cleaned group lost its segment".into()))?;
            let count = g.sources.len();
            for s in &self.segments[first..first + count] {
                s.delete_files()?;
            }
            let segment = install_swap(&self.dir, g.base, &self.config, g.txn_index)?;
            self.segments.splice(first..first + count, [segment]);
            due = min_opt(due, g.tombstones_due);
        }
        fsync_dir(&self.dir)?;
        self.dir_dirty = true;
        // Not fsynced: a lost checkpoint only makes the next pass redo work.
        checkpoint::write(&self.dir, CLEANER_CHECKPOINT_FILE, done.pass_end, false)?;
        self.cleaner_marks = Some(Marks {
            first_dirty: Some(done.pass_end),
            tombstones_due: due,
        });
        match due {
            Some(due) => checkpoint::write(&self.dir, TOMBSTONES_DUE_FILE, due, false)?,
            None => {
                let _ = std::fs::remove_file(self.dir.join(TOMBSTONES_DUE_FILE));
            }
        }
        Ok(Some(done.stats))
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

fn swap_path(dir: &Path, base: i64) -> PathBuf {
    with_suffix(segment_file(dir, base, LOG_SUFFIX), SWAP)
}

fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Renames a committed swap (and its txn index) into place and loads the new segment, writing
/// its indexes. The source segments' files must be gone already.
fn install_swap(
    dir: &Path,
    base: i64,
    config: &LogConfig,
    txn_index: bool,
) -> Result<Segment, LogError> {
    let [_, txn_cleaned] = cleaned_paths(dir, base);
    if txn_index {
        std::fs::rename(&txn_cleaned, segment_file(dir, base, TXN_INDEX_SUFFIX))?;
    }
    std::fs::rename(swap_path(dir, base), segment_file(dir, base, LOG_SUFFIX))?;
    recovery::load_rewritten(dir, base, config)
}

/// Run when a partition directory is opened, before its segments are listed: deletes the
/// files of a pass that was not committed and finishes the swaps of one that was. Returns
/// whether the directory changed.
pub(crate) fn complete_interrupted(dir: &Path) -> Result<bool, LogError> {
    let mut cleaned = Vec::new();
    let mut swaps = Vec::new();
    let mut logs = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(SWAP) {
            if let Some(base) = parse_segment_file_name(stem, LOG_SUFFIX) {
                swaps.push(base);
            }
        } else if name.ends_with(CLEANED) {
            cleaned.push(entry.path());
        } else if let Some(base) = parse_segment_file_name(name, LOG_SUFFIX) {
            logs.push(base);
        }
    }
    if swaps.is_empty() && cleaned.is_empty() {
        return Ok(false);
    }
    swaps.sort_unstable();
    logs.sort_unstable();
    for &base in &swaps {
        let swap = swap_path(dir, base);
        let next = swap_next_offset(&swap, base)?;
        // The old segments the swap replaces: every one starting inside its offset range.
        for &old in logs.iter().filter(|&&b| b >= base && b < next) {
            for suffix in [LOG_SUFFIX, ".index", ".timeindex"] {
                remove_if_exists(&segment_file(dir, old, suffix))?;
            }
            if old != base {
                remove_if_exists(&segment_file(dir, old, TXN_INDEX_SUFFIX))?;
            }
        }
        let [_, txn_cleaned] = cleaned_paths(dir, base);
        if txn_cleaned.exists() {
            std::fs::rename(&txn_cleaned, segment_file(dir, base, TXN_INDEX_SUFFIX))?;
        }
        std::fs::rename(&swap, segment_file(dir, base, LOG_SUFFIX))?;
        info!(dir = %dir.display(), segment = base, "completed an interrupted cleaner swap");
    }
    for path in cleaned {
        if path.exists() {
            warn!(path = %path.display(), "deleting the output of an interrupted cleaner pass");
            remove_if_exists(&path)?;
        }
    }
    fsync_dir(dir)?;
    Ok(true)
}

/// The offset after the last batch of a swap file (fsynced before it was committed); its base
/// offset plus one if it holds no batch.
fn swap_next_offset(path: &Path, base: i64) -> Result<i64, LogError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    let mut scanner = SegmentScanner::new(&file, size, SCAN_CHUNK);
    let mut position = 0;
    let mut next = base + 1;
    while position < size {
        let Ok(header) = scanner.header_at(position) else {
            break;
        };
        next = next.max(header.next_offset());
        position += header.total_size() as u64;
    }
    Ok(next)
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Runs a pass: builds the offset map and writes the cleaned groups as `.cleaned` files,
/// fsynced. `throttle(bytes)` is called after each chunk read or written (it may sleep).
/// Nothing is visible until [`PartitionLog::commit_clean`].
pub fn run(plan: &CleanPlan, throttle: &dyn Fn(u64)) -> Result<CleanedSegments, LogError> {
    let mut stats = CleanStats::default();
    let aborted = AbortedSet::new(&plan.aborted);
    // 1. The offset map over the dirty segments, whole segments while it has room.
    let mut map = OffsetMap {
        map: HashMap::new(),
        capacity: plan.map_capacity,
    };
    let mut pass_end = plan
        .sources
        .iter()
        .find(|s| !s.clean)
        .map_or(plan.end, |s| s.base);
    for (i, s) in plan.sources.iter().enumerate() {
        if s.clean {
            continue;
        }
        if map.full() {
            break;
        }
        stats.bytes_read += s.size;
        for_each_batch(&s.path, s.size, throttle, |header, bytes| {
            if header.is_control() || aborted.contains(header) {
                return Ok(());
            }
            let section = compact::records_section(header, bytes)?;
            for record in batch::raw_records(&section, header.records_count) {
                let (record, _) = record?;
                if let Some(key) = record.key {
                    map.put(key, header.base_offset + i64::from(record.offset_delta));
                }
            }
            Ok(())
        })?;
        pass_end = plan.sources.get(i + 1).map_or(plan.end, |next| next.base);
    }
    stats.keys = map.map.len() as u64;

    // 2. Rewrite every segment below the end of the mapped part, in groups.
    let delete_retention = i64::try_from(plan.config.delete_retention_ms).unwrap_or(i64::MAX);
    let in_pass: Vec<&Source> = plan.sources.iter().filter(|s| s.base < pass_end).collect();
    let mut groups = Vec::new();
    let mut untouched_due = None;
    let mut txn_retained: HashSet<i64> = HashSet::new();
    let mut i = 0;
    while i < in_pass.len() {
        let mut j = i + 1;
        let mut total = in_pass[i].size;
        while j < in_pass.len()
            && total + in_pass[j].size <= plan.config.segment_bytes
            && relative_fits(
                in_pass[i].base,
                in_pass.get(j + 1).map_or(pass_end, |n| n.base),
            )
        {
            total += in_pass[j].size;
            j += 1;
        }
        let members = &in_pass[i..j];
        let base = members[0].base;
        let mut out = Vec::new();
        let mut removed_any = false;
        let mut due: Option<i64> = None;
        let mut mtime = i64::MIN;
        for s in members {
            mtime = mtime.max(if s.clean { s.mtime_ms } else { plan.now_ms });
            stats.bytes_read += s.size;
            // Tombstones and markers of a segment cleaned before go once their time is up.
            let expires = s.mtime_ms.saturating_add(delete_retention);
            let deletable = s.clean && expires <= plan.now_ms;
            for_each_batch(&s.path, s.size, throttle, |header, bytes| {
                let keep_empty = header.producer_id >= 0
                    && plan.last_batches.get(&header.producer_id) == Some(&header.base_offset);
                if header.is_control() {
                    let txn_has_records = txn_retained.remove(&header.producer_id);
                    if deletable && !txn_has_records && !keep_empty {
                        removed_any = true;
                        stats.records_removed += header.records_count.max(0) as u64;
                    } else {
                        out.extend_from_slice(bytes);
                        stats.records_kept += header.records_count.max(0) as u64;
                        if !txn_has_records && !keep_empty {
                            // Only time stands between this marker and its removal.
                            let at = if s.clean {
                                expires
                            } else {
                                plan.now_ms + delete_retention
                            };
                            due = min_opt(due, Some(at));
                        }
                    }
                    return Ok(());
                }
                let is_aborted = aborted.contains(header);
                let mut kept = 0u64;
                let mut tombstones = false;
                let filtered = compact::filter_batch(header, bytes, keep_empty, |offset, r| {
                    let keep = !is_aborted
                        && r.key
                            .is_some_and(|k| map.get(k).map_or(true, |o| offset >= o))
                        && (r.value.is_some() || !deletable);
                    if keep {
                        kept += 1;
                        tombstones |= r.value.is_none();
                    }
                    keep
                });
                let filtered = match filtered {
                    Ok(f) => f,
                    Err(e) => {
                        // A batch the cleaner cannot decode is kept as it is.
                        warn!(dir = %plan.dir.display(), offset = header.base_offset, error = %e,
                            "cleaner keeps a batch it cannot decode");
                        Filtered::Unchanged
                    }
                };
                match filtered {
                    Filtered::Unchanged => {
                        out.extend_from_slice(bytes);
                        kept = header.records_count.max(0) as u64;
                    }
                    Filtered::Rewritten(b) => {
                        removed_any = true;
                        out.extend_from_slice(&b);
                    }
                    Filtered::Removed => removed_any = true,
                }
                stats.records_removed += (header.records_count.max(0) as u64).saturating_sub(kept);
                stats.records_kept += kept;
                if header.is_transactional() && (kept > 0 || keep_empty) {
                    txn_retained.insert(header.producer_id);
                }
                if tombstones {
                    let expires = if s.clean {
                        expires
                    } else {
                        plan.now_ms + delete_retention
                    };
                    due = min_opt(due, Some(expires));
                }
                Ok(())
            })?;
        }
        if members.len() == 1 && !removed_any {
            // Nothing to gain from rewriting a lone segment unchanged.
            untouched_due = min_opt(untouched_due, due);
        } else {
            let txn_entries: Vec<AbortedTxn> = plan
                .aborted
                .iter()
                .filter(|t| {
                    t.last_offset >= base
                        && in_pass
                            .get(j)
                            .map_or(t.last_offset < pass_end, |n| t.last_offset < n.base)
                })
                .copied()
                .collect();
            let size = write_cleaned(&plan.dir, base, &out, &txn_entries, mtime)?;
            throttle(size);
            stats.bytes_written += size;
            stats.segments_written += 1;
            stats.segments_replaced += members.len() as u64;
            groups.push(Group {
                base,
                sources: members.iter().map(|s| (s.base, s.size)).collect(),
                txn_index: !txn_entries.is_empty(),
                tombstones_due: due,
            });
        }
        i = j;
    }
    Ok(CleanedSegments {
        dir: plan.dir.clone(),
        instance: plan.instance,
        groups,
        pass_end,
        untouched_due,
        stats,
    })
}

/// Whether offsets from `base` up to (excluding) `until` fit a segment's u32 relative offsets.
fn relative_fits(base: i64, until: i64) -> bool {
    until.saturating_sub(base) <= i64::from(u32::MAX)
}

/// Writes `<base>.log.cleaned` (and `<base>.txnindex.cleaned` if there are entries), fsynced,
/// with the given modification time. Returns the log's size.
fn write_cleaned(
    dir: &Path,
    base: i64,
    bytes: &[u8],
    txn_entries: &[AbortedTxn],
    mtime_ms: i64,
) -> Result<u64, LogError> {
    let [log_path, txn_path] = cleaned_paths(dir, base);
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&log_path)?;
    let mut w = BufWriter::new(&file);
    w.write_all(bytes)?;
    w.flush()?;
    drop(w);
    if let Ok(t) = u64::try_from(mtime_ms) {
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(t);
        file.set_modified(when)?;
    }
    file.sync_all()?;
    if !txn_entries.is_empty() {
        let mut f = File::create(&txn_path)?;
        for t in txn_entries {
            f.write_all(&t.encode())?;
        }
        f.sync_all()?;
    }
    Ok(bytes.len() as u64)
}

/// Calls `f` with every batch of a segment file's first `size` bytes.
fn for_each_batch(
    path: &Path,
    size: u64,
    throttle: &dyn Fn(u64),
    mut f: impl FnMut(&BatchHeader, &[u8]) -> Result<(), LogError>,
) -> Result<(), LogError> {
    let file = File::open(path)?;
    let mut scanner = SegmentScanner::new(&file, size, SCAN_CHUNK);
    let mut position = 0u64;
    let mut since_throttle = 0u64;
    while position < size {
        let (header, bytes) = scanner.batch_at(position)?;
        f(&header, bytes)?;
        let n = header.total_size() as u64;
        position += n;
        since_throttle += n;
        if since_throttle >= SCAN_CHUNK as u64 {
            throttle(since_throttle);
            since_throttle = 0;
        }
    }
    throttle(since_throttle);
    Ok(())
}

/// The aborted transactions of the pass, by producer.
struct AbortedSet(HashMap<i64, Vec<(i64, i64)>>);

impl AbortedSet {
    fn new(txns: &[AbortedTxn]) -> AbortedSet {
        let mut m: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for t in txns {
            m.entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        AbortedSet(m)
    }

    /// Whether a transactional data batch belongs to an aborted transaction.
    fn contains(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.0.get(&header.producer_id).is_some_and(|ranges| {
                ranges
                    .iter()
                    .any(|&(first, last)| header.base_offset >= first && header.base_offset < last)
            })
    }
}

#[cfg(test)]
#[path = "cleaner_tests.rs"]
mod tests;
