//! Crash tests against the `esker` binary as a child process:
//!
//! - Several cycles of: start, produce with acks=-1 from concurrent tasks, SIGKILL at a random
//!   moment, restart, and check that every acknowledged message is readable at its offset, that
//!   offsets are contiguous from 0 and that no message appears twice (unacknowledged messages
//!   may or may not be there, but only whole: librdkafka checks every batch's CRC).
//! - After a SIGKILL (no clean-shutdown marker), a bit flip in a middle segment and then a torn
//!   last segment are detected at the next start, the log is truncated at the damage, and the
//!   loss is reported in the broker's log with its byte counts.
//!
//! The random kill points come from a seed printed at the start; set `ESKER_CRASH_SEED` to
//! replay one.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{consumer_config, producer_config, TIMEOUT};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// An acknowledged message: `((partition, offset), value)`.
type Acked = ((i32, i64), String);

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn sigkill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Starts the broker on `dir`, its log lines appended to `log`, and waits until it listens.
fn spawn_broker(dir: &Path, port: u16, extra: &[&str], log: &Path) -> Proc {
    let out = File::options()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    let mut args = vec![
        "-o".to_string(),
        format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
        "-o".to_string(),
        format!("log.dirs={}", dir.display()),
        "-o".to_string(),
        "num.shards=2".to_string(),
    ];
    for e in extra {
        args.push("-o".to_string());
        args.push(e.to_string());
    }
    let child = Command::new(env!("CARGO_BIN_EXE_esker"))
        .args(&args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::from(out.try_clone().expect("log handle")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("spawn esker");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(10));
    }
    Proc(child)
}

/// xorshift64*: enough randomness for kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn from_env_or_clock() -> Rng {
        let seed = std::env::var("ESKER_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("ESKER_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

/// Reads every partition of `topic` from the beginning to its high watermark:
/// `(partition, offset) → value`, checking offsets are contiguous from the log start.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> HashMap<(i32, i64), String> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut ends = HashMap::new();
    let mut next = HashMap::new();
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, TIMEOUT)
            .expect("watermarks");
        assert_eq!(low, 0, "nothing was deleted");
        ends.insert(p, high);
        next.insert(p, low);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    let total: i64 = ends.values().sum();
    consumer.assign(&tpl).expect("assign");
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while (out.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total}", out.len());
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume (librdkafka checks every batch's CRC)");
        let p = m.partition();
        let n = next.get_mut(&p).expect("partition");
        assert_eq!(m.offset(), *n, "offsets of partition {p} are contiguous");
        *n += 1;
        let v = String::from_utf8(m.payload().expect("payload").to_vec()).expect("utf8");
        out.insert((p, m.offset()), v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_sigkill_under_acks_all_loses_nothing_acknowledged() {
    const TOPIC: &str = "cycles";
    const PARTITIONS: i32 = 3;
    const CYCLES: usize = 5;
    let mut rng = Rng::from_env_or_clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let extra = [
        "num.partitions=3",
        // Small segments, so kills land around rolls too; frequent recovery-point checkpoints,
        // so restarts trust part of the log and scan the rest.
        "log.segment.bytes=65536",
        "log.flush.offset.checkpoint.interval.ms=100",
    ];
    let mut acked: HashMap<(i32, i64), String> = HashMap::new();
    let started = Instant::now();

    for cycle in 0..CYCLES {
        let broker = spawn_broker(&data, port, &extra, &log);
        if cycle > 0 {
            // Every acknowledged message survived the previous kill.
            let b = bootstrap.clone();
            let read = tokio::task::spawn_blocking(move || read_all(&b, TOPIC, PARTITIONS))
                .await
                .expect("verification");
            verify(&read, &acked);
        }

        let mut cfg = producer_config(&bootstrap, "-1");
        cfg.set("message.send.max.retries", "0")
            .set("message.timeout.ms", "3000")
            .set("linger.ms", "1");
        let producer: FutureProducer = cfg.create().expect("producer");
        let cycle_acks: Arc<Mutex<Vec<Acked>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..6 {
            let producer = producer.clone();
            let acks = cycle_acks.clone();
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let value = format!("c{cycle}-w{w}-m{i}");
                    i += 1;
                    let rec = FutureRecord::to(TOPIC).key(&value).payload(&value);
                    if let Ok(d) = producer.send(rec, Duration::from_secs(3)).await {
                        acks.lock()
                            .expect("lock")
                            .push(((d.partition, d.offset), value));
                    }
                }
            }));
        }
        // Kill at a random point once producing is under way.
        let deadline = Instant::now() + Duration::from_secs(30);
        while cycle_acks.lock().expect("lock").len() < 200 {
            assert!(Instant::now() < deadline, "no progress in cycle {cycle}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(1200))).await;
        broker.sigkill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("producer task");
        }
        drop(producer);
        let acks = std::mem::take(&mut *cycle_acks.lock().expect("lock"));
        eprintln!("cycle {cycle}: {} acknowledged before the kill", acks.len());
        for (key, value) in acks {
            assert!(
                acked.insert(key, value).is_none(),
                "offset {key:?} acknowledged twice"
            );
        }
    }

    let _broker = spawn_broker(&data, port, &extra, &log);
    let b = bootstrap.clone();
    let read = tokio::task::spawn_blocking(move || read_all(&b, TOPIC, PARTITIONS))
        .await
        .expect("verification");
    verify(&read, &acked);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("recovered partition log"),
        "restarts after SIGKILL ran recovery"
    );
    eprintln!(
        "{CYCLES} kills, {} acknowledged, {} stored, {:?}",
        acked.len(),
        read.len(),
        started.elapsed()
    );
}

