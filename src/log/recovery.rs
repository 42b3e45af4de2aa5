//! Opening a partition directory: finding the segments, trusting their index files after a
//! clean shutdown, or scanning and truncating them after a crash.
//!
//! After a clean shutdown only the last segment's tail (from its last offset index entry) is
//! read, to find the log end offset. Index files that are missing or implausible cause that one
//! segment to be scanned. After an unclean shutdown the segments wholly below the recovery point
//! (the offset up to which everything was fsynced) are loaded the same way; from the segment
//! that holds the recovery point on, every segment is scanned batch by batch (framing, magic,
//! CRC-32C, offsets increasing and within the segment's `u32` range); at the first bad batch the
//! segment is truncated there and all later segments are deleted.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;

use tracing::{info, warn};

use super::segment::{
    mtime_ms, parse_segment_file_name, segment_file, Segment, SegmentScanner, INDEX_SUFFIX,
    LOG_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX,
};
use super::{LogConfig, LogError, OpenStats};

/// Bytes read at a time by the recovery scan.
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// How much of a partition directory can be trusted when opening it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recovery {
    /// After a clean shutdown: every segment's index files are trusted.
    Clean,
    /// After a crash: segments wholly below this recovery point are trusted, the rest scanned.
    From(i64),
}

/// The segments of an opened partition directory.
pub(crate) struct Opened {
    /// Sorted by base offset, never empty; the last one has a writable handle.
    pub(crate) segments: Vec<Segment>,
    pub(crate) log_end_offset: i64,
    /// Files changed or scanned while opening (truncated and recovered segments, rewritten
    /// indexes): once they are fsynced, the recovery point may move to the log end offset.
    pub(crate) unsynced: Vec<Arc<File>>,
    /// Whether files were created or deleted in the directory.
    pub(crate) dir_dirty: bool,
    pub(crate) stats: OpenStats,
}

