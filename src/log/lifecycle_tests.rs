//! Tests of the log's life cycle beyond append and read: retention by time and size,
//! `segment.ms`, DeleteRecords and the durable log start offset, the recovery point and how much
//! an unclean open scans, `flush.*`, idle file handles; and a property test running random
//! sequences of all of these (with clean and unclean restarts and torn tails) against a model.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use proptest::prelude::*;

use super::batch::{self, BatchBuilder};
use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// A batch of `count` records with `value_len`-byte values, record `i` stamped `ts + i`.
fn make_batch(count: usize, value_len: usize, ts: i64) -> BytesMut {
    let value = vec![b'r'; value_len];
    let mut builder = BatchBuilder::new(ts);
    for i in 0..count {
        builder.record(Some(b"k"), Some(&value), ts + i as i64);
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

/// A clock tests move by hand, starting at the real time (so file modification times, which
/// retention and `segment.ms` fall back on, are close to it).
#[derive(Clone)]
struct TestClock(Arc<AtomicI64>);

impl TestClock {
    fn new() -> TestClock {
        TestClock(Arc::new(AtomicI64::new(segment::wall_clock_ms())))
    }
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
    fn advance(&self, ms: i64) -> i64 {
        self.0.fetch_add(ms, Ordering::SeqCst) + ms
    }
    fn clock(&self) -> Clock {
        let t = self.0.clone();
        Clock::new(move || t.load(Ordering::SeqCst))
    }
}

fn open(dir: &Path, config: LogConfig, clean: bool, clock: &TestClock) -> PartitionLog {
    let mut log = PartitionLog::open(dir, config, clean).expect("open");
    log.set_clock(clock.clock());
    log
}

fn log_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Appends `n` batches of one 100-byte record stamped `ts`; returns their first offset.
fn fill(log: &mut PartitionLog, n: usize, ts: i64) -> i64 {
    let first = log.log_end_offset();
    for _ in 0..n {
        log.append(make_batch(1, 100, ts), None).expect("append");
    }
    first
}

#[test]
fn retention_by_size_deletes_oldest_whole_segments() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    fill(&mut log, 40, clock.now());
    let segments = log.segment_count();
    assert!(segments >= 5);
    let size = log.size_bytes();
    let files_before = log_files(dir.path());

    // No limits: nothing happens.
    assert_eq!(
        log.apply_retention(clock.now())?,
        RetentionOutcome::default()
    );

    log.set_config(LogConfig {
        retention_bytes: Some(2_500),
        ..log.config().clone()
    });
    let outcome = log.apply_retention(clock.now())?;
    assert!(!outcome.rolled);
    assert!(outcome.deleted_segments > 0);
    assert_eq!(log.size_bytes(), size - outcome.deleted_bytes);
    // Kafka's rule: delete while the log still holds at least retention.bytes without the
    // oldest segment; afterwards removing the oldest would go below the limit.
    let bases = log.segment_base_offsets();
    assert_eq!(log.log_start_offset(), bases[0]);
    let first_size = log.size_bytes() - {
        let again = log.segment_count();
        assert!(again >= 2);
        // size of all segments but the first, via a read from the second segment's base
        log.read(bases[1], usize::MAX)?.records.len() as u64
    };
    assert!(log.size_bytes() - first_size < 2_500);
    assert!(log.size_bytes() >= 2_500);
    for deleted in &files_before[..outcome.deleted_segments] {
        assert!(!deleted.exists(), "{} still exists", deleted.display());
        assert!(!deleted.with_extension("index").exists());
        assert!(!deleted.with_extension("timeindex").exists());
    }
    assert!(matches!(
        log.read(bases[0] - 1, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.list_earliest(), bases[0]);
    log.check_consistency();

    // The new start survives a clean and an unclean restart (it is the first segment's base).
    log.close()?;
    drop(log);
    let log = open(dir.path(), config(1_000), true, &clock);
    assert_eq!(log.log_start_offset(), bases[0]);
    drop(log);
    let log = open(dir.path(), config(1_000), false, &clock);
    assert_eq!(log.log_start_offset(), bases[0]);
    log.check_consistency();
    Ok(())
}

impl PartitionLog {
    /// What ListOffsets earliest answers.
    fn list_earliest(&self) -> i64 {
        self.log_start_offset()
    }
}

#[test]
fn retention_by_time_expires_idle_partitions_too() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    let t0 = clock.now();
    fill(&mut log, 20, t0);
    let old_segments = log.segment_count();
    clock.advance(10_000);
    let t1 = clock.now();
    let newer = fill(&mut log, 3, t1);
    log.set_config(LogConfig {
        retention_ms: Some(5_000),
        ..log.config().clone()
    });

    // At t1 + 1 s only the segments holding t0 records are past retention.
    let outcome = log.apply_retention(t1 + 1_000)?;
    assert!(!outcome.rolled);
    assert!(outcome.deleted_segments >= old_segments - 1);
    assert!(log.log_start_offset() <= newer);
    assert!(log.log_end_offset() > log.log_start_offset());
    log.check_consistency();

    // Much later, with no new data: the active segment is rolled and everything expires.
    let end = log.log_end_offset();
    let outcome = log.apply_retention(t1 + 60_000)?;
    assert!(outcome.rolled);
    assert_eq!(log.log_start_offset(), end);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log_files(dir.path()).len(), 1);
    assert!(log.read(end, 100)?.records.is_empty());
    // Appends continue at the same offsets.
    assert_eq!(fill(&mut log, 1, clock.now()), end);
    log.check_consistency();
    Ok(())
}

#[test]
fn segment_ms_rolls_a_non_empty_active_segment() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1_000,
            ..config(1 << 20)
        },
        false,
        &clock,
    );
    // An empty active segment never rolls.
    assert!(!log.apply_retention(clock.advance(5_000))?.rolled);
    fill(&mut log, 2, clock.now());
    assert!(!log.apply_retention(clock.advance(999))?.rolled);
    assert!(log.apply_retention(clock.advance(1))?.rolled);
    assert_eq!(log.segment_count(), 2);
    assert!(!log.apply_retention(clock.advance(5_000))?.rolled);
    // A log loaded from disk counts from the file's modification time.
    fill(&mut log, 1, clock.now());
    log.close()?;
    drop(log);
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_ms: 1_000,
            ..config(1 << 20)
        },
        true,
        &clock,
    );
    let mtime = segment::wall_clock_ms();
    assert!(!log.apply_retention(mtime - 2_000)?.rolled);
    assert!(log.apply_retention(mtime + 2_000)?.rolled);
    assert_eq!(log.segment_count(), 3);
    log.check_consistency();
    Ok(())
}

