//! Tests of the replication side of `PartitionLog`: reads bounded by an upper offset,
//! leader-epoch stamping and the epoch cache (persisted, reloaded, trimmed by retention and
//! DeleteRecords), follower appends (`append_replica`), truncation (`truncate_to`,
//! `truncate_fully_and_start_at`) including reopening afterwards, and a property test of random
//! leader and follower life cycles against a model.

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::batch::{self, BatchBuilder, BatchHeader};
use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A batch of `count` records with `value_len`-byte values; record `i` has timestamp `ts + i`.
fn make_batch(count: usize, value_len: usize, ts: i64) -> BytesMut {
    let value = vec![b'e'; value_len];
    let mut builder = BatchBuilder::new(ts);
    for i in 0..count {
        builder.record(Some(b"key"), Some(&value), ts + i as i64);
    }
    builder.build()
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 200,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// The headers and bytes of concatenated batches.
fn split(bytes: &[u8]) -> Result<Vec<(BatchHeader, Vec<u8>)>, LogError> {
    batch::batches(bytes)
        .map(|item| item.map(|(h, b)| (h, b.to_vec())))
        .collect()
}

/// Everything readable, as stored.
fn all_bytes(log: &PartitionLog) -> Result<Bytes, LogError> {
    Ok(log.read(log.log_start_offset(), usize::MAX)?.records)
}

/// The files of `dir` with one of the given extensions, sorted, with their contents.
fn files_with(dir: &Path, extensions: &[&str]) -> std::io::Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| extensions.contains(&e))
        {
            let name = PathBuf::from(path.file_name().unwrap_or_default());
            files.push((name, std::fs::read(&path)?));
        }
    }
    files.sort();
    Ok(files)
}

fn epoch_file(dir: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(dir.join(leader_epoch::LEADER_EPOCH_FILE))
}

// ---------------------------------------------------------------------------------------------
// Bounded reads
// ---------------------------------------------------------------------------------------------

/// A log of 30 batches of 3 records (offsets 3i..3i+2) in segments of three batches.
fn numbered_log(path: &Path) -> Result<PartitionLog, LogError> {
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    for i in 0..30 {
        log.append(make_batch(3, 60, 10_000 + 100 * i), None)?;
    }
    Ok(log)
}

