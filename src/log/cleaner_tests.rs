//! Tests of the log cleaner: latest value per key, tombstones and their retention, idempotent
//! producers' last batches, aborted transactions, the bounded offset map, and a property test
//! of random appends, deletes, rolls, cleanings, restarts and crashes at every step of the swap
//! against a model of what the log must still say.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proptest::prelude::*;

use super::*;
use crate::log::batch::BatchBuilder;
use crate::log::segment::wall_clock_ms;
use crate::log::{LogConfig, PartitionLog};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// (offset, key, value) of every record readable from the log start.
type Records = Vec<(i64, Option<Vec<u8>>, Option<Vec<u8>>)>;

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 200,
        retention_ms: None,
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        delete_retention_ms: 60_000,
        ..LogConfig::default()
    }
}

fn put(log: &mut PartitionLog, records: &[(&[u8], Option<&[u8]>)]) -> i64 {
    let mut b = BatchBuilder::new(wall_clock_ms());
    for (k, v) in records {
        b.record(Some(k), *v, wall_clock_ms());
    }
    log.append(b.build(), None).expect("append").base_offset
}

fn read_all(log: &PartitionLog) -> Records {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let read = log.read(offset, 1 << 20).expect("read");
        if read.records.is_empty() {
            break;
        }
        for item in batch::batches(&read.records) {
            let (header, bytes) = item.expect("batch");
            let section = compact::records_section(&header, bytes).expect("section");
            for r in batch::raw_records(&section, header.records_count) {
                let (r, _) = r.expect("record");
                let o = header.base_offset + i64::from(r.offset_delta);
                if o >= offset {
                    out.push((o, r.key.map(<[u8]>::to_vec), r.value.map(<[u8]>::to_vec)));
                }
            }
            offset = offset.max(header.next_offset());
        }
    }
    out
}

/// One whole pass at `now_ms`; `None` if none was due.
fn clean(log: &mut PartitionLog, now_ms: i64, capacity: usize) -> Option<CleanStats> {
    let plan = log.plan_clean(now_ms, log.log_end_offset(), HashMap::new(), capacity)?;
    let done = run(&plan, &|_| {}).expect("run");
    log.commit_clean(done).expect("commit")
}

#[test]
fn keeps_the_latest_value_per_key_and_drops_old_tombstones_later() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), config(300), true)?;
    for round in 0..20u8 {
        let v = [round];
        put(&mut log, &[(b"a", Some(&v)), (b"b", Some(&v))]);
    }
    put(&mut log, &[(b"c", Some(b"c1"))]);
    put(&mut log, &[(b"b", None)]);
    log.roll()?;
    let before = log.size_bytes();
    let stats = clean(&mut log, wall_clock_ms(), 1000).expect("a pass was due");
    assert!(stats.records_removed >= 38, "{stats:?}");
    let records = read_all(&log);
    let keys: Vec<_> = records
        .iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(
        keys,
        vec![
            (Some(b"a".to_vec()), Some(vec![19])),
            (Some(b"c".to_vec()), Some(b"c1".to_vec())),
            (Some(b"b".to_vec()), None),
        ]
    );
    assert!(records.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(
        log.size_bytes() < before / 4,
        "{} vs {before}",
        log.size_bytes()
    );
    assert_eq!(
        log.log_start_offset(),
        0,
        "compaction never moves the log start"
    );

    // The tombstone survives a pass before delete.retention.ms, and goes after it.
    put(&mut log, &[(b"d", Some(b"d"))]);
    log.roll()?;
    clean(&mut log, wall_clock_ms(), 1000).expect("due");
    assert!(read_all(&log)
        .iter()
        .any(|(_, k, v)| k.as_deref() == Some(b"b") && v.is_none()));
    let later = wall_clock_ms() + 61_000;
    assert!(
        log.dirtiness(later, log.log_end_offset())
            .expect("compacted")
            .due
    );
    clean(&mut log, later, 1000).expect("tombstones due");
    let records = read_all(&log);
    assert!(
        records.iter().all(|(_, k, _)| k.as_deref() != Some(b"b")),
        "{records:?}"
    );
    assert_eq!(records.len(), 3);
    // Nothing more to do: no pass is due.
    assert!(log
        .plan_clean(later, log.log_end_offset(), HashMap::new(), 1000)
        .is_none());

    // Reopen (clean and unclean): the same records.
    log.close()?;
    drop(log);
    let log = PartitionLog::open(dir.path(), config(300), false)?;
    assert_eq!(read_all(&log), records);
    Ok(())
}

