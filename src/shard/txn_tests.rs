//! Tests of transactions on a shard's partitions: open transactions and the last stable
//! offset, markers, the aborted-transaction index as fetches see it, restarts (clean and
//! crashed), follower replication and truncation.
//!
//! The shard state is driven directly on the test's thread. Appends that wait for an fsync use
//! [`FlushPolicy::PerAppend`], which answers inline; background syncs queue jobs for a shard
//! thread that does not exist, and are dropped.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::*;
use crate::log::batch::{self, BatchBuilder};
use crate::shard::ShardSelf;

type TestResult = Result<(), Box<dyn std::error::Error>>;

const TOPIC: &str = "t";

fn config(dir: &Path) -> ShardConfig {
    ShardConfig {
        log_dir: dir.to_path_buf(),
        log: LogConfig::default(),
        flush: FlushPolicy::PerAppend,
        retention_check_interval: Duration::from_secs(3600),
        recovery_point_checkpoint_interval: Duration::from_secs(3600),
        idle_file_timeout: IDLE_FILE_TIMEOUT,
        producer_id_expiration_ms: 1,
        cleaner: None,
    }
}

/// A shard state over `dir` holding partition `t-0`, opened `clean` or after a crash.
fn shard(dir: &Path, clean: bool) -> Result<ShardState, StorageError> {
    let (tx, _) = mpsc::channel(1);
    let mut s = ShardState::new(0, ShardSelf { tx: tx.downgrade() }, config(dir));
    s.open_partition(TOPIC, 0, None, clean)?;
    Ok(s)
}

/// One record from `pid` (-1: a plain producer) with sequence `seq` (-1: none).
fn batch(pid: i64, epoch: i16, seq: i32, transactional: bool) -> BytesMut {
    let mut b = BatchBuilder::new(1_000)
        .producer(pid, epoch, seq)
        .transactional(transactional);
    b.record(Some(b"k"), Some(b"v"), 1_000);
    b.build()
}

fn produce(s: &mut ShardState, records: BytesMut) -> Result<i64, StorageError> {
    let (info, _) = s.append(TOPIC, 0, records, None, Durability::PageCache)?;
    Ok(info.base_offset)
}

fn marker(s: &mut ShardState, pid: i64, epoch: i16, commit: bool) -> Result<i64, StorageError> {
    let (info, sync) = s.write_txn_marker(TOPIC, 0, pid, epoch, commit, 7)?;
    let synced = sync.map(|mut rx| rx.try_recv());
    assert!(matches!(synced, Some(Ok(Ok(())))), "fsynced inline");
    Ok(info.base_offset)
}

fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

/// A read-committed fetch from `offset`: the base offsets returned and the aborted list.
fn fetch_committed(
    s: &mut ShardState,
    topic: &str,
    offset: i64,
    max_bytes: usize,
) -> Result<(Vec<i64>, Vec<AbortedTxn>), Box<dyn std::error::Error>> {
    let (read, aborted) = s.read_committed_records(topic, 0, offset, max_bytes, 0, None)?;
    let bytes = match read.records {
        RecordSet::Bytes(b) => b,
        RecordSet::File(f) => f.read_all()?,
    };
    let bases = batch::batches(&bytes)
        .map(|r| r.map(|(h, _)| h.base_offset))
        .collect::<Result<_, _>>()?;
    Ok((bases, aborted))
}

fn lso(s: &ShardState) -> Result<i64, StorageError> {
    s.last_stable_offset(TOPIC, 0)
}

fn aborted_index(s: &mut ShardState, topic: &str) -> Result<Vec<AbortedTxn>, StorageError> {
    s.with_log(topic, 0, |l| l.aborted_txns(0, i64::MAX))
}

fn producer(s: &ShardState, pid: i64) -> Result<ProducerInfo, Box<dyn std::error::Error>> {
    Ok(s.producers(TOPIC, 0)?
        .into_iter()
        .find(|p| p.producer_id == pid)
        .ok_or("no such producer")?)
}

