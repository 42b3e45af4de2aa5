//! Long-running fault benchmarks against the `esker` binary as a child process (issue 19):
//!
//! - `soak`: for `--duration-secs`, an acks=all producer paced at `--rate` records/s, a steady
//!   consumer and churning consumers in one group (members join and leave all the time), and a
//!   topic churner (create a topic, produce into it, delete it) run against one broker. Every
//!   `--report-secs` it prints the broker's RSS and open file descriptors (from
//!   `/proc/<pid>/status` and `/proc/<pid>/fd`), the produce latency p50/p99/max of the
//!   interval, produced and consumed records/s, and the churn counts; the end prints RSS at start
//!   and end. Flat RSS and fds are the target.
//! - `crash-loop`: `--rounds` rounds of start, acks=all producers on `--partitions` partitions,
//!   SIGKILL at a random moment, restart, and a check that every record acknowledged so far is
//!   stored at the partition and offset it was acknowledged at (by content: each value names its
//!   round, producer and sequence number) and that nothing is stored twice. Prints rounds,
//!   records checked and lost; exits 1 when anything acknowledged was lost.
//!
//! The broker is the binary given by `--broker` (a release build; benches/soak.sh and
//! benches/crash_loop.sh build it), optionally pinned with `--broker-cpus` (`taskset -c`), so
//! the load generator can be pinned elsewhere as docs/performance.md describes.
//!
//! ```text
//! benches/soak.sh 3600            # one hour
//! benches/crash_loop.sh 100       # 100 rounds
//! cargo bench --bench soak -- --broker target/release/esker soak --duration-secs 600
//! ```

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

#[derive(Parser, Debug)]
#[command(about = "Esker soak and crash-loop benchmarks (a child-process broker)")]
struct Args {
    /// The broker binary (a release build).
    #[arg(long, default_value = "target/release/esker")]
    broker: PathBuf,
    /// Pin the broker to these CPUs (`taskset -c`), e.g. `0`.
    #[arg(long)]
    broker_cpus: Option<String>,
    /// Data directory (kept); without it a temp dir is used and removed at the end.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Broker shards (`num.shards`).
    #[arg(long, default_value_t = 2)]
    shards: u32,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Produce, consume, group churn and topic churn for a duration, reporting every interval.
    Soak {
        #[arg(long, default_value_t = 3600)]
        duration_secs: u64,
        #[arg(long, default_value_t = 60)]
        report_secs: u64,
        /// Produce rate, records/s (acks=all).
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        #[arg(long, default_value_t = 512)]
        record_size: usize,
        #[arg(long, default_value_t = 8)]
        partitions: i32,
        /// Consumers that join the group, read for a few seconds and leave, in a loop.
        #[arg(long, default_value_t = 2)]
        churn_consumers: usize,
        /// Pause between two topic create/produce/delete cycles, ms.
        #[arg(long, default_value_t = 2000)]
        topic_churn_ms: u64,
    },
    /// N rounds of SIGKILL under acks=all producers, checking every acknowledged record.
    CrashLoop {
        #[arg(long, default_value_t = 100)]
        rounds: usize,
        #[arg(long, default_value_t = 32)]
        partitions: i32,
        /// Concurrent producers (one rdkafka producer each).
        #[arg(long, default_value_t = 8)]
        producers: usize,
        /// Records in flight per producer.
        #[arg(long, default_value_t = 16)]
        in_flight: usize,
        /// The kill comes at a random moment up to this long after producing is under way, ms.
        #[arg(long, default_value_t = 1500)]
        max_kill_ms: u64,
        /// Seed of the kill points (printed at the start).
        #[arg(long)]
        seed: Option<u64>,
    },
}

// ---------------------------------------------------------------------------------------------
// The broker process.

