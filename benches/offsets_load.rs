//! How long a restarted broker takes before a group's committed offset can be fetched, after
//! the group committed `--commits` times, with the log cleaner compacting `__consumer_offsets`
//! (`log.cleaner.enable=true`) and without it (`false`), in the same run.
//!
//! For each setting an in-process Esker (temp data dir, `offsets.topic.num.partitions=1`,
//! `offsets.topic.segment.bytes` = `--segment-bytes` so the offsets log rolls and becomes cleanable)
//! takes the commits of `--clients` rdkafka consumers of the group (synchronous OffsetCommits of
//! one partition, in parallel), waits with the cleaner on until `__consumer_offsets` is
//! compacted (its `.log` bytes under `--compacted-bytes`, bounded by `--settle-secs`), and is
//! shut down cleanly. Then it is started again `--restarts` times on the same directory; each
//! time the figure is the wall time from `Broker::start` (which replays `__consumer_offsets`
//! before it opens its listeners) until a new consumer's OffsetFetch answers the last
//! committed offset (client start-up included), and the coordinator's own replay time (the
//! `elapsed_ms` of its "group coordinator loaded" log line). Medians are reported with the size
//! of the offsets log.
//!
//! ```text
//! cargo bench --bench offsets_load
//! cargo bench --bench offsets_load -- --commits 200000 --restarts 3
//! ```

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// See `MALLOC_CONF` in src/main.rs.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"oversize_threshold:0\0";

#[derive(Parser, Debug)]
#[command(about = "Esker group coordinator load time after a restart, cleaner on and off")]
struct Args {
    /// Offset commits of the group before the restart.
    #[arg(long, default_value_t = 200_000)]
    commits: u64,
    /// Consumer clients committing in parallel (synchronous commits each).
    #[arg(long, default_value_t = 8)]
    clients: u64,
    /// `offsets.topic.segment.bytes` of the broker (the segments of `__consumer_offsets`).
    #[arg(long, default_value_t = 1_048_576)]
    segment_bytes: u64,
    /// With the cleaner on: the offsets log counts as compacted below this many bytes.
    #[arg(long, default_value_t = 3 * 1_048_576)]
    compacted_bytes: u64,
    /// With the cleaner on: how long to wait at most for the compaction.
    #[arg(long, default_value_t = 120)]
    settle_secs: u64,
    /// Restarts measured per setting (the median is reported).
    #[arg(long, default_value_t = 3)]
    restarts: usize,
    /// Shards of the broker (0 = one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Extra `key=value` broker settings for both runs; may be repeated.
    #[arg(long = "broker-config")]
    broker_config: Vec<String>,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

const TOPIC: &str = "events";
const GROUP: &str = "committer";
const TIMEOUT: Duration = Duration::from_secs(30);

/// The broker's log lines (its `tracing` output, at info), for the coordinator's own figure.
#[derive(Clone, Default)]
struct LogLines(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogLines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lines").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogLines {
    /// `elapsed_ms` of the last "group coordinator loaded" line, and forgets the lines.
    fn take_load_ms(&self) -> Option<u64> {
        let mut buf = self.0.lock().expect("log lines");
        let text = String::from_utf8_lossy(&buf).into_owned();
        buf.clear();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("group coordinator loaded"))?;
        let at = line.find("elapsed_ms=")? + "elapsed_ms=".len();
        let digits: String = line[at..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    }
}

fn config(args: &Args, dir: &Path, cleaner: bool) -> esker::Config {
    let mut pairs: Vec<(String, String)> = [
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.display().to_string()),
        ("num.shards", args.shards.to_string()),
        ("kinesis.listener", String::new()),
        ("metrics.listener", String::new()),
        ("offsets.topic.num.partitions", "1".to_string()),
        (
            "offsets.topic.segment.bytes",
            args.segment_bytes.to_string(),
        ),
        ("log.cleaner.backoff.ms", "200".to_string()),
        ("log.cleaner.enable", cleaner.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for kv in &args.broker_config {
        let (k, v) = kv.split_once('=').expect("--broker-config takes key=value");
        pairs.retain(|(key, _)| key != k);
        pairs.push((k.to_string(), v.to_string()));
    }
    esker::Config::from_pairs(pairs).expect("config")
}

fn consumer_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("broker.address.family", "v4");
    c
}

/// Commits offsets 1..=n of `events`/0 for the group from `clients` consumers in parallel
/// (synchronous commits, each client its share in increasing order), then `n` once more, so it
/// is the last committed; returns the commit rate.
fn commit_all(bootstrap: &str, n: u64, clients: u64) -> f64 {
    let commit = |consumer: &BaseConsumer, offset: u64| {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(TOPIC, 0, Offset::Offset(offset as i64))
            .expect("tpl");
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    };
    let consumers: Vec<BaseConsumer> = (0..clients.max(1))
        .map(|_| consumer_config(bootstrap).create().expect("consumer"))
        .collect();
    let done = AtomicU64::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        for (t, consumer) in consumers.iter().enumerate() {
            let (done, commit) = (&done, &commit);
            s.spawn(move || {
                for offset in (1 + t as u64..=n).step_by(clients.max(1) as usize) {
                    commit(consumer, offset);
                    let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                    if d % 50_000 == 0 {
                        eprintln!("  {d} of {n} commits");
                    }
                }
            });
        }
    });
    commit(&consumers[0], n);
    n as f64 / start.elapsed().as_secs_f64()
}