#[test]
fn keyless_appends_are_refused_on_a_compacted_log() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), config(1 << 20), true)?;
    let mut b = BatchBuilder::new(0);
    b.record(None, Some(b"v"), 0);
    assert!(matches!(
        log.append(b.build(), None),
        Err(LogError::InvalidRecord(_))
    ));
    assert_eq!(log.log_end_offset(), 0);
    Ok(())
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), config(400), true)?;
    for round in 0..3u8 {
        for k in 0..30u8 {
            put(&mut log, &[(&[k], Some(&[round]))]);
        }
    }
    log.roll()?;
    let mut passes = 0;
    while clean(&mut log, wall_clock_ms(), 8).is_some() {
        passes += 1;
        assert!(passes < 100, "cleaning does not converge");
    }
    assert!(passes > 1);
    let records = read_all(&log);
    let mut latest = BTreeMap::new();
    for (_, k, v) in &records {
        assert!(
            latest.insert(k.clone(), v.clone()).is_none(),
            "duplicate key {k:?}"
        );
    }
    assert_eq!(latest.len(), 30);
    assert!(latest.values().all(|v| v.as_deref() == Some(&[2u8][..])));
    Ok(())
}

#[test]
fn idempotent_last_batches_and_aborted_transactions() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut log = PartitionLog::open(dir.path(), config(1 << 20), true)?;
    // Producer 7 writes k twice; its last batch is then superseded by a plain write.
    let mut b = BatchBuilder::new(0).producer(7, 0, 0);
    b.record(Some(b"k"), Some(b"1"), 0);
    log.append(b.build(), None)?;
    let mut b = BatchBuilder::new(0).producer(7, 0, 1);
    b.record(Some(b"k"), Some(b"2"), 0);
    let last_of_7 = log.append(b.build(), None)?.base_offset;
    put(&mut log, &[(b"k", Some(b"3"))]);
    // Producer 9 writes j in a transaction that is aborted.
    let mut b = BatchBuilder::new(0).producer(9, 0, 0).transactional(true);
    b.record(Some(b"j"), Some(b"x"), 0);
    let first = log.append(b.build(), None)?.base_offset;
    let mut m = BatchBuilder::new(0)
        .producer(9, 0, -1)
        .transactional(true)
        .control(true);
    m.record(Some(&[0, 0, 0, 0]), Some(&[0, 0, 0, 0, 0, 0]), 0);
    let marker = log.append(m.build(), None)?.base_offset;
    log.append_aborted_txn(AbortedTxn {
        producer_id: 9,
        first_offset: first,
        last_offset: marker,
        last_stable_offset: marker + 1,
    })?;
    log.roll()?;
    let plan = log
        .plan_clean(
            wall_clock_ms(),
            log.log_end_offset(),
            HashMap::from([(7, last_of_7)]),
            100,
        )
        .expect("due");
    let done = run(&plan, &|_| {})?;
    log.commit_clean(done)?.expect("committed");
    let read = log.read(0, 1 << 20)?;
    let batches: Vec<_> = batch::batches(&read.records)
        .map(|b| b.expect("batch").0)
        .collect();
    // Producer 7's last batch stays, emptied; its first goes; the aborted record goes; the
    // abort marker stays (delete.retention.ms has not passed).
    let summary: Vec<_> = batches
        .iter()
        .map(|h| {
            (
                h.base_offset,
                h.producer_id,
                h.records_count,
                h.is_control(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (last_of_7, 7, 0, false),
            (2, -1, 1, false),
            (marker, 9, 1, true)
        ]
    );
    assert_eq!(log.aborted_txns(0, log.log_end_offset()).len(), 1);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Property test
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    /// Records (key, value or tombstone) in one batch.
    Append(Vec<(u8, bool)>),
    Roll,
    /// A pass at now + the given ms (0 or past delete.retention.ms), with a map capacity.
    Clean {
        later: bool,
        capacity: usize,
    },
    /// A pass interrupted by a crash at a step of the swap (0: cleaned files written; 1: swaps
    /// committed; 2: the first group's sources deleted), then an unclean open.
    CrashDuringClean(u8),
    Restart {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec((0u8..6, prop::bool::weighted(0.2)), 1..4).prop_map(Op::Append),
        2 => Just(Op::Roll),
        2 => (any::<bool>(), prop_oneof![Just(3usize), Just(1000)])
            .prop_map(|(later, capacity)| Op::Clean { later, capacity }),
        1 => (0u8..3).prop_map(Op::CrashDuringClean),
        1 => any::<bool>().prop_map(|clean| Op::Restart { clean }),
    ]
}

/// What was appended at each offset.
type History = BTreeMap<i64, (u8, Option<u32>)>;

fn check(log: &PartitionLog, history: &History, tombstones_may_go: bool) {
    let records = read_all(log);
    assert!(
        records.windows(2).all(|w| w[0].0 < w[1].0),
        "offsets must increase"
    );
    for (offset, key, value) in &records {
        let (k, v) = history
            .get(offset)
            .expect("a record that was never written");
        assert_eq!(key.as_deref(), Some(&[*k][..]), "key at {offset}");
        assert_eq!(
            value
                .as_deref()
                .map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes"))),
            *v,
            "value at {offset}"
        );
    }
    // The latest record of every key is there (a tombstone may have gone once its time was up).
    let mut latest: BTreeMap<u8, (i64, Option<u32>)> = BTreeMap::new();
    for (offset, (k, v)) in history {
        latest.insert(*k, (*offset, *v));
    }
    for (k, (offset, v)) in latest {
        let present = records.iter().any(|(o, _, _)| *o == offset);
        if !present {
            assert!(
                v.is_none() && tombstones_may_go,
                "latest record of key {k} at {offset} is missing"
            );
        }
    }
}

fn crash_during_clean(dir: &Path, log: &mut PartitionLog, step: u8) -> bool {
    let Some(plan) = log.plan_clean(wall_clock_ms(), log.log_end_offset(), HashMap::new(), 1000)
    else {
        return false;
    };
    let done = run(&plan, &|_| {}).expect("run");
    if step >= 1 {
        for g in &done.groups {
            let [cleaned, _] = cleaned_paths(dir, g.base);
            std::fs::rename(cleaned, swap_path(dir, g.base)).expect("rename");
        }
    }
    if step >= 2 {
        if let Some(g) = done.groups.first() {
            for &(base, _) in &g.sources {
                for suffix in [".log", ".index", ".timeindex", ".txnindex"] {
                    let _ = std::fs::remove_file(segment_file(dir, base, suffix));
                }
            }
        }
    }
    true
}

fn run_model(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(250);
    let mut log = PartitionLog::open(dir.path(), cfg.clone(), true).expect("open");
    let mut history = History::new();
    let mut next_value = 0u32;
    let mut tombstones_may_go = false;
    for op in ops {
        match op {
            Op::Append(records) => {
                let mut b = BatchBuilder::new(wall_clock_ms());
                let mut values = Vec::new();
                for (k, tomb) in &records {
                    next_value += 1;
                    let v = (!tomb).then_some(next_value);
                    values.push((*k, v));
                }
                let bytes: Vec<(u8, Option<[u8; 4]>)> = values
                    .iter()
                    .map(|(k, v)| (*k, v.map(u32::to_be_bytes)))
                    .collect();
                for (k, v) in &bytes {
                    b.record(Some(&[*k]), v.as_ref().map(|v| &v[..]), wall_clock_ms());
                }
                let base = log.append(b.build(), None).expect("append").base_offset;
                for (i, (k, v)) in values.into_iter().enumerate() {
                    history.insert(base + i as i64, (k, v));
                }
            }
            Op::Roll => {
                log.roll().expect("roll");
            }
            Op::Clean { later, capacity } => {
                let now = wall_clock_ms() + if later { 120_000 } else { 0 };
                tombstones_may_go |= later;
                clean(&mut log, now, capacity);
            }
            Op::CrashDuringClean(step) => {
                crash_during_clean(dir.path(), &mut log, step);
                drop(log);
                log = PartitionLog::open(dir.path(), cfg.clone(), false).expect("reopen");
                let leftovers = std::fs::read_dir(dir.path())
                    .expect("dir")
                    .filter_map(|e| e.ok())
                    .any(|e| {
                        let n = e.file_name();
                        let n = n.to_string_lossy();
                        n.ends_with(".cleaned") || n.ends_with(".swap")
                    });
                prop_assert!(!leftovers, "cleaner files left after recovery");
            }
            Op::Restart { clean } => {
                if clean {
                    log.close().expect("close");
                }
                drop(log);
                log = PartitionLog::open(dir.path(), cfg.clone(), clean).expect("reopen");
            }
        }
        check(&log, &history, tombstones_may_go);
    }
    // Finally everything cleanable is cleaned: below the active segment, one record per key.
    log.roll().expect("roll");
    let mut passes = 0;
    while clean(&mut log, wall_clock_ms(), 1000).is_some() && passes < 10 {
        passes += 1;
    }
    check(&log, &history, tombstones_may_go);
    let records = read_all(&log);
    let mut seen = std::collections::HashSet::new();
    for (_, k, _) in &records {
        prop_assert!(
            seen.insert(k.clone()),
            "key {:?} twice after a full clean",
            k
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_matches_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run_model(ops)?;
    }
}

#[test]
fn a_crash_after_a_partial_pass_keeps_the_log_consistent() {
    use Op::*;
    let ops = vec![
        Append(vec![(3, false)]),
        Append(vec![(2, false)]),
        Append(vec![(4, false)]),
        Append(vec![(4, false), (0, false), (0, false)]),
        Clean {
            later: false,
            capacity: 3,
        },
        Append(vec![(0, false), (0, false)]),
        Append(vec![(4, false)]),
        Roll,
        Clean {
            later: false,
            capacity: 3,
        },
        Append(vec![(0, false)]),
        Roll,
        CrashDuringClean(1),
    ];
    run_model(ops).expect("model");
}
