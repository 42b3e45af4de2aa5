//! End-to-end throughput and latency benchmark in the spirit of `kafka-producer-perf-test` and
//! `rdkafka_performance`: rdkafka producers and consumers against an in-process Esker (or any
//! broker with `--bootstrap`, so a peer can be measured the same way), with the machine's
//! references measured in the same run so figures can be reported as ratios:
//!
//! - loopback TCP: one writer and one reader moving 2 GiB in 1 MiB writes;
//! - disk: sequential 1 MiB writes each followed by `fdatasync` (the bandwidth a durable,
//!   acks=-1 broker can at best reach), plus the latency of one 4 KiB write + `fdatasync`,
//!   on the file system of the broker's data directory (or `--disk-dir`).
//!
//! ```text
//! cargo bench --bench throughput -- --num-records 1000000 --record-size 1024 --acks 1 --linger-ms 5
//! cargo bench --bench throughput -- --mode produce --acks -1 --producers 4 --partitions 4
//! cargo bench --bench throughput -- --mode produce --acks -1 --throughput 1000 --num-records 20000 --linger-ms 0
//! cargo bench --bench throughput -- --bootstrap 127.0.0.1:9092 --mode both
//! cargo bench --bench throughput -- --bootstrap 127.0.0.1:19092 --mode produce --acks -1 --replication-factor 3
//! cargo bench --bench throughput -- --mode produce --transactional --commit-interval-ms 100
//! cargo bench --bench throughput -- --mode e2e-latency --throughput 1000 --num-records 20000
//! ```
//!
//! Output: records/s, MB/s and, for producers, latency from `send` to the delivery report
//! (p50/p95/p99/p99.9/max). With an unlimited rate the latency is dominated by time queued in
//! the client; use `--throughput` for a latency figure.
//!
//! Transactions: `--transactional` runs the produce phase twice, first with the same producers
//! idempotent and without transactions (the baseline, into `<topic>-idempotent`), then with a
//! `transactional.id` each, committing every `--commit-interval-ms`, and prints the ratio.
//! `--mode e2e-latency` measures produce-to-consume latency (the send time travels in the
//! record) of a read_uncommitted and a read_committed consumer reading side by side, first from
//! an idempotent producer, then from a transactional one committing every `--commit-interval-ms`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

// The same allocator and options as the `esker` binary (src/main.rs), so the in-process broker
// behaves like the real one.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// See `MALLOC_CONF` in src/main.rs.
#[export_name = "_rjem_malloc_conf"]
pub static MALLOC_CONF: &[u8] = b"oversize_threshold:0\0";

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Produce, then consume everything from the beginning.
    Both,
    /// Produce only.
    Produce,
    /// Fill the topic (not measured), then consume it from the beginning.
    Consume,
    /// Produce-to-consume latency of a read_uncommitted and a read_committed consumer, with an
    /// idempotent producer and then a transactional one (at `--throughput`, 1 000/s if unset).
    E2eLatency,
}

/// How the benchmark producers write.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum ProducerKind {
    /// `enable.idempotence=false` with `--acks`: the tool's producer.
    Plain,
    /// `enable.idempotence=true` (so acks=all), no transactions: the transactional runs' baseline.
    Idempotent,
    /// A `transactional.id` per producer, committing every `--commit-interval-ms`.
    Transactional,
}

impl ProducerKind {
    fn label(self) -> &'static str {
        match self {
            ProducerKind::Plain => "plain",
            ProducerKind::Idempotent => "idempotent",
            ProducerKind::Transactional => "transactional",
        }
    }
}

