//! Throughput of the log cleaner on one partition log, against the machine's sequential read
//! of the same files measured in the same run.
//!
//! For each key-space size, a fresh compacted [`PartitionLog`] is filled with `--mb` MB of
//! updates (`--value-bytes` values, 16-byte keys, 100 records a batch, uncompressed) cycling
//! over the keys, the active segment is rolled so all of it is cleanable, and then:
//!
//! - the reference: every `.log` file read sequentially in 1 MiB chunks (page cache warm, as it
//!   is for the pass, which follows the writes just like the broker's cleaner follows produce);
//! - one cleaning pass: [`cleaner::run`] (offset map over the dirty segments, rewrite, fsync of
//!   the cleaned files), timed on its own, then [`PartitionLog::commit_clean`] (the swap).
//!
//! Cleaned MB/s is the bytes of the segments the pass covered ([`CleanPlan::bytes`]) divided by
//! the run time. Each configuration is repeated `--repeat` times; the median is reported.
//!
//! ```text
//! cargo bench --bench compaction
//! taskset -c 1 cargo bench --bench compaction -- --mb 256 --keys 1000,100000 --repeat 3
//! ```
//!
//! [`CleanPlan::bytes`]: esker::log::cleaner::CleanPlan::bytes

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use esker::log::batch::BatchBuilder;
use esker::log::cleaner::{self, CleanStats, BYTES_PER_MAP_ENTRY};
use esker::log::{LogConfig, PartitionLog};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser, Debug)]
#[command(about = "Esker log cleaner throughput against a sequential read of the same files")]
struct Args {
    /// MB of records written to the log before the pass.
    #[arg(long, default_value_t = 256)]
    mb: u64,
    /// Key-space sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1_000u64, 100_000])]
    keys: Vec<u64>,
    /// Value bytes of each record.
    #[arg(long, default_value_t = 200)]
    value_bytes: usize,
    /// `segment.bytes` of the log.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    segment_bytes: u64,
    /// `log.cleaner.dedupe.buffer.size`: bytes of the offset map (24 per key).
    #[arg(long, default_value_t = 134_217_728)]
    dedupe_buffer_size: u64,
    /// Runs of each configuration (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Directory for the logs (default: the system temp dir).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const RECORDS_PER_BATCH: u64 = 100;
const READ_CHUNK: usize = 1024 * 1024;

fn must<T, E: std::fmt::Debug>(result: Result<T, E>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("benchmark failed: {e:?}"),
    }
}

fn now_ms() -> i64 {
    must(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)).as_millis() as i64
}

/// Fills a compacted log in `dir` with `bytes` of updates over `keys` keys and rolls it.
fn fill(dir: &Path, args: &Args, keys: u64, bytes: u64) -> PartitionLog {
    let config = LogConfig {
        segment_bytes: args.segment_bytes,
        retention_ms: None,
        compact: true,
        min_cleanable_dirty_ratio: 0.0,
        ..LogConfig::default()
    };
    let mut log = must(PartitionLog::open(dir, config, true));
    let mut value = vec![0u8; args.value_bytes];
    let mut i = 0u64;
    while log.size_bytes() < bytes {
        let ts = now_ms();
        let mut b = BatchBuilder::new(ts);
        for _ in 0..RECORDS_PER_BATCH {
            // A scattered key order (Knuth's multiplicative hash), every key updated in turn.
            let key = format!("key-{:012}", i.wrapping_mul(2_654_435_761) % keys);
            value[..8].copy_from_slice(&i.to_be_bytes());
            b.record(Some(key.as_bytes()), Some(&value), ts);
            i += 1;
        }
        must(log.append(b.build(), None));
    }
    must(log.roll());
    log
}

/// Seconds to read every `.log` file of `dir` sequentially in 1 MiB chunks; and the bytes.
fn read_files(dir: &Path) -> (Duration, u64) {
    let mut paths: Vec<_> = must(std::fs::read_dir(dir))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    let mut buf = vec![0u8; READ_CHUNK];
    let mut total = 0u64;
    let start = Instant::now();
    for p in &paths {
        let mut f = must(std::fs::File::open(p));
        loop {
            let n = must(f.read(&mut buf));
            if n == 0 {
                break;
            }
            total += n as u64;
            std::hint::black_box(&buf[..n]);
        }
    }
    (start.elapsed(), total)
}

struct Run {
    pass_bytes: u64,
    run: Duration,
    commit: Duration,
    reference: Duration,
    reference_bytes: u64,
    stats: CleanStats,
}

fn one_run(args: &Args, keys: u64) -> Run {
    let tmp = match &args.dir {
        Some(d) => must(tempfile::tempdir_in(d)),
        None => must(tempfile::tempdir()),
    };
    let dir = tmp.path().join("bench-0");
    let mut log = fill(&dir, args, keys, args.mb * 1_000_000);
    let (reference, reference_bytes) = read_files(&dir);
    let capacity = (args.dedupe_buffer_size / BYTES_PER_MAP_ENTRY) as usize;
    let plan = log
        .plan_clean(now_ms(), log.log_end_offset(), HashMap::new(), capacity)
        .expect("a pass is due");
    let start = Instant::now();
    let done = must(cleaner::run(&plan, &|_| true));
    let run = start.elapsed();
    let start = Instant::now();
    let stats = must(log.commit_clean(done)).expect("the pass was committed");
    let commit = start.elapsed();
    Run {
        pass_bytes: plan.bytes(),
        run,
        commit,
        reference,
        reference_bytes,
        stats,
    }
}

fn main() {
    let args = Args::parse();
    println!(
        "log cleaner: {} MB per log, {}-byte values, 16-byte keys, {} records/batch, \
         segment.bytes {}, offset map {} entries, median of {}",
        args.mb,
        args.value_bytes,
        RECORDS_PER_BATCH,
        args.segment_bytes,
        args.dedupe_buffer_size / BYTES_PER_MAP_ENTRY,
        args.repeat
    );
    let mut rows = Vec::new();
    for &keys in &args.keys {
        let mut runs: Vec<Run> = (0..args.repeat.max(1))
            .map(|_| one_run(&args, keys))
            .collect();
        let mbs = |r: &Run| r.pass_bytes as f64 / r.run.as_secs_f64() / 1e6;
        let read_mbs = |r: &Run| r.reference_bytes as f64 / r.reference.as_secs_f64() / 1e6;
        for r in &runs {
            println!(
                "  keys {keys}: run {:.3} s over {} B ({:.0} MB/s), read {:.3} s ({:.0} MB/s)",
                r.run.as_secs_f64(),
                r.pass_bytes,
                mbs(r),
                r.reference.as_secs_f64(),
                read_mbs(r)
            );
        }
        runs.sort_by(|a, b| mbs(a).total_cmp(&mbs(b)));
        let cleaned = mbs(&runs[runs.len() / 2]);
        let mut reads: Vec<f64> = runs.iter().map(read_mbs).collect();
        reads.sort_by(f64::total_cmp);
        let read = reads[reads.len() / 2];
        let m = &runs[runs.len() / 2];
        rows.push(format!(
            "| {keys} | {cleaned:.0} | {:.1} | {read:.0} | {:.3} | {:.1} | {} | {} |",
            m.commit.as_secs_f64() * 1e3,
            cleaned / read,
            m.stats.bytes_written as f64 / 1e6,
            m.stats.records_kept,
            m.stats.records_removed,
        ));
    }
    println!(
        "| keys | cleaned MB/s (run) | commit ms | sequential read MB/s | cleaned/read | \
         written MB | records kept | records removed |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
}
