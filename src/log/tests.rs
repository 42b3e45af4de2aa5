//! Tests of `PartitionLog`: append/read round trips across segments, limits, validation,
//! reopening cleanly and after crashes (corrupt and torn tails), timestamps, sync hand-off.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;

use bytes::BytesMut;
use proptest::prelude::*;

use super::batch::{self, BatchBuilder, BatchHeader};
use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A batch of `count` records with `value_len`-byte values; record `i` has timestamp `ts + i`.
fn make_batch(count: usize, value_len: usize, ts: i64) -> BytesMut {
    let value = vec![b'v'; value_len];
    let mut builder = BatchBuilder::new(ts);
    for i in 0..count {
        let key = format!("key-{i}");
        builder.record(Some(key.as_bytes()), Some(&value), ts + i as i64);
    }
    builder.build()
}

fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2_000,
        index_interval_bytes: 300,
        max_message_bytes: 1_048_588,
        segment_index_bytes: 10 * 1024 * 1024,
        ..LogConfig::default()
    }
}

/// What the log should hold: each batch's offsets and stored bytes.
#[derive(Debug, Clone, Default)]
struct Model {
    batches: Vec<(i64, i64, Vec<u8>)>,
}

impl Model {
    fn append(&mut self, log: &mut PartitionLog, batch: BytesMut) -> Result<AppendInfo, LogError> {
        let sent = batch.clone();
        let info = log.append(batch, None)?;
        let mut next = info.base_offset;
        for item in batch::batches(&sent) {
            let (header, bytes) = item?;
            let mut stored = bytes.to_vec();
            batch::set_base_offset(&mut stored, next);
            self.batches
                .push((next, next + i64::from(header.last_offset_delta), stored));
            next += i64::from(header.last_offset_delta) + 1;
        }
        Ok(info)
    }

    fn end(&self) -> i64 {
        self.batches.last().map_or(0, |b| b.1 + 1)
    }

    fn index_of(&self, offset: i64) -> Option<usize> {
        self.batches
            .iter()
            .position(|b| b.0 <= offset && offset <= b.1)
    }

    /// Checks that reading at every offset returns the containing batch first, that a tiny
    /// limit gives exactly one batch and an unlimited read everything to the end.
    fn check(&self, log: &PartitionLog) -> TestResult {
        assert_eq!(log.log_end_offset(), self.end());
        for offset in log.log_start_offset()..self.end() {
            let i = self.index_of(offset).ok_or("offset not in model")?;
            let one = log.read(offset, 1)?;
            assert_eq!(&one.records[..], &self.batches[i].2[..], "offset {offset}");
            assert_eq!(one.high_watermark, self.end());
            let all = log.read(offset, usize::MAX)?;
            let expected: Vec<u8> = self.batches[i..]
                .iter()
                .flat_map(|b| b.2.iter().copied())
                .collect();
            assert_eq!(all.records.len(), expected.len(), "offset {offset}");
            assert!(all.records[..] == expected[..], "offset {offset}");
        }
        assert!(log.read(self.end(), 1024)?.records.is_empty());
        self.check_file_reads(log)?;
        Ok(())
    }

    /// `read_records` leaving everything in the files finds exactly the batches `read` reads,
    /// for every offset and a range of budgets (whole batches, at least one, across segments).
    fn check_file_reads(&self, log: &PartitionLog) -> TestResult {
        for offset in log.log_start_offset()..=self.end() {
            for budget in [0, 1, 100, 333, 1_000, 2_500, 10_000, usize::MAX] {
                let bytes = log.read(offset, budget)?;
                let files = log.read_records(offset, budget, 0)?;
                assert_eq!(files.high_watermark, bytes.high_watermark);
                assert_eq!(files.log_start_offset, bytes.log_start_offset);
                let f = match files.records {
                    RecordSet::File(f) => f,
                    // Nothing to read at the log end.
                    RecordSet::Bytes(b) if b.is_empty() && offset == self.end() => continue,
                    RecordSet::Bytes(_) => {
                        return Err(format!("offset {offset}: not file records").into())
                    }
                };
                assert_eq!(
                    f.len(),
                    bytes.records.len(),
                    "offset {offset} budget {budget}"
                );
                assert!(
                    f.read_all()? == bytes.records,
                    "offset {offset} budget {budget}"
                );
                // Above the threshold: read into memory, same bytes.
                match log.read_records(offset, budget, usize::MAX)?.records {
                    RecordSet::Bytes(b) => assert!(b == bytes.records),
                    RecordSet::File(_) => return Err("file records below the threshold".into()),
                }
            }
        }
        Ok(())
    }
}