/// Timeout of `init_transactions` and `commit_transaction`.
const TXN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(about = "Esker end-to-end throughput and latency benchmark")]
struct Args {
    /// Broker to measure; without it an in-process Esker is started in a temp dir.
    #[arg(long)]
    bootstrap: Option<String>,
    /// What to measure.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Number of records (in total over all producers).
    #[arg(long, visible_alias = "messages", default_value_t = 300_000)]
    num_records: usize,
    /// Record value size in bytes (the key is 4 bytes more).
    #[arg(long, visible_alias = "size", default_value_t = 1024)]
    record_size: usize,
    /// Producer rate limit in records/s over all producers; -1 = unlimited.
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
    /// Producer acks (0, 1, -1/all).
    #[arg(long, default_value = "1", allow_hyphen_values = true)]
    acks: String,
    /// Producer linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// Producer batch.size in bytes.
    #[arg(long, default_value_t = 1_048_576)]
    batch_size: usize,
    /// Producer compression.type (none, gzip, snappy, lz4, zstd).
    #[arg(long, default_value = "none")]
    compression: String,
    /// Partitions of the benchmark topic; records go round-robin over them.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Replication factor of the benchmark topic when it is created (a cluster's `--bootstrap`).
    #[arg(long, default_value_t = 1)]
    replication_factor: i32,
    /// Producer clients (one connection each), sending in parallel.
    #[arg(long, default_value_t = 1)]
    producers: usize,
    /// Consumer clients; the partitions are split among them (manual assignment).
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Topic to use (created if missing); default: a fresh `bench-<pid>`.
    #[arg(long)]
    topic: Option<String>,
    /// With `--mode consume`: consume what `--topic` already holds (`--num-records` of it)
    /// instead of filling it first.
    #[arg(long)]
    no_fill: bool,
    /// Shards of the in-process broker (0 = one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Extra `key=value` settings for the in-process broker; may be repeated.
    #[arg(long = "broker-config")]
    broker_config: Vec<String>,
    /// Topic configs (`key=value`, e.g. `cleanup.policy=compact`) of the benchmark topics the
    /// tool creates; may be repeated.
    #[arg(long = "topic-config")]
    topic_config: Vec<String>,
    /// Distinct record keys: record `i` gets key `i % N` (so keys repeat, as a compacted topic
    /// needs); 0 = every record its own key.
    #[arg(long, default_value_t = 0)]
    key_space: u64,
    /// Skip the loopback TCP reference.
    #[arg(long)]
    no_loopback: bool,
    /// Skip the disk (write + fdatasync) reference.
    #[arg(long)]
    no_disk: bool,
    /// Directory for the disk reference (default: the in-process broker's data directory, or
    /// the system temp dir with `--bootstrap`).
    #[arg(long)]
    disk_dir: Option<std::path::PathBuf>,
    /// With `--bootstrap` to a broker on this machine: its process id, to report the CPU time
    /// it spent per phase (from /proc), a figure the noise of a shared machine hardly touches.
    #[arg(long)]
    broker_pid: Option<u32>,
    /// Extra librdkafka `key=value` settings for the producers (like `--producer-props`);
    /// may be repeated.
    #[arg(long = "producer-config")]
    producer_config: Vec<String>,
    /// Extra librdkafka `key=value` settings for the consumers; may be repeated.
    #[arg(long = "consumer-config")]
    consumer_config: Vec<String>,
    /// Produce in transactions (a `transactional.id` per producer, acks=all), after a baseline
    /// run of the same producers idempotent without transactions; with `--mode consume`, fill
    /// the topic in transactions.
    #[arg(long)]
    transactional: bool,
    /// With `--transactional` and `--mode e2e-latency`: commit a transaction every this many ms
    /// (checked after each send).
    #[arg(long, default_value_t = 100)]
    commit_interval_ms: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(args));
}

/// A phase's result.
struct Figures {
    records: usize,
    secs: f64,
    bytes: usize,
    /// Seconds before the first record arrived (consumers' start-up), else 0.
    startup: f64,
}

