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
//! ```
//!
//! Output: records/s, MB/s and, for producers, latency from `send` to the delivery report
//! (p50/p95/p99/p99.9/max). With an unlimited rate the latency is dominated by time queued in
//! the client; use `--throughput` for a latency figure.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

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
}

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
    create_topic(&bootstrap, &topic, args.partitions, args.replication_factor).await;

    println!(
        "mode={:?} records={} size={}B throughput={} acks={} linger.ms={} batch.size={} \
         compression={} partitions={} producers={} consumers={} broker={}",
        args.mode,
        args.num_records,
        args.record_size,
        if args.throughput < 0.0 {
            "unlimited".to_string()
        } else {
            format!("{}/s", args.throughput)
        },
        args.acks,
        args.linger_ms,
        args.batch_size,
        args.compression,
        args.partitions,
        args.producers,
        args.consumers,
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
        Mode::Produce | Mode::Both => {
            let c = cpu();
            let f = produce(&args, &bootstrap, &topic, true).await;
            report_cpu("produce", c, &f);
            produced = Some(f);
        }
        Mode::Consume => {
            if !args.no_fill {
                produce(&args, &bootstrap, &topic, false).await;
            }
        }
    }
    if args.mode != Mode::Produce {
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
    if loopback.is_some() || disk.is_some() {
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

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, replication: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin");
    let results = admin
        .create_topics(
            &[NewTopic::new(
                topic,
                partitions,
                TopicReplication::Fixed(replication),
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

/// Runs `--producers` producers in parallel, one thread each, each sending its share of the
/// records (record `i` goes to partition `i % partitions`), paced to `--throughput` if set.
async fn produce(args: &Args, bootstrap: &str, topic: &str, report: bool) -> Figures {
    let producers = args.producers.max(1);
    let per_producer_rate = (args.throughput > 0.0).then(|| args.throughput / producers as f64);
    let value: Arc<Vec<u8>> = Arc::new(
        (0..args.record_size)
            .map(|i| (i * 31 % 251) as u8)
            .collect(),
    );
    let start = Instant::now();
    let mut threads = Vec::new();
    for p in 0..producers {
        let context = LatencyContext {
            start,
            latencies: Mutex::new(Vec::with_capacity(args.num_records / producers + 1)),
            error: Mutex::new(None),
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", bootstrap)
            .set("acks", &args.acks)
            .set("linger.ms", args.linger_ms.to_string())
            .set("batch.size", args.batch_size.to_string())
            .set("compression.type", &args.compression)
            .set("enable.idempotence", "false")
            .set("queue.buffering.max.kbytes", "1048576")
            .set("queue.buffering.max.messages", "1000000");
        let producer: ThreadedProducer<LatencyContext> = with_extra(config, &args.producer_config)
            .create_with_context(context)
            .expect("producer");
        let (topic, value) = (topic.to_string(), value.clone());
        let (total, partitions) = (args.num_records, args.partitions.max(1) as usize);
        threads.push(tokio::task::spawn_blocking(move || {
            let records = (p..total).step_by(producers);
            produce_one(
                &producer,
                &topic,
                records,
                &value,
                partitions,
                per_producer_rate,
            );
            let context = producer.context();
            if let Some(e) = context.error.lock().expect("error").take() {
                panic!("delivery failed: {e}");
            }
            std::mem::take(&mut *context.latencies.lock().expect("latencies"))
        }));
    }
    let mut latencies = Vec::with_capacity(args.num_records);
    for t in threads {
        latencies.extend(t.await.expect("producer thread"));
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
    let ms = |ns: u64| ns as f64 / 1e6;
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|&ns| ms(ns))
            .unwrap_or(0.0)
    };
    if report {
        println!(
            "produce: {:.0} records/s, {:.1} MB/s, latency ms p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
            figures.rps(),
            figures.mbs(),
            pct(0.50),
            pct(0.95),
            pct(0.99),
            pct(0.999),
            latencies.last().map(|&ns| ms(ns)).unwrap_or(0.0),
        );
    } else {
        println!(
            "(filled the topic: {} records in {:.1} s)",
            args.num_records, secs
        );
    }
    figures
}

/// Sends `records` from one producer on the calling thread (paced by sleeping until each
/// record's slot), then flushes. The producer's own thread serves the delivery reports as they
/// arrive, so the latencies are not delayed by the sending loop (and nothing spins).
fn produce_one(
    producer: &ThreadedProducer<LatencyContext>,
    topic: &str,
    records: impl Iterator<Item = usize>,
    value: &[u8],
    partitions: usize,
    rate: Option<f64>,
) {
    let start = producer.context().start;
    let paced_from = Instant::now();
    for (n, i) in records.enumerate() {
        if let Some(rate) = rate {
            let due = paced_from + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let key = (i as u32).to_be_bytes();
        let mut rec = BaseRecord::with_opaque_to(topic, start.elapsed().as_nanos() as usize)
            .key(&key[..])
            .payload(value)
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
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flush: every record delivered");
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