/// Opens the segments of `dir` (which exists), creating the first one if there is none.
pub(crate) fn open_segments(
    dir: &Path,
    config: &LogConfig,
    recovery: Recovery,
) -> Result<Opened, LogError> {
    let mut unsynced = Vec::new();
    let mut dir_dirty = false;
    let mut stats = OpenStats::default();
    dir_dirty |= super::cleaner::complete_interrupted(dir)?;
    let bases = list_segments(dir, &mut dir_dirty)?;
    if bases.is_empty() {
        let segment = Segment::create(dir, 0, config)?;
        stats.segments = 1;
        return Ok(Opened {
            segments: vec![segment],
            log_end_offset: 0,
            unsynced,
            dir_dirty: true,
            stats,
        });
    }

    let mut segments: Vec<Segment> = bases
        .iter()
        .map(|&base| Segment::new(dir, base, config))
        .collect();
    let mut log_end_offset = 0;
    let mut i = 0;
    while i < segments.len() {
        let is_last = i + 1 == segments.len();
        let trusted = match recovery {
            Recovery::Clean => true,
            Recovery::From(point) => segments
                .get(i + 1)
                .is_some_and(|next| next.base_offset <= point),
        };
        let previous_end = if i == 0 { None } else { Some(log_end_offset) };
        let segment = &mut segments[i];
        if let Some(previous_end) = previous_end {
            if !trusted && segment.base_offset < previous_end {
                warn!(
                    dir = %dir.display(),
                    segment = segment.base_offset,
                    previous_end,
                    "segment starts below the end of the previous one; deleting it and later ones"
                );
                stats.segments_deleted += delete_from(&mut segments, i, &mut dir_dirty)?;
                break;
            }
        }

        let loaded = if trusted {
            match load_clean(segment, config, is_last)? {
                Ok(next) => Some(next),
                Err(reason) => {
                    warn!(
                        dir = %dir.display(),
                        segment = segment.base_offset,
                        reason,
                        "index files not usable; scanning the segment"
                    );
                    None
                }
            }
        } else {
            None
        };
        let (next_offset, truncated) = match loaded {
            Some(next) => (next, false),
            None => {
                let min_offset =
                    previous_end.map_or(segment.base_offset, |e| e.max(segment.base_offset));
                let recovered = recover_segment(segment, config, min_offset, dir)?;
                stats.segments_scanned += 1;
                stats.bytes_scanned += segment.size;
                stats.bytes_truncated += recovered.truncated_bytes;
                if let Some(file) = segment.open_file() {
                    push_once(&mut unsynced, file);
                }
                if !is_last && recovered.truncated_bytes == 0 {
                    // A rolled segment: its time index ends with the entry for its largest
                    // timestamp, as written when it rolled.
                    segment.seal();
                }
                for file in segment.write_indexes_if_changed()? {
                    push_once(&mut unsynced, &file);
                }
                (recovered.next_offset, recovered.truncated_bytes > 0)
            }
        };
        // Gaps between segments are legal; the end is the last batch's end or the base.
        log_end_offset = next_offset.max(segment.base_offset);
        if !is_last {
            segment.release_file();
        }
        if truncated && !is_last {
            stats.segments_deleted += delete_from(&mut segments, i + 1, &mut dir_dirty)?;
            break;
        }
        i += 1;
    }

    if let Some(last) = segments.last_mut() {
        // load_clean and recover_segment leave a writable handle; a segment that became the
        // last because later ones were deleted had its handle released.
        if last.open_file().is_none() {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(last.path(LOG_SUFFIX))?;
            last.set_file(Arc::new(file));
        }
        // `segment.ms` counts from the last write of a segment loaded from disk.
        if last.size > 0 {
            last.roll_base_ms = Some(mtime_ms(&std::fs::metadata(last.path(LOG_SUFFIX))?));
        }
    }
    stats.segments = segments.len();
    if stats.bytes_scanned > 0 || stats.bytes_truncated > 0 || stats.segments_deleted > 0 {
        info!(
            dir = %dir.display(),
            segments = segments.len(),
            scanned_segments = stats.segments_scanned,
            scanned_bytes = stats.bytes_scanned,
            truncated_bytes = stats.bytes_truncated,
            deleted_segments = stats.segments_deleted,
            log_end_offset,
            "recovered partition log"
        );
    }
    Ok(Opened {
        segments,
        log_end_offset,
        unsynced,
        dir_dirty,
        stats,
    })
}

/// Base offsets of the `.log` files in `dir`, sorted. Deletes index files without a `.log`.
fn list_segments(dir: &Path, dir_dirty: &mut bool) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let mut index_files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(base) = parse_segment_file_name(name, LOG_SUFFIX) {
            bases.push(base);
        } else if let Some(base) = parse_segment_file_name(name, INDEX_SUFFIX)
            .or_else(|| parse_segment_file_name(name, TIME_INDEX_SUFFIX))
            .or_else(|| parse_segment_file_name(name, TXN_INDEX_SUFFIX))
        {
            index_files.push((base, entry.path()));
        }
    }
    bases.sort_unstable();
    for (base, path) in index_files {
        if bases.binary_search(&base).is_err() {
            warn!(path = %path.display(), "deleting index file without a segment");
            remove_if_exists(&path)?;
            *dir_dirty = true;
        }
    }
    Ok(bases)
}

/// Deletes `segments[from..]` and their files; returns how many.
fn delete_from(
    segments: &mut Vec<Segment>,
    from: usize,
    dir_dirty: &mut bool,
) -> Result<usize, LogError> {
    if from >= segments.len() {
        return Ok(0);
    }
    let deleted = segments.split_off(from);
    let bytes: u64 = deleted.iter().map(|s| s.size).sum();
    for segment in &deleted {
        segment.delete_files()?;
    }
    warn!(
        segments = deleted.len(),
        first = deleted.first().map_or(0, |s| s.base_offset),
        bytes,
        "deleted segments after a corrupt or inconsistent segment"
    );
    *dir_dirty = true;
    Ok(deleted.len())
}