struct Broker {
    child: Child,
    port: u16,
    /// The metrics endpoint's port, when it was enabled.
    metrics_port: Option<u16>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Broker {
    fn start(args: &Args, dir: &Path, port: u16, extra: &[String]) -> Broker {
        Broker::start_with_metrics(args, dir, port, extra, None)
    }

    fn start_with_metrics(
        args: &Args,
        dir: &Path,
        port: u16,
        extra: &[String],
        metrics_port: Option<u16>,
    ) -> Broker {
        let log = File::options()
            .create(true)
            .append(true)
            .open(dir.join("broker.log"))
            .expect("broker log file");
        let mut cmd = match &args.broker_cpus {
            Some(cpus) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpus).arg(&args.broker);
                c
            }
            None => Command::new(&args.broker),
        };
        let mut opts = vec![
            format!("listeners=PLAINTEXT://127.0.0.1:{port}"),
            format!("log.dirs={}", dir.join("data").display()),
            format!("num.shards={}", args.shards),
            "kinesis.listener=".to_string(),
            match metrics_port {
                Some(p) => format!("metrics.listener=127.0.0.1:{p}"),
                None => "metrics.listener=".to_string(),
            },
        ];
        opts.extend(extra.iter().cloned());
        for o in &opts {
            cmd.arg("-o").arg(o);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn the broker");
        let deadline = Instant::now() + Duration::from_secs(120);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "broker did not listen (see {})",
                dir.join("broker.log").display()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Broker {
            child,
            port,
            metrics_port,
        }
    }

    /// The broker's `/metrics` text ("" if it cannot be read).
    fn scrape(&self) -> String {
        use std::io::{Read, Write};
        let Some(port) = self.metrics_port else {
            return String::new();
        };
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
        let req = "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let mut body = String::new();
        if s.write_all(req.as_bytes()).is_err() || s.read_to_string(&mut body).is_err() {
            return String::new();
        }
        body
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn sigkill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Resident set size in KiB.
    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|v| v.parse().ok())
            })
            .unwrap_or(0)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

/// The machine's 1-minute load average (other processes share the cores: context for the
/// latency figures).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .unwrap_or_default()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn client(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("log_level", "3");
    c
}

fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = client(bootstrap).create().expect("admin");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = rt
        .block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .expect("create topics");
    for r in res {
        if let Err((t, e)) = r {
            if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                panic!("create topic {t}: {e}");
            }
        }
    }
}

/// Cumulative bucket counts `(le, count)` of histogram `name` summed over the series whose
/// labels contain `filter` (all series if empty), from a Prometheus text exposition.
fn buckets(text: &str, name: &str, filter: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut out: Vec<(f64, f64)> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with(&prefix)) {
        if !filter.is_empty() && !line.contains(filter) {
            continue;
        }
        let Some(le) = line
            .split("le=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|v| {
                if v == "+Inf" {
                    Some(f64::INFINITY)
                } else {
                    v.parse().ok()
                }
            })
        else {
            continue;
        };
        let Some(count) = line.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        match out.iter_mut().find(|(l, _)| *l == le) {
            Some(slot) => slot.1 += count,
            None => out.push((le, count)),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The upper bound of the bucket holding quantile `q` of what was observed between two
/// scrapes of the same histogram (`None` if nothing was).
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> Option<f64> {
    let delta: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, c)| {
            let b = before.iter().find(|(l, _)| l == le).map_or(0.0, |x| x.1);
            (*le, c - b)
        })
        .collect();
    let total = delta.last()?.1;
    if total <= 0.0 {
        return None;
    }
    delta
        .iter()
        .find(|(_, c)| *c >= q * total)
        .map(|(le, _)| *le)
}

fn fmt_bound(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("≤{v}"),
        Some(_) => ">max".to_string(),
        None => "-".to_string(),
    }
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

/// xorshift64*: reproducible kill points and churn timings.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n.max(1)
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

