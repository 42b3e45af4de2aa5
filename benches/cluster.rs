//! Cluster benchmarks (issue 14): metadata operations per second (CreateTopics of 1-partition
//! topics, one request per topic, from librdkafka's AdminClient) on a three-node quorum against
//! a single node, measured in the same run; and controller failover time (SIGKILL of the active
//! controller to the first successful CreateTopics through a surviving node), over several
//! rounds, each killed node restarted and back in the cluster before the next round.
//!
//! `--failover-stall` measures instead what a producer sees when a partition leader dies: on a
//! three-node cluster, a topic with one partition, replication factor 3 and
//! `min.insync.replicas=2`, an idempotent acks=all producer sending one message about every
//! millisecond; each round SIGKILLs the partition's leader and times the stall, from the kill to
//! the first acknowledgement of a message sent after the kill, then restarts the node and waits
//! until it is back in the ISR. Reports p50/p90/p99/max in ms. A broker that refuses acks=all at
//! `min.insync.replicas=2` with NOT_ENOUGH_REPLICAS (one without partition replication) is
//! measured at 1 instead, which the report says: that measures the leader move alone.
//!
//! ```text
//! cargo bench --bench cluster                     # 300 topics, 10 failover rounds
//! cargo bench --bench cluster -- --topics 1000 --rounds 20
//! cargo bench --bench cluster -- --failover-stall --kills 20
//! ```
//!
//! The nodes are `esker` processes on loopback (the release binary cargo built for this bench)
//! with temporary data directories; every process is killed when the bench ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};

#[derive(Parser, Debug)]
#[command(about = "Esker cluster benchmarks: metadata operations and controller failover")]
struct Args {
    /// Topics created per measurement.
    #[arg(long, default_value_t = 300)]
    topics: usize,
    /// Failover rounds.
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Replication factor of the topics created on the cluster.
    #[arg(long, default_value_t = 3)]
    replication_factor: i32,
    /// `controller.quorum.election.timeout.ms` of the cluster.
    #[arg(long, default_value_t = 1000)]
    election_timeout_ms: u64,
    /// Measure the producer's stall when a partition leader is killed (instead of the
    /// metadata benchmarks).
    #[arg(long)]
    failover_stall: bool,
    /// Leader kills of `--failover-stall`.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// `min.insync.replicas` of the `--failover-stall` topic.
    #[arg(long, default_value_t = 2)]
    min_insync_replicas: u32,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

/// One `esker` process.
struct Node {
    id: usize,
    kafka: u16,
    metrics: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(&mut self) {
        let log = std::fs::File::create(&self.log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_esker"))
            .arg("-c")
            .arg(&self.config)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("esker starts");
        self.child = Some(child);
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.kafka)
    }

    /// Whether this node's ActiveControllerCount gauge is 1.
    fn is_active_controller(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.metrics)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n");
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.lines()
            .any(|l| l == "kafka_controller_kafkacontroller_activecontrollercount 1")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Writes the nodes' configs: `n` cluster nodes, or one node without cluster keys.
fn nodes(dir: &Path, n: usize, cluster: bool, election_ms: u64) -> Vec<Node> {
    std::fs::create_dir_all(dir).expect("bench directory");
    let ports: Vec<(u16, u16, u16)> = (0..n)
        .map(|_| (free_port(), free_port(), free_port()))
        .collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p.1))
        .collect();
    ports
        .iter()
        .enumerate()
        .map(|(i, &(kafka, controller, metrics))| {
            let id = i + 1;
            let data = dir.join(format!("node-{id}"));
            let mut text = format!(
                "node.id={id}\nlog.dirs={}\nkinesis.listener=\nmetrics.listener=127.0.0.1:{metrics}\n",
                data.display()
            );
            if cluster {
                text.push_str(&format!(
                    "process.roles=broker,controller\n\
                     listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}\n\
                     controller.quorum.voters={}\n\
                     controller.quorum.election.timeout.ms={election_ms}\n\
                     broker.heartbeat.interval.ms=500\nbroker.session.timeout.ms=3000\n",
                    voters.join(",")
                ));
            } else {
                text.push_str(&format!("listeners=PLAINTEXT://127.0.0.1:{kafka}\n"));
            }
            let config = dir.join(format!("node-{id}.properties"));
            std::fs::write(&config, text).expect("config");
            Node {
                id,
                kafka,
                metrics,
                config,
                log: dir.join(format!("node-{id}.log")),
                child: None,
            }
        })
        .collect()
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()
        .expect("admin client")
}