fn remove_if_exists(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Loads a segment file the cleaner just wrote (complete and fsynced): scans it to build its
/// indexes and largest timestamp, writes the index files and closes the file (it is inactive).
pub(crate) fn load_rewritten(
    dir: &Path,
    base: i64,
    config: &LogConfig,
) -> Result<Segment, LogError> {
    let mut segment = Segment::new(dir, base, config);
    let recovered = recover_segment(&mut segment, config, base, dir)?;
    if recovered.truncated_bytes > 0 {
        warn!(dir = %dir.display(), segment = base, "a cleaned segment had an invalid tail");
    }
    segment.seal();
    for file in segment.write_indexes()? {
        file.sync_all()?;
    }
    segment.release_file();
    let txn_path = segment.path(TXN_INDEX_SUFFIX);
    match super::txn_index::TxnIndex::load(&txn_path)? {
        Ok(index) => segment.txn_index = index,
        Err(reason) => {
            warn!(path = %txn_path.display(), reason, "cleaned txn index is malformed; removing it");
            remove_if_exists(&txn_path)?;
        }
    }
    Ok(segment)
}

/// Adds `file` to `files` unless that very handle is there already.
pub(crate) fn push_once(files: &mut Vec<Arc<File>>, file: &Arc<File>) {
    if !files.iter().any(|f| Arc::ptr_eq(f, file)) {
        files.push(Arc::clone(file));
    }
}

/// Loads a cleanly closed segment from its files: its size, its index files (checked for
/// plausibility) and, for the last segment, the batches after the last index entry, which
/// gives the log end offset. Returns the offset after the segment's last batch (the base offset
/// for an inactive segment, whose end is not needed), or why the files cannot be trusted.
fn load_clean(
    segment: &mut Segment,
    config: &LogConfig,
    is_last: bool,
) -> Result<Result<i64, String>, LogError> {
    let size = std::fs::metadata(segment.path(LOG_SUFFIX))?.len();
    if size > u64::from(u32::MAX) {
        return Ok(Err(format!("segment of {size} bytes exceeds 4 GiB")));
    }
    let Some(index_bytes) = read_if_exists(&segment.path(INDEX_SUFFIX))? else {
        return Ok(Err("offset index is missing".into()));
    };
    let Some(time_bytes) = read_if_exists(&segment.path(TIME_INDEX_SUFFIX))? else {
        return Ok(Err("time index is missing".into()));
    };
    let offset_index =
        match super::index::OffsetIndex::from_bytes(&index_bytes, config.segment_index_bytes) {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("offset index: {reason}"))),
        };
    let time_index =
        match super::time_index::TimeIndex::from_bytes(&time_bytes, config.segment_index_bytes) {
            Ok(index) => index,
            Err(reason) => return Ok(Err(format!("time index: {reason}"))),
        };
    if let Some(last) = offset_index.last() {
        if u64::from(last.position) >= size {
            return Ok(Err(format!(
                "offset index points at position {} of a {size}-byte segment",
                last.position
            )));
        }
    }
    // A sealed non-empty segment always has a time index entry; an offset index entry is
    // certain once a segment holds more than one interval plus one batch.
    if size > 0 && time_index.is_empty() {
        return Ok(Err("time index is empty".into()));
    }
    let threshold = config
        .index_interval_bytes
        .saturating_add(config.max_message_bytes as u64);
    if offset_index.is_empty() && size > threshold {
        return Ok(Err("offset index is empty".into()));
    }
    segment.size = size;
    segment.offset_index = offset_index;
    segment.time_index = time_index;
    segment.max_timestamp_from_index();
    if !is_last {
        return Ok(Ok(segment.base_offset));
    }

    // Replay the tail from the last index entry: framing checks only, as the files are trusted.
    let (mut position, mut expected) = match segment.offset_index.last() {
        Some(e) => (
            u64::from(e.position),
            segment.base_offset + i64::from(e.relative_offset),
        ),
        None => (0, segment.base_offset),
    };
    segment.bytes_since_index = 0;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(segment.path(LOG_SUFFIX))?;
    let mut scanner = SegmentScanner::new(&file, size, super::segment::HEADER_SCAN_CHUNK);
    let mut next_offset = segment.base_offset;
    while position < size {
        let header = match scanner.header_at(position) {
            Ok(h) => h,
            Err(LogError::Io(e)) => return Err(e.into()),
            Err(e) => return Ok(Err(format!("tail of the segment: {e}"))),
        };
        if header.base_offset < expected || segment.relative(header.last_offset()).is_none() {
            return Ok(Err(format!(
                "batch at position {position} has base offset {} where {expected} or more was expected",
                header.base_offset
            )));
        }
        segment.on_batch(&header, position, config.index_interval_bytes);
        expected = header.next_offset();
        next_offset = expected;
        position += header.total_size() as u64;
    }
    drop(scanner);
    segment.set_file(Arc::new(file));
    Ok(Ok(next_offset))
}