impl Figures {
    fn mbs(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
    fn rps(&self) -> f64 {
        self.records as f64 / self.secs
    }
    /// MB/s after the first record arrived.
    fn steady_mbs(&self) -> f64 {
        self.bytes as f64 / (self.secs - self.startup) / 1e6
    }
}

async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = None;
    let bootstrap = match &args.bootstrap {
        Some(b) => b.clone(),
        None => {
            let mut pairs = vec![
                (
                    "listeners".to_string(),
                    "PLAINTEXT://127.0.0.1:0".to_string(),
                ),
                ("log.dirs".to_string(), dir.path().display().to_string()),
                ("num.shards".to_string(), args.shards.to_string()),
                ("kinesis.listener".to_string(), String::new()),
                ("metrics.listener".to_string(), String::new()),
            ];
            for kv in &args.broker_config {
                let (k, v) = kv.split_once('=').expect("--broker-config takes key=value");
                pairs.retain(|(key, _)| key != k);
                pairs.push((k.to_string(), v.to_string()));
            }
            let config =
                esker::Config::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.clone())))
                    .expect("config");
            let b = esker::Broker::start(config).await.expect("broker");
            let addr = b.bootstrap();
            broker = Some(b);
            addr
        }
    };
    let topic = args
        .topic
        .clone()
        .unwrap_or_else(|| format!("bench-{}", std::process::id()));
    if args.mode != Mode::E2eLatency {
        create_topic(&bootstrap, &topic, &args).await;
    }

    println!(
        "mode={:?} records={} size={}B throughput={} acks={} linger.ms={} batch.size={} \
         compression={} partitions={} producers={} consumers={}{}{}{} broker={}",
        args.mode,
        args.num_records,
        args.record_size,
        if args.throughput < 0.0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", args.throughput)
        },
        if args.transactional || args.mode == Mode::E2eLatency {
            "all (idempotent)"
        } else {
            &args.acks
        },
        args.linger_ms,
        args.batch_size,
        args.compression,
        args.partitions,
        args.producers,
        args.consumers,
        if args.transactional || args.mode == Mode::E2eLatency {
            format!(" commit.interval={}ms", args.commit_interval_ms)
        } else {
            String::new()
        },
        match args.key_space {
            0 => String::new(),
            n => format!(" key.space={n}"),
        },
        if args.topic_config.is_empty() {
            String::new()
        } else {
            format!(" topic.config={}", args.topic_config.join(","))
        },
        args.bootstrap.as_deref().unwrap_or("in-process esker")
    );
    let mut produced = None;
    let mut consumed = None;
    // CPU seconds so far of the broker (with `--broker-pid`) and of this process (the clients;
    // with an in-process broker it would include the broker, so only with `--bootstrap`).
    let cpu = || {
        (
            args.broker_pid.and_then(process_cpu_secs),
            args.bootstrap
                .as_ref()
                .and_then(|_| process_cpu_secs(std::process::id())),
        )
    };
    let report_cpu = |phase: &str, before: (Option<f64>, Option<f64>), f: &Figures| {
        let gb = f.bytes as f64 / 1e9;
        let after = cpu();
        if let (Some(b), Some(a)) = (before.0, after.0) {
            println!(
                "broker CPU during {phase}: {:.2} s, {:.3} CPU-s per GB",
                a - b,
                (a - b) / gb
            );
        }
        if let (Some(b), Some(a)) = (before.1, after.1) {
            println!(
                "client CPU during {phase}: {:.2} s, {:.3} CPU-s per GB",
                a - b,
                (a - b) / gb
            );
        }
    };
    match args.mode {
        Mode::Produce | Mode::Both if args.transactional => {
            // The same producers idempotent without transactions first, into a topic of their own
            // (so a `both` run consumes only the transactional records).
            let baseline_topic = format!("{topic}-idempotent");
            create_topic(&bootstrap, &baseline_topic, &args).await;
            let c = cpu();
            let b = produce(
                &args,
                &bootstrap,
                &baseline_topic,
                ProducerKind::Idempotent,
                true,
            )
            .await;
            report_cpu("produce (idempotent)", c, &b);
            let c = cpu();
            let f = produce(&args, &bootstrap, &topic, ProducerKind::Transactional, true).await;
            report_cpu("produce (transactional)", c, &f);
            println!(
                "transactional/idempotent: {:.3} of the records/s",
                f.rps() / b.rps()
            );
            produced = Some(f);
        }
        Mode::Produce | Mode::Both => {
            let c = cpu();
            let f = produce(&args, &bootstrap, &topic, ProducerKind::Plain, true).await;
            report_cpu("produce", c, &f);
            produced = Some(f);
        }
        Mode::Consume => {
            if !args.no_fill {
                let kind = if args.transactional {
                    ProducerKind::Transactional
                } else {
                    ProducerKind::Plain
                };
                produce(&args, &bootstrap, &topic, kind, false).await;
            }
        }
        Mode::E2eLatency => e2e_latency(&args, &bootstrap, &topic).await,
    }
    if args.mode != Mode::Produce && args.mode != Mode::E2eLatency {
        let c = cpu();
        let f = consume(&args, &bootstrap, &topic).await;
        report_cpu("consume", c, &f);
        consumed = Some(f);
    }

    let loopback = (!args.no_loopback).then(|| {
        // The best of three: the reference is what the machine can do, and it is noisy.
        let runs: Vec<f64> = (0..3).map(|_| loopback_mbs()).collect();
        let lo = runs.iter().copied().fold(0.0, f64::max);
        println!(
            "reference loopback TCP: {lo:.0} MB/s (best of {:.0}, {:.0}, {:.0})",
            runs[0], runs[1], runs[2]
        );
        lo
    });
    let disk = (!args.no_disk).then(|| {
        let disk_dir = args
            .disk_dir
            .clone()
            .unwrap_or_else(|| match &args.bootstrap {
                Some(_) => std::env::temp_dir(),
                None => dir.path().to_path_buf(),
            });
        let (mbs, p50) = disk_reference(&disk_dir);
        println!(
            "reference disk ({}): sequential 1 MiB write + fdatasync {mbs:.0} MB/s; \
             4 KiB write + fdatasync p50 {p50:.3} ms",
            disk_dir.display()
        );
        mbs
    });
    let ratio = |f: &Option<Figures>, r: Option<f64>| match (f, r) {
        (Some(f), Some(r)) => format!("{:.3}", f.mbs() / r),
        _ => "-".to_string(),
    };
    if (loopback.is_some() || disk.is_some()) && args.mode != Mode::E2eLatency {
        let steady = match (&consumed, loopback) {
            (Some(f), Some(lo)) => format!(" ({:.3} after the first record)", f.steady_mbs() / lo),
            _ => String::new(),
        };
        println!(
            "ratios: produce/loopback {}, consume/loopback {}{steady}, produce/disk {}",
            ratio(&produced, loopback),
            ratio(&consumed, loopback),
            ratio(&produced, disk),
        );
    }
    if let Some(b) = broker {
        b.shutdown().await.expect("shutdown");
    }
}

