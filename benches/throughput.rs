//! End-to-end throughput benchmark in the spirit of `kafka-producer-perf-test`: an rdkafka
//! producer and consumer against an in-process Esker (or any broker with `--bootstrap`), with
//! loopback TCP measured in the same run so figures can be reported as ratios.
//!
//! `cargo bench --bench throughput -- --messages 500000 --size 1024 --acks 1 --linger-ms 5`

use std::time::{Duration, Instant};

use clap::Parser;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "Esker end-to-end throughput benchmark")]
struct Args {
    /// Broker to measure; without it an in-process Esker is started in a temp dir.
    #[arg(long)]
    bootstrap: Option<String>,
    /// Number of records.
    #[arg(long, default_value_t = 300_000)]
    messages: usize,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Producer acks (0, 1, -1).
    #[arg(long, default_value = "1")]
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
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Shards of the in-process broker (0 = one per core).
    #[arg(long, default_value_t = 0)]
    shards: usize,
    /// Skip the loopback TCP reference measurement.
    #[arg(long)]
    no_loopback: bool,
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

async fn run(args: Args) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = None;
    let bootstrap = match &args.bootstrap {
        Some(b) => b.clone(),
        None => {
            let config = esker::Config::from_pairs([
                ("listeners", "PLAINTEXT://127.0.0.1:0".to_string()),
                ("log.dirs", dir.path().display().to_string()),
                ("num.shards", args.shards.to_string()),
            ])
            .expect("config");
            let b = esker::Broker::start(config).await.expect("broker");
            let addr = b.bootstrap();
            broker = Some(b);
            addr
        }
    };
    let topic = format!("bench-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                args.partitions,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("create topic");

    println!(
        "records={} size={}B acks={} linger.ms={} batch.size={} compression={} partitions={} broker={}",
        args.messages,
        args.size,
        args.acks,
        args.linger_ms,
        args.batch_size,
        args.compression,
        args.partitions,
        args.bootstrap.as_deref().unwrap_or("in-process esker")
    );
    let produce_mbs = produce(&args, &bootstrap, &topic).await;
    let b = bootstrap.clone();
    let t = topic.clone();
    let (messages, size, partitions) = (args.messages, args.size, args.partitions);
    let consume_mbs =
        tokio::task::spawn_blocking(move || consume(&b, &t, messages, size, partitions))
            .await
            .expect("consumer");
    if !args.no_loopback {
        let lo = tokio::task::spawn_blocking(loopback_mbs)
            .await
            .expect("loopback");
        println!("loopback TCP: {lo:.0} MB/s");
        println!(
            "ratios to loopback TCP: produce {:.3}, consume {:.3}",
            produce_mbs / lo,
            consume_mbs / lo
        );
    }
    if let Some(b) = broker {
        b.shutdown().await.expect("shutdown");
    }
}

async fn produce(args: &Args, bootstrap: &str, topic: &str) -> f64 {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_size.to_string())
        .set("compression.type", &args.compression)
        .set("enable.idempotence", "false")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .expect("producer");
    let value: Vec<u8> = (0..args.size).map(|i| (i * 31 % 251) as u8).collect();
    let mut inflight = FuturesUnordered::new();
    let mut latencies = Vec::with_capacity(args.messages);
    let start = Instant::now();
    for i in 0..args.messages {
        let key = (i as u32).to_be_bytes();
        let mut rec = FutureRecord::to(topic).key(&key[..]).payload(&value[..]);
        if args.partitions > 1 {
            rec = rec.partition(i as i32 % args.partitions);
        }
        loop {
            match producer.send_result(rec) {
                Ok(fut) => {
                    let sent = Instant::now();
                    inflight.push(async move { (fut.await, sent.elapsed()) });
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    if let Some((res, lat)) = inflight.next().await {
                        check(res);
                        latencies.push(lat);
                    }
                }
                Err((e, _)) => panic!("produce failed: {e}"),
            }
        }
        // Keep the future set from growing without bound while the queue has room.
        while inflight.len() > 200_000 {
            if let Some((res, lat)) = inflight.next().await {
                check(res);
                latencies.push(lat);
            }
        }
    }
    while let Some((res, lat)) = inflight.next().await {
        check(res);
        latencies.push(lat);
    }
    let _ = producer.flush(Duration::from_secs(30));
    let secs = start.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let mbs = (args.messages * args.size) as f64 / secs / 1e6;
    println!(
        "produce: {:.0} records/s, {:.1} MB/s, latency ms p50 {:.2} p95 {:.2} p99 {:.2} p99.9 {:.2} max {:.2}",
        args.messages as f64 / secs,
        mbs,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        pct(0.999),
        latencies.last().map(|d| d.as_secs_f64() * 1000.0).unwrap_or(0.0),
    );
    mbs
}

type Delivery = Result<
    Result<
        rdkafka::producer::future_producer::Delivery,
        (KafkaError, rdkafka::message::OwnedMessage),
    >,
    futures::channel::oneshot::Canceled,
>;

fn check(res: Delivery) {
    match res {
        Ok(Ok(_)) => {}
        Ok(Err((e, _))) => panic!("delivery failed: {e}"),
        Err(_) => panic!("delivery cancelled"),
    }
}

fn consume(bootstrap: &str, topic: &str, messages: usize, size: usize, partitions: i32) -> f64 {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "esker-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .set("max.partition.fetch.bytes", "10485760")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    while n < messages {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("consume");
            bytes += m.payload_len();
            n += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "consumer stalled at {n}"
        );
    }
    let secs = start.elapsed().as_secs_f64();
    let mbs = (n * size) as f64 / secs / 1e6;
    println!(
        "consume: {:.0} records/s, {:.1} MB/s ({} payload bytes)",
        n as f64 / secs,
        mbs,
        bytes
    );
    mbs
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
