//! Disk full (issue 19): the broker's data directory on a small file system (a tmpfs, and a
//! loop-mounted ext4 image: ENOSPC with a journal and delayed allocation), filled by acks=all
//! producers until produce answers KAFKA_STORAGE_ERROR. Everything acknowledged stays readable
//! while the file system is full, an offset commit answers COORDINATOR_NOT_AVAILABLE, and once
//! space returns (a filler file deleted) produce and commit succeed again without a restart;
//! after a restart every acknowledged record is still there.
//!
//! Needs root (mount); skips with a message otherwise.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{consumer_config, producer_config, TestBroker, TIMEOUT};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "full";
const PARTITIONS: i32 = 2;
const VALUE_SIZE: usize = 4096;

/// A file system mounted for the test; unmounted (lazily, so an open file cannot keep it) on
/// drop, whichever way the test ends (a loop device set up by `mount -o loop` is released with
/// it).
struct Mount(PathBuf);

#[derive(Clone, Copy, Debug)]
enum Fs {
    /// `mount -t tmpfs -o size=8m`.
    Tmpfs,
    /// A 12 MiB ext4 image, `mount -o loop`.
    Ext4,
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(())
}

impl Mount {
    fn new(fs: Fs, path: &Path, scratch: &Path) -> Result<Mount, String> {
        match fs {
            Fs::Tmpfs => run(Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=8m", "esker-disk-full"])
                .arg(path))?,
            Fs::Ext4 => {
                let image = scratch.join("fs.img");
                let f = std::fs::File::create(&image).map_err(|e| e.to_string())?;
                f.set_len(12 << 20).map_err(|e| e.to_string())?;
                run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image))?;
                run(Command::new("mount")
                    .args(["-o", "loop"])
                    .arg(&image)
                    .arg(path))?
            }
        }
        Ok(Mount(path.to_path_buf()))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn value(i: usize) -> String {
    let head = format!("record-{i:08}-");
    format!("{head}{}", "x".repeat(VALUE_SIZE - head.len()))
}

/// Produces numbered records (16 in flight) from `first` until one fails or `limit` were sent;
/// returns what was acknowledged (`(partition, offset) → value`) and the first error.
async fn produce_until_error(
    bootstrap: &str,
    first: usize,
    limit: usize,
) -> (HashMap<(i32, i64), String>, Option<KafkaError>) {
    let producer: FutureProducer = producer_config(bootstrap, "all")
        .set("message.send.max.retries", "0")
        .set("message.timeout.ms", "10000")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let mut acked = HashMap::new();
    let mut error = None;
    let mut i = first;
    while error.is_none() && i < first + limit {
        let batch: Vec<String> = (i..i + 16).map(value).collect();
        i += 16;
        let sends = batch.iter().map(|v| {
            let rec = FutureRecord::to(TOPIC).key(&v[..15]).payload(v);
            producer.send(rec, Duration::from_secs(10))
        });
        for (v, r) in batch.iter().zip(futures::future::join_all(sends).await) {
            match r {
                Ok(d) => {
                    acked.insert((d.partition, d.offset), v.clone());
                }
                Err((e, _)) => {
                    error.get_or_insert(e);
                }
            }
        }
    }
    (acked, error)
}

/// Reads both partitions from the beginning to their high watermarks (offsets contiguous from
/// 0; librdkafka checks every batch's CRC, so a half-written batch would fail the read).
fn read_all(bootstrap: &str) -> HashMap<(i32, i64), String> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut total = 0;
    let mut next = HashMap::new();
    for p in 0..PARTITIONS {
        let (low, high) = consumer
            .fetch_watermarks(TOPIC, p, TIMEOUT)
            .expect("watermarks");
        assert_eq!(low, 0);
        total += high;
        next.insert(p, 0i64);
        tpl.add_partition_offset(TOPIC, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while (out.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total}", out.len());
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let n = next.get_mut(&m.partition()).expect("partition");
        assert_eq!(m.offset(), *n, "offsets are contiguous");
        *n += 1;
        let v = String::from_utf8(m.payload().expect("payload").to_vec()).expect("utf8");
        out.insert((m.partition(), m.offset()), v);
    }
    out
}

fn assert_all_readable(bootstrap: &str, acked: &HashMap<(i32, i64), String>, when: &str) {
    let stored = read_all(bootstrap);
    for (at, v) in acked {
        assert_eq!(
            stored.get(at).map(|s| &s[..15]),
            Some(&v[..15]),
            "{when}: acknowledged record at {at:?} is missing or different"
        );
    }
}