/// Offsets 0..=4: producer 1's transaction (0, 4), producer 9 idempotent (1), producer 2's
/// transaction (2), a plain batch (3).
fn interleaved(s: &mut ShardState) -> TestResult {
    assert_eq!(produce(s, batch(1, 0, 0, true))?, 0);
    assert_eq!(produce(s, batch(9, 0, 0, false))?, 1);
    assert_eq!(produce(s, batch(2, 0, 0, true))?, 2);
    assert_eq!(produce(s, batch(-1, -1, -1, false))?, 3);
    assert_eq!(produce(s, batch(1, 0, 1, true))?, 4);
    Ok(())
}

#[tokio::test]
async fn interleaved_transactions_bound_the_last_stable_offset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    interleaved(&mut s)?;
    assert_eq!(lso(&s)?, 0, "producer 1's transaction is open from 0");
    assert_eq!(s.snapshot(TOPIC, 0)?.high_watermark, 5);
    assert_eq!(s.snapshot(TOPIC, 0)?.last_stable_offset, 0);
    assert_eq!(
        s.list_offset_isolated(TOPIC, 0, -1, IsolationLevel::ReadCommitted)?,
        (0, -1)
    );
    assert_eq!(
        s.list_offset_isolated(TOPIC, 0, 1_000, IsolationLevel::ReadCommitted)?,
        (-1, -1),
        "the first record at the timestamp is not stable yet"
    );
    assert_eq!(s.list_offset(TOPIC, 0, -1)?, (5, -1));
    assert_eq!(
        fetch_committed(&mut s, TOPIC, 0, usize::MAX)?,
        (vec![], vec![])
    );
    assert_eq!(producer(&s, 1)?.current_txn_start_offset, 0);
    assert_eq!(producer(&s, 9)?.current_txn_start_offset, -1);

    assert_eq!(marker(&mut s, 1, 0, true)?, 5);
    assert_eq!(lso(&s)?, 2, "producer 2's transaction is still open");
    assert_eq!(
        fetch_committed(&mut s, TOPIC, 0, usize::MAX)?,
        (vec![0, 1], vec![])
    );
    let p1 = producer(&s, 1)?;
    assert_eq!((p1.current_txn_start_offset, p1.coordinator_epoch), (-1, 7));

    assert_eq!(marker(&mut s, 2, 0, false)?, 6);
    assert_eq!(lso(&s)?, 7);
    let aborted = vec![txn(2, 2, 6, 7)];
    assert_eq!(aborted_index(&mut s, TOPIC)?, aborted);
    assert_eq!(
        fetch_committed(&mut s, TOPIC, 0, usize::MAX)?,
        (vec![0, 1, 2, 3, 4, 5, 6], aborted.clone())
    );
    assert_eq!(
        fetch_committed(&mut s, TOPIC, 0, 1)?,
        (vec![0], vec![]),
        "producer 2's transaction starts after the batch returned"
    );
    assert_eq!(fetch_committed(&mut s, TOPIC, 3, 1)?, (vec![3], aborted));
    assert_eq!(
        fetch_committed(&mut s, TOPIC, 7, usize::MAX)?,
        (vec![], vec![])
    );
    assert_eq!(
        s.list_offset_isolated(TOPIC, 0, 1_000, IsolationLevel::ReadCommitted)?,
        (0, 1_000)
    );
    Ok(())
}