fn segment_log_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, std::io::Error> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    Ok(files)
}

fn append_to_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    OpenOptions::new().append(true).open(path)?.write_all(bytes)
}

#[test]
fn empty_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let log = PartitionLog::open(&dir.path().join("t-0"), LogConfig::default(), false)?;
    assert_eq!(log.log_start_offset(), 0);
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);
    assert!(log.read(0, 100)?.records.is_empty());
    assert!(matches!(
        log.read(1, 100),
        Err(LogError::OffsetOutOfRange { offset: 1, .. })
    ));
    assert_eq!(log.offset_for_timestamp(0)?, None);
    assert_eq!(log.max_timestamp(), None);
    assert!(dir.path().join("t-0/00000000000000000000.log").exists());
    Ok(())
}

#[test]
fn append_and_read_every_offset_across_rolls() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    let mut model = Model::default();
    for i in 0..40 {
        let info = model.append(&mut log, make_batch(1 + i % 4, 20 + (i * 37) % 200, 1_000))?;
        assert_eq!(info.record_count as usize, 1 + i % 4);
        assert_eq!(
            info.last_offset - info.base_offset + 1,
            info.record_count as i64
        );
    }
    assert!(
        log.segment_count() > 3,
        "expected rolls, got {}",
        log.segment_count()
    );
    assert_eq!(
        log.log_end_offset(),
        (0..40).map(|i| 1 + i % 4).sum::<usize>() as i64
    );
    model.check(&log)?;
    // Segment files are named by their base offsets, which are batch boundaries.
    for path in segment_log_files(dir.path())? {
        let name = path.file_stem().and_then(|s| s.to_str()).ok_or("name")?;
        let base: i64 = name.parse()?;
        assert!(model.batches.iter().any(|b| b.0 == base), "segment {base}");
    }
    Ok(())
}

#[test]
fn multi_batch_append_gets_consecutive_offsets() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    let mut model = Model::default();
    model.append(&mut log, make_batch(2, 10, 5))?;
    let mut two = make_batch(3, 10, 5);
    two.extend_from_slice(&make_batch(4, 10, 5));
    let info = model.append(&mut log, two)?;
    assert_eq!(
        (info.base_offset, info.last_offset, info.record_count),
        (2, 8, 7)
    );
    let stored = log.read(2, usize::MAX)?.records;
    let headers: Vec<BatchHeader> = batch::batches(&stored)
        .map(|r| r.map(|(h, _)| h))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![2, 5]
    );
    for item in batch::batches(&stored) {
        batch::validate(item?.1)?;
    }
    model.check(&log)
}