#[test]
fn reads_bounded_by_an_upper_offset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = numbered_log(dir.path())?;
    log.delete_records_before(4)?;
    let start = log.log_start_offset();
    let end = log.log_end_offset();

    // The examples: whole batches below the bound only.
    let bases = |records: &[u8]| -> Result<Vec<i64>, LogError> {
        Ok(split(records)?.iter().map(|b| b.0.base_offset).collect())
    };
    assert_eq!(bases(&log.read_upto(4, usize::MAX, 9)?.records)?, [3, 6]);
    assert_eq!(bases(&log.read_upto(4, usize::MAX, 10)?.records)?, [3, 6]);
    assert_eq!(bases(&log.read_upto(4, usize::MAX, 11)?.records)?, [3, 6]);
    assert_eq!(
        bases(&log.read_upto(4, usize::MAX, 12)?.records)?,
        [3, 6, 9]
    );
    assert!(log.read_upto(9, usize::MAX, 9)?.records.is_empty());
    assert!(log.read_upto(10, usize::MAX, 9)?.records.is_empty());
    assert!(log.read_upto(end, usize::MAX, 9)?.records.is_empty());
    assert!(log.read_upto(7, usize::MAX, -5)?.records.is_empty());
    assert!(matches!(
        log.read_upto(end + 1, 10, 9),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read_upto(start - 1, 10, 9),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read_records_upto(end + 1, 10, 0, 9),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let result = log.read_upto(4, usize::MAX, end + 50)?;
    assert_eq!(result.records, log.read(4, usize::MAX)?.records);
    assert_eq!(result.high_watermark, end);

    // Every offset, every bound, a range of budgets: the bounded read is the unbounded one's
    // batches that end below the bound, in memory and as file regions alike.
    for offset in start..=end {
        for upper in start.saturating_sub(1)..=end + 1 {
            for budget in [0, 400, 1_000, usize::MAX] {
                let unbounded = split(&log.read(offset, budget)?.records)?;
                let expected: Vec<u8> = unbounded
                    .iter()
                    .take_while(|b| b.0.last_offset() < upper)
                    .flat_map(|b| b.1.iter().copied())
                    .collect();
                let bounded = log.read_upto(offset, budget, upper)?;
                assert!(
                    bounded.records[..] == expected[..],
                    "offset {offset} upper {upper} budget {budget}"
                );
                match log.read_records_upto(offset, budget, 0, upper)?.records {
                    RecordSet::File(f) => assert!(f.read_all()?[..] == expected[..]),
                    RecordSet::Bytes(b) => {
                        assert!(b.is_empty() && expected.is_empty(), "{offset} {upper}")
                    }
                }
                match log
                    .read_records_upto(offset, budget, usize::MAX, upper)?
                    .records
                {
                    RecordSet::Bytes(b) => assert!(b[..] == expected[..]),
                    RecordSet::File(_) => return Err("file records below the threshold".into()),
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Leader epochs
// ---------------------------------------------------------------------------------------------

#[test]
fn assigned_epoch_is_stamped_outside_the_crc() -> TestResult {
    let dir = tempfile::tempdir()?;
    // A producer's own value in the field, to see who wins.
    let mut sent = make_batch(3, 20, 1_000);
    batch::set_partition_leader_epoch(&mut sent, 77);

    // A log never given an epoch stores the producer's bytes, only the base offset set.
    let mut plain = PartitionLog::open(&dir.path().join("plain"), config(1 << 20), false)?;
    plain.append(sent.clone(), None)?;
    plain.append(sent.clone(), None)?;
    let mut expected = sent.to_vec();
    batch::set_base_offset(&mut expected, 3);
    assert_eq!(&all_bytes(&plain)?[sent.len()..], &expected[..]);
    assert_eq!(plain.latest_epoch(), None);
    assert!(plain.epoch_entries().is_empty());
    assert!(!dir
        .path()
        .join("plain")
        .join(leader_epoch::LEADER_EPOCH_FILE)
        .exists());

    let led_dir = dir.path().join("led");
    let mut log = PartitionLog::open(&led_dir, config(1 << 20), false)?;
    log.append(sent.clone(), None)?;
    log.assign_leader_epoch(3)?;
    log.append(sent.clone(), None)?;
    log.append(sent.clone(), Some(1_700_000_000_000))?;
    log.assign_leader_epoch(5)?;
    log.append(sent.clone(), None)?;
    let stored = split(&all_bytes(&log)?)?;
    let epochs: Vec<i32> = stored
        .iter()
        .map(|(h, _)| h.partition_leader_epoch)
        .collect();
    assert_eq!(epochs, [77, 3, 3, 5]);
    for (header, bytes) in &stored {
        let checked = batch::validate(bytes)?;
        assert_eq!(checked, *header, "the CRC still holds");
        assert_eq!(
            i32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]),
            header.partition_leader_epoch
        );
        // Apart from the base offset, the epoch (and the append time) nothing changed.
        assert_eq!(&bytes[batch::HEADER_LEN..], &sent[batch::HEADER_LEN..]);
    }
    assert!(stored[2].0.is_log_append_time());
    assert_eq!(log.epoch_entries(), [(3, 3), (5, 9)]);
    assert_eq!(log.latest_epoch(), Some(5));

    // Older epochs are refused and change nothing; the latest again is a no-op; negative is
    // invalid.
    assert!(matches!(
        log.assign_leader_epoch(4),
        Err(LogError::StaleEpoch {
            epoch: 4,
            latest: 5
        })
    ));
    log.assign_leader_epoch(5)?;
    assert!(matches!(
        log.assign_leader_epoch(-1),
        Err(LogError::InvalidEpoch(-1))
    ));
    assert_eq!(log.epoch_entries(), [(3, 3), (5, 9)]);
    assert_eq!(epoch_file(&led_dir)?, "0\n2\n3 3\n5 9\n");
    log.append(sent.clone(), None)?;
    let last = split(&all_bytes(&log)?)?.pop().ok_or("no batch")?;
    assert_eq!(last.0.partition_leader_epoch, 5);
    log.check_consistency();
    Ok(())
}

#[test]
fn epoch_cache_survives_clean_and_crash_reopens() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    log.assign_leader_epoch(1)?;
    for _ in 0..3 {
        log.append(make_batch(2, 60, 10), None)?;
    }
    log.assign_leader_epoch(2)?;
    for _ in 0..3 {
        log.append(make_batch(2, 60, 20), None)?;
    }
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6)]);
    log.close()?;
    drop(log);

    let mut log = PartitionLog::open(path, config(1_000), true)?;
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6)]);
    assert_eq!(log.latest_epoch(), Some(2));
    // Reopening ends stamping until the epoch is assigned again.
    let sent = make_batch(1, 10, 30);
    log.append(sent.clone(), None)?;
    log.assign_leader_epoch(2)?;
    log.append(sent, None)?;
    let stored = split(&all_bytes(&log)?)?;
    assert_eq!(stored[stored.len() - 2].0.partition_leader_epoch, -1);
    assert_eq!(stored[stored.len() - 1].0.partition_leader_epoch, 2);
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6)]);
    log.assign_leader_epoch(4)?;
    log.append(make_batch(2, 60, 40), None)?;
    let end = log.log_end_offset();
    drop(log); // a crash

    let mut log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6), (4, 14)]);
    assert!(matches!(
        log.assign_leader_epoch(3),
        Err(LogError::StaleEpoch { .. })
    ));

    // An epoch assigned at the log end with nothing appended is dropped by the next open,
    // as is one whose batches a crash tore off.
    log.assign_leader_epoch(6)?;
    drop(log);
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6), (4, 14)]);
    log.assign_leader_epoch(7)?;
    let torn = log.append(make_batch(3, 60, 50), None)?;
    let active = files_with(path, &["log"])?.pop().ok_or("no segment")?.0;
    drop(log);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path.join(active))?;
    file.set_len(file.metadata()?.len() - 5)?;
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!(log.log_end_offset(), torn.base_offset);
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 6), (4, 14)]);
    assert_eq!(epoch_file(path)?, "0\n3\n1 0\n2 6\n4 14\n");
    drop(log);

    // A malformed checkpoint is ignored: the log opens with an empty cache.
    std::fs::write(path.join(leader_epoch::LEADER_EPOCH_FILE), "0\n2\n1 0\n")?;
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert!(log.epoch_entries().is_empty());
    assert_eq!(log.log_end_offset(), torn.base_offset);
    Ok(())
}

#[test]
fn end_offset_for_epoch_answers_as_kafka_does() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), config(1 << 20), false)?;
    assert_eq!(log.end_offset_for_epoch(0), None, "empty cache");
    log.assign_leader_epoch(1)?;
    log.append(make_batch(3, 10, 1), None)?;
    log.assign_leader_epoch(3)?;
    log.append(make_batch(2, 10, 2), None)?;
    log.assign_leader_epoch(6)?;
    log.append(make_batch(1, 10, 3), None)?;
    assert_eq!(log.epoch_entries(), [(1, 0), (3, 3), (6, 5)]);
    assert_eq!(log.end_offset_for_epoch(0), None, "older than every epoch");
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 3)));
    assert_eq!(log.end_offset_for_epoch(2), Some((1, 3)), "between epochs");
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 5)));
    assert_eq!(log.end_offset_for_epoch(5), Some((3, 5)));
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 6)), "newest: log end");
    assert_eq!(log.end_offset_for_epoch(9), Some((6, 6)));
    log.append(make_batch(4, 10, 4), None)?;
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 10)));
    Ok(())
}

