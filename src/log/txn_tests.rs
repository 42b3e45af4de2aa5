//! Tests of the aborted-transaction index as the log keeps it: files per segment through
//! appends, reopening, truncation and retention, and the read-committed read's bound.

use std::path::Path;

use bytes::BytesMut;

use super::batch::{txn_marker_batch, BatchBuilder, TxnMarker};
use super::segment::{segment_file, TXN_INDEX_SUFFIX};
use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A batch of one record from producer `pid` (transactional or not), timestamp `ts`.
fn data(pid: i64, transactional: bool, ts: i64) -> BytesMut {
    let mut b = BatchBuilder::new(ts)
        .producer(pid, 0, -1)
        .transactional(transactional);
    b.record(Some(b"k"), Some(&[7u8; 100]), ts);
    b.build()
}

fn abort(pid: i64) -> BytesMut {
    let marker = TxnMarker {
        commit: false,
        coordinator_epoch: 0,
    };
    txn_marker_batch(pid, 0, marker, 1_000)
}

fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn txn_file(dir: &Path, base: i64) -> std::path::PathBuf {
    segment_file(dir, base, TXN_INDEX_SUFFIX)
}

/// The base offsets of the batches of a read.
fn bases(records: &RecordSet) -> Result<Vec<i64>, Box<dyn std::error::Error>> {
    let bytes = match records {
        RecordSet::Bytes(b) => b.clone(),
        RecordSet::File(f) => f.read_all()?,
    };
    Ok(batch::batches(&bytes)
        .map(|r| r.map(|(h, _)| h.base_offset))
        .collect::<Result<_, _>>()?)
}

#[test]
fn index_files_follow_their_segments_through_reopen_truncation_and_retention() -> TestResult {
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        retention_ms: Some(3_600_000),
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone(), false)?;
    log.append(data(1, true, 1_000), None)?; // 0
    let m1 = log.append(abort(1), None)?.base_offset; // 1
    log.append_aborted_txn(txn(1, 0, m1, m1 + 1))?;
    assert!(
        log.append_aborted_txn(txn(1, 0, m1, m1 + 1)).is_err(),
        "a marker already indexed"
    );
    log.roll()?;
    let second = log.log_end_offset();
    log.append(data(2, true, 1_000), None)?; // 2
    let m2 = log.append(abort(2), None)?.base_offset; // 3
    log.append_aborted_txn(txn(2, second, m2, m2 + 1))?;
    assert!(
        log.take_unsynced()?.files.len() >= 2,
        "index files are synced"
    );
    assert_eq!(std::fs::metadata(txn_file(dir.path(), 0))?.len(), 34);
    assert_eq!(std::fs::metadata(txn_file(dir.path(), second))?.len(), 34);
    let both = vec![txn(1, 0, m1, m1 + 1), txn(2, second, m2, m2 + 1)];
    assert_eq!(log.aborted_txns(0, log.log_end_offset()), both);
    assert_eq!(log.aborted_txns(m1 + 1, log.log_end_offset()), both[1..]);
    assert_eq!(log.aborted_txns(0, second), both[..1], "bounded above");

    log.close()?;
    drop(log);
    let log = PartitionLog::open(dir.path(), config.clone(), true)?;
    assert!(log.txn_index_trusted());
    assert_eq!(log.aborted_txns(0, log.log_end_offset()), both);
    drop(log);
    let log = PartitionLog::open(dir.path(), config.clone(), false)?;
    assert!(
        !log.txn_index_trusted(),
        "not trusted after an unclean open"
    );
    assert_eq!(log.aborted_txns(0, log.log_end_offset()), both);
    drop(log);

    // A torn file is removed and the index no longer trusted.
    std::fs::write(txn_file(dir.path(), second), [0u8; 35])?;
    let mut log = PartitionLog::open(dir.path(), config.clone(), true)?;
    assert!(!log.txn_index_trusted());
    assert!(!txn_file(dir.path(), second).exists());
    log.replace_aborted_txns(both.clone())?;
    assert!(log.txn_index_trusted());
    assert_eq!(std::fs::metadata(txn_file(dir.path(), second))?.len(), 34);

    // Truncating below the second marker takes its entry (and the emptied file) away.
    log.truncate_to(m2)?;
    assert_eq!(log.aborted_txns(0, i64::MAX), both[..1]);
    assert!(!txn_file(dir.path(), second).exists());
    assert!(txn_file(dir.path(), 0).exists());

    // Retention deletes the first segment, index file included.
    log.append(data(3, false, 1_000), None)?;
    log.roll()?;
    let outcome = log.apply_retention(1_000 + 2 * 3_600_000)?;
    assert!(outcome.deleted_segments >= 1);
    assert!(!txn_file(dir.path(), 0).exists());
    assert_eq!(log.aborted_txns(log.log_start_offset(), i64::MAX), vec![]);
    Ok(())
}

#[test]
fn read_committed_lists_the_transactions_overlapping_what_it_returns() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), LogConfig::default(), false)?;
    log.append(data(1, true, 1_000), None)?; // 0: producer 1's transaction
    log.append(data(-1, false, 1_000), None)?; // 1
    log.append(abort(1), None)?; // 2: aborts producer 1's
    log.append_aborted_txn(txn(1, 0, 2, 3))?;
    log.append(data(3, true, 1_000), None)?; // 3: producer 3's transaction
    log.append(abort(3), None)?; // 4
    log.append_aborted_txn(txn(3, 3, 4, 5))?;
    log.append(data(-1, false, 1_000), None)?; // 5
    let end = log.log_end_offset();
    let one_batch = 1;
    // In memory (file_min_bytes never reached) and as file regions (always).
    for file_min in [usize::MAX, 0] {
        let (read, aborted) = log.read_committed(0, one_batch, file_min, end)?;
        assert_eq!(bases(&read.records)?, vec![0]);
        assert_eq!(aborted, vec![txn(1, 0, 2, 3)]);
        let (read, aborted) = log.read_committed(1, one_batch, file_min, end)?;
        assert_eq!(bases(&read.records)?, vec![1]);
        assert_eq!(
            aborted,
            vec![txn(1, 0, 2, 3)],
            "producer 3's transaction starts after the batch returned"
        );
        let (read, aborted) = log.read_committed(3, usize::MAX, file_min, end)?;
        assert_eq!(bases(&read.records)?, vec![3, 4, 5]);
        assert_eq!(aborted, vec![txn(3, 3, 4, 5)]);
        let (read, aborted) = log.read_committed(0, usize::MAX, file_min, 3)?;
        assert_eq!(
            bases(&read.records)?,
            vec![0, 1, 2],
            "bounded by the upper offset"
        );
        assert_eq!(aborted, vec![txn(1, 0, 2, 3)]);
        let (read, aborted) = log.read_committed(5, usize::MAX, file_min, end)?;
        assert_eq!(bases(&read.records)?, vec![5]);
        assert!(aborted.is_empty());
        let (read, aborted) = log.read_committed(end, usize::MAX, file_min, end)?;
        assert!(read.records.is_empty() && aborted.is_empty());
    }
    Ok(())
}