/// The broker's count of failed partition produce requests to `TOPIC` (its metrics endpoint).
async fn failed_produces(broker: &TestBroker) -> u64 {
    let (_, body) = common::http_get(broker.metrics_addr(), "/metrics").await;
    body.lines()
        .filter(|l| {
            l.starts_with("kafka_server_brokertopicmetrics_failedproducerequests_total")
                && l.contains(&format!("topic=\"{TOPIC}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Commits offset 1 of partition 0 for a standalone consumer of group `disk-full`.
fn commit(bootstrap: &str) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = consumer_config(bootstrap)
        .set("group.id", "disk-full")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Offset(1))
        .expect("tpl");
    consumer.commit(&tpl, CommitMode::Sync)
}

/// Fills what space is left on the file system holding `path` (a file written until ENOSPC),
/// so that even a small write (an offset commit) finds none; returns the bytes written.
fn fill_up(path: &Path) -> u64 {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("top-up file");
    let chunk = vec![0u8; 4096];
    let mut n = 0;
    for size in [4096, 512, 1] {
        while let Ok(w) = f.write(&chunk[..size]) {
            if w == 0 {
                break;
            }
            n += w as u64;
        }
    }
    let _ = f.sync_all();
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_tmpfs_refuses_produce_keeps_data_and_resumes() {
    disk_full(Fs::Tmpfs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_ext4_refuses_produce_keeps_data_and_resumes() {
    disk_full(Fs::Ext4).await;
}

async fn disk_full(fs: Fs) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping disk_full ({fs:?}): mounting a file system needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mount point");
    let _mount = match Mount::new(fs, &mnt, dir.path()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("skipping disk_full ({fs:?}): cannot mount: {e}");
            return;
        }
    };
    // Space to give back later.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![0u8; 2 << 20]).expect("filler");
    std::fs::File::open(&filler)
        .and_then(|f| f.sync_all())
        .expect("filler on disk");
    let data = mnt.join("data");
    let log_dirs = data.display().to_string();
    let mut broker = TestBroker::start_with(&[
        ("log.dirs", &log_dirs),
        ("log.segment.bytes", "1048576"),
        ("offsets.topic.num.partitions", "1"),
    ])
    .await;
    broker.create_topic(TOPIC, PARTITIONS).await;
    let bootstrap = broker.bootstrap();

    // An idempotent producer with its producer id (allocating one writes to disk too).
    let idempotent: FutureProducer = producer_config(&bootstrap, "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("idempotent producer");
    let v = value(99_999);
    let d = idempotent
        .send(
            FutureRecord::to(TOPIC).key(&v[..15]).payload(&v),
            Duration::from_secs(30),
        )
        .await
        .expect("idempotent produce");
    let mut first = HashMap::from([((d.partition, d.offset), v)]);

    // Fill the file system: produce fails with KAFKA_STORAGE_ERROR, not a timeout or a
    // dropped connection.
    let (mut acked, error) = produce_until_error(&bootstrap, 0, 4000).await;
    acked.extend(first.drain());
    let error = error.expect("produce fails once the file system is full");
    assert_eq!(
        error.rdkafka_error_code(),
        Some(RDKafkaErrorCode::KafkaStorageError),
        "{error}"
    );
    assert!(
        acked.len() > 100,
        "{} acknowledged before full",
        acked.len()
    );
    let topped = fill_up(&mnt.join("top-up"));
    eprintln!(
        "{fs:?}: {} records acknowledged before the disk filled ({topped} bytes were left)",
        acked.len()
    );

    // Still full: the next produce is refused the same way, every acknowledged record is
    // readable, an offset commit is refused with a retriable error.
    let (more, again) = produce_until_error(&bootstrap, 10_000, 16).await;
    let again = again.expect("still full");
    assert_eq!(
        again.rdkafka_error_code(),
        Some(RDKafkaErrorCode::KafkaStorageError)
    );
    acked.extend(more);
    let b = bootstrap.clone();
    let a = acked.clone();
    tokio::task::spawn_blocking(move || assert_all_readable(&b, &a, "while full"))
        .await
        .expect("read while full");
    let b = bootstrap.clone();
    let committed = tokio::task::spawn_blocking(move || commit(&b))
        .await
        .expect("commit");
    let e = committed.expect_err("a commit cannot be written while the disk is full");
    assert_eq!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::CoordinatorNotAvailable),
        "{e}"
    );

    // An idempotent producer that keeps retrying (librdkafka's defaults: KAFKA_STORAGE_ERROR
    // is retriable) while the disk is full ...
    let failed_before = failed_produces(&broker).await;
    let retrying: Vec<_> = (30_000..30_008)
        .map(|i| {
            let (p, v) = (idempotent.clone(), value(i));
            tokio::spawn(async move {
                let rec = FutureRecord::to(TOPIC).key(&v[..15]).payload(&v);
                p.send(rec, Duration::from_secs(60))
                    .await
                    .map(|d| ((d.partition, d.offset), v.clone()))
                    .map_err(|(e, _)| e)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while failed_produces(&broker).await < failed_before + 2 {
        assert!(
            Instant::now() < deadline,
            "the idempotent producer was never refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Space returns: produce and commit succeed without a restart; the retrying idempotent
    // producer gets through (no sequence was consumed by the failed appends).
    std::fs::remove_file(&filler).expect("free space");
    std::fs::remove_file(mnt.join("top-up")).expect("free space");
    for r in retrying {
        let (at, v) = r
            .await
            .expect("task")
            .expect("a retried idempotent produce succeeds once space returns");
        acked.insert(at, v);
    }
    let (more, none) = produce_until_error(&bootstrap, 20_000, 64).await;
    assert!(none.is_none(), "produce after space returned: {none:?}");
    assert_eq!(more.len(), 64);
    acked.extend(more);
    let b = bootstrap.clone();
    tokio::task::spawn_blocking(move || commit(&b))
        .await
        .expect("commit")
        .expect("commit after space returned");

    // Nothing acknowledged is lost across a restart (recovery reads what was written).
    broker.restart().await;
    let b = broker.bootstrap();
    let a = acked.clone();
    tokio::task::spawn_blocking(move || assert_all_readable(&b, &a, "after restart"))
        .await
        .expect("read after restart");
    broker.stop().await;
}