#[test]
fn retention_and_delete_records_move_the_cache_start() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    // No epochs: nothing to adjust, and no checkpoint appears.
    log.append(make_batch(2, 60, 1), None)?;
    log.delete_records_before(1)?;
    assert!(!path.join(leader_epoch::LEADER_EPOCH_FILE).exists());

    log.assign_leader_epoch(1)?;
    for _ in 0..10 {
        log.append(make_batch(2, 60, 1), None)?;
    }
    log.assign_leader_epoch(2)?;
    for _ in 0..10 {
        log.append(make_batch(2, 60, 1), None)?;
    }
    log.assign_leader_epoch(4)?;
    for _ in 0..10 {
        log.append(make_batch(2, 60, 1), None)?;
    }
    assert_eq!(log.epoch_entries(), [(1, 2), (2, 22), (4, 42)]);
    // The start moves inside the first epoch: its entry follows.
    log.delete_records_before(5)?;
    assert_eq!(log.epoch_entries(), [(1, 5), (2, 22), (4, 42)]);
    // Past the second epoch's start: the first entry goes, the second starts at the log start.
    log.delete_records_before(23)?;
    assert_eq!(log.epoch_entries(), [(2, 23), (4, 42)]);
    assert_eq!(epoch_file(path)?, "0\n2\n2 23\n4 42\n");
    // Exactly at an entry's start: the older entries go, that one stays as it is.
    log.delete_records_before(42)?;
    assert_eq!(log.epoch_entries(), [(4, 42)]);

    // Retention by size deletes segments; the log start moves to the new first segment.
    let mut shrink = config(1_000);
    shrink.retention_bytes = Some(1_000);
    log.set_config(shrink);
    let outcome = log.apply_retention(0)?;
    assert!(outcome.deleted_segments > 0);
    let start = log.log_start_offset();
    assert!(start > 42);
    assert_eq!(log.epoch_entries(), [(4, start)]);
    drop(log);
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!(log.epoch_entries(), [(4, start)]);
    assert_eq!(log.end_offset_for_epoch(4), Some((4, log.log_end_offset())));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Follower appends
// ---------------------------------------------------------------------------------------------

/// `make_batch` as a leader stored it: `base_offset` and `epoch` set in its header.
fn stored_batch(count: usize, base_offset: i64, epoch: i32, ts: i64) -> BytesMut {
    let mut b = make_batch(count, 40, ts);
    batch::set_base_offset(&mut b, base_offset);
    batch::set_partition_leader_epoch(&mut b, epoch);
    b
}

/// A leader log of `n` batches of 1 to 4 records under epochs 0, 2 and 5, some LogAppendTime,
/// appended one batch per call with 1000-byte segments.
fn leader_log(path: &Path, n: usize) -> Result<PartitionLog, LogError> {
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    for i in 0..n {
        match i {
            0 => log.assign_leader_epoch(0)?,
            7 => log.assign_leader_epoch(2)?,
            15 => log.assign_leader_epoch(5)?,
            _ => {}
        }
        let append_time = (i % 5 == 4).then_some(1_700_000_000_000 + i as i64);
        log.append(
            make_batch(1 + i % 4, 50, 1_000 + 10 * i as i64),
            append_time,
        )?;
    }
    Ok(log)
}

#[test]
fn append_replica_copies_a_leader_log_byte_for_byte() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut leader = leader_log(&dir.path().join("leader"), 24)?;
    assert!(leader.segment_count() > 3);
    let stored = split(&all_bytes(&leader)?)?;

    // One batch per call: the follower rolls where the leader did.
    let follower_dir = dir.path().join("follower");
    let mut follower = PartitionLog::open(&follower_dir, config(1_000), false)?;
    for (header, bytes) in &stored {
        let info = follower.append_replica(Bytes::copy_from_slice(bytes))?;
        assert_eq!(info.base_offset, header.base_offset);
        assert_eq!(info.last_offset, header.last_offset());
        assert_eq!(info.record_count, header.records_count as u32);
        assert_eq!(info.bytes, bytes.len());
        assert_eq!(info.max_timestamp, header.max_timestamp);
    }
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    assert_eq!(follower.epoch_entries(), leader.epoch_entries());
    assert_eq!(
        follower.segment_base_offsets(),
        leader.segment_base_offsets()
    );
    follower.check_consistency();
    leader.close()?;
    follower.close()?;
    let leader_files = files_with(&dir.path().join("leader"), &["log", "index", "timeindex"])?;
    let follower_files = files_with(&follower_dir, &["log", "index", "timeindex"])?;
    assert!(
        leader_files == follower_files,
        "segment and index files differ"
    );
    assert_eq!(
        epoch_file(&follower_dir)?,
        epoch_file(&dir.path().join("leader"))?
    );

    // Fetch-sized chunks: different segment boundaries, the same bytes.
    let chunked_dir = dir.path().join("chunked");
    let mut chunked = PartitionLog::open(&chunked_dir, config(1_000), false)?;
    let mut offset = 0;
    while offset < leader.log_end_offset() {
        let chunk = leader.read(offset, 700)?.records;
        let info = chunked.append_replica(chunk)?;
        offset = info.last_offset + 1;
    }
    assert_eq!(all_bytes(&chunked)?, all_bytes(&leader)?);
    assert_eq!(chunked.epoch_entries(), leader.epoch_entries());
    chunked.check_consistency();
    drop(chunked);
    let chunked = PartitionLog::open(&chunked_dir, config(1_000), false)?;
    assert_eq!(all_bytes(&chunked)?, all_bytes(&leader)?);
    assert_eq!(chunked.epoch_entries(), leader.epoch_entries());
    Ok(())
}