/// The group's committed offset of `events`/0, once the coordinator answers it.
fn committed(bootstrap: &str) -> Option<i64> {
    let consumer: BaseConsumer = consumer_config(bootstrap).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(TOPIC, 0);
    let got = consumer.committed_offsets(tpl, TIMEOUT).ok()?;
    match got.find_partition(TOPIC, 0)?.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }
}

/// `.log` bytes and segment count of `__consumer_offsets-0`.
fn offsets_log(dir: &Path) -> (u64, usize) {
    let part = dir.join("__consumer_offsets-0");
    let mut bytes = 0;
    let mut segments = 0;
    for e in std::fs::read_dir(part).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            bytes += e.metadata().map_or(0, |m| m.len());
            segments += 1;
        }
    }
    (bytes, segments)
}

struct Outcome {
    commit_rate: f64,
    settle: Duration,
    bytes: u64,
    segments: usize,
    /// (Broker::start, until fetchable), per restart.
    restarts: Vec<(Duration, Duration)>,
    /// The coordinator's replay time (its log line), per restart.
    loads_ms: Vec<u64>,
}

async fn measure(args: &Args, cleaner: bool, log: &LogLines) -> Outcome {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let broker = esker::Broker::start(config(args, dir, cleaner))
        .await
        .expect("broker");
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    let created = admin
        .create_topics(
            &[NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let (n, clients) = (args.commits, args.clients);
    let b = bootstrap.clone();
    let commit_rate = tokio::task::spawn_blocking(move || commit_all(&b, n, clients))
        .await
        .expect("commits");
    let settle_start = Instant::now();
    if cleaner {
        let deadline = settle_start + Duration::from_secs(args.settle_secs);
        while offsets_log(dir).0 >= args.compacted_bytes && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let settle = settle_start.elapsed();
    broker.shutdown().await.expect("shutdown");
    let (bytes, segments) = offsets_log(dir);

    let mut restarts = Vec::new();
    let mut loads_ms = Vec::new();
    for _ in 0..args.restarts.max(1) {
        log.take_load_ms();
        let t0 = Instant::now();
        let broker = esker::Broker::start(config(args, dir, cleaner))
            .await
            .expect("broker restarts");
        let started = t0.elapsed();
        loads_ms.extend(log.take_load_ms());
        let b = broker.bootstrap();
        let want = args.commits as i64;
        let fetched = tokio::task::spawn_blocking(move || loop {
            if committed(&b) == Some(want) {
                return;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(300),
                "offset not fetchable"
            );
        });
        fetched.await.expect("fetch");
        restarts.push((started, t0.elapsed()));
        broker.shutdown().await.expect("shutdown");
    }
    Outcome {
        commit_rate,
        settle,
        bytes,
        segments,
        restarts,
        loads_ms,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let log = LogLines::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "esker::coordinator=info",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{} offset commits of one partition, then {} restarts per setting; offsets.topic.segment.bytes {}",
        args.commits, args.restarts, args.segment_bytes
    );
    let on = rt.block_on(measure(&args, true, &log));
    let off = rt.block_on(measure(&args, false, &log));
    println!(
        "| log.cleaner.enable | commits/s | wait for compaction s | __consumer_offsets MB (segments) \
         | coordinator replay ms | Broker::start ms | start to offset fetchable ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (label, o) in [("true", &on), ("false", &off)] {
        println!(
            "  cleaner {label}: restarts (start, fetchable) {:?}",
            o.restarts
        );
        let mut loads = o.loads_ms.clone();
        loads.sort_unstable();
        println!(
            "| {label} | {:.0} | {:.1} | {:.2} ({}) | {} | {:.0} | {:.0} |",
            o.commit_rate,
            o.settle.as_secs_f64(),
            o.bytes as f64 / 1e6,
            o.segments,
            loads
                .get(loads.len() / 2)
                .map_or("-".to_string(), |l| l.to_string()),
            median(o.restarts.iter().map(|r| r.0).collect()).as_secs_f64() * 1e3,
            median(o.restarts.iter().map(|r| r.1).collect()).as_secs_f64() * 1e3,
        );
    }
    let fetchable = |o: &Outcome| median(o.restarts.iter().map(|r| r.1).collect()).as_secs_f64();
    println!(
        "start to fetchable, cleaner on / off: {:.3}",
        fetchable(&on) / fetchable(&off)
    );
}