#[test]
fn delete_records_moves_the_start_durably() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    // Batches of 3 records, so a start can fall inside a batch.
    for _ in 0..30 {
        log.append(make_batch(3, 60, clock.now()), None)?;
    }
    let end = log.log_end_offset();
    let bases = log.segment_base_offsets();
    assert!(bases.len() >= 4);

    assert!(matches!(
        log.delete_records_before(end + 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.delete_records_before(-2),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Into the middle of a batch of the third segment.
    let target = bases[2] + 4;
    assert_eq!(log.delete_records_before(target)?, target);
    assert_eq!(log.log_start_offset(), target);
    assert_eq!(log.segment_base_offsets()[0], bases[2]);
    assert_eq!(log_files(dir.path()).len(), bases.len() - 2);
    // A read at the start returns the batch containing it; below it is out of range.
    let read = log.read(target, 1)?;
    let header = batch::validate(&read.records)?;
    assert!(header.base_offset <= target && target <= header.last_offset());
    assert_eq!(read.log_start_offset, target);
    assert!(matches!(
        log.read(target - 1, 1),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    // Timestamp lookups do not answer below the start.
    let (offset, _) = log.offset_for_timestamp(0)?.ok_or("no answer")?;
    assert_eq!(offset, target);
    // Lower offsets change nothing.
    assert_eq!(log.delete_records_before(bases[1])?, target);
    log.check_consistency();

    // The start survives restarts, clean and not, although it is inside a segment.
    drop(log);
    let log = open(dir.path(), config(1_000), false, &clock);
    assert_eq!(log.log_start_offset(), target);
    drop(log);
    let mut log = open(dir.path(), config(1_000), false, &clock);
    log.close()?;
    drop(log);
    let mut log = open(dir.path(), config(1_000), true, &clock);
    assert_eq!(log.log_start_offset(), target);

    // -1 means the high watermark: everything but the active segment goes.
    assert_eq!(log.delete_records_before(-1)?, end);
    assert_eq!(log.segment_count(), 1);
    assert!(log.read(end, 10)?.records.is_empty());
    log.check_consistency();
    Ok(())
}

#[test]
fn start_beyond_a_crash_truncated_end_restarts_the_log_there() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1 << 20), false, &clock);
    fill(&mut log, 10, clock.now());
    assert_eq!(log.delete_records_before(-1)?, 10);
    drop(log);
    // The crash lost the unsynced tail (half of the segment) but not the fsynced start.
    let file = log_files(dir.path()).pop().ok_or("no segment")?;
    let len = std::fs::metadata(&file)?.len();
    OpenOptions::new()
        .write(true)
        .open(&file)?
        .set_len(len / 2)?;
    let mut log = open(dir.path(), config(1 << 20), false, &clock);
    assert_eq!(log.log_start_offset(), 10);
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.segment_base_offsets(), vec![10]);
    assert_eq!(fill(&mut log, 1, clock.now()), 10);
    log.check_consistency();
    Ok(())
}