/// Every acknowledged message is at its offset; no value is stored twice.
fn verify(read: &HashMap<(i32, i64), String>, acked: &HashMap<(i32, i64), String>) {
    for (key, value) in acked {
        assert_eq!(
            read.get(key),
            Some(value),
            "acknowledged message at {key:?} is missing or different"
        );
    }
    let mut seen = HashSet::new();
    for value in read.values() {
        assert!(value.starts_with('c') && value.contains("-w") && value.contains("-m"));
        assert!(seen.insert(value), "{value} stored twice");
    }
}

/// `(position, base offset, size)` of every batch in a segment file.
fn batches(file: &Path) -> Vec<(usize, i64, usize)> {
    let bytes = std::fs::read(file).expect("segment");
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 12 <= bytes.len() {
        let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"));
        let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
        let size = 12 + len as usize;
        out.push((pos, base, size));
        pos += size;
    }
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("partition dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_after_a_crash_is_truncated_and_reported() {
    const TOPIC: &str = "damaged";
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    // No recovery-point checkpoint during the test, so the restart scans every segment.
    let extra = [
        "num.partitions=1",
        "log.segment.bytes=16384",
        "log.flush.offset.checkpoint.interval.ms=3600000",
    ];
    let broker = spawn_broker(&data, port, &extra, &log);
    let producer: FutureProducer = producer_config(&bootstrap, "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let payload = "x".repeat(200);
    for i in 0..300 {
        let value = format!("{i:05}-{payload}");
        producer
            .send(FutureRecord::<(), _>::to(TOPIC).payload(&value), TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    drop(producer);
    broker.sigkill();
    assert!(!data.join(".kafka_cleanshutdown").exists());

    // Flip one bit inside the records (CRC-covered) of the 5th batch of the second segment.
    let partition = data.join(format!("{TOPIC}-0"));
    let files = segment_files(&partition);
    assert!(files.len() >= 4, "{} segments", files.len());
    let (pos, flipped_offset, _) = batches(&files[1])[4];
    let mut bytes = std::fs::read(&files[1]).expect("read");
    bytes[pos + 80] ^= 0x08;
    std::fs::write(&files[1], &bytes).expect("write");

    let broker = spawn_broker(&data, port, &extra, &log);
    let b = bootstrap.clone();
    let read = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = consumer_config(&b).create().expect("consumer");
        consumer
            .fetch_watermarks(TOPIC, 0, TIMEOUT)
            .expect("watermarks")
    })
    .await
    .expect("watermarks");
    assert_eq!(read, (0, flipped_offset), "truncated at the flipped batch");
    let text = std::fs::read_to_string(&log).expect("broker log");
    assert!(
        text.contains("truncating a torn or corrupt segment tail") && text.contains("crc mismatch"),
        "the loss is reported:\n{text}"
    );
    assert!(text.contains("truncated_bytes="), "with its size");
    assert!(text.contains("deleted segments after a corrupt or inconsistent segment"));
    assert_eq!(segment_files(&partition).len(), 2);
    let b = bootstrap.clone();
    let all = tokio::task::spawn_blocking(move || read_all(&b, TOPIC, 1))
        .await
        .expect("read");
    assert_eq!(all.len() as i64, flipped_offset);
    for ((_, offset), value) in &all {
        assert!(value.starts_with(&format!("{offset:05}-")), "intact record");
    }

    // More data, another crash, and a torn last batch in the active segment.
    let producer: FutureProducer = producer_config(&bootstrap, "1")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    for i in flipped_offset..flipped_offset + 20 {
        let value = format!("{i:05}-{payload}");
        producer
            .send(FutureRecord::<(), _>::to(TOPIC).payload(&value), TIMEOUT)
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    drop(producer);
    broker.sigkill();
    let last = segment_files(&partition).pop().expect("segment");
    let (pos, torn_offset, size) = *batches(&last).last().expect("a batch");
    let file = File::options().write(true).open(&last).expect("open");
    file.set_len((pos + size / 2) as u64).expect("truncate");
    drop(file);

    let _broker = spawn_broker(&data, port, &extra, &log);
    let b = bootstrap.clone();
    let all = tokio::task::spawn_blocking(move || read_all(&b, TOPIC, 1))
        .await
        .expect("read");
    assert_eq!(all.len() as i64, torn_offset, "torn batch dropped");
    let text = std::fs::read_to_string(&log).expect("broker log");
    assert_eq!(
        text.matches("truncating a torn or corrupt segment tail")
            .count(),
        2,
        "both repairs reported"
    );
}