fn read_if_exists(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The outcome of scanning one segment.
struct Recovered {
    /// Offset after the last valid batch (the base offset if none).
    next_offset: i64,
    /// Bytes cut off after the last valid batch.
    truncated_bytes: u64,
}

/// Scans the whole segment validating every batch, rebuilds its indexes and largest
/// timestamp, and truncates the file at the first batch that is torn, corrupt, or whose
/// offsets go backwards (below `min_offset`) or out of the segment's range. Leaves a writable
/// handle installed on the segment.
fn recover_segment(
    segment: &mut Segment,
    config: &LogConfig,
    min_offset: i64,
    dir: &Path,
) -> Result<Recovered, LogError> {
    let path = segment_file(dir, segment.base_offset, LOG_SUFFIX);
    let file = OpenOptions::new().read(true).write(true).open(&path)?;
    let file_size = file.metadata()?.len();
    // Positions must fit the index's u32; anything beyond is treated as corrupt.
    let size = file_size.min(u64::from(u32::MAX));
    let fresh = Segment::new(dir, segment.base_offset, config);
    segment.offset_index = fresh.offset_index;
    segment.time_index = fresh.time_index;
    segment.max_timestamp = None;
    segment.bytes_since_index = 0;
    segment.release_file();

    let mut position = 0u64;
    let mut expected = min_offset;
    let mut problem = None;
    {
        let mut scanner = SegmentScanner::new(&file, size, RECOVERY_CHUNK);
        while position < size {
            let header = match scanner.batch_at(position) {
                Ok((_, bytes)) => super::batch::validate_stored(bytes),
                Err(e) => Err(e),
            };
            let header = match header {
                Ok(h) => h,
                Err(LogError::Io(e)) => return Err(e.into()),
                Err(e) => {
                    problem = Some(e.to_string());
                    break;
                }
            };
            if header.base_offset < expected {
                problem = Some(format!(
                    "batch base offset {} is below the expected {expected}",
                    header.base_offset
                ));
                break;
            }
            if segment.relative(header.last_offset()).is_none() {
                problem = Some(format!(
                    "batch last offset {} is outside the segment's range",
                    header.last_offset()
                ));
                break;
            }
            segment.on_batch(&header, position, config.index_interval_bytes);
            expected = header.next_offset();
            position += header.total_size() as u64;
        }
    }
    if position < size && problem.is_none() {
        problem = Some("segment exceeds 4 GiB".into());
    }
    let truncated = position < file_size;
    if truncated {
        warn!(
            path = %path.display(),
            valid_bytes = position,
            truncated_bytes = file_size - position,
            reason = problem.as_deref().unwrap_or("unknown"),
            "truncating a torn or corrupt segment tail"
        );
        file.set_len(position)?;
    }
    segment.size = position;
    segment.set_file(Arc::new(file));
    let next_offset = if position == 0 {
        segment.base_offset
    } else {
        expected
    };
    Ok(Recovered {
        next_offset,
        truncated_bytes: file_size - position,
    })
}