#[tokio::test]
async fn markers_check_and_take_the_producer_epoch() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    produce(&mut s, batch(1, 3, 0, true))?;
    assert!(matches!(
        s.write_txn_marker(TOPIC, 0, 1, 2, false, 0),
        Err(StorageError::InvalidProducerEpoch { current: 3, got: 2 })
    ));
    assert_eq!(lso(&s)?, 0, "the refused marker closed nothing");
    assert_eq!(
        s.snapshot(TOPIC, 0)?.high_watermark,
        1,
        "nor was it written"
    );
    // The coordinator bumps the epoch when it aborts a transaction that timed out.
    assert_eq!(marker(&mut s, 1, 4, false)?, 1);
    assert_eq!(aborted_index(&mut s, TOPIC)?, vec![txn(1, 0, 1, 2)]);
    assert!(matches!(
        s.append(TOPIC, 0, batch(1, 3, 1, true), None, Durability::PageCache),
        Err(StorageError::InvalidProducerEpoch { current: 4, got: 3 })
    ));
    // A marker without an open transaction is written, and indexes nothing.
    assert_eq!(marker(&mut s, 1, 4, false)?, 2);
    assert_eq!(marker(&mut s, 5, 0, true)?, 3);
    assert_eq!(aborted_index(&mut s, TOPIC)?.len(), 1);
    assert_eq!(lso(&s)?, 4);
    // A deposed coordinator (an older coordinator epoch than the last marker's 7) is fenced
    // and writes nothing; the current one still writes.
    assert!(matches!(
        s.write_txn_marker(TOPIC, 0, 1, 4, true, 6),
        Err(StorageError::CoordinatorFenced { current: 7, got: 6 })
    ));
    assert_eq!(s.snapshot(TOPIC, 0)?.high_watermark, 4);
    assert_eq!(marker(&mut s, 1, 4, true)?, 4);
    Ok(())
}

#[tokio::test]
async fn batches_without_sequences_keep_the_epoch_check_and_transactions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    // Transactional offset commits as the group coordinator writes them: base sequence -1.
    assert_eq!(produce(&mut s, batch(5, 2, -1, true))?, 0);
    assert_eq!(
        produce(&mut s, batch(5, 2, -1, true))?,
        1,
        "no duplicate detection"
    );
    assert_eq!(lso(&s)?, 0);
    assert!(matches!(
        s.append(TOPIC, 0, batch(5, 1, -1, true), None, Durability::PageCache),
        Err(StorageError::InvalidProducerEpoch { current: 2, got: 1 })
    ));
    marker(&mut s, 5, 2, true)?;
    assert_eq!(lso(&s)?, 3);
    let p = producer(&s, 5)?;
    assert_eq!((p.epoch, p.last_sequence, p.coordinator_epoch), (2, -1, 7));
    // Clients may not write control batches.
    let forged = batch::txn_marker_batch(
        5,
        2,
        batch::TxnMarker {
            commit: true,
            coordinator_epoch: 0,
        },
        1_000,
    );
    assert!(matches!(
        s.append(TOPIC, 0, forged, None, Durability::PageCache),
        Err(StorageError::ControlBatchFromClient)
    ));
    Ok(())
}

/// Producer 1's transaction (0, 4) committed at 5, producer 2's (2) aborted at 6, producer 3's
/// transaction open from 7.
fn history(s: &mut ShardState) -> TestResult {
    interleaved(s)?;
    marker(s, 1, 0, true)?;
    marker(s, 2, 0, false)?;
    assert_eq!(produce(s, batch(3, 0, 0, true))?, 7);
    Ok(())
}

fn check_history(s: &mut ShardState) -> TestResult {
    assert_eq!(lso(s)?, 7);
    assert_eq!(aborted_index(s, TOPIC)?, vec![txn(2, 2, 6, 7)]);
    assert_eq!(producer(s, 3)?.current_txn_start_offset, 7);
    assert_eq!(producer(s, 1)?.coordinator_epoch, 7);
    assert_eq!(
        fetch_committed(s, TOPIC, 0, usize::MAX)?,
        (vec![0, 1, 2, 3, 4, 5, 6], vec![txn(2, 2, 6, 7)])
    );
    Ok(())
}