#[test]
fn read_limits() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), false)?;
    let mut model = Model::default();
    for _ in 0..10 {
        model.append(&mut log, make_batch(5, 100, 0))?;
    }
    let size = model.batches[0].2.len();
    // Smaller than one batch, or zero: exactly one batch.
    assert_eq!(log.read(0, size - 1)?.records.len(), size);
    assert_eq!(log.read(0, 0)?.records.len(), size);
    assert_eq!(log.read(7, 1)?.records.len(), size);
    // Up to the limit, whole batches only.
    assert_eq!(log.read(0, size * 2 + size / 2)?.records.len(), size * 2);
    assert_eq!(log.read(0, size * 3)?.records.len(), size * 3);
    assert_eq!(log.read(45, size * 3)?.records.len(), size);
    // Out of range.
    assert!(matches!(
        log.read(51, 10),
        Err(LogError::OffsetOutOfRange {
            offset: 51,
            log_start: 0,
            log_end: 50
        })
    ));
    assert!(matches!(
        log.read(-1, 10),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    Ok(())
}

#[test]
fn large_first_batch_across_segments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 1,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, false)?;
    let mut model = Model::default();
    for i in 0..6 {
        model.append(&mut log, make_batch(3, 1_000 * (i % 3 + 1), 0))?;
    }
    assert_eq!(log.segment_count(), 6, "every append rolls");
    model.check(&log)?;
    let first = model.batches[0].2.len();
    let second = model.batches[1].2.len();
    assert_eq!(log.read(0, first + second)?.records.len(), first + second);
    assert_eq!(log.read(0, first + second - 1)?.records.len(), first);
    Ok(())
}

#[test]
fn invalid_batches_are_rejected_and_nothing_is_written() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    let good = make_batch(3, 10, 0);

    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 1;
    let mut bad_magic = good.clone();
    bad_magic[batch::MAGIC_OFFSET] = 1;
    let truncated = BytesMut::from(&good[..good.len() - 5]);
    let mut long_length = good.clone();
    long_length[batch::BATCH_LENGTH_OFFSET + 3] += 1;
    let mut trailing_garbage = good.clone();
    trailing_garbage.extend_from_slice(&[0, 1, 2]);
    let mut second_bad = good.clone();
    second_bad.extend_from_slice(&bad_crc);

    for (name, buf) in [
        ("crc", bad_crc),
        ("magic", bad_magic),
        ("truncated", truncated),
        ("length", long_length),
        ("trailing", trailing_garbage),
        ("second batch bad", second_bad),
        ("empty", BytesMut::new()),
    ] {
        let result = log.append(buf, None);
        assert!(
            matches!(
                result,
                Err(LogError::CorruptRecord(_)) | Err(LogError::UnsupportedMagic(1))
            ),
            "{name}: {result:?}"
        );
        assert_eq!(log.log_end_offset(), 0, "{name}");
        assert_eq!(log.size_bytes(), 0, "{name}");
    }
    let small = LogConfig {
        max_message_bytes: good.len() - 1,
        ..small_config()
    };
    let mut log2 = PartitionLog::open(&dir.path().join("other"), small, false)?;
    let result = log2.append(good.clone(), None);
    assert!(matches!(result, Err(LogError::RecordTooLarge { size, .. }) if size == good.len()));
    assert_eq!(log2.size_bytes(), 0);
    // The good batch still goes in afterwards.
    assert_eq!(log.append(good, None)?.base_offset, 0);
    assert_eq!(log.log_end_offset(), 3);
    Ok(())
}

#[test]
fn log_append_time_sets_bit_and_max_timestamp() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    log.append(make_batch(2, 10, 100), None)?;
    let info = log.append(make_batch(3, 10, 100), Some(77_777))?;
    assert_eq!(info.max_timestamp, 77_777);
    let stored = log.read(2, 1)?.records;
    let header = batch::validate(&stored)?;
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, 77_777);
    assert_eq!(header.base_timestamp, 100);
    assert_eq!(header.base_offset, 2);
    let first = batch::validate(&log.read(0, 1)?.records)?;
    assert!(!first.is_log_append_time());
    // LogAppendTime batches answer timestamp lookups with the append time.
    assert_eq!(log.offset_for_timestamp(1_000)?, Some((2, 77_777)));
    assert_eq!(log.max_timestamp(), Some((77_777, 2)));
    Ok(())
}