/// Creates `topic` with `--partitions`, `--replication-factor` and the `--topic-config`s
/// (an existing topic is left as it is).
async fn create_topic(bootstrap: &str, topic: &str, args: &Args) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let configs: Vec<(&str, &str)> = args
        .topic_config
        .iter()
        .map(|kv| kv.split_once('=').expect("--topic-config takes key=value"))
        .collect();
    let results = admin
        .create_topics(
            &[configs.iter().fold(
                NewTopic::new(
                    topic,
                    args.partitions,
                    TopicReplication::Fixed(args.replication_factor),
                ),
                |t, (k, v)| t.set(k, v),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, e)) => panic!("create topic {t}: {e}"),
        }
    }
}

/// Delivery-report context of one benchmark producer: the latency of every acknowledged record
/// (from `send` to its delivery report, in ns), and the first delivery error. Each record's
/// opaque is its send time in ns since `start`, so nothing is allocated per record here.
struct LatencyContext {
    start: Instant,
    latencies: Mutex<Vec<u64>>,
    error: Mutex<Option<String>>,
}

impl ClientContext for LatencyContext {}

impl ProducerContext for LatencyContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.start.elapsed().as_nanos() as u64;
        match result {
            Ok(_) => self
                .latencies
                .lock()
                .expect("latencies")
                .push(now.saturating_sub(sent_ns as u64)),
            // A panic here would unwind into librdkafka; report it from the sending thread.
            Err((e, _)) => {
                let mut first = self.error.lock().expect("error");
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// The librdkafka settings of a benchmark producer of `kind`; `name` tells the producers of one
/// run apart in their `transactional.id`.
fn producer_config(args: &Args, bootstrap: &str, kind: ProducerKind, name: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("compression.type", &args.compression)
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000");
    match kind {
        ProducerKind::Plain => {
            config
                .set("acks", &args.acks)
                .set("enable.idempotence", "false");
        }
        ProducerKind::Idempotent => {
            config.set("acks", "all").set("enable.idempotence", "true");
        }
        ProducerKind::Transactional => {
            config
                .set("acks", "all")
                .set("enable.idempotence", "true")
                .set(
                    "transactional.id",
                    format!("esker-bench-{}-{name}", std::process::id()),
                )
                .set("transaction.timeout.ms", "60000");
        }
    }
    with_extra(config, &args.producer_config)
}

/// How one producer sends its records.
#[derive(Copy, Clone, Debug)]
struct SendPlan {
    /// Records/s of this producer; None = as fast as it can.
    rate: Option<f64>,
    /// Commit the open transaction (and begin the next) once it is this old.
    commit_every: Option<Duration>,
    /// Write the send time (ns since the context's start, u64 big-endian) into the first 8
    /// bytes of each value, for the end-to-end latency.
    stamp: bool,
    /// Record `i` gets key `i % key_space` (0: key `i`).
    key_space: u64,
}

/// Runs `--producers` producers in parallel, one thread each, each sending its share of the
/// records (record `i` goes to partition `i % partitions`), paced to `--throughput` if set.
/// Transactional producers are initialised (`init_transactions`) before the clock starts.
async fn produce(
    args: &Args,
    bootstrap: &str,
    topic: &str,
    kind: ProducerKind,
    report: bool,
) -> Figures {
    let producers = args.producers.max(1);
    let value: Arc<Vec<u8>> = Arc::new(
        (0..args.record_size)
            .map(|i| (i * 31 % 251) as u8)
            .collect(),
    );
    let plan = SendPlan {
        rate: (args.throughput > 0.0).then(|| args.throughput / producers as f64),
        commit_every: (kind == ProducerKind::Transactional)
            .then(|| Duration::from_millis(args.commit_interval_ms)),
        stamp: false,
        key_space: args.key_space,
    };
    let epoch = Instant::now();
    let mut clients = Vec::with_capacity(producers);
    for p in 0..producers {
        let context = LatencyContext {
            start: epoch,
            latencies: Mutex::new(Vec::with_capacity(args.num_records / producers + 1)),
            error: Mutex::new(None),
        };
        let producer: ThreadedProducer<LatencyContext> =
            producer_config(args, bootstrap, kind, &format!("{topic}-{p}"))
                .create_with_context(context)
                .expect("producer");
        clients.push(producer);
    }
    if kind == ProducerKind::Transactional {
        tokio::task::block_in_place(|| {
            for producer in &clients {
                producer
                    .init_transactions(TXN_TIMEOUT)
                    .expect("init_transactions");
            }
        });
    }
    let start = Instant::now();
    let mut threads = Vec::new();
    for (p, producer) in clients.into_iter().enumerate() {
        let (topic, value) = (topic.to_string(), value.clone());
        let (total, partitions) = (args.num_records, args.partitions.max(1) as usize);
        threads.push(tokio::task::spawn_blocking(move || {
            let records = (p..total).step_by(producers);
            let commits = produce_one(&producer, &topic, records, &value, partitions, plan);
            let context = producer.context();
            if let Some(e) = context.error.lock().expect("error").take() {
                panic!("delivery failed: {e}");
            }
            let latencies = std::mem::take(&mut *context.latencies.lock().expect("latencies"));
            (latencies, commits)
        }));
    }
    let mut latencies = Vec::with_capacity(args.num_records);
    let mut commits = Vec::new();
    for t in threads {
        let (l, c) = t.await.expect("producer thread");
        latencies.extend(l);
        commits.extend(c);
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(
        latencies.len(),
        args.num_records,
        "every record acknowledged"
    );
    latencies.sort_unstable();
    let figures = Figures {
        records: args.num_records,
        secs,
        bytes: args.num_records * args.record_size,
        startup: 0.0,
    };
    if report {
        let label = match kind {
            ProducerKind::Plain => String::new(),
            ProducerKind::Idempotent => " (idempotent)".to_string(),
            ProducerKind::Transactional => {
                format!(
                    " (transactional, commit every {} ms)",
                    args.commit_interval_ms
                )
            }
        };
        println!(
            "produce{label}: {:.0} records/s, {:.1} MB/s, latency ms {}{}",
            figures.rps(),
            figures.mbs(),
            latency_summary(&latencies),
            commit_summary(commits),
        );
    } else {
        println!(
            "(filled the topic: {} records in {:.1} s)",
            args.num_records, secs
        );
    }
    figures
}

/// "p50 .. p95 .. p99 .. p99.9 .. max .." in ms of latencies in ns, sorted ascending.
fn latency_summary(sorted_ns: &[u64]) -> String {
    let ms = |ns: u64| ns as f64 / 1e6;
    let pct = |p: f64| {
        sorted_ns
            .get(((sorted_ns.len() as f64 * p) as usize).min(sorted_ns.len().saturating_sub(1)))
            .map(|&ns| ms(ns))
            .unwrap_or(0.0)
    };
    format!(
        "p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(0.999),
        sorted_ns.last().map(|&ns| ms(ns)).unwrap_or(0.0),
    )
}

/// "; N commits, commit_transaction ms p50 .. max .." or nothing without commits.
fn commit_summary(mut commits: Vec<Duration>) -> String {
    if commits.is_empty() {
        return String::new();
    }
    commits.sort_unstable();
    let ns: Vec<u64> = commits.iter().map(|d| d.as_nanos() as u64).collect();
    format!(
        "; {} commits, commit_transaction ms {}",
        ns.len(),
        latency_summary(&ns)
    )
}

/// Sends `records` from one producer on the calling thread (paced by sleeping until each
/// record's slot), then flushes, or with `commit_every` runs them in transactions: one is begun
/// first, committed and the next begun once it is that old (checked after each send), and the
/// last is committed at the end. The producer's own thread serves the delivery reports as they
/// arrive, so the latencies are not delayed by the sending loop (and nothing spins). Returns how
/// long each `commit_transaction` took.
fn produce_one(
    producer: &ThreadedProducer<LatencyContext>,
    topic: &str,
    records: impl Iterator<Item = usize>,
    value: &[u8],
    partitions: usize,
    plan: SendPlan,
) -> Vec<Duration> {
    let start = producer.context().start;
    let mut commits = Vec::new();
    let mut txn_begun = plan.commit_every.map(|_| {
        producer.begin_transaction().expect("begin_transaction");
        Instant::now()
    });
    let mut stamped = value.to_vec();
    let paced_from = Instant::now();
    for (n, i) in records.enumerate() {
        if let Some(rate) = plan.rate {
            let due = paced_from + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let key = match plan.key_space {
            0 => i as u32,
            n => (i as u64 % n) as u32,
        }
        .to_be_bytes();
        let sent_ns = start.elapsed().as_nanos() as u64;
        let payload: &[u8] = if plan.stamp {
            stamped[..8].copy_from_slice(&sent_ns.to_be_bytes());
            &stamped
        } else {
            value
        };
        let mut rec = BaseRecord::with_opaque_to(topic, sent_ns as usize)
            .key(&key[..])
            .payload(payload)
            .partition((i % partitions) as i32);
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    // The client holds a full queue (1 GiB or 1M records): let it drain.
                    rec = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
        if let (Some(every), Some(begun)) = (plan.commit_every, txn_begun) {
            if begun.elapsed() >= every {
                commits.push(commit(producer));
                producer.begin_transaction().expect("begin_transaction");
                txn_begun = Some(Instant::now());
            }
        }
    }
    if txn_begun.is_some() {
        commits.push(commit(producer));
    } else {
        producer
            .flush(Duration::from_secs(120))
            .expect("flush: every record delivered");
    }
    commits
}

/// Commits the open transaction (librdkafka first waits for its records' acknowledgements);
/// how long that took.
///
/// Calls `rd_kafka_commit_transaction` itself: rdkafka 0.39's `commit_transaction` first runs
/// its own flush, which polls the event queue in steps of up to 100 ms, and with a
/// `ThreadedProducer` the producer's thread takes the delivery reports first, so every commit
/// with a record in flight took 100 ms more (measured: p50 101 ms against 2 ms). librdkafka's
/// commit waits for the in-flight records by itself; the producer's thread serves their delivery
/// reports, as librdkafka requires when they are events.
fn commit(producer: &ThreadedProducer<LatencyContext>) -> Duration {
    let t = Instant::now();
    // SAFETY: the handle belongs to a live producer; the error object, if one is returned, is
    // read and then destroyed here, once.
    unsafe {
        let error = rdkafka::bindings::rd_kafka_commit_transaction(
            producer.client().native_ptr(),
            TXN_TIMEOUT.as_millis() as i32,
        );
        if !error.is_null() {
            let message = std::ffi::CStr::from_ptr(rdkafka::bindings::rd_kafka_error_string(error))
                .to_string_lossy()
                .into_owned();
            rdkafka::bindings::rd_kafka_error_destroy(error);
            panic!("commit_transaction: {message}");
        }
    }
    t.elapsed()
}

/// Consumes every partition from the beginning with `--consumers` clients (partition `p` goes
/// to consumer `p % consumers`) until each has read the records produced to its partitions.
async fn consume(args: &Args, bootstrap: &str, topic: &str) -> Figures {
    let consumers = args.consumers.max(1).min(args.partitions.max(1) as usize);
    let partitions = args.partitions.max(1) as usize;
    let start = Instant::now();
    let mut threads = Vec::new();
    for c in 0..consumers {
        let mine: Vec<i32> = (c..partitions)
            .step_by(consumers)
            .map(|p| p as i32)
            .collect();
        // Record i went to partition i % partitions.
        let expected: usize = mine
            .iter()
            .map(|&p| (p as usize..args.num_records).step_by(partitions).count())
            .sum();
        let (bootstrap, topic) = (bootstrap.to_string(), topic.to_string());
        let extra = args.consumer_config.clone();
        threads.push(tokio::task::spawn_blocking(move || {
            consume_one(&bootstrap, &topic, &mine, expected, &extra)
        }));
    }
    let mut records = 0;
    let mut bytes = 0;
    let mut first: Option<Instant> = None;
    for t in threads {
        let (n, b, f) = t.await.expect("consumer");
        records += n;
        bytes += b;
        first = first.into_iter().chain(f).min();
    }
    // Like kafka-consumer-perf-test's fetch rate, `steady_mbs` leaves out the clients'
    // start-up (metadata, offset lookup) before the first record arrives.
    let startup = first
        .map(|f| f.duration_since(start).as_secs_f64())
        .unwrap_or(0.0);
    let figures = Figures {
        records,
        secs: start.elapsed().as_secs_f64(),
        bytes,
        startup,
    };
    println!(
        "consume: {:.0} records/s, {:.1} MB/s ({} records, {} payload bytes, {} consumers); \
         after the first record {:.1} MB/s (start-up {:.0} ms)",
        figures.rps(),
        figures.mbs(),
        records,
        bytes,
        consumers,
        figures.steady_mbs(),
        startup * 1000.0
    );
    figures
}

fn consume_one(
    bootstrap: &str,
    topic: &str,
    partitions: &[i32],
    expected: usize,
    extra: &[String],
) -> (usize, usize, Option<Instant>) {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "esker-bench")
        .set("enable.auto.commit", "false");
    let consumer: BaseConsumer = with_extra(config, extra).create().expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for &p in partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    let mut first = None;
    while n < expected {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            first.get_or_insert_with(Instant::now);
            bytes += m.payload_len();
            n += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "consumer stalled at {n} of {expected}"
        );
    }
    (n, bytes, first)
}

/// Byte 8 of an end-to-end record's value: a warm-up record (sent until both consumers read
/// one, not measured) or a measured one. Bytes 0..8 are the send time.
const E2E_WARM_UP: u8 = 0;
const E2E_MEASURED: u8 = 1;

/// The isolation levels read side by side in `--mode e2e-latency`.
const ISOLATION_LEVELS: [&str; 2] = ["read_uncommitted", "read_committed"];

/// `--mode e2e-latency`: for an idempotent producer and then a transactional one (committing
/// every `--commit-interval-ms`), each into a fresh topic, the produce-to-consume latency of a
/// read_uncommitted and a read_committed consumer reading side by side, and the producer's
/// acknowledgement latency; then one summary line of p50/p99.
async fn e2e_latency(args: &Args, bootstrap: &str, topic: &str) {
    let rate = if args.throughput > 0.0 {
        args.throughput
    } else {
        1000.0
    };
    let mut summary = Vec::new();
    for kind in [ProducerKind::Idempotent, ProducerKind::Transactional] {
        let topic = format!("{topic}-e2e-{}", kind.label());
        create_topic(bootstrap, &topic, args).await;
        let phase = E2ePhase {
            bootstrap: bootstrap.to_string(),
            topic: topic.clone(),
            partitions: args.partitions.max(1) as usize,
            records: args.num_records,
            record_size: args.record_size.max(9),
            rate,
            commit_every: (kind == ProducerKind::Transactional)
                .then(|| Duration::from_millis(args.commit_interval_ms)),
            producer: producer_config(args, bootstrap, kind, &topic),
            consumer_config: args.consumer_config.clone(),
        };
        let result = tokio::task::spawn_blocking(move || phase.run())
            .await
            .expect("e2e phase");
        let label = match kind {
            ProducerKind::Transactional => format!(
                "transactional producer (commit every {} ms)",
                args.commit_interval_ms
            ),
            _ => format!("{} producer", kind.label()),
        };
        println!(
            "e2e, {label}, {rate}/s: acknowledged ms {}{}",
            latency_summary(&result.acks),
            commit_summary(result.commits),
        );
        let mut figures = Vec::new();
        for (isolation, latencies) in ISOLATION_LEVELS.iter().zip(&result.consumed) {
            println!(
                "e2e, {label}, {isolation} consumer: {} records, latency ms {}",
                latencies.len(),
                latency_summary(latencies)
            );
            assert_eq!(
                latencies.len(),
                args.num_records,
                "{isolation} consumer read every record"
            );
            let pct = |p: f64| {
                latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)] as f64
                    / 1e6
            };
            figures.push(format!("{isolation} {:.2}/{:.2}", pct(0.5), pct(0.99)));
        }
        summary.push(format!("{label}: {}", figures.join(", ")));
    }
    println!("e2e p50/p99 ms: {}", summary.join("; "));
}