#[test]
fn append_replica_skips_a_resent_prefix_and_refuses_what_does_not_follow() -> TestResult {
    let dir = tempfile::tempdir()?;
    let leader = leader_log(&dir.path().join("leader"), 6)?;
    let stored = split(&all_bytes(&leader)?)?;
    let bytes_of = |range: std::ops::Range<usize>| -> Bytes {
        let mut out = BytesMut::new();
        for (_, b) in &stored[range] {
            out.extend_from_slice(b);
        }
        out.freeze()
    };

    let mut log = PartitionLog::open(&dir.path().join("follower"), config(1 << 20), false)?;
    log.append_replica(bytes_of(0..3))?;
    let end = log.log_end_offset();
    assert_eq!(end, stored[3].0.base_offset);
    // Re-sent from the start: the known prefix is skipped.
    let info = log.append_replica(bytes_of(0..6))?;
    assert_eq!(info.base_offset, end);
    assert_eq!(info.last_offset, leader.log_end_offset() - 1);
    assert_eq!(info.bytes, bytes_of(3..6).len());
    let records: i32 = stored[3..6].iter().map(|(h, _)| h.records_count).sum();
    assert_eq!(info.record_count, records as u32);
    assert_eq!(all_bytes(&log)?, all_bytes(&leader)?);
    // Nothing new, or nothing at all: nothing written.
    let end = log.log_end_offset();
    let nothing = AppendInfo {
        base_offset: end,
        last_offset: end - 1,
        max_timestamp: -1,
        record_count: 0,
        bytes: 0,
    };
    assert_eq!(log.append_replica(bytes_of(0..6))?, nothing);
    assert_eq!(log.append_replica(Bytes::new())?, nothing);
    assert_eq!(log.size_bytes(), all_bytes(&leader)?.len() as u64);

    let before = all_bytes(&log)?;
    let size = log.size_bytes();
    let unchanged = |log: &PartitionLog| -> TestResult {
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.size_bytes(), size);
        assert_eq!(all_bytes(log)?, before);
        Ok(())
    };
    // A batch straddling the log end.
    let straddling = stored_batch(3, end - 1, 5, 1);
    assert!(matches!(
        log.append_replica(straddling.freeze()),
        Err(LogError::OffsetMismatch { expected, got }) if expected == end && got == end - 1
    ));
    unchanged(&log)?;
    // Offsets going backwards within one append: the first, valid batch is not written either.
    let mut two = stored_batch(2, end, 5, 1);
    two.extend_from_slice(&stored_batch(1, end + 1, 5, 1));
    assert!(matches!(
        log.append_replica(two.freeze()),
        Err(LogError::OffsetMismatch { expected, got }) if expected == end + 2 && got == end + 1
    ));
    unchanged(&log)?;
    // A corrupt CRC, a wrong magic, a torn batch.
    let mut corrupt = stored_batch(2, end, 5, 1);
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x40;
    assert!(matches!(
        log.append_replica(corrupt.freeze()),
        Err(LogError::CorruptRecord(_))
    ));
    let mut magic = stored_batch(2, end, 5, 1);
    magic[batch::MAGIC_OFFSET] = 1;
    assert!(matches!(
        log.append_replica(magic.freeze()),
        Err(LogError::UnsupportedMagic(1))
    ));
    let torn = stored_batch(2, end, 5, 1);
    assert!(matches!(
        log.append_replica(torn.freeze().slice(..70)),
        Err(LogError::CorruptRecord(_))
    ));
    unchanged(&log)?;
    assert_eq!(
        log.epoch_entries(),
        leader.epoch_entries(),
        "no epoch added"
    );

    // max.message.bytes is the leader's business.
    let mut tight = config(1 << 20);
    tight.max_message_bytes = 100;
    log.set_config(tight);
    let big = stored_batch(4, end, 5, 1);
    assert!(big.len() > 100);
    log.append_replica(big.freeze())?;
    assert!(matches!(
        log.append(make_batch(4, 40, 1), None),
        Err(LogError::RecordTooLarge { .. })
    ));

    // Gaps (compaction) are fine; a read in the gap gets the batch after it.
    let end = log.log_end_offset();
    let info = log.append_replica(stored_batch(2, end + 10, 5, 1).freeze())?;
    assert_eq!(info.base_offset, end + 10);
    assert_eq!(log.log_end_offset(), end + 12);
    let read = split(&log.read(end + 3, 1)?.records)?;
    assert_eq!(read[0].0.base_offset, end + 10);
    log.check_consistency_allowing_gaps();
    drop(log);
    let log = PartitionLog::open(&dir.path().join("follower"), config(1 << 20), false)?;
    assert_eq!(log.log_end_offset(), end + 12);
    log.check_consistency_allowing_gaps();
    Ok(())
}