fn main() {
    // `cargo bench` passes `--bench`; ignore it.
    let args = Args::parse_from(std::env::args().filter(|a| a != "--bench"));
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).expect("data dir");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let ok = match &args.cmd {
        Cmd::Soak { .. } => rt.block_on(soak(&args, &dir)),
        Cmd::CrashLoop { .. } => rt.block_on(crash_loop(&args, &dir)),
    };
    if !ok {
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------------------------------------
// Soak.

#[derive(Default)]
struct SoakCounters {
    produced: AtomicU64,
    produce_errors: AtomicU64,
    consumed: AtomicU64,
    joins: AtomicU64,
    topics_created: AtomicU64,
    topics_deleted: AtomicU64,
    churn_errors: AtomicU64,
    latencies_us: Mutex<Vec<u32>>,
}

async fn soak(args: &Args, dir: &Path) -> bool {
    let Cmd::Soak {
        duration_secs,
        report_secs,
        rate,
        record_size,
        partitions,
        churn_consumers,
        topic_churn_ms,
    } = args.cmd
    else {
        unreachable!()
    };
    const TOPIC: &str = "soak";
    const GROUP: &str = "soak-group";
    // Retention keeps the disk bounded: the soak topic keeps about two minutes.
    let extra = [
        "auto.create.topics.enable=false".to_string(),
        "log.segment.bytes=16777216".to_string(),
        "log.retention.check.interval.ms=10000".to_string(),
    ];
    let broker = Broker::start_with_metrics(args, dir, free_port(), &extra, Some(free_port()));
    let bootstrap = broker.bootstrap();
    {
        let b = bootstrap.clone();
        tokio::task::spawn_blocking(move || {
            create_topic(
                &b,
                TOPIC,
                partitions,
                &[("retention.ms", "120000"), ("segment.bytes", "8388608")],
            )
        })
        .await
        .expect("create topic");
    }
    println!(
        "soak: broker pid {}, {duration_secs} s, {rate} records/s of {record_size} B acks=all on \
         {partitions} partitions, 1 steady + {churn_consumers} churning consumers, a topic \
         create/produce/delete every {topic_churn_ms} ms; data in {}",
        broker.pid(),
        dir.display()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let c = Arc::new(SoakCounters::default());
    let mut threads = Vec::new();

    // Producer: paced, acks=all, latency from send to acknowledgement.
    let producer: FutureProducer = client(&bootstrap)
        .set("acks", "all")
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let producer_task = {
        let (stop, c, producer) = (stop.clone(), c.clone(), producer.clone());
        tokio::spawn(async move {
            let payload = vec![b'x'; record_size];
            let start = Instant::now();
            let mut sent: u64 = 0;
            let mut inflight = tokio::task::JoinSet::new();
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let key = sent.to_string();
                sent += 1;
                let (p, c2, payload) = (producer.clone(), c.clone(), payload.clone());
                inflight.spawn(async move {
                    let t = Instant::now();
                    let rec = FutureRecord::to(TOPIC).key(&key).payload(&payload);
                    match p.send(rec, Duration::from_secs(30)).await {
                        Ok(_) => {
                            c2.produced.fetch_add(1, Ordering::Relaxed);
                            let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
                            c2.latencies_us.lock().expect("lock").push(us);
                        }
                        Err(_) => {
                            c2.produce_errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        })
    };

    // The steady consumer (auto-commit every second: the offsets topic keeps growing and gets
    // compacted) and the churning consumers of the same group.
    for i in 0..=churn_consumers {
        let (stop, c, b) = (stop.clone(), c.clone(), bootstrap.clone());
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(clock_seed() ^ (i as u64) << 32);
            while !stop.load(Ordering::Relaxed) {
                let consumer: BaseConsumer = client(&b)
                    .set("group.id", GROUP)
                    .set("auto.offset.reset", "latest")
                    .set("enable.auto.commit", "true")
                    .set("auto.commit.interval.ms", "1000")
                    .set("session.timeout.ms", "10000")
                    .set("heartbeat.interval.ms", "1000")
                    .create()
                    .expect("consumer");
                consumer.subscribe(&[TOPIC]).expect("subscribe");
                c.joins.fetch_add(1, Ordering::Relaxed);
                // The steady one (i == 0) stays; the others leave after 3-15 s.
                let stay = if i == 0 {
                    Duration::MAX
                } else {
                    Duration::from_millis(3000 + rng.below(12_000))
                };
                let t = Instant::now();
                while !stop.load(Ordering::Relaxed) && t.elapsed() < stay {
                    if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
                        c.consumed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // Dropping a consumer sends LeaveGroup.
                consumer.unsubscribe();
                drop(consumer);
                if i != 0 {
                    std::thread::sleep(Duration::from_millis(rng.below(2000)));
                }
            }
        }));
    }

    // Topic churn: create, produce 100 records with a fresh producer, delete.
    {
        let (stop, c, b) = (stop.clone(), c.clone(), bootstrap.clone());
        threads.push(std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let admin: AdminClient<DefaultClientContext> = client(&b).create().expect("admin");
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let name = format!("soak-churn-{n}");
                let topic = NewTopic::new(&name, 3, TopicReplication::Fixed(1));
                let created = rt.block_on(admin.create_topics([&topic], &AdminOptions::new()));
                if !matches!(created.as_deref(), Ok([Ok(_)])) {
                    c.churn_errors.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(topic_churn_ms));
                    continue;
                }
                c.topics_created.fetch_add(1, Ordering::Relaxed);
                let p: FutureProducer = client(&b)
                    .set("acks", "all")
                    .set("message.timeout.ms", "10000")
                    .create()
                    .expect("producer");
                let ok = rt.block_on(async {
                    let values: Vec<String> = (0..100u32).map(|i| i.to_string()).collect();
                    let mut fs = Vec::new();
                    for v in &values {
                        fs.push(
                            p.send(FutureRecord::<(), _>::to(&name).payload(v), Duration::ZERO),
                        );
                    }
                    futures::future::join_all(fs)
                        .await
                        .iter()
                        .all(|r| r.is_ok())
                });
                if !ok {
                    c.churn_errors.fetch_add(1, Ordering::Relaxed);
                }
                drop(p);
                let deleted = rt.block_on(admin.delete_topics(&[&name], &AdminOptions::new()));
                if matches!(deleted.as_deref(), Ok([Ok(_)])) {
                    c.topics_deleted.fetch_add(1, Ordering::Relaxed);
                } else {
                    c.churn_errors.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(topic_churn_ms));
            }
        }));
    }

    // Reports.
    let start = Instant::now();
    let rss_start = broker.rss_kib();
    let fds_start = broker.open_fds();
    println!(
        "| minute | RSS MiB | fds | threads | produced/s | consumed/s | p50 ms | p99 ms | max ms | \
         produce errors | group joins | topics created/deleted | churn errors | load 1m | \
         broker Produce p99 ms | broker fsync p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| 0 | {:.1} | {fds_start} | {} | | | | | | | | | | | | |",
        rss_start as f64 / 1024.0,
        broker.threads()
    );
    let mut last = (0u64, 0u64);
    const PRODUCE_TIME: &str = "kafka_network_requestmetrics_totaltimems";
    const FLUSH_TIME: &str = "kafka_log_logflushstats_logflushrateandtimems";
    let text = broker.scrape();
    let mut last_produce = buckets(&text, PRODUCE_TIME, "request=\"Produce\"");
    let mut last_flush = buckets(&text, FLUSH_TIME, "");
    let mut p99s = Vec::new();
    let mut rss_end = rss_start;
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(duration_secs) {
        n += 1;
        let due = start + Duration::from_secs(n * report_secs);
        tokio::time::sleep_until(due.into()).await;
        let mut lat = std::mem::take(&mut *c.latencies_us.lock().expect("lock"));
        lat.sort_unstable();
        let produced = c.produced.load(Ordering::Relaxed);
        let consumed = c.consumed.load(Ordering::Relaxed);
        let secs = report_secs as f64;
        rss_end = broker.rss_kib();
        let p99 = percentile(&lat, 0.99);
        p99s.push(p99);
        let text = broker.scrape();
        let produce = buckets(&text, PRODUCE_TIME, "request=\"Produce\"");
        let flush = buckets(&text, FLUSH_TIME, "");
        let broker_p99 = bucket_quantile(&last_produce, &produce, 0.99);
        let flush_p99 = bucket_quantile(&last_flush, &flush, 0.99);
        (last_produce, last_flush) = (produce, flush);
        println!(
            "| {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {} | {}/{} | {} | {} | {} | {} |",
            start.elapsed().as_secs_f64() / 60.0,
            rss_end as f64 / 1024.0,
            broker.open_fds(),
            broker.threads(),
            (produced - last.0) as f64 / secs,
            (consumed - last.1) as f64 / secs,
            percentile(&lat, 0.5),
            p99,
            lat.last().map(|&m| f64::from(m) / 1000.0).unwrap_or(0.0),
            c.produce_errors.load(Ordering::Relaxed),
            c.joins.load(Ordering::Relaxed),
            c.topics_created.load(Ordering::Relaxed),
            c.topics_deleted.load(Ordering::Relaxed),
            c.churn_errors.load(Ordering::Relaxed),
            load_average(),
            fmt_bound(broker_p99),
            fmt_bound(flush_p99),
        );
        last = (produced, consumed);
    }
    stop.store(true, Ordering::Relaxed);
    let _ = producer_task.await;
    producer.flush(Duration::from_secs(30)).ok();
    for t in threads {
        let _ = t.join();
    }
    let p99s: Vec<String> = p99s.iter().map(|p| format!("{p:.1}")).collect();
    println!(
        "soak summary: {:.1} min, RSS start {:.1} MiB end {:.1} MiB, fds start {fds_start} end {}, \
         produced {}, produce errors {}, consumed {}, group joins {}, topics created {} deleted {}; \
         p99 ms per interval: {}",
        start.elapsed().as_secs_f64() / 60.0,
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        broker.open_fds(),
        c.produced.load(Ordering::Relaxed),
        c.produce_errors.load(Ordering::Relaxed),
        c.consumed.load(Ordering::Relaxed),
        c.joins.load(Ordering::Relaxed),
        c.topics_created.load(Ordering::Relaxed),
        c.topics_deleted.load(Ordering::Relaxed),
        p99s.join(" ")
    );
    c.produce_errors.load(Ordering::Relaxed) == 0
}