#[test]
fn offset_for_timestamp_finds_exact_records() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        index_interval_bytes: 0,
        segment_bytes: 600,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, false)?;
    // Batch k holds records with timestamps 1000 + 10k + {0, 2, 4, 6}; offsets 4k..4k+3.
    for k in 0..20i64 {
        let recs: Vec<batch::TimestampedRecord<'_>> = (0..4)
            .map(|i| (None, Some(&b"value"[..]), 1_000 + 10 * k + 2 * i))
            .collect();
        log.append(batch::build_batch_with_timestamps(&recs), None)?;
    }
    assert!(log.segment_count() > 2);
    for k in 0..20i64 {
        for i in 0..4 {
            let ts = 1_000 + 10 * k + 2 * i;
            assert_eq!(
                log.offset_for_timestamp(ts)?,
                Some((4 * k + i, ts)),
                "ts {ts}"
            );
            // Between records: the next one.
            let next = if i < 3 {
                (4 * k + i + 1, ts + 2)
            } else {
                (4 * k + 4, ts + 4)
            };
            if k < 19 || i < 3 {
                assert_eq!(
                    log.offset_for_timestamp(ts + 1)?,
                    Some(next),
                    "ts {}",
                    ts + 1
                );
            }
        }
    }
    assert_eq!(log.offset_for_timestamp(0)?, Some((0, 1_000)));
    assert_eq!(log.offset_for_timestamp(1_197)?, None);
    assert_eq!(log.offset_for_timestamp(i64::MAX)?, None);
    assert_eq!(log.max_timestamp(), Some((1_196, 79)));
    Ok(())
}

#[test]
fn offset_for_timestamp_with_out_of_order_timestamps() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        index_interval_bytes: 0,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, false)?;
    let stamps = [500, 100, 900, 300, 900, 950, 200];
    for ts in stamps {
        log.append(
            batch::build_batch_with_timestamps(&[(None, Some(b"x"), ts)]),
            None,
        )?;
    }
    for target in [0, 100, 101, 500, 501, 900, 901, 950, 951] {
        let expected = stamps
            .iter()
            .position(|&t| t >= target)
            .map(|i| (i as i64, stamps[i]));
        assert_eq!(
            log.offset_for_timestamp(target)?,
            expected,
            "target {target}"
        );
    }
    assert_eq!(log.max_timestamp(), Some((950, 5)));
    Ok(())
}

#[test]
fn compressed_batches_answer_with_their_base_offset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    log.append(make_batch(2, 5, 100), None)?;
    // Mark a batch as gzip-compressed (its records are not decoded, so the body does not matter).
    let mut compressed = make_batch(3, 5, 200);
    let attributes = 1i16.to_be_bytes();
    compressed[batch::ATTRIBUTES_OFFSET..][..2].copy_from_slice(&attributes);
    let crc = crc32c::crc32c(&compressed[batch::ATTRIBUTES_OFFSET..]);
    compressed[batch::CRC_OFFSET..][..4].copy_from_slice(&crc.to_be_bytes());
    log.append(compressed, None)?;
    assert_eq!(log.offset_for_timestamp(150)?, Some((2, 202)));
    assert_eq!(log.offset_for_timestamp(101)?, Some((1, 101)));
    assert_eq!(log.offset_for_timestamp(203)?, None);
    assert_eq!(log.max_timestamp(), Some((202, 2)));
    Ok(())
}

#[test]
fn max_timestamp_inside_a_batch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    log.append(make_batch(3, 5, 10), None)?;
    let recs: [batch::TimestampedRecord<'_>; 4] = [
        (None, None, 50),
        (None, None, 70),
        (None, None, 60),
        (None, None, 70),
    ];
    log.append(batch::build_batch_with_timestamps(&recs), None)?;
    assert_eq!(log.max_timestamp(), Some((70, 4)));
    Ok(())
}