#[test]
fn unclean_open_scans_only_from_the_recovery_point() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    fill(&mut log, 30, clock.now());
    // Fsync (as a group commit would) and checkpoint the recovery point.
    let unsynced = log.take_unsynced()?;
    for f in &unsynced.files {
        f.sync_data()?;
    }
    log.mark_synced(unsynced.token);
    let synced_end = log.log_end_offset();
    assert_eq!(log.recovery_point(), synced_end);
    assert!(log.checkpoint_recovery_point()?);
    assert!(
        !log.checkpoint_recovery_point()?,
        "unchanged: not rewritten"
    );
    // More data after the checkpoint, then a crash.
    fill(&mut log, 12, clock.now());
    let segments = log.segment_count();
    let end = log.log_end_offset();
    drop(log);

    let log = open(dir.path(), config(1_000), false, &clock);
    let stats = log.open_stats();
    let after_point = log
        .segment_base_offsets()
        .windows(2)
        .filter(|w| w[1] > synced_end)
        .count()
        + 1;
    assert_eq!(stats.segments, segments);
    assert_eq!(stats.segments_scanned, after_point);
    assert!(stats.segments_scanned < segments / 2, "{stats:?}");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.recovery_point(), synced_end);
    assert!(
        log.needs_background_sync(),
        "scanned segments are handed out for fsync"
    );
    log.check_consistency();
    drop(log);

    // A corrupt byte above the recovery point is found and cut off, with later segments.
    let files = log_files(dir.path());
    let victim = &files[files.len() - 2];
    let mut bytes = std::fs::read(victim)?;
    bytes[80] ^= 0x40;
    std::fs::write(victim, &bytes)?;
    let log = open(dir.path(), config(1_000), false, &clock);
    let stats = log.open_stats();
    assert!(stats.bytes_truncated > 0);
    assert_eq!(stats.segments_deleted, 1);
    assert!(log.log_end_offset() < end);
    assert!(log.log_end_offset() >= synced_end);
    log.check_consistency();
    Ok(())
}

#[test]
fn clean_open_scans_nothing() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    fill(&mut log, 30, clock.now());
    log.close()?;
    drop(log);
    let log = open(dir.path(), config(1_000), true, &clock);
    assert_eq!(log.open_stats().segments_scanned, 0);
    assert_eq!(log.recovery_point(), log.log_end_offset());
    assert!(!log.needs_background_sync());
    Ok(())
}

#[test]
fn flush_interval_messages_and_ms() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(
        dir.path(),
        LogConfig {
            flush_interval_messages: Some(5),
            flush_interval_ms: Some(1_000),
            ..config(1 << 20)
        },
        false,
        &clock,
    );
    let _ = log.take_unsynced()?;
    assert!(!log.flush_due(clock.now()), "nothing written");
    log.append(make_batch(4, 10, 0), None)?;
    assert!(!log.flush_due(clock.now()));
    log.append(make_batch(1, 10, 0), None)?;
    assert!(log.flush_due(clock.now()), "5 messages");
    let unsynced = log.take_unsynced()?;
    log.mark_synced(unsynced.token);
    assert!(!log.flush_due(clock.now()));
    log.append(make_batch(1, 10, 0), None)?;
    assert!(!log.flush_due(clock.advance(999)));
    assert!(log.flush_due(clock.advance(1)), "1 s since the last flush");
    // Defaults: never.
    log.set_config(config(1 << 20));
    assert!(!log.flush_due(clock.advance(1_000_000)));
    Ok(())
}