/// One producer-and-two-consumers run of `--mode e2e-latency`.
struct E2ePhase {
    bootstrap: String,
    topic: String,
    partitions: usize,
    records: usize,
    /// At least 9: the send time and the warm-up flag.
    record_size: usize,
    rate: f64,
    commit_every: Option<Duration>,
    producer: ClientConfig,
    consumer_config: Vec<String>,
}

/// What an `E2ePhase` measured, latencies in ns sorted ascending.
struct E2eResult {
    /// Producer: send to delivery report.
    acks: Vec<u64>,
    /// Per `ISOLATION_LEVELS` consumer: send to `poll` returning the record.
    consumed: Vec<Vec<u64>>,
    /// Duration of each `commit_transaction`.
    commits: Vec<Duration>,
}

impl E2ePhase {
    /// Starts the consumers (from the beginning of the fresh topic), sends warm-up records until
    /// each consumer has read one (so librdkafka's start-up is not measured), then the measured
    /// records at `rate`, and waits for the consumers to read them all.
    fn run(self) -> E2eResult {
        let epoch = Instant::now();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let consumers: Vec<_> = ISOLATION_LEVELS
            .iter()
            .map(|isolation| {
                let mut config = ClientConfig::new();
                config
                    .set("bootstrap.servers", &self.bootstrap)
                    .set("group.id", "esker-bench-e2e")
                    .set("enable.auto.commit", "false")
                    .set("isolation.level", *isolation);
                let consumer: BaseConsumer = with_extra(config, &self.consumer_config)
                    .create()
                    .expect("consumer");
                let mut tpl = TopicPartitionList::new();
                for p in 0..self.partitions {
                    tpl.add_partition_offset(&self.topic, p as i32, Offset::Beginning)
                        .expect("tpl");
                }
                consumer.assign(&tpl).expect("assign");
                let (ready, records) = (ready_tx.clone(), self.records);
                let deadline =
                    Duration::from_secs_f64(records as f64 / self.rate) + Duration::from_secs(120);
                std::thread::spawn(move || e2e_consume(&consumer, epoch, records, ready, deadline))
            })
            .collect();
        drop(ready_tx);

        let context = LatencyContext {
            start: epoch,
            latencies: Mutex::new(Vec::with_capacity(self.records + 1000)),
            error: Mutex::new(None),
        };
        let producer: ThreadedProducer<LatencyContext> = self
            .producer
            .create_with_context(context)
            .expect("producer");
        if self.commit_every.is_some() {
            producer
                .init_transactions(TXN_TIMEOUT)
                .expect("init_transactions");
        }
        let mut value = vec![0x5au8; self.record_size];
        value[8] = E2E_WARM_UP;
        let mut started = 0;
        let warm_up_deadline = Instant::now() + Duration::from_secs(60);
        while started < consumers.len() {
            assert!(
                Instant::now() < warm_up_deadline,
                "consumers read no warm-up record within 60 s"
            );
            if self.commit_every.is_some() {
                producer.begin_transaction().expect("begin_transaction");
            }
            for p in 0..self.partitions {
                let rec = BaseRecord::<(), [u8], usize>::with_opaque_to(&self.topic, 0)
                    .payload(&value[..])
                    .partition(p as i32);
                producer
                    .send(rec)
                    .map_err(|(e, _)| e)
                    .expect("warm-up send");
            }
            if self.commit_every.is_some() {
                commit(&producer);
            } else {
                producer.flush(TXN_TIMEOUT).expect("warm-up flush");
            }
            // Wait for the consumers' first records, sending again every 50 ms until then.
            while let Ok(()) = ready_rx.recv_timeout(Duration::from_millis(50)) {
                started += 1;
                if started == consumers.len() {
                    break;
                }
            }
        }
        producer
            .context()
            .latencies
            .lock()
            .expect("latencies")
            .clear();

        value[8] = E2E_MEASURED;
        let plan = SendPlan {
            rate: Some(self.rate),
            commit_every: self.commit_every,
            stamp: true,
            key_space: 0,
        };
        let mut commits = produce_one(
            &producer,
            &self.topic,
            0..self.records,
            &value,
            self.partitions,
            plan,
        );
        if let Some(e) = producer.context().error.lock().expect("error").take() {
            panic!("delivery failed: {e}");
        }
        let mut acks =
            std::mem::take(&mut *producer.context().latencies.lock().expect("latencies"));
        acks.sort_unstable();
        commits.sort_unstable();
        let consumed = consumers
            .into_iter()
            .map(|t| t.join().expect("consumer thread"))
            .collect();
        E2eResult {
            acks,
            consumed,
            commits,
        }
    }
}