#[test]
fn reopen_clean_keeps_state_without_scanning() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config();
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    let mut model = Model::default();
    for i in 0..30 {
        model.append(
            &mut log,
            make_batch(1 + i % 3, 50 + i * 5, 1_000 + i as i64 * 10),
        )?;
    }
    let segments = log.segment_count();
    let size = log.size_bytes();
    let ts_answers: Vec<_> = (990..1_300)
        .step_by(7)
        .map(|t| log.offset_for_timestamp(t))
        .collect::<Result<_, _>>()?;
    let max_ts = log.max_timestamp();
    log.close()?;
    drop(log);

    // Corrupt a record value in the first segment: a clean open must not CRC-scan it.
    let first = segment_log_files(dir.path())?
        .into_iter()
        .next()
        .ok_or("no segment")?;
    let mut bytes = std::fs::read(&first)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&first, &bytes)?;

    let log = PartitionLog::open(dir.path(), config.clone(), true)?;
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.size_bytes(), size);
    assert_eq!(log.log_end_offset(), model.end());
    assert_eq!(log.max_timestamp(), max_ts);
    let again: Vec<_> = (990..1_300)
        .step_by(7)
        .map(|t| log.offset_for_timestamp(t))
        .collect::<Result<_, _>>()?;
    assert_eq!(again, ts_answers);
    assert_eq!(log.open_stats().segments_scanned, 0);
    drop(log);

    // After a "crash", segments below the recovery point (written on close) are trusted too:
    // only the last segment is scanned and the corruption in the first goes unnoticed.
    let log = PartitionLog::open(dir.path(), config.clone(), false)?;
    assert_eq!(log.open_stats().segments_scanned, 1);
    assert_eq!(log.segment_count(), segments);
    drop(log);

    // Without a recovery point, everything is scanned: the corruption is found and truncated.
    std::fs::remove_file(dir.path().join(checkpoint::RECOVERY_POINT_FILE))?;
    let log = PartitionLog::open(dir.path(), config, false)?;
    assert_eq!(log.open_stats().segments_scanned, 1);
    assert!(log.open_stats().bytes_truncated > 0);
    assert_eq!(log.open_stats().segments_deleted, segments - 1);
    assert_eq!(log.segment_count(), 1);
    let kept = model
        .batches
        .iter()
        .position(|b| b.0 >= log.log_end_offset())
        .ok_or("none")?;
    assert_eq!(log.log_end_offset(), model.batches[kept - 1].1 + 1);
    Ok(())
}

#[test]
fn reopen_clean_then_append_continues() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config();
    let mut model = Model::default();
    for round in 0..4 {
        let mut log = PartitionLog::open(dir.path(), config.clone(), round > 0)?;
        model.check(&log)?;
        for i in 0..7 {
            model.append(&mut log, make_batch(2, 40 * i + 10, round * 100 + i as i64))?;
        }
        model.check(&log)?;
        log.close()?;
    }
    Ok(())
}

#[test]
fn unclean_reopen_truncates_garbage_tail() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config();
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    let mut model = Model::default();
    for i in 0..12 {
        model.append(&mut log, make_batch(2, 30 + i * 11, 0))?;
    }
    let size = log.size_bytes();
    drop(log); // crash: no close

    let active = segment_log_files(dir.path())?.pop().ok_or("no segment")?;
    append_to_file(
        &active,
        &[0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    )?;
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    assert_eq!(log.size_bytes(), size);
    model.check(&log)?;
    let info = model.append(&mut log, make_batch(3, 10, 0))?;
    assert_eq!(info.base_offset, 24);
    model.check(&log)?;
    drop(log);

    // A torn half batch at the tail.
    let active = segment_log_files(dir.path())?.pop().ok_or("no segment")?;
    let half = make_batch(5, 100, 0);
    append_to_file(&active, &half[..half.len() / 2])?;
    let mut log = PartitionLog::open(dir.path(), config, false)?;
    model.check(&log)?;
    assert_eq!(
        model.append(&mut log, make_batch(1, 10, 0))?.base_offset,
        27
    );
    model.check(&log)
}

#[test]
fn clean_open_with_torn_tail_falls_back_to_recovery() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config();
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    let mut model = Model::default();
    for _ in 0..5 {
        model.append(&mut log, make_batch(2, 30, 0))?;
    }
    log.close()?;
    drop(log);
    let active = segment_log_files(dir.path())?.pop().ok_or("no segment")?;
    append_to_file(&active, &make_batch(2, 30, 0)[..40])?;
    let log = PartitionLog::open(dir.path(), config, true)?;
    model.check(&log)
}