#[test]
fn idle_segment_files_are_closed_and_reopened_on_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let mut log = open(dir.path(), config(1_000), false, &clock);
    fill(&mut log, 40, clock.now());
    assert!(log.segment_count() > 4);
    assert_eq!(log.open_file_count(), 2, "active and newest inactive");
    // Reading from the start opens every segment.
    let all = log.read(0, usize::MAX)?.records;
    assert_eq!(log.open_file_count(), log.segment_count());
    assert_eq!(log.close_idle_files(Duration::from_secs(3600)), 0);
    std::thread::sleep(Duration::from_millis(5));
    let closed = log.close_idle_files(Duration::from_millis(1));
    assert_eq!(closed, log.segment_count() - 1);
    assert_eq!(log.open_file_count(), 1, "only the active segment");
    assert_eq!(log.read(0, usize::MAX)?.records, all);
    log.check_consistency();
    Ok(())
}

#[test]
fn set_topic_config_follows_kafka_conventions() {
    let mut c = LogConfig::default();
    assert!(c.set_topic_config("retention.ms", -1));
    assert_eq!(c.retention_ms, None);
    assert!(c.set_topic_config("retention.ms", 1_000));
    assert_eq!(c.retention_ms, Some(1_000));
    assert!(c.set_topic_config("retention.bytes", 4096));
    assert_eq!(c.retention_bytes, Some(4096));
    assert!(c.set_topic_config("flush.messages", i64::MAX));
    assert_eq!(c.flush_interval_messages, None);
    assert!(c.set_topic_config("flush.ms", 10));
    assert_eq!(c.flush_interval_ms, Some(10));
    assert!(c.set_topic_config("segment.ms", 60_000));
    assert_eq!(c.segment_ms, 60_000);
    assert!(c.set_topic_config("segment.bytes", 1 << 20));
    assert_eq!(c.segment_bytes, 1 << 20);
    assert!(!c.set_topic_config("cleanup.policy", 0));
}

// ---------------------------------------------------------------------------------------------
// Property test: random operation sequences against a model.

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: usize,
        value_len: usize,
        batches: usize,
    },
    Roll,
    /// An fsync of everything written (as a group commit does), moving the recovery point.
    Sync,
    /// The periodic recovery-point checkpoint.
    Checkpoint,
    RestartClean,
    /// A crash: unsynced bytes of the active segment beyond `cut` (per mille of them) are lost,
    /// optionally with garbage written after the cut.
    RestartUnclean {
        cut: Option<u16>,
        garbage: bool,
    },
    Retention {
        advance_ms: i64,
        retention_ms: Option<u64>,
        retention_bytes: Option<u64>,
        segment_ms: u64,
    },
    /// DeleteRecords at a point (per mille) of `[log start, log end]`, or -1.
    DeleteRecords {
        at: Option<u16>,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..5, 0usize..300, 1usize..3)
            .prop_map(|(count, value_len, batches)| Op::Append { count, value_len, batches }),
        1 => Just(Op::Roll),
        2 => Just(Op::Sync),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::RestartClean),
        2 => (prop::option::of(0u16..=1000), any::<bool>())
            .prop_map(|(cut, garbage)| Op::RestartUnclean { cut, garbage }),
        2 => (0i64..20_000, prop::option::of(0u64..30_000), prop::option::of(0u64..6_000), 1u64..30_000)
            .prop_map(|(advance_ms, retention_ms, retention_bytes, segment_ms)| Op::Retention {
                advance_ms, retention_ms, retention_bytes, segment_ms,
            }),
        1 => prop::option::of(0u16..=1000).prop_map(|at| Op::DeleteRecords { at }),
    ]
}

/// One stored batch of the model.
#[derive(Debug, Clone)]
struct ModelBatch {
    base: i64,
    last: i64,
    max_ts: i64,
    bytes: Vec<u8>,
}

/// What the log must hold: every batch physically present (including those below the log start
/// in its first segment), the log start and end offsets.
#[derive(Debug, Default)]
struct Model {
    batches: Vec<ModelBatch>,
    start: i64,
    end: i64,
}

impl Model {
    fn append(&mut self, sent: &[u8], info: &AppendInfo) {
        let mut next = info.base_offset;
        for item in batch::batches(sent) {
            let (header, bytes) = item.expect("valid batch");
            let mut stored = bytes.to_vec();
            batch::set_base_offset(&mut stored, next);
            let last = next + i64::from(header.last_offset_delta);
            self.batches.push(ModelBatch {
                base: next,
                last,
                max_ts: header.max_timestamp,
                bytes: stored,
            });
            next = last + 1;
        }
        self.end = next;
    }