#[test]
fn append_replica_rolls_segments_and_records_newer_epochs() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    // Epoch -1 (never stamped) is not recorded; older epochs than the latest are ignored.
    let epochs = [-1, 1, 1, 3, 3, 2, 3, 5, 5, 5, 8, 8];
    let mut offset = 0;
    for (i, &epoch) in epochs.iter().enumerate() {
        let b = stored_batch(3, offset, epoch, 100 + i as i64);
        offset += 3;
        log.append_replica(b.freeze())?;
    }
    assert_eq!(log.epoch_entries(), [(1, 3), (3, 9), (5, 21), (8, 30)]);
    assert!(log.segment_count() >= 3);
    log.check_consistency();
    // Several epochs in one append, persisted before the write.
    let mut several = stored_batch(1, offset, 9, 1);
    several.extend_from_slice(&stored_batch(1, offset + 1, 11, 1));
    log.append_replica(several.freeze())?;
    assert_eq!(
        log.epoch_entries(),
        [(1, 3), (3, 9), (5, 21), (8, 30), (9, 36), (11, 37)]
    );
    assert_eq!(
        epoch_file(path)?,
        "0\n6\n1 3\n3 9\n5 21\n8 30\n9 36\n11 37\n"
    );

    // A follower append ends stamping: a leader must assign its epoch again.
    log.assign_leader_epoch(12)?;
    log.append_replica(Bytes::new())?;
    log.append(make_batch(1, 10, 1), None)?;
    let last = split(&all_bytes(&log)?)?.pop().ok_or("no batch")?;
    assert_eq!(last.0.partition_leader_epoch, -1);

    // A gap wider than a segment's relative offsets rolls, even from an empty segment.
    let far = log.log_end_offset() + 5_000_000_000;
    log.append_replica(stored_batch(2, far, 12, 1).freeze())?;
    assert_eq!(log.segment_base_offsets().last(), Some(&far));
    assert_eq!(log.log_end_offset(), far + 2);
    let dir2 = tempfile::tempdir()?;
    let mut fresh = PartitionLog::open(dir2.path(), config(1_000), false)?;
    fresh.append_replica(stored_batch(2, far, 12, 1).freeze())?;
    assert_eq!(fresh.segment_base_offsets(), [0, far]);
    assert_eq!(split(&fresh.read(0, 1)?.records)?[0].0.base_offset, far);
    fresh.check_consistency_allowing_gaps();
    fresh.close()?;
    drop(fresh);
    let fresh = PartitionLog::open(dir2.path(), config(1_000), true)?;
    assert_eq!(fresh.log_end_offset(), far + 2);
    drop(fresh);
    let fresh = PartitionLog::open(dir2.path(), config(1_000), false)?;
    assert_eq!(fresh.log_end_offset(), far + 2);
    assert_eq!(fresh.epoch_entries(), [(12, far)]);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Truncation
// ---------------------------------------------------------------------------------------------

/// What a log should hold: each batch's offsets, largest timestamp and stored bytes.
#[derive(Debug, Clone, Default)]
struct Model {
    batches: Vec<(BatchHeader, Vec<u8>)>,
}

impl Model {
    fn of(log: &PartitionLog) -> Result<Model, LogError> {
        Ok(Model {
            batches: split(&all_bytes(log)?)?,
        })
    }

    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.0.next_offset())
    }

    /// Keeps the batches wholly below `offset`.
    fn truncate(&mut self, offset: i64) {
        self.batches.retain(|(h, _)| h.last_offset() < offset);
    }

    /// Reads at every offset, timestamp lookups and the largest timestamp agree with the model.
    fn check(&self, log: &PartitionLog) -> TestResult {
        assert_eq!(log.log_end_offset(), self.end());
        for (i, (header, bytes)) in self.batches.iter().enumerate() {
            for offset in header.base_offset.max(log.log_start_offset())..=header.last_offset() {
                assert_eq!(&log.read(offset, 1)?.records[..], &bytes[..], "{offset}");
            }
            let all = log.read(header.base_offset.max(log.log_start_offset()), usize::MAX)?;
            let expected: Vec<u8> = self.batches[i..]
                .iter()
                .flat_map(|b| b.1.iter().copied())
                .collect();
            assert!(all.records[..] == expected[..]);
            // Timestamps increase with the batches in these tests.
            if header.base_offset >= log.log_start_offset() {
                let found = log.offset_for_timestamp(header.max_timestamp)?;
                assert_eq!(
                    found.map(|f| f.0),
                    Some(header.base_offset + i64::from(header.last_offset_delta))
                );
            }
        }
        let newest = self.batches.last().map(|b| b.0.max_timestamp);
        assert_eq!(log.max_timestamp().map(|m| m.0), newest);
        assert!(log.read(self.end(), 100)?.records.is_empty());
        log.check_consistency();
        Ok(())
    }
}

/// A log of 30 batches of 3 records (offsets 3i..3i+2, timestamps increasing) in segments of
/// about three batches, under epochs 1 (from 0), 2 (from 30) and 3 (from 60).
fn truncation_log(path: &Path) -> Result<(PartitionLog, Model), LogError> {
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    for i in 0..30 {
        match i {
            0 => log.assign_leader_epoch(1)?,
            10 => log.assign_leader_epoch(2)?,
            20 => log.assign_leader_epoch(3)?,
            _ => {}
        }
        log.append(make_batch(3, 60, 10_000 + 100 * i), None)?;
    }
    let model = Model::of(&log)?;
    Ok((log, model))
}