#[tokio::test]
async fn clean_restart_keeps_transactions_and_the_index() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    history(&mut s)?;
    check_history(&mut s)?;
    assert!(s.close_all().is_empty());
    drop(s);
    let txn_index = dir.path().join("t-0/00000000000000000000.txnindex");
    assert_eq!(std::fs::metadata(&txn_index)?.len(), 34);

    let mut s = shard(dir.path(), true)?;
    assert!(
        s.with_log(TOPIC, 0, |l| l.txn_index_trusted())?,
        "read from the files, not rebuilt"
    );
    check_history(&mut s)?;
    // Producer 3 commits after the restart.
    marker(&mut s, 3, 0, true)?;
    assert_eq!(lso(&s)?, 9);
    Ok(())
}

#[tokio::test]
async fn crash_restart_rebuilds_transactions_and_the_index_from_the_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    history(&mut s)?;
    drop(s); // no close: a crash (the page cache keeps what was written)
    let txn_index = dir.path().join("t-0/00000000000000000000.txnindex");
    std::fs::remove_file(&txn_index)?;

    let mut s = shard(dir.path(), false)?;
    check_history(&mut s)?;
    assert_eq!(
        std::fs::metadata(&txn_index)?.len(),
        34,
        "the index file is rebuilt"
    );
    // A snapshot of the old format is ignored on a clean start: the log is scanned instead.
    assert!(s.close_all().is_empty());
    drop(s);
    let snapshot = dir.path().join("t-0/producer.snapshot");
    std::fs::write(&snapshot, "v1 8\n1 0 0 1 0 1 0 1000\n")?;
    let mut s = shard(dir.path(), true)?;
    check_history(&mut s)?;
    Ok(())
}

#[tokio::test]
async fn truncation_below_a_marker_reopens_its_transaction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    history(&mut s)?;
    assert_eq!(s.truncate(TOPIC, 0, 6)?, 6);
    assert_eq!(lso(&s)?, 2, "producer 2's transaction is open again");
    assert_eq!(aborted_index(&mut s, TOPIC)?, vec![]);
    assert!(!dir
        .path()
        .join("t-0/00000000000000000000.txnindex")
        .exists());
    assert_eq!(producer(&s, 2)?.current_txn_start_offset, 2);
    assert_eq!(s.truncate(TOPIC, 0, 5)?, 5);
    assert_eq!(lso(&s)?, 0, "and producer 1's");
    s.restart_at(TOPIC, 0, 20)?;
    assert_eq!(lso(&s)?, 20);
    Ok(())
}

#[tokio::test]
async fn followers_apply_the_markers_they_replicate() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut s = shard(dir.path(), false)?;
    s.open_partition("f", 0, None, false)?;
    s.become_follower("f", 0, 1, 0)?;
    history(&mut s)?;
    let end = s.snapshot(TOPIC, 0)?.high_watermark;
    // The follower fetches in two rounds, the second starting with the abort marker.
    for (from, to) in [(0, 6), (6, end)] {
        let read = s.read_to_log_end(TOPIC, 0, from, usize::MAX)?;
        let mut kept = Vec::new();
        for item in batch::batches(&read.records) {
            let (h, bytes) = item?;
            if h.base_offset < to {
                kept.extend_from_slice(bytes);
            }
        }
        s.append_as_follower("f", 0, 0, Bytes::from(kept), to, false)?;
    }
    assert_eq!(s.last_stable_offset("f", 0)?, 7);
    assert_eq!(aborted_index(&mut s, "f")?, vec![txn(2, 2, 6, 7)]);
    assert_eq!(
        fetch_committed(&mut s, "f", 0, usize::MAX)?,
        (vec![0, 1, 2, 3, 4, 5, 6], vec![txn(2, 2, 6, 7)])
    );
    assert!(matches!(
        s.write_txn_marker("f", 0, 3, 0, true, 0),
        Err(StorageError::NotLeader)
    ));
    Ok(())
}