// ---------------------------------------------------------------------------------------------
// Crash loop.

/// Where an acknowledged record was stored: value → (partition, offset).
type Acked = HashMap<String, (i32, i64)>;

/// One acknowledgement: the value and its (partition, offset).
type AckedRecord = (String, (i32, i64));

async fn crash_loop(args: &Args, dir: &Path) -> bool {
    let Cmd::CrashLoop {
        rounds,
        partitions,
        producers,
        in_flight,
        max_kill_ms,
        seed,
    } = args.cmd
    else {
        unreachable!()
    };
    const TOPIC: &str = "crash-loop";
    let seed = seed.unwrap_or_else(clock_seed);
    let mut rng = Rng::new(seed);
    let port = free_port();
    // Small segments so kills land around rolls; frequent recovery-point checkpoints so restarts
    // trust part of the log and scan the rest.
    let extra = [
        "log.segment.bytes=262144".to_string(),
        "log.flush.offset.checkpoint.interval.ms=200".to_string(),
    ];
    println!(
        "crash-loop: {rounds} rounds, {partitions} partitions, {producers} acks=all producers \
         ({in_flight} records in flight each), kill within {max_kill_ms} ms, seed {seed}, data in {}",
        dir.display()
    );
    let mut acked: Acked = HashMap::new();
    let mut checked_total: u64 = 0;
    let mut lost_total: u64 = 0;
    let started = Instant::now();
    for round in 0..=rounds {
        let broker = Broker::start(args, dir, port, &extra);
        let bootstrap = broker.bootstrap();
        if round == 0 {
            let b = bootstrap.clone();
            tokio::task::spawn_blocking(move || create_topic(&b, TOPIC, partitions, &[]))
                .await
                .expect("create topic");
        } else {
            let b = bootstrap.clone();
            let stored = tokio::task::spawn_blocking(move || read_all(&b, TOPIC, partitions))
                .await
                .expect("read back");
            let (checked, lost, dups) = check(&stored, &acked);
            checked_total += checked;
            lost_total += lost + dups;
            println!(
                "round {round}: {} stored, {checked} acknowledged checked, {lost} lost, {dups} \
                 stored twice, {:.0} s",
                stored.len(),
                started.elapsed().as_secs_f64()
            );
        }
        if round == rounds {
            break;
        }
        let round_acks: Arc<Mutex<Vec<AckedRecord>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for w in 0..producers {
            let producer: FutureProducer = client(&bootstrap)
                .set("acks", "all")
                .set("enable.idempotence", "false")
                .set("linger.ms", "1")
                .set("message.send.max.retries", "0")
                .set("message.timeout.ms", "5000")
                .create()
                .expect("producer");
            let (acks, stop) = (round_acks.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let mut seq = 0u64;
                let mut inflight = futures::stream::FuturesUnordered::new();
                use futures::StreamExt;
                while !stop.load(Ordering::Relaxed) {
                    // Up to `in_flight` records in flight per producer, over all partitions.
                    while inflight.len() < in_flight && !stop.load(Ordering::Relaxed) {
                        let value = format!("r{round}-p{w}-s{seq}");
                        seq += 1;
                        let p = producer.clone();
                        inflight.push(async move {
                            let rec = FutureRecord::to(TOPIC).key(&value).payload(&value);
                            let r = p.send(rec, Duration::from_secs(5)).await;
                            (value, r)
                        });
                    }
                    if let Some((value, Ok(d))) = inflight.next().await {
                        acks.lock()
                            .expect("lock")
                            .push((value, (d.partition, d.offset)));
                    }
                }
                while let Some((value, r)) = inflight.next().await {
                    if let Ok(d) = r {
                        acks.lock()
                            .expect("lock")
                            .push((value, (d.partition, d.offset)));
                    }
                }
            }));
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while round_acks.lock().expect("lock").len() < 100 {
            assert!(Instant::now() < deadline, "no progress in round {round}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.below(max_kill_ms))).await;
        broker.sigkill();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("producer task");
        }
        let acks = std::mem::take(&mut *round_acks.lock().expect("lock"));
        let n = acks.len();
        for (value, at) in acks {
            acked.insert(value, at);
        }
        println!("round {round}: killed with {n} acknowledged in this round");
    }
    println!(
        "crash-loop summary: {rounds} rounds, {} records acknowledged, {checked_total} checks of \
         acknowledged records, {lost_total} lost, {:.0} s",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
    lost_total == 0
}

/// Every record stored: (partition, offset) → value, reading each partition to its high
/// watermark (librdkafka checks every batch's CRC). Offsets must be contiguous from 0.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> HashMap<(i32, i64), String> {
    let consumer: BaseConsumer = client(bootstrap)
        .set("group.id", "crash-loop-check")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "52428800")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    let mut next = HashMap::new();
    let mut total = 0;
    for p in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(30))
            .expect("watermarks");
        assert_eq!(low, 0, "nothing was deleted");
        total += high;
        next.insert(p, 0i64);
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    while (out.len() as i64) < total {
        assert!(Instant::now() < deadline, "read {} of {total}", out.len());
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let p = m.partition();
        let n = next.get_mut(&p).expect("partition");
        assert_eq!(m.offset(), *n, "offsets of partition {p} are contiguous");
        *n += 1;
        let v = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
        out.insert((p, m.offset()), v);
    }
    out
}

/// `(checked, lost, stored twice)`: every acknowledged value must be at its position.
fn check(stored: &HashMap<(i32, i64), String>, acked: &Acked) -> (u64, u64, u64) {
    let mut lost = 0;
    for (value, at) in acked {
        if stored.get(at) != Some(value) {
            if lost < 10 {
                eprintln!(
                    "LOST: {value} acknowledged at {at:?}, stored there: {:?}",
                    stored.get(at)
                );
            }
            lost += 1;
        }
    }
    let mut seen = HashSet::new();
    let dups = stored.values().filter(|v| !seen.insert(*v)).count() as u64;
    (acked.len() as u64, lost, dups)
}