/// Truncates to `offset` and checks the log against the model, then appends, reopens cleanly
/// and after a crash, checking each time.
fn truncate_and_check(offset: i64, expected_end: i64, expected_segments: usize) -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let (mut log, mut model) = truncation_log(path)?;
    let before = log.take_unsynced()?;
    assert_eq!(
        log.truncate_to(offset)?,
        expected_end,
        "truncate_to({offset})"
    );
    model.truncate(offset);
    assert_eq!(model.end(), expected_end);
    assert_eq!(
        log.segment_count(),
        expected_segments,
        "truncate_to({offset})"
    );
    assert_eq!(files_with(path, &["log"])?.len(), expected_segments);
    model.check(&log)?;
    let entries: Vec<(i32, i64)> = [(1, 0), (2, 30), (3, 60)]
        .into_iter()
        .filter(|e| e.1 < expected_end)
        .collect();
    assert_eq!(log.epoch_entries(), entries);
    assert_eq!(LeaderEpochCache::load(path)?.entries().len(), entries.len());
    assert!(log.recovery_point() <= expected_end);
    assert_eq!(
        checkpoint::read(path, checkpoint::RECOVERY_POINT_FILE)?,
        Some(log.recovery_point())
    );

    // The changed segment (and the directory, if segments went) are handed out for fsync;
    // a token from before the truncation no longer moves the recovery point.
    assert!(log.has_unsynced());
    let unsynced = log.take_unsynced()?;
    assert!(unsynced
        .files
        .iter()
        .any(|f| f.metadata().is_ok_and(|m| m.is_file())));
    if expected_segments < 10 {
        assert!(unsynced
            .files
            .iter()
            .any(|f| f.metadata().is_ok_and(|m| m.is_dir())));
    }
    assert_eq!(
        log.append(make_batch(2, 60, 90_000), None)?.base_offset,
        expected_end
    );
    log.mark_synced(before.token);
    assert!(log.recovery_point() <= expected_end);
    log.mark_synced(unsynced.token);
    assert_eq!(log.recovery_point(), expected_end);

    // Appends go on at the new end, stamped with the epoch assigned again.
    assert_eq!(log.truncate_to(expected_end)?, expected_end);
    log.assign_leader_epoch(4)?;
    let info = log.append(make_batch(2, 60, 95_000), None)?;
    assert_eq!(info.base_offset, expected_end);
    for i in 0..6 {
        log.append(make_batch(3, 60, 96_000 + 100 * i), None)?;
    }
    let mut model = Model::of(&log)?;
    assert_eq!(
        model.batches[model.batches.len() - 7].0.base_offset,
        expected_end
    );
    model.batches.truncate(model.batches.len() - 7);
    let grown = Model::of(&log)?;
    grown.check(&log)?;
    let entries_after = log.epoch_entries();
    assert_eq!(entries_after.last(), Some(&(4, expected_end)));

    // Clean reopen.
    log.close()?;
    drop(log);
    let log = PartitionLog::open(path, config(1_000), true)?;
    grown.check(&log)?;
    assert_eq!(log.epoch_entries(), entries_after);
    drop(log);
    // Crash reopen (nothing scanned is lost: the data is in the page cache).
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    grown.check(&log)?;
    assert_eq!(log.epoch_entries(), entries_after);

    // Truncate again, crash straight away, reopen.
    let end = log.truncate_to(expected_end + 1)?;
    assert_eq!(end, expected_end);
    drop(log);
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!(log.log_end_offset(), expected_end);
    model.check(&log)?;
    assert_eq!(log.epoch_entries(), entries);
    Ok(())
}

#[test]
fn truncate_inside_a_segment() -> TestResult {
    // Batch 13 (offset 39) is in the middle of the fifth segment (three batches a segment).
    let dir = tempfile::tempdir()?;
    let (log, _) = truncation_log(dir.path())?;
    let bases = log.segment_base_offsets();
    assert_eq!(bases[4], 36);
    drop(log);
    truncate_and_check(39, 39, 5)
}

#[test]
fn truncate_at_a_segment_boundary() -> TestResult {
    // The sixth segment starts at 45: it is kept, empty, as the active segment.
    truncate_and_check(45, 45, 6)
}

#[test]
fn truncate_across_several_segments() -> TestResult {
    truncate_and_check(3, 3, 1)
}

#[test]
fn truncate_inside_a_batch() -> TestResult {
    // Offset 65 is inside batch 63..65: the whole batch goes.
    truncate_and_check(65, 63, 8)
}

#[test]
fn truncate_to_the_start_or_beyond_the_end() -> TestResult {
    truncate_and_check(0, 0, 1)?;
    let dir = tempfile::tempdir()?;
    let (mut log, model) = truncation_log(dir.path())?;
    let files = files_with(dir.path(), &["log"])?;
    let end = log.log_end_offset();
    assert_eq!(log.truncate_to(end)?, end);
    assert_eq!(log.truncate_to(end + 100)?, end);
    assert_eq!(files_with(dir.path(), &["log"])?, files);
    assert_eq!(log.epoch_entries(), [(1, 0), (2, 30), (3, 60)]);
    model.check(&log)?;
    Ok(())
}

#[test]
fn a_crash_after_truncating_scans_from_the_lowered_recovery_point() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let (mut log, _) = truncation_log(path)?;
    let unsynced = log.take_unsynced()?;
    log.mark_synced(unsynced.token);
    log.checkpoint_recovery_point()?;
    assert_eq!(
        checkpoint::read(path, checkpoint::RECOVERY_POINT_FILE)?,
        Some(90)
    );
    assert_eq!(log.truncate_to(39)?, 39);
    assert_eq!(log.recovery_point(), 39);
    assert_eq!(
        checkpoint::read(path, checkpoint::RECOVERY_POINT_FILE)?,
        Some(39)
    );
    // Unsynced appends past the old recovery point, then a crash that damaged a segment below
    // it: had the old checkpoint survived, that segment would be trusted unscanned.
    for i in 0..20 {
        log.append(make_batch(3, 60, 50_000 + 100 * i), None)?;
    }
    let bases = log.segment_base_offsets();
    let damaged = *bases
        .iter()
        .find(|&&b| b > 45 && b < 80)
        .ok_or("no segment to damage")?;
    drop(log);
    let file = path.join(format!("{damaged:020}.log"));
    let mut bytes = std::fs::read(&file)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes)?;
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert!(log.open_stats().bytes_truncated > 0);
    assert!(log.log_end_offset() < 99);
    assert_eq!(log.segment_base_offsets().last(), Some(&damaged));
    log.check_consistency();
    Ok(())
}