/// Waits until `bootstrap` answers Metadata with `brokers` brokers.
fn wait_brokers(bootstrap: &str, brokers: usize, limit: Duration) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "0")
        .create()
        .expect("client");
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if let Ok(md) = consumer.fetch_metadata(None, Duration::from_secs(2)) {
            if md.brokers().len() == brokers {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{bootstrap} did not list {brokers} brokers within {limit:?}");
}

/// Creates one topic; `Err` with the reason.
async fn create(
    admin: &AdminClient<DefaultClientContext>,
    name: &str,
    rf: i32,
) -> Result<(), String> {
    let opts = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .operation_timeout(Some(Duration::from_secs(5)));
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(rf));
    match admin.create_topics(&[topic], &opts).await {
        Ok(r) => match r.into_iter().next() {
            Some(Ok(_)) => Ok(()),
            Some(Err((_, code))) => Err(code.to_string()),
            None => Err("no result".into()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Topics per second for `n` sequential CreateTopics.
async fn metadata_ops(bootstrap: &str, prefix: &str, n: usize, rf: i32) -> f64 {
    let admin = admin(bootstrap);
    // Warm-up: connections and metadata.
    create(&admin, &format!("{prefix}-warmup"), rf)
        .await
        .expect("warm-up topic");
    let started = Instant::now();
    for i in 0..n {
        create(&admin, &format!("{prefix}-{i}"), rf)
            .await
            .unwrap_or_else(|e| panic!("topic {i}: {e}"));
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The `--failover-stall` topic.
const STALL_TOPIC: &str = "stall";
/// Pause between two messages of the `--failover-stall` producer.
const STALL_PACE: Duration = Duration::from_millis(1);
/// The longest a stall or a rejoin may take before the bench gives up.
const STALL_LIMIT: Duration = Duration::from_secs(60);

/// What the `--failover-stall` producer's delivery reports said.
#[derive(Default)]
struct Deliveries {
    /// Messages handed to the client (the next one's number).
    sent: u64,
    acked: u64,
    failed: u64,
    /// Watch for the first acknowledgement of a message numbered at least this.
    watch_from: Option<u64>,
    /// When that acknowledgement arrived.
    first_after: Option<Instant>,
    /// Producers replaced after a fatal error (e.g. a new leader that does not know the
    /// producer's sequence numbers).
    fatal: Vec<String>,
}

struct Watcher(Arc<Mutex<Deliveries>>);

impl ClientContext for Watcher {}

impl ProducerContext for Watcher {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let now = Instant::now();
        let mut d = self.0.lock().expect("deliveries");
        match r {
            Ok(m) => {
                d.acked += 1;
                let n = m
                    .payload()
                    .and_then(|p| std::str::from_utf8(p).ok())
                    .and_then(|p| p.parse::<u64>().ok());
                if let (Some(n), Some(from)) = (n, d.watch_from) {
                    if n >= from && d.first_after.is_none() {
                        d.first_after = Some(now);
                        ACKED.notify_all();
                    }
                }
            }
            Err(_) => d.failed += 1,
        }
    }
}

/// The `--failover-stall` producer.
fn stall_client(bootstrap: &str, deliveries: &Arc<Mutex<Deliveries>>) -> ThreadedProducer<Watcher> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .set("request.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "200")
        .set("retry.backoff.max.ms", "200")
        .create_with_context(Watcher(deliveries.clone()))
        .expect("producer")
}

/// Sends numbered messages to partition 0 every [`STALL_PACE`] until `stop`; replaces the
/// producer after a fatal error.
fn stall_producer(bootstrap: String, deliveries: Arc<Mutex<Deliveries>>, stop: Arc<AtomicBool>) {
    let mut producer = stall_client(&bootstrap, &deliveries);
    while !stop.load(Ordering::SeqCst) {
        let n = deliveries.lock().expect("deliveries").sent;
        let payload = n.to_string();
        match producer.send(
            BaseRecord::<(), _>::to(STALL_TOPIC)
                .partition(0)
                .payload(&payload),
        ) {
            Ok(()) => deliveries.lock().expect("deliveries").sent += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {}
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::Fatal), _)) => {}
            Err((e, _)) => panic!("enqueue: {e}"),
        }
        if let Some((code, reason)) = producer.client().fatal_error() {
            deliveries
                .lock()
                .expect("deliveries")
                .fatal
                .push(format!("{code:?}: {reason}"));
            producer = stall_client(&bootstrap, &deliveries);
        }
        std::thread::sleep(STALL_PACE);
    }
    let _ = producer.flush(Duration::from_secs(10));
}

/// Partition 0 of the stall topic: (leader, ISR), from Metadata through `client`.
fn partition0(client: &BaseConsumer) -> Option<(i32, Vec<i32>)> {
    let md = client
        .fetch_metadata(Some(STALL_TOPIC), Duration::from_secs(2))
        .ok()?;
    let p = md
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == 0)?;
    Some((p.leader(), p.isr().to_vec()))
}

/// Waits until partition 0 has a leader and its ISR holds all three replicas.
fn wait_full_isr(client: &BaseConsumer) -> i32 {
    let until = Instant::now() + STALL_LIMIT;
    loop {
        if let Some((leader, isr)) = partition0(client) {
            if leader > 0 && isr.len() == 3 {
                return leader;
            }
        }
        assert!(
            Instant::now() < until,
            "partition 0 never got three in-sync replicas"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Watches for the first acknowledgement of a message numbered `from` or later.
fn arm(deliveries: &Mutex<Deliveries>, from: u64) {
    let mut d = deliveries.lock().expect("deliveries");
    d.watch_from = Some(from);
    d.first_after = None;
}

/// Waits until a message numbered `from` or later is acknowledged; when it was.
fn wait_ack_from(deliveries: &Mutex<Deliveries>, from: u64, limit: Duration) -> Option<Instant> {
    arm(deliveries, from);
    wait_armed(deliveries, limit)
}

/// Signalled when the acknowledgement [`arm`] watches for arrives (one stall run at a time
/// uses it, with its one `Deliveries` mutex).
static ACKED: Condvar = Condvar::new();

/// Waits until the acknowledgement [`arm`] watches for arrives; when it did.
fn wait_armed(deliveries: &Mutex<Deliveries>, limit: Duration) -> Option<Instant> {
    let until = Instant::now() + limit;
    let mut d = deliveries.lock().expect("deliveries");
    loop {
        if let Some(at) = d.first_after {
            return Some(at);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        d = ACKED.wait_timeout(d, left).expect("deliveries").0;
    }
}

/// One acks=all send without idempotence or retries: the broker's answer.
async fn probe(bootstrap: &str) -> Result<(), RDKafkaErrorCode> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .set("acks", "all")
        .set("retries", "0")
        .set("message.timeout.ms", "5000")
        .create()
        .expect("probe producer");
    let record = FutureRecord::<(), _>::to(STALL_TOPIC)
        .partition(0)
        .payload("probe");
    match producer.send(record, Duration::from_secs(5)).await {
        Ok(_) => Ok(()),
        Err((e, _)) => Err(e.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail)),
    }
}

/// `--failover-stall`: see the module doc.
async fn failover_stall(args: &Args, dir: &Path) {
    let mut cluster = nodes(&dir.join("stall"), 3, true, args.election_timeout_ms);
    for n in cluster.iter_mut() {
        n.start();
    }
    for n in &cluster {
        wait_brokers(&n.bootstrap(), 3, Duration::from_secs(60));
    }
    let bootstrap = cluster
        .iter()
        .map(Node::bootstrap)
        .collect::<Vec<_>>()
        .join(",");
    let admin = admin(&bootstrap);
    let min_isr = args.min_insync_replicas.to_string();
    let topic = NewTopic::new(STALL_TOPIC, 1, TopicReplication::Fixed(3))
        .set("min.insync.replicas", &min_isr);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let created = admin
        .create_topics(&[topic], &opts)
        .await
        .expect("CreateTopics");
    assert!(
        matches!(created.first(), Some(Ok(_))),
        "CreateTopics: {created:?}"
    );
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("log_level", "0")
        .create()
        .expect("metadata client");
    wait_full_isr(&client);

    // A broker without partition replication refuses acks=all above one in-sync replica.
    let mut note = String::new();
    if let Err(RDKafkaErrorCode::NotEnoughReplicas) = probe(&bootstrap).await {
        note = format!(
            " (measured at min.insync.replicas=1: the broker answers acks=all at {} with \
             NOT_ENOUGH_REPLICAS, so this is the leader move alone)",
            args.min_insync_replicas
        );
        let mut alter = AlterConfig::new(ResourceSpecifier::Topic(STALL_TOPIC));
        alter = alter.set("min.insync.replicas", "1");
        admin
            .alter_configs(&[alter], &AdminOptions::new())
            .await
            .expect("AlterConfigs");
        println!("note:{note}");
    }

    let deliveries = Arc::new(Mutex::new(Deliveries::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (b, d, s) = (bootstrap.clone(), deliveries.clone(), stop.clone());
        std::thread::spawn(move || stall_producer(b, d, s))
    };
    wait_ack_from(&deliveries, 0, Duration::from_secs(30))
        .expect("no acknowledgement within 30 s of starting to produce");

    let mut stalls = Vec::with_capacity(args.kills);
    for round in 0..args.kills {
        let leader = wait_full_isr(&client);
        // Producing is steady before the kill.
        let from = deliveries.lock().expect("deliveries").sent;
        wait_ack_from(&deliveries, from, STALL_LIMIT).expect("the producer is not acknowledged");
        let node = cluster
            .iter_mut()
            .find(|n| n.id as i32 == leader)
            .expect("the leader is a node");
        let from = deliveries.lock().expect("deliveries").sent;
        arm(&deliveries, from);
        let killed_at = Instant::now();
        node.kill();
        let acked_at = wait_armed(&deliveries, STALL_LIMIT).unwrap_or_else(|| {
            panic!(
                "round {round}: no acknowledgement within {STALL_LIMIT:?} of killing node {leader}"
            )
        });
        let ms = acked_at.duration_since(killed_at).as_secs_f64() * 1000.0;
        let new_leader = partition0(&client).map_or(-1, |(l, _)| l);
        println!(
            "  round {round}: killed leader node {leader}; stalled {ms:.0} ms; leader now \
             {new_leader}"
        );
        stalls.push(ms);
        node.start();
        wait_brokers(&node.bootstrap(), 3, STALL_LIMIT);
        wait_full_isr(&client);
    }
    stop.store(true, Ordering::SeqCst);
    producer.join().expect("producer thread");
    let d = deliveries.lock().expect("deliveries");
    if !stalls.is_empty() {
        stalls.sort_by(|a, b| a.total_cmp(b));
        println!(
            "failover stall (SIGKILL of partition 0's leader to the first acknowledgement of a \
             message sent after it; acks=all, idempotent, a message every ~{} ms), {} kills: \
             p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms (session timeout 3000 ms; \
             {} acknowledged, {} failed, {} producers replaced after a fatal error){note}",
            STALL_PACE.as_millis(),
            stalls.len(),
            percentile(&stalls, 0.5),
            percentile(&stalls, 0.9),
            percentile(&stalls, 0.99),
            stalls[stalls.len() - 1],
            d.acked,
            d.failed,
            d.fatal.len()
        );
        if let Some(first) = d.fatal.first() {
            println!("first fatal producer error: {first}");
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("tempdir");
    if args.failover_stall {
        failover_stall(&args, dir.path()).await;
        return;
    }

    // Single node.
    let mut single = nodes(
        &dir.path().join("single"),
        1,
        false,
        args.election_timeout_ms,
    )
    .remove(0);
    single.start();
    wait_brokers(&single.bootstrap(), 1, Duration::from_secs(30));
    let single_rate = metadata_ops(&single.bootstrap(), "single", args.topics, 1).await;
    single.kill();

    // Three-node quorum.
    let mut cluster = nodes(
        &dir.path().join("cluster"),
        3,
        true,
        args.election_timeout_ms,
    );
    for n in cluster.iter_mut() {
        n.start();
    }
    for n in &cluster {
        wait_brokers(&n.bootstrap(), 3, Duration::from_secs(60));
    }
    let cluster_rate = metadata_ops(
        &cluster[0].bootstrap(),
        "cluster",
        args.topics,
        args.replication_factor,
    )
    .await;
    println!(
        "metadata ops: CreateTopics of 1-partition topics, {} sequential requests",
        args.topics
    );
    println!("  single node:            {single_rate:>8.1} topics/s");
    println!(
        "  3-node quorum (RF={}):   {cluster_rate:>8.1} topics/s  ({:.2}x the single node)",
        args.replication_factor,
        cluster_rate / single_rate
    );

    // Failover rounds.
    let mut times = Vec::with_capacity(args.rounds);
    for round in 0..args.rounds {
        let until = Instant::now() + Duration::from_secs(30);
        let active = loop {
            if let Some(i) = cluster.iter().position(Node::is_active_controller) {
                break i;
            }
            assert!(Instant::now() < until, "no active controller");
            std::thread::sleep(Duration::from_millis(50));
        };
        let survivor = (active + 1) % cluster.len();
        let admin = admin(&cluster[survivor].bootstrap());
        // The client is connected before the kill, as an application's would be.
        create(&admin, &format!("pre-{round}"), 1)
            .await
            .expect("create before the kill");
        let killed_at = Instant::now();
        cluster[active].kill();
        let mut attempt = 0;
        loop {
            attempt += 1;
            if create(&admin, &format!("failover-{round}-{attempt}"), 1)
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                killed_at.elapsed() < Duration::from_secs(60),
                "no controller after 60 s"
            );
        }
        let ms = killed_at.elapsed().as_secs_f64() * 1000.0;
        println!(
            "  round {round}: killed node {}, CreateTopics through node {} succeeded after {ms:.0} ms",
            cluster[active].id, cluster[survivor].id
        );
        times.push(ms);
        cluster[active].start();
        for n in &cluster {
            wait_brokers(&n.bootstrap(), 3, Duration::from_secs(60));
        }
    }
    if !times.is_empty() {
        times.sort_by(|a, b| a.total_cmp(b));
        println!(
            "controller failover (kill to first successful CreateTopics), {} rounds: median {:.0} ms, p90 {:.0} ms, min {:.0} ms, max {:.0} ms (election timeout {} ms)",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.9),
            times[0],
            times[times.len() - 1],
            args.election_timeout_ms
        );
    }
}
