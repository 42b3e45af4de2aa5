//! Cluster benchmarks (issue 14): metadata operations per second (CreateTopics of 1-partition
//! topics, one request per topic, from librdkafka's AdminClient) on a three-node quorum against
//! a single node, measured in the same run; and controller failover time (SIGKILL of the active
//! controller to the first successful CreateTopics through a surviving node), over several
//! rounds, each killed node restarted and back in the cluster before the next round.
//!
//! ```text
//! cargo bench --bench cluster                     # 300 topics, 10 failover rounds
//! cargo bench --bench cluster -- --topics 1000 --rounds 20
//! ```
//!
//! The nodes are `esker` processes on loopback (the release binary cargo built for this bench)
//! with temporary data directories; every process is killed when the bench ends.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

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

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().expect("tempdir");

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