#[test]
fn truncate_below_the_log_start_restarts_the_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let (mut log, _) = truncation_log(path)?;
    log.delete_records_before(40)?;
    assert_eq!(log.epoch_entries(), [(2, 40), (3, 60)]);
    assert_eq!(log.truncate_to(35)?, 35);
    assert_eq!(log.log_start_offset(), 35);
    assert_eq!(log.log_end_offset(), 35);
    assert_eq!(log.segment_base_offsets(), [35]);
    assert!(log.epoch_entries().is_empty());
    assert_eq!(epoch_file(path)?, "0\n0\n");
    assert_eq!(
        checkpoint::read(path, checkpoint::LOG_START_FILE)?,
        Some(35)
    );
    assert!(matches!(
        log.read(34, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.append(make_batch(2, 10, 1), None)?.base_offset, 35);
    drop(log);
    let log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (35, 37));
    log.check_consistency();
    drop(log);

    // A cut through the batch holding the log start leaves nothing readable: the log restarts
    // at the log start.
    let dir = tempfile::tempdir()?;
    let (mut log, _) = truncation_log(dir.path())?;
    log.delete_records_before(40)?;
    assert_eq!(log.truncate_to(41)?, 40);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (40, 40));
    assert!(log.read(40, 100)?.records.is_empty());
    log.check_consistency();
    Ok(())
}

#[test]
fn truncate_fully_and_start_at_any_offset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let (mut log, _) = truncation_log(path)?;
    log.truncate_fully_and_start_at(500)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 500));
    assert_eq!(log.segment_base_offsets(), [500]);
    assert_eq!(files_with(path, &["log"])?.len(), 1);
    assert!(log.epoch_entries().is_empty());
    assert!(matches!(
        log.truncate_fully_and_start_at(-1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let unsynced = log.take_unsynced()?;
    assert!(unsynced
        .files
        .iter()
        .any(|f| f.metadata().is_ok_and(|m| m.is_dir())));
    log.append_replica(stored_batch(2, 510, 7, 1).freeze())?;
    assert_eq!(log.epoch_entries(), [(7, 510)]);
    drop(log);
    let mut log = PartitionLog::open(path, config(1_000), false)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (500, 512));
    assert_eq!(log.epoch_entries(), [(7, 510)]);
    // And back below the old start.
    log.truncate_fully_and_start_at(3)?;
    log.append(make_batch(1, 10, 1), None)?;
    log.close()?;
    drop(log);
    let log = PartitionLog::open(path, config(1_000), true)?;
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (3, 4));
    assert!(log.epoch_entries().is_empty());
    log.check_consistency();
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Property test: random leader/follower life cycles against a model.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: usize,
        value_len: usize,
    },
    /// A new leader epoch (the latest plus `step`) assigned at the log end.
    Assign {
        step: i32,
    },
    /// `truncate_to` at a point (per mille) of `[log start, log end]`; beyond 1000 is past the
    /// end (a no-op).
    Truncate {
        at: u16,
    },
    /// `truncate_to` this far below the log start.
    TruncateBelowStart {
        by: i64,
    },
    /// `truncate_fully_and_start_at` this far from the log end.
    TruncateFully {
        delta: i64,
    },
    Roll,
    Sync,
    RestartClean,
    /// A crash that loses nothing (the page cache survives): recovery scans, the cache is
    /// reloaded.
    RestartUnclean,
    DeleteRecords {
        at: u16,
    },
    RetentionBytes {
        limit: u64,
    },
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        8 => (1usize..5, 0usize..200).prop_map(|(count, value_len)| Op::Append { count, value_len }),
        2 => (1i32..3).prop_map(|step| Op::Assign { step }),
        3 => (0u16..1100).prop_map(|at| Op::Truncate { at }),
        1 => (1i64..20).prop_map(|by| Op::TruncateBelowStart { by }),
        1 => (-30i64..30).prop_map(|delta| Op::TruncateFully { delta }),
        1 => Just(Op::Roll),
        1 => Just(Op::Sync),
        1 => Just(Op::RestartClean),
        1 => Just(Op::RestartUnclean),
        1 => (0u16..=1000).prop_map(|at| Op::DeleteRecords { at }),
        1 => (500u64..5_000).prop_map(|limit| Op::RetentionBytes { limit }),
    ]
}

/// The log as it should be: the batches physically present (some possibly below the log
/// start), the start and end offsets, the epoch cache and the epoch being stamped.
#[derive(Debug, Default)]
struct LifeModel {
    batches: Vec<(BatchHeader, Vec<u8>)>,
    start: i64,
    end: i64,
    epochs: Vec<(i32, i64)>,
    stamp: Option<i32>,
}

impl LifeModel {
    fn restart_at(&mut self, offset: i64) {
        self.batches.clear();
        self.start = offset;
        self.end = offset;
        self.epochs.clear();
    }

    /// Kafka's truncation of the cache from the start.
    fn trim_epochs(&mut self) {
        let start = self.start;
        if let Some(floor) = self.epochs.iter().rposition(|e| e.1 <= start) {
            self.epochs.drain(..floor);
            self.epochs[0].1 = start;
        }
    }

    fn reopened(&mut self) {
        let end = self.end;
        self.epochs.retain(|e| e.1 < end);
        self.trim_epochs();
        self.stamp = None;
    }

