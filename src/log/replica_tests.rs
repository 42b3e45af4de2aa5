//! Tests of the replication side of `PartitionLog`: reads bounded by an upper offset.

use std::path::Path;

use bytes::BytesMut;

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
