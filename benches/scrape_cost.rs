//! What scraping `/metrics` costs a loaded broker. An in-process Esker with many topics and
//! partitions and a few consumer groups (so the exposition is realistically large) takes an
//! rdkafka produce load at a fixed rate for `--secs` seconds, three times: unscraped, scraped over
//! HTTP every `--interval-ms` (1 s by default: the stress case; Prometheus' default is 15 s),
//! unscraped again.
//!
//! ```text
//! cargo bench --bench scrape_cost
//! cargo bench --bench scrape_cost -- --secs 20 --topics 50 --partitions 10
//! ```
//!
//! Reported:
//! - broker CPU (every thread of the process except librdkafka's `rdk:*` and the scraper's,
//!   from `/proc/self/task`) per second and per record, in each run;
//! - the CPU of one scrape measured directly: the scraping thread's own CPU time for a
//!   `Metrics::render` (gather, encode, `/proc` and jemalloc reads) plus the shard threads'
//!   time answering its queries, averaged over 50 back-to-back renders under load;
//! - the ratio of that per-scrape CPU, at one scrape per interval (and at 15 s), to the broker's
//!   CPU under load. The A/B difference of the two runs is printed too, but on a shared machine
//!   it is within noise: the direct figure is the one to quote.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "Cost of scraping /metrics under a produce load")]
struct Args {
    /// Seconds of load per run.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Scrape interval of the scraped run, in ms.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,
    /// Topics (each with `--partitions` partitions); all take load.
    #[arg(long, default_value_t = 20)]
    topics: usize,
    /// Partitions per topic.
    #[arg(long, default_value_t = 10)]
    partitions: i32,
    /// Consumer groups with committed offsets on every partition.
    #[arg(long, default_value_t = 5)]
    groups: usize,
    /// Produce rate in records/s over all partitions (fixed, so both runs do the same work and
    /// the disk's write-back does not decide the figures).
    #[arg(long, default_value_t = 50_000)]
    rate: u64,
    /// Record value size in bytes.
    #[arg(long, default_value_t = 512)]
    record_size: usize,
    /// Broker configuration overrides, `key=value`; may be repeated.
    #[arg(long = "override", short = 'o')]
    overrides: Vec<String>,
    /// Accepted for `cargo bench` compatibility.
    #[arg(long, hide = true)]
    bench: bool,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds of the process's threads whose name passes `keep`.
fn threads_cpu(keep: impl Fn(&str) -> bool) -> f64 {
    let mut total = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    for t in tasks.flatten() {
        let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
        if !keep(comm.trim_end()) {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
            continue;
        };
        let Some(i) = stat.rfind(')') else { continue };
        let f: Vec<&str> = stat[i + 1..].split_whitespace().collect();
        let num = |n: usize| {
            f.get(n - 3)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += num(14) + num(15);
    }
    total / clock_ticks()
}

const SCRAPER: &str = "esker-scraper";

/// The broker's threads: everything but librdkafka's, the scraper and the bench's main thread.
fn broker_cpu() -> f64 {
    threads_cpu(|n| !n.starts_with("rdk:") && n != SCRAPER && !n.starts_with("scrape_cost"))
}

fn shard_cpu() -> f64 {
    threads_cpu(|n| n.starts_with("esker-shard-"))
}

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct passed by pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn http_get(addr: std::net::SocketAddr, path: &str) -> usize {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return 0;
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.len()
}

struct Run {
    records: u64,
    broker_cpu: f64,
    elapsed: f64,
    scrapes: u64,
}

/// Produces to every partition for `secs`; scrapes every `interval` when given.
fn load(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
    size: usize,
    rate: u64,
    secs: u64,
    scrape: Option<(std::net::SocketAddr, Duration)>,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let scrapes = Arc::new(AtomicU64::new(0));
    let scraper = scrape.map(|(addr, every)| {
        let (stop, scrapes) = (stop.clone(), scrapes.clone());
        std::thread::Builder::new()
            .name(SCRAPER.into())
            .spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if Instant::now() >= next {
                        http_get(addr, "/metrics");
                        scrapes.fetch_add(1, Ordering::Relaxed);
                        next += every;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            })
            .expect("scraper thread")
    });
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "1")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("broker.address.family", "v4")
        .create()
        .expect("producer");
    let value = vec![b'x'; size];
    let cpu0 = broker_cpu();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    let mut n = 0u64;
    let slots = topics.len() as u64 * partitions as u64;
    while Instant::now() < end {
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        while n < due {
            let slot = n % slots;
            let t = &topics[(slot / partitions as u64) as usize];
            let p = (slot % partitions as u64) as i32;
            let rec = BaseRecord::<(), [u8]>::to(t).partition(p).payload(&value);
            if producer.send(rec).is_err() {
                producer.poll(Duration::from_millis(1));
                continue;
            }
            n += 1;
        }
        producer.poll(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = producer.flush(Duration::from_secs(30));
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = broker_cpu() - cpu0;
    stop.store(true, Ordering::Relaxed);
    if let Some(t) = scraper {
        let _ = t.join();
    }
    Run {
        records: n,
        broker_cpu: cpu,
        elapsed,
        scrapes: scrapes.load(Ordering::Relaxed),
    }
}

fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut pairs = vec![
        (
            "listeners".to_string(),
            "PLAINTEXT://127.0.0.1:0".to_string(),
        ),
        ("log.dirs".to_string(), dir.path().display().to_string()),
        ("metrics.listener".to_string(), "127.0.0.1:0".to_string()),
        ("kinesis.listener".to_string(), String::new()),
    ];
    for o in &args.overrides {
        let (k, v) = o.split_once('=').expect("--override key=value");
        pairs.push((k.to_string(), v.to_string()));
    }
    let config = esker::Config::from_pairs(pairs).expect("config");
    let broker = rt.block_on(esker::Broker::start(config)).expect("broker");
    let bootstrap = broker.bootstrap();
    let metrics_addr = broker.metrics_addr().expect("metrics endpoint");
    let ctx = broker.context().clone();

    let topics: Vec<String> = (0..args.topics).map(|i| format!("bench-{i}")).collect();
    rt.block_on(async {
        for t in &topics {
            ctx.create_topic(t, args.partitions, Default::default())
                .await
                .expect("create topic");
        }
    });
    // Consumer groups with an offset committed on every partition (lag series for each).
    for g in 0..args.groups {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", format!("bench-group-{g}"))
            .set("broker.address.family", "v4")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for t in &topics {
            for p in 0..args.partitions {
                tpl.add_partition_offset(t, p, Offset::Offset(0))
                    .expect("partition");
            }
        }
        consumer.commit(&tpl, CommitMode::Sync).expect("commit");
    }
    // Warm-up, so both runs start with the same number of segments and series.
    load(
        &bootstrap,
        &topics,
        args.partitions,
        args.record_size,
        args.rate,
        2,
        None,
    );

    let plain = load(
        &bootstrap,
        &topics,
        args.partitions,
        args.record_size,
        args.rate,
        args.secs,
        None,
    );
    let every = Duration::from_millis(args.interval_ms);
    let plain_again = load(
        &bootstrap,
        &topics,
        args.partitions,
        args.record_size,
        args.rate,
        args.secs,
        None,
    );
    let scraped = load(
        &bootstrap,
        &topics,
        args.partitions,
        args.record_size,
        args.rate,
        args.secs,
        Some((metrics_addr, every)),
    );

    // Direct cost of one scrape: renders on this thread, back to back. Idle, the shard
    // threads' CPU during the renders is the scrape's own work there (snapshots, coordinator
    // answers); under load only this thread's CPU can be told apart.
    const RENDERS: u32 = 50;
    let render = |n: u32| {
        let (shards0, cpu0) = (shard_cpu(), thread_cpu());
        let mut text = String::new();
        for _ in 0..n {
            text = rt.block_on(ctx.metrics.render(&ctx));
        }
        let own = (thread_cpu() - cpu0).as_secs_f64() / f64::from(n);
        let shards = (shard_cpu() - shards0).max(0.0) / f64::from(n);
        (own, shards, text)
    };
    let (idle_own, idle_shards, text) = render(RENDERS);
    let bytes = text.len();
    let series = text.lines().filter(|l| !l.starts_with('#')).count();
    // The same over HTTP, idle: every broker thread's CPU per scrape.
    let http = {
        let cpu0 = broker_cpu();
        for _ in 0..RENDERS {
            http_get(metrics_addr, "/metrics");
        }
        (broker_cpu() - cpu0) / f64::from(RENDERS)
    };
    let encode_only = {
        let cpu0 = thread_cpu();
        for _ in 0..RENDERS {
            std::hint::black_box(ctx.metrics.encode());
        }
        (thread_cpu() - cpu0).as_secs_f64() / f64::from(RENDERS)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let bg = {
        let (stop, bootstrap, topics) = (stop.clone(), bootstrap.clone(), topics.clone());
        let (partitions, size, rate) = (args.partitions, args.record_size, args.rate);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                load(&bootstrap, &topics, partitions, size, rate, 1, None);
            }
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let (loaded_own, _, _) = render(RENDERS);
    stop.store(true, Ordering::Relaxed);
    let _ = bg.join();

    let per_sec = |r: &Run| r.broker_cpu / r.elapsed;
    let per_rec = |r: &Run| r.broker_cpu / r.records.max(1) as f64 * 1e6;
    println!(
        "setup: {} topics x {} partitions (+50 __consumer_offsets), {} groups, {} B records at {} records/s, {} s per run",
        args.topics, args.partitions, args.groups, args.record_size, args.rate, args.secs
    );
    println!("exposition: {bytes} bytes, {series} samples");
    for (name, r) in [
        ("unscraped", &plain),
        ("scraped", &scraped),
        ("unscraped", &plain_again),
    ] {
        println!(
            "{name:>9}: {:>9.0} records/s, broker CPU {:.3} s/s, {:.2} us/record, {} scrapes",
            r.records as f64 / r.elapsed,
            per_sec(r),
            per_rec(r),
            r.scrapes
        );
    }
    // Ticks of /proc are 10 ms: the shard side is a mean over the renders, coarse.
    let scrape_cpu = loaded_own.max(idle_own) + idle_shards;
    println!(
        "one scrape: {:.3} ms CPU = render thread {:.3} ms (idle {:.3} ms; registry gather+encode {:.3} ms) + shard threads {:.3} ms",
        scrape_cpu * 1e3,
        loaded_own * 1e3,
        idle_own * 1e3,
        encode_only * 1e3,
        idle_shards * 1e3
    );
    println!(
        "one scrape over HTTP, idle: {:.3} ms CPU of broker threads",
        http * 1e3
    );
    let load_cpu = per_sec(&plain);
    for secs in [args.interval_ms as f64 / 1000.0, 15.0] {
        println!(
            "scrape every {secs:>4.1} s: {:.4} % of broker CPU under load ({:.3} ms per scrape / {:.3} s CPU per s)",
            scrape_cpu / secs / load_cpu * 100.0,
            scrape_cpu * 1e3,
            load_cpu
        );
    }
    let baseline = (per_rec(&plain) + per_rec(&plain_again)) / 2.0;
    println!(
        "A/B (noisy: the two unscraped runs differ by {:.1} %): broker CPU per record {:+.2} % with scraping",
        (per_rec(&plain_again) / per_rec(&plain) - 1.0).abs() * 100.0,
        (per_rec(&scraped) / baseline - 1.0) * 100.0
    );
    rt.block_on(broker.shutdown()).expect("shutdown");
}