    /// Drops the batches of deleted segments (those below the log's first segment).
    fn drop_below(&mut self, first_base: i64) {
        self.batches.retain(|b| b.base >= first_base);
    }

    fn check(&self, log: &PartitionLog) {
        log.check_consistency();
        assert_eq!(log.log_start_offset(), self.start, "log start offset");
        assert_eq!(log.log_end_offset(), self.end, "log end offset");
        let size: u64 = self.batches.iter().map(|b| b.bytes.len() as u64).sum();
        assert_eq!(log.size_bytes(), size, "size");
        let first_base = log.segment_base_offsets()[0];
        assert!(self.batches.first().map_or(true, |b| b.base >= first_base));
        // Reading from the log start returns exactly the batches from the one containing it.
        let visible: Vec<&ModelBatch> = self
            .batches
            .iter()
            .filter(|b| b.last >= self.start)
            .collect();
        let expected: Vec<u8> = visible
            .iter()
            .flat_map(|b| b.bytes.iter().copied())
            .collect();
        let all = log.read(self.start, usize::MAX).expect("read from start");
        assert!(all.records[..] == expected[..], "read from the log start");
        // Offsets contiguous from the first visible batch to the end.
        for pair in visible.windows(2) {
            assert_eq!(pair[0].last + 1, pair[1].base, "contiguous offsets");
        }
        for b in &visible {
            let offset = b.base.max(self.start);
            let one = log.read(offset, 1).expect("read one");
            assert_eq!(&one.records[..], &b.bytes[..], "batch at {offset}");
        }
        if self.start > 0 {
            assert!(matches!(
                log.read(self.start - 1, 1),
                Err(LogError::OffsetOutOfRange { .. })
            ));
        }
        assert!(log
            .read(self.end, 1)
            .expect("read at end")
            .records
            .is_empty());
    }
}

/// Written after a torn tail by `Op::RestartUnclean`: a batch header with base offset 1 and a
/// length of 256, cut off.
const GARBAGE: [u8; 13] = [
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0xaa,
];