    fn check(&self, log: &PartitionLog) -> TestResult {
        log.check_consistency();
        assert_eq!(log.log_start_offset(), self.start, "log start offset");
        assert_eq!(log.log_end_offset(), self.end, "log end offset");
        assert_eq!(log.epoch_entries(), self.epochs, "epoch cache");
        let on_disk: Vec<(i32, i64)> = LeaderEpochCache::load(log.dir())?
            .entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect();
        assert_eq!(on_disk, self.epochs, "epoch checkpoint");
        let size: u64 = self.batches.iter().map(|b| b.1.len() as u64).sum();
        assert_eq!(log.size_bytes(), size, "size");
        let visible: Vec<&(BatchHeader, Vec<u8>)> = self
            .batches
            .iter()
            .filter(|b| b.0.last_offset() >= self.start)
            .collect();
        let expected: Vec<u8> = visible.iter().flat_map(|b| b.1.iter().copied()).collect();
        assert!(log.read(self.start, usize::MAX)?.records[..] == expected[..]);
        for b in &visible {
            let offset = b.0.base_offset.max(self.start);
            assert_eq!(
                &log.read(offset, 1)?.records[..],
                &b.1[..],
                "batch at {offset}"
            );
            // Bounded just past this batch: everything from `offset` up to it.
            let upto = log.read_upto(self.start, usize::MAX, b.0.next_offset())?;
            let prefix: Vec<u8> = visible
                .iter()
                .take_while(|v| v.0.base_offset <= b.0.base_offset)
                .flat_map(|v| v.1.iter().copied())
                .collect();
            assert!(
                upto.records[..] == prefix[..],
                "bounded at {}",
                b.0.next_offset()
            );
        }
        for &(epoch, _) in &self.epochs {
            let next = self
                .epochs
                .iter()
                .find(|e| e.0 > epoch)
                .map_or(self.end, |e| e.1);
            assert_eq!(log.end_offset_for_epoch(epoch), Some((epoch, next)));
        }
        Ok(())
    }
}

fn run_life(ops: &[Op]) -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path();
    let cfg = LogConfig {
        segment_bytes: 1_200,
        index_interval_bytes: 250,
        retention_ms: None,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(path, cfg.clone(), false)?;
    let mut model = LifeModel::default();
    let mut ts = 1_000;
    for op in ops {
        match *op {
            Op::Append { count, value_len } => {
                ts += 10;
                let sent = make_batch(count, value_len, ts);
                let info = log.append(sent.clone(), None)?;
                assert_eq!(info.base_offset, model.end);
                let mut stored = sent.to_vec();
                batch::set_base_offset(&mut stored, info.base_offset);
                if let Some(epoch) = model.stamp {
                    batch::set_partition_leader_epoch(&mut stored, epoch);
                }
                model.batches.push((BatchHeader::parse(&stored)?, stored));
                model.end = info.last_offset + 1;
            }
            Op::Assign { step } => {
                let epoch = model.epochs.last().map_or(0, |e| e.0) + step;
                log.assign_leader_epoch(epoch)?;
                if model.epochs.last().is_some_and(|e| e.1 == model.end) {
                    model.epochs.pop();
                }
                model.epochs.push((epoch, model.end));
                model.stamp = Some(epoch);
            }
            Op::Truncate { at } => {
                let target = model.start + (model.end - model.start) * i64::from(at) / 1000;
                let first_base = log.segment_base_offsets()[0];
                let new_end = log.truncate_to(target)?;
                model.stamp = None;
                if target < model.end {
                    let kept: Vec<_> = model
                        .batches
                        .iter()
                        .filter(|b| b.0.last_offset() < target)
                        .cloned()
                        .collect();
                    let end = kept.last().map_or(first_base, |b| b.0.next_offset());
                    if end < model.start {
                        let start = model.start;
                        model.restart_at(start);
                    } else {
                        model.batches = kept;
                        model.end = end;
                        model.epochs.retain(|e| e.1 < end);
                    }
                }
                assert_eq!(new_end, model.end);
            }
            Op::TruncateBelowStart { by } => {
                let target = model.start - by;
                if target >= 0 {
                    assert_eq!(log.truncate_to(target)?, target);
                    model.restart_at(target);
                    model.stamp = None;
                }
            }
            Op::TruncateFully { delta } => {
                let offset = (model.end + delta).max(0);
                log.truncate_fully_and_start_at(offset)?;
                model.restart_at(offset);
                model.stamp = None;
            }
            Op::Roll => {
                log.roll()?;
            }
            Op::Sync => {
                let unsynced = log.take_unsynced()?;
                log.mark_synced(unsynced.token);
                assert_eq!(log.recovery_point(), log.log_end_offset());
            }
            Op::RestartClean => {
                log.close()?;
                drop(log);
                log = PartitionLog::open(path, cfg.clone(), true)?;
                model.reopened();
            }
            Op::RestartUnclean => {
                drop(log);
                log = PartitionLog::open(path, cfg.clone(), false)?;
                model.reopened();
            }
            Op::DeleteRecords { at } => {
                let target = model.start + (model.end - model.start) * i64::from(at) / 1000;
                model.start = log.delete_records_before(target)?;
                let first_base = log.segment_base_offsets()[0];
                model.batches.retain(|b| b.0.base_offset >= first_base);
                model.trim_epochs();
            }
            Op::RetentionBytes { limit } => {
                log.set_config(LogConfig {
                    retention_bytes: Some(limit),
                    ..cfg.clone()
                });
                log.apply_retention(0)?;
                log.set_config(cfg.clone());
                let first_base = log.segment_base_offsets()[0];
                model.batches.retain(|b| b.0.base_offset >= first_base);
                model.start = model.start.max(first_base);
                model.trim_epochs();
            }
        }
        model.check(&log)?;
    }
    Ok(())
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 48,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Any sequence of appends under changing leader epochs, truncations (inside and across
    /// segments, below the start, full restarts), rolls, fsyncs, clean and unclean restarts,
    /// DeleteRecords and retention leaves the log, its epoch cache and its checkpoint equal to
    /// the model, with indexes that agree with the segment files.
    #[test]
    fn random_replica_life_cycles_match_the_model(ops in proptest::collection::vec(op(), 1..50)) {
        let result = run_life(&ops);
        proptest::prop_assert!(result.is_ok(), "{:?}", result);
    }
}
