//! Benchmarks of the storage engine's hot paths on realistic bytes: 16 KiB produce batches of
//! 1 KiB records (roughly what a Kafka producer with `batch.size=16384` sends).
//!
//! - `log/validate`: full batch validation (framing, CRC-32C), the produce path's CPU cost.
//! - `log/append`: validate + assign offsets + write to a segment file (page cache, no fsync).
//! - `log/read`: fetches of 1 MiB and of a single batch from a 64 MiB log, via the offset index.
//! - `log/offset_for_timestamp`: ListOffsets by timestamp through the time index.
//!
//! Measurement times are short so that `cargo bench --bench log` finishes in well under a
//! minute; pass criterion's own flags to measure longer.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use esker::log::batch::{self, BatchBuilder};
use esker::log::{LogConfig, PartitionLog};

const RECORD_VALUE_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 15;
/// Batches in the log the read benchmarks fetch from (about 64 MiB).
const READ_LOG_BATCHES: i64 = 4096;

/// A batch of 15 records with 1 KiB values and 16-byte keys: just under 16 KiB.
fn produce_batch(timestamp: i64) -> BytesMut {
    let value: Vec<u8> = (0..RECORD_VALUE_BYTES).map(|i| (i % 251) as u8).collect();
    let mut builder = BatchBuilder::new(timestamp);
    for i in 0..RECORDS_PER_BATCH {
        let key = format!("key-{i:012}");
        builder.record(Some(key.as_bytes()), Some(&value), timestamp + i as i64);
    }
    builder.build()
}

fn must<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark setup failed: {e:?}"),
    }
}

fn fill_log(dir: &Path, batches: i64) -> PartitionLog {
    let mut log = must(PartitionLog::open(dir, LogConfig::default(), false));
    for i in 0..batches {
        must(log.append(produce_batch(i * 100), None));
    }
    log
}

fn bench_validate(c: &mut Criterion) {
    let batch = produce_batch(0);
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.bench_function("validate/16KiB", |b| {
        b.iter(|| must(batch::validate(black_box(&batch))))
    });
    group.finish();
}

fn bench_append(c: &mut Criterion) {
    let batch = produce_batch(0);
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    // A fresh log per sample keeps the disk footprint to one sample's worth of appends.
    group.bench_function("append/16KiB", |b| {
        b.iter_custom(|iters| {
            let dir = must(tempfile::tempdir());
            let mut log = must(PartitionLog::open(dir.path(), LogConfig::default(), false));
            let copies: Vec<BytesMut> = (0..iters).map(|_| batch.clone()).collect();
            let start = Instant::now();
            for copy in copies {
                must(log.append(copy, None));
            }
            start.elapsed()
        })
    });
    group.bench_function("append/16KiB+log_append_time", |b| {
        b.iter_custom(|iters| {
            let dir = must(tempfile::tempdir());
            let mut log = must(PartitionLog::open(dir.path(), LogConfig::default(), false));
            let copies: Vec<BytesMut> = (0..iters).map(|_| batch.clone()).collect();
            let start = Instant::now();
            for (i, copy) in copies.into_iter().enumerate() {
                must(log.append(copy, Some(1_700_000_000_000 + i as i64)));
            }
            start.elapsed()
        })
    });
    group.finish();
}

fn bench_read(c: &mut Criterion) {
    let dir = must(tempfile::tempdir());
    let log = fill_log(dir.path(), READ_LOG_BATCHES);
    let end = log.log_end_offset();
    let batch_len = produce_batch(0).len();
    let mut group = c.benchmark_group("log");

    group.throughput(Throughput::Bytes(1024 * 1024));
    let mut offset = 0;
    group.bench_function("read/1MiB", |b| {
        b.iter(|| {
            let result = must(log.read(black_box(offset), 1024 * 1024));
            // Walk the log in 1 MiB steps, starting mid-batch, wrapping at the end.
            offset = (offset + 1_021) % (end - 1_024);
            result
        })
    });

    group.throughput(Throughput::Bytes(batch_len as u64));
    let mut offset = 0;
    group.bench_function("read/one_batch", |b| {
        b.iter(|| {
            let result = must(log.read(black_box(offset), 1));
            offset = (offset + 7_919) % end;
            result
        })
    });
    group.finish();

    let mut group = c.benchmark_group("log");
    let mut target = 0;
    group.bench_function("offset_for_timestamp", |b| {
        b.iter_batched(
            || {
                target = (target + 104_729) % (READ_LOG_BATCHES * 100);
                target
            },
            |ts| must(log.offset_for_timestamp(ts)),
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_validate, bench_append, bench_read
}
criterion_main!(benches);