#[test]
fn unclean_reopen_truncates_corrupt_middle_segment() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = small_config();
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    let mut model = Model::default();
    for i in 0..30 {
        model.append(&mut log, make_batch(2, 100 + i, 0))?;
    }
    assert!(log.segment_count() >= 4);
    drop(log);

    // Flip a byte in the third batch of the second segment.
    let files = segment_log_files(dir.path())?;
    let second = &files[1];
    let base: i64 = second
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("name")?
        .parse()?;
    let first_in_segment = model
        .batches
        .iter()
        .position(|b| b.0 == base)
        .ok_or("base")?;
    let offset_in_file: usize = model.batches[first_in_segment..first_in_segment + 2]
        .iter()
        .map(|b| b.2.len())
        .sum();
    let mut bytes = std::fs::read(second)?;
    bytes[offset_in_file + 70] ^= 0x55;
    std::fs::write(second, &bytes)?;

    let mut log = PartitionLog::open(dir.path(), config, false)?;
    assert_eq!(log.segment_count(), 2);
    assert_eq!(segment_log_files(dir.path())?.len(), 2);
    assert!(!files[2].with_extension("index").exists());
    model.batches.truncate(first_in_segment + 2);
    model.check(&log)?;
    let info = model.append(&mut log, make_batch(1, 10, 0))?;
    assert_eq!(info.base_offset, 2 * (first_in_segment as i64 + 2));
    model.check(&log)
}

#[test]
fn missing_or_bad_index_is_rebuilt() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        index_interval_bytes: 100,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    let mut model = Model::default();
    for i in 0..25 {
        model.append(&mut log, make_batch(3, 60 + i, i as i64 * 100))?;
    }
    log.close()?;
    drop(log);
    let files = segment_log_files(dir.path())?;
    let index = files[0].with_extension("index");
    let time_index = files[0].with_extension("timeindex");
    let original = std::fs::read(&index)?;
    let original_time = std::fs::read(&time_index)?;
    assert!(!original.is_empty() && !original_time.is_empty());

    std::fs::remove_file(&index)?;
    std::fs::write(&time_index, [1, 2, 3])?;
    let last_index = files[files.len() - 1].with_extension("index");
    std::fs::remove_file(&last_index)?;
    let log = PartitionLog::open(dir.path(), config.clone(), true)?;
    assert_eq!(std::fs::read(&index)?, original);
    assert_eq!(std::fs::read(&time_index)?, original_time);
    assert!(last_index.exists());
    model.check(&log)?;
    drop(log);

    // An index pointing past the end of its segment is not trusted either.
    std::fs::write(&index, [0, 0, 0, 1, 0x7f, 0, 0, 0])?;
    let log = PartitionLog::open(dir.path(), config, true)?;
    assert_eq!(std::fs::read(&index)?, original);
    model.check(&log)
}

#[test]
fn index_full_rolls_segment() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_index_bytes: 24,
        index_interval_bytes: 0,
        segment_bytes: 1 << 30,
        ..small_config()
    };
    let mut log = PartitionLog::open(dir.path(), config, false)?;
    let mut model = Model::default();
    for _ in 0..20 {
        model.append(&mut log, make_batch(1, 10, 0))?;
    }
    assert!(log.segment_count() >= 5, "{} segments", log.segment_count());
    model.check(&log)
}