fn run_ops(ops: &[Op]) -> TestResult {
    let dir = tempfile::tempdir()?;
    let clock = TestClock::new();
    let base_config = LogConfig {
        segment_bytes: 1_500,
        index_interval_bytes: 250,
        retention_ms: None,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), base_config.clone(), false, &clock);
    let mut model = Model::default();
    for op in ops {
        match op.clone() {
            Op::Append {
                count,
                value_len,
                batches,
            } => {
                let mut buf = BytesMut::new();
                for _ in 0..batches {
                    buf.extend_from_slice(&make_batch(count, value_len, clock.now()));
                }
                let sent = buf.clone();
                let info = log.append(buf, None)?;
                assert_eq!(info.base_offset, model.end);
                model.append(&sent, &info);
            }
            Op::Roll => {
                log.roll()?;
            }
            Op::Sync => {
                let unsynced = log.take_unsynced()?;
                log.mark_synced(unsynced.token);
                assert_eq!(log.recovery_point(), log.log_end_offset());
            }
            Op::Checkpoint => {
                log.checkpoint_recovery_point()?;
            }
            Op::RestartClean => {
                log.close()?;
                let config = log.config().clone();
                drop(log);
                log = open(dir.path(), config, true, &clock);
                assert_eq!(log.open_stats().segments_scanned, 0);
            }
            Op::RestartUnclean { cut, garbage } => {
                let config = log.config().clone();
                let point = log.recovery_point();
                let active_base = *log.segment_base_offsets().last().ok_or("no segment")?;
                drop(log);
                let active = dir.path().join(format!("{active_base:020}.log"));
                if let Some(cut) = cut {
                    // Positions of the active segment's batches; those at or above the
                    // recovery point were not fsynced and may be lost.
                    let mut position = 0u64;
                    let mut lossy_from = None;
                    for b in model.batches.iter().filter(|b| b.base >= active_base) {
                        if b.base >= point && lossy_from.is_none() {
                            lossy_from = Some(position);
                        }
                        position += b.bytes.len() as u64;
                    }
                    if let Some(from) = lossy_from {
                        let at = from + (position - from) * u64::from(cut) / 1000;
                        OpenOptions::new().write(true).open(&active)?.set_len(at)?;
                        // What the file holds after the crash: the bytes before the cut, then the
                        // garbage. A batch survives iff its bytes are all there, unchanged, and
                        // so do the batches before it. The garbage can complete a batch cut
                        // short: batches end with zero bytes (a record without headers), as the
                        // garbage starts, and the restored batch is the one appended, CRC and
                        // all, which no recovery can (or should) tell from one never torn.
                        let mut content: Vec<u8> = model
                            .batches
                            .iter()
                            .filter(|b| b.base >= active_base)
                            .flat_map(|b| b.bytes.iter().copied())
                            .collect();
                        content.truncate(usize::try_from(at)?);
                        if garbage {
                            content.extend_from_slice(&GARBAGE);
                        }
                        let mut start = 0usize;
                        let mut intact = true;
                        let mut new_end = None;
                        model.batches.retain(|b| {
                            if b.base < active_base {
                                return true;
                            }
                            let end = start + b.bytes.len();
                            intact = intact && content.get(start..end) == Some(&b.bytes[..]);
                            start = end;
                            if intact {
                                new_end = Some(b.last + 1);
                            }
                            intact
                        });
                        model.end = new_end.unwrap_or(active_base);
                        if model.start > model.end {
                            // The log restarts at its (durable) start offset.
                            model.batches.clear();
                            model.end = model.start;
                        }
                    }
                }
                if garbage {
                    OpenOptions::new()
                        .append(true)
                        .open(&active)?
                        .write_all(&GARBAGE)?;
                }
                let checkpointed =
                    checkpoint::read(dir.path(), checkpoint::RECOVERY_POINT_FILE)?.unwrap_or(0);
                log = open(dir.path(), config, false, &clock);
                let stats = log.open_stats();
                let untrusted = log
                    .segment_base_offsets()
                    .windows(2)
                    .filter(|w| w[1] > checkpointed)
                    .count()
                    + 1;
                assert!(
                    stats.segments_scanned <= untrusted,
                    "{stats:?}, {untrusted}"
                );
                assert!(log.recovery_point() <= log.log_end_offset());
            }
            Op::Retention {
                advance_ms,
                retention_ms,
                retention_bytes,
                segment_ms,
            } => {
                let now = clock.advance(advance_ms);
                log.set_config(LogConfig {
                    retention_ms,
                    retention_bytes,
                    segment_ms,
                    ..base_config.clone()
                });
                log.apply_retention(now)?;
                let bases = log.segment_base_offsets();
                model.drop_below(bases[0]);
                model.start = model.start.max(bases[0]);
                if bases.len() > 1 {
                    // The oldest remaining segment breaks no rule.
                    let first: Vec<&ModelBatch> =
                        model.batches.iter().filter(|b| b.base < bases[1]).collect();
                    let first_size: u64 = first.iter().map(|b| b.bytes.len() as u64).sum();
                    let size: u64 = model.batches.iter().map(|b| b.bytes.len() as u64).sum();
                    if let Some(limit) = retention_bytes {
                        assert!(size - first_size < limit, "size rule");
                    }
                    if let (Some(limit), Some(max_ts)) =
                        (retention_ms, first.iter().map(|b| b.max_ts).max())
                    {
                        assert!(now - max_ts <= limit as i64, "time rule");
                    }
                    assert!(bases[1] > model.start, "start rule");
                }
            }
            Op::DeleteRecords { at } => {
                let target = match at {
                    None => -1,
                    Some(p) => model.start + (model.end - model.start) * i64::from(p) / 1000,
                };
                let low = log.delete_records_before(target)?;
                let wanted = if target == -1 { model.end } else { target };
                assert_eq!(low, wanted.max(model.start));
                model.start = low;
                let bases = log.segment_base_offsets();
                assert!(bases[0] <= model.start);
                if bases.len() > 1 {
                    assert!(bases[1] > model.start);
                }
                model.drop_below(bases[0]);
                assert!(matches!(
                    log.delete_records_before(model.end + 1),
                    Err(LogError::OffsetOutOfRange { .. })
                ));
            }
        }
        model.check(&log);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Any sequence of appends, rolls, fsyncs, checkpoints, clean and unclean restarts (with
    /// torn tails), retention passes and DeleteRecords leaves the log equal to the model: reads
    /// from the log start return exactly the appended batches, offsets are contiguous, and the
    /// indexes agree with the segment files.
    #[test]
    fn random_life_cycles_match_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let result = run_ops(&ops);
        prop_assert!(result.is_ok(), "{:?}", result);
    }
}
