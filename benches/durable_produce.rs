//! Durable produce benchmark: N producers (one librdkafka client and connection each) on N
//! partitions, acks=-1, each keeping `--window` messages in flight, against an in-process Esker
//! in each flush mode:
//!
//! - `linger0`: group commit with `log.flush.linger.ms=0` (an fsync starts as soon as the shard
//!   is idle; appends arriving meanwhile share the next one),
//! - `linger1` (the default), `linger2`, any `linger<N>`: group commit with that linger,
//! - `per-append`: one fsync per append, inline on the shard (the baseline; the hidden
//!   `Config::fsync_per_append`).
//!
//! For each mode it prints messages/s, MB/s, latency percentiles (send to acknowledgement) and
//! the fsyncs the shards counted (`ShardState::sync_stats`): flush rounds per second, fdatasync
//! calls per second, acks=-1 appends (produce requests' partition entries) per flush round, and
//! messages per flush round.
//!
//! `cargo bench --bench durable_produce -- --seconds 10 --producers 16 --window 1`

use std::time::{Duration, Instant};

use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

use esker::shard::{ShardState, SyncStats};

#[derive(Parser, Debug, Clone)]
#[command(about = "Esker durable (acks=-1) produce benchmark: group commit vs fsync per append")]
struct Args {
    /// Producers, each on its own partition and connection.
    #[arg(long, default_value_t = 16)]
    producers: i32,
    /// Messages each producer keeps in flight.
    #[arg(long, default_value_t = 1)]
    window: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Measured seconds per mode (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Modes to run, comma-separated: `linger<N>` (group commit with log.flush.linger.ms=N),
    /// per-append.
    #[arg(long, default_value = "linger0,linger1,linger2,per-append")]
    modes: String,
    /// Shards of the broker (0 = one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
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
    println!(
        "{} producers x {} partitions, acks=-1, {} B records, window {} per producer, {} s per mode",
        args.producers, args.producers, args.size, args.window, args.seconds
    );
    println!(
        "| mode | msgs/s | MB/s | p50 ms | p99 ms | p99.9 ms | flushes/s | fdatasync/s | appends/flush | msgs/flush |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for mode in args.modes.split(',').map(str::trim) {
        rt.block_on(run_mode(&args, mode));
    }
}

async fn run_mode(args: &Args, mode: &str) {
    // On the target directory's file system, not a tmpfs: fsync must cost what it costs.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("tempdir");
    let (linger, per_append) = match mode {
        "per-append" => ("0", true),
        other => match other.strip_prefix("linger") {
            Some(ms) if ms.parse::<u32>().is_ok() => (ms, false),
            _ => panic!("unknown mode {other}: lingerN or per-append"),
        },
    };
    let mut config = esker::Config::from_pairs([
        ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
        ("log.dirs", dir.path().display().to_string()),
        ("num.shards", args.shards.to_string()),
        ("log.flush.linger.ms", linger.to_string()),
    ])
    .expect("config");
    config.fsync_per_append = per_append;
    let broker = esker::Broker::start(config).await.expect("broker");
    let bootstrap = broker.bootstrap();
    let topic = "durable";
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(
                topic,
                args.producers,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");

    let warmup = Duration::from_secs(1);
    let measure = Duration::from_secs(args.seconds);
    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + measure;
    let mut tasks = Vec::new();
    for p in 0..args.producers {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "-1")
            .set("linger.ms", "0")
            .set("enable.idempotence", "false")
            .set("message.timeout.ms", "60000")
            .create()
            .expect("producer");
        let size = args.size;
        let window = args.window;
        tasks.push(tokio::spawn(async move {
            let value = vec![b'v'; size];
            let mut latencies = Vec::new();
            let mut inflight = FuturesUnordered::new();
            let mut i = 0u64;
            loop {
                let now = Instant::now();
                if now >= measure_until && inflight.is_empty() {
                    break;
                }
                if now < measure_until && inflight.len() < window {
                    let key = i.to_be_bytes();
                    i += 1;
                    let record = FutureRecord::to(topic)
                        .partition(p)
                        .key(&key[..])
                        .payload(&value[..]);
                    let sent = Instant::now();
                    let delivery = match producer.send_result(record) {
                        Ok(delivery) => delivery,
                        Err((e, _)) => panic!("cannot queue a message: {e}"),
                    };
                    inflight.push(async move { (delivery.await, sent) });
                    continue;
                }
                if let Some((result, sent)) = inflight.next().await {
                    match result {
                        Ok(Ok(_)) => {}
                        Ok(Err((e, _))) => panic!("delivery failed: {e}"),
                        Err(_) => panic!("delivery cancelled"),
                    }
                    if sent >= measure_from && sent < measure_until {
                        latencies.push(sent.elapsed());
                    }
                }
            }
            latencies
        }));
    }
    tokio::time::sleep_until((measure_from).into()).await;
    let before = stats(&broker).await;
    tokio::time::sleep_until((measure_until).into()).await;
    let after = stats(&broker).await;
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.expect("producer"));
    }
    latencies.sort();
    let secs = measure.as_secs_f64();
    let n = latencies.len();
    let pct = |q: f64| {
        latencies
            .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let flushes = after.flushes - before.flushes;
    let fsyncs = after.fsyncs - before.fsyncs;
    let waiters = after.waiters - before.waiters;
    println!(
        "| {mode} | {:.0} | {:.1} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.1} | {:.1} |",
        n as f64 / secs,
        (n * args.size) as f64 / secs / 1e6,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        flushes as f64 / secs,
        fsyncs as f64 / secs,
        waiters as f64 / flushes.max(1) as f64,
        n as f64 / flushes.max(1) as f64,
    );
    broker.shutdown().await.expect("shutdown");
}

/// The fsync counters of every shard, summed.
async fn stats(broker: &esker::Broker) -> SyncStats {
    let mut total = SyncStats::default();
    for shard in broker.context().shards.iter() {
        let s = shard
            .call(|s: &mut ShardState| s.sync_stats())
            .await
            .expect("shard");
        total.flushes += s.flushes;
        total.fsyncs += s.fsyncs;
        total.waiters += s.waiters;
    }
    total
}