#[test]
fn take_unsynced_hands_out_written_files() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(&dir.path().join("p-0"), small_config(), false)?;
    let initial = log.take_unsynced()?.files;
    assert!(
        !initial.is_empty(),
        "new segment file needs its directory synced"
    );
    assert!(log.take_unsynced()?.files.is_empty());
    log.append(make_batch(1, 10, 0), None)?;
    let unsynced = log.take_unsynced()?;
    assert_eq!(unsynced.files.len(), 1);
    assert_eq!(unsynced.token.up_to(), 1);
    for f in &unsynced.files {
        f.sync_data()?;
    }
    assert_eq!(log.recovery_point(), 0);
    log.mark_synced(unsynced.token);
    assert_eq!(log.recovery_point(), 1);
    assert!(log.take_unsynced()?.files.is_empty());
    // Roll a few times: old segments, their indexes and the directory come back.
    for _ in 0..10 {
        log.append(make_batch(3, 200, 0), None)?;
    }
    assert!(log.segment_count() > 1);
    assert!(log.needs_background_sync());
    let files = log.take_unsynced()?.files;
    assert!(files.len() > 3, "{} files", files.len());
    for f in &files {
        f.sync_data()?;
    }
    log.close()?;
    assert_eq!(log.recovery_point(), log.log_end_offset());
    // The log stays usable after close.
    let info = log.append(make_batch(1, 10, 0), None)?;
    assert_eq!(log.read(info.base_offset, 1)?.records.len(), info.bytes);
    assert_eq!(log.take_unsynced()?.files.len(), 1);
    log.close()?;
    Ok(())
}

#[test]
fn poisoned_log_refuses_appends() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    log.append(make_batch(1, 10, 0), None)?;
    log.poison();
    assert!(log.is_poisoned());
    assert!(matches!(
        log.append(make_batch(1, 10, 0), None),
        Err(LogError::Poisoned)
    ));
    assert!(matches!(log.close(), Err(LogError::Poisoned)));
    assert_eq!(log.read(0, 100)?.records.len(), make_batch(1, 10, 0).len());
    Ok(())
}

#[test]
fn orphan_index_files_are_removed() -> TestResult {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("00000000000000000100.index"), [0u8; 8])?;
    std::fs::write(dir.path().join("leader-epoch-checkpoint"), b"0\n0\n")?;
    let log = PartitionLog::open(dir.path(), small_config(), true)?;
    assert!(!dir.path().join("00000000000000000100.index").exists());
    assert!(dir.path().join("leader-epoch-checkpoint").exists());
    assert_eq!(log.log_end_offset(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random batch shapes and segment/index settings: every offset reads back, and reopening
    /// (cleanly or not) gives the same log.
    #[test]
    fn random_appends_round_trip(
        shapes in prop::collection::vec((1usize..6, 0usize..400, 1usize..3), 1..40),
        segment_bytes in 200u64..4_000,
        index_interval_bytes in 0u64..1_000,
        clean in any::<bool>(),
    ) {
        let result = (|| -> TestResult {
            let dir = tempfile::tempdir()?;
            let config = LogConfig {
                segment_bytes,
                index_interval_bytes,
                ..LogConfig::default()
            };
            let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
            let mut model = Model::default();
            for (i, (count, value_len, batches)) in shapes.iter().enumerate() {
                let mut buf = BytesMut::new();
                for b in 0..*batches {
                    buf.extend_from_slice(&make_batch(*count, *value_len, (i * 10 + b) as i64));
                }
                model.append(&mut log, buf)?;
            }
            model.check(&log)?;
            let max_ts = log.max_timestamp();
            if clean {
                log.close()?;
            }
            drop(log);
            let log = PartitionLog::open(dir.path(), config, clean)?;
            model.check(&log)?;
            assert_eq!(log.max_timestamp(), max_ts);
            Ok(())
        })();
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}

/// File records stay readable after their segments are released as idle and deleted by
/// DeleteRecords/retention (the handle keeps the inode alive).
#[test]
fn file_records_survive_segment_release_and_deletion() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), small_config(), false)?;
    let mut model = Model::default();
    for i in 0..30 {
        model.append(&mut log, make_batch(2, 100 + i * 13, 1_000))?;
    }
    assert!(log.segment_count() > 3);
    let expected = log.read(0, usize::MAX)?.records;
    let RecordSet::File(f) = log.read_records(0, usize::MAX, 0)?.records else {
        return Err("not file records".into());
    };
    assert!(f.regions().len() >= 3, "spans segments");
    log.close_idle_files(Duration::ZERO);
    let last_base = *log.segment_base_offsets().last().ok_or("segments")?;
    log.delete_records_before(last_base)?;
    assert_eq!(log.segment_count(), 1);
    assert!(f.read_all()? == expected);
    // Trimming walks the batch lengths in the deleted files too.
    let first = model.batches[0].2.len() + model.batches[1].2.len();
    assert_eq!(f.whole_batches_within(first + 1)?.len(), first);
    Ok(())
}