/// Reads until `records` measured records arrived (or `deadline` passed); signals `ready` at
/// the first record of any kind. Returns each measured record's latency (ns from its send time
/// to `poll` returning it), sorted.
fn e2e_consume(
    consumer: &BaseConsumer,
    epoch: Instant,
    records: usize,
    ready: std::sync::mpsc::Sender<()>,
    deadline: Duration,
) -> Vec<u64> {
    let mut latencies = Vec::with_capacity(records);
    let mut ready = Some(ready);
    let start = Instant::now();
    while latencies.len() < records && start.elapsed() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let now = epoch.elapsed().as_nanos() as u64;
        let m = m.expect("consume");
        if let Some(tx) = ready.take() {
            // The producer stops listening once every consumer has started.
            let _ = tx.send(());
        }
        let Some(payload) = m.payload().filter(|p| p.len() >= 9) else {
            continue;
        };
        if payload[8] == E2E_MEASURED {
            let mut sent = [0u8; 8];
            sent.copy_from_slice(&payload[..8]);
            latencies.push(now.saturating_sub(u64::from_be_bytes(sent)));
        }
    }
    latencies.sort_unstable();
    latencies
}

/// `config` with the `key=value` settings of `extra` applied over it.
fn with_extra(mut config: ClientConfig, extra: &[String]) -> ClientConfig {
    for kv in extra {
        let (k, v) = kv.split_once('=').expect("client settings take key=value");
        config.set(k, v);
    }
    config
}