/// A tmpfs mounted for a test (needs root), unmounted lazily on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipping: mounting a tmpfs needs root");
            return None;
        }
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "esker-log-test",
            ])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("skipping: cannot mount a tmpfs");
            return None;
        }
        Some(Tmpfs(path.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Writes `path` until the file system is full (ENOSPC); partial pages count too.
fn fill_up(path: &Path) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    let chunk = vec![0u8; 4096];
    for size in [4096, 1] {
        while let Ok(n) = f.write(&chunk[..size]) {
            if n == 0 {
                break;
            }
        }
    }
    Ok(())
}

/// On a full file system (a tmpfs), an append fails with ENOSPC inside a roll (the index files
/// of the segment being sealed) and in the segment write itself, and each failure leaves the
/// log exactly at its previous end: files, indexes and offsets consistent, every earlier batch
/// readable, a later append that fits still accepted. Once space returns appends (and rolls)
/// succeed again, and both an unclean and a clean reopen find everything.
#[test]
fn full_file_system_fails_appends_cleanly_and_resumes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let Some(_mount) = Tmpfs::mount(dir.path(), "256k") else {
        return Ok(());
    };
    let config = LogConfig {
        segment_bytes: 8_000,
        index_interval_bytes: 100,
        max_message_bytes: 1_048_588,
        ..LogConfig::default()
    };
    let log_dir = dir.path().join("t-0");
    let mut log = PartitionLog::open(&log_dir, config.clone(), false)?;
    let mut model = Model::default();
    // A segment behind us, and about 400 bytes (with index entries) in the active one.
    model.append(&mut log, make_batch(2, 4_100, 1_000))?;
    for i in 0..4 {
        model.append(&mut log, make_batch(1, 40, 1_001 + i))?;
    }
    let segments = log.segment_count();
    assert_eq!(segments, 2);
    fill_up(&dir.path().join("fill"))?;

    // A batch larger than what the segment has left: the roll's index files find no space.
    let end = log.log_end_offset();
    let e = model
        .append(&mut log, make_batch(2, 4_100, 1_010))
        .expect_err("no space for the roll");
    assert!(e.is_out_of_space(), "{e}");
    assert_eq!(log.segment_count(), segments, "the roll did not happen");
    assert_eq!(log.log_end_offset(), end);
    log.check_consistency();
    model.check(&log)?;

    // What fits in the active segment's last page is still accepted.
    model.append(&mut log, make_batch(1, 40, 1_011))?;
    log.check_consistency();

    // A batch that needs a new page of the segment file: the write fails, is cut off again.
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let e = model
        .append(&mut log, make_batch(1, 3_900, 1_012))
        .expect_err("no space for the write");
    assert!(e.is_out_of_space(), "{e}");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.size_bytes(), size);
    log.check_consistency();
    model.check(&log)?;

    // Space returns: the roll and both kinds of append go through.
    std::fs::remove_file(dir.path().join("fill"))?;
    model.append(&mut log, make_batch(2, 4_100, 1_020))?;
    assert_eq!(log.segment_count(), segments + 1);
    model.append(&mut log, make_batch(1, 3_900, 1_021))?;
    model.append(&mut log, make_batch(1, 40, 1_022))?;
    log.check_consistency();
    model.check(&log)?;

    // Unclean reopen (no close: recovery scans), then clean.
    drop(log);
    let mut log = PartitionLog::open(&log_dir, config.clone(), false)?;
    model.check(&log)?;
    log.close()?;
    drop(log);
    let log = PartitionLog::open(&log_dir, config, true)?;
    model.check(&log)?;
    log.check_consistency();
    Ok(())
}