/// Loopback TCP throughput: one writer and one reader moving 2 GiB in 1 MiB writes.
fn loopback_mbs() -> f64 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let total: usize = 2 << 30;
    let reader = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0usize;
        while got < total {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) => panic!("read: {e}"),
            }
        }
        got
    });
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    let mut sent = 0usize;
    while sent < total {
        s.write_all(&buf).expect("write");
        sent += buf.len();
    }
    let got = reader.join().expect("reader");
    got as f64 / start.elapsed().as_secs_f64() / 1e6
}

/// The disk references in `dir`: MB/s of sequential 1 MiB writes each followed by
/// `fdatasync` (512 MiB in all), and the p50 latency in ms of a 4 KiB write + `fdatasync`
/// (500 of them).
fn disk_reference(dir: &std::path::Path) -> (f64, f64) {
    use std::io::Write;
    let path = dir.join(format!("disk-reference-{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("disk reference file");
    let chunk = vec![0x5au8; 1 << 20];
    let total = 512usize;
    let start = Instant::now();
    for _ in 0..total {
        file.write_all(&chunk).expect("write");
        file.sync_data().expect("fdatasync");
    }
    let mbs = (total * chunk.len()) as f64 / start.elapsed().as_secs_f64() / 1e6;
    let small = [0xa5u8; 4096];
    let mut lat = Vec::with_capacity(500);
    for _ in 0..500 {
        let t = Instant::now();
        file.write_all(&small).expect("write");
        file.sync_data().expect("fdatasync");
        lat.push(t.elapsed());
    }
    lat.sort();
    drop(file);
    let _ = std::fs::remove_file(&path);
    (mbs, lat[lat.len() / 2].as_secs_f64() * 1000.0)
}

/// User + system CPU seconds of process `pid` so far, from /proc/<pid>/stat.
fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}
