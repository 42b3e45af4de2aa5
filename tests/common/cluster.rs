//! A cluster of `esker` processes on loopback for the cluster tests (`tests/cluster.rs`).
//!
//! [`Cluster::start`] writes one `server.properties` per node in a temporary directory (Kafka's
//! KRaft keys: every node is `broker,controller`, all nodes are voters of the metadata quorum),
//! spawns the built binary once per node with its output in a per-node log file, and waits until
//! every node answers Metadata listing all of them. Nodes are named by their `node.id`, 1..=n, in
//! every method. The processes are driven with signals ([`Cluster::kill`], [`Cluster::stop`],
//! [`Cluster::cont`], [`Cluster::terminate`]) and observed through stock clients (librdkafka
//! via the `rdkafka` crate) and, for which node is the active controller (Metadata does not
//! say), each node's Prometheus gauge `kafka_controller_kafkacontroller_activecontrollercount`.
//! Dropping the cluster SIGKILLs every process still
//! alive, so none outlives a failed test; when the drop happens during a panic the tail of
//! every node's log is printed, and `ESKER_KEEP_CLUSTER=1` keeps the directory.
//! `ESKER_CLUSTER_BIN=<path>` runs another build of the broker (e.g. target/release/esker)
//! instead of the one cargo built for the tests; the nodes log with
//! `RUST_LOG=info,openraft=warn` unless `ESKER_CLUSTER_RUST_LOG` says otherwise. Nodes have no
//! Kinesis endpoint (`kinesis.listener` empty) unless started with
//! [`Cluster::start_with_kinesis`], which gives each one on a port of its own
//! ([`Cluster::kinesis_addr`]).
//!
//! [`Cluster::start_isolated`] starts each node in a network namespace of its own instead
//! (`ip netns exec <namespace> esker ...`, see [`super::netns`]): the nodes listen on and
//! advertise their namespace's address, on fixed ports (each namespace has its own), and reach
//! each other and the test process through a bridge in the test's namespace. [`Cluster::cut`]
//! and [`Cluster::heal`] take a node off that network and put it back; the process is the
//! broker's own (`ip` execs it), so the signals reach the broker. The drop removes the
//! namespaces and links after the processes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs::File;
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use super::netns::Network;

/// How long [`Cluster::start`] and [`Cluster::wait_ready`] wait for every node to list all
/// brokers.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Cluster::terminate`] waits for a process to exit after SIGTERM.
pub const TERMINATE_TIMEOUT: Duration = Duration::from_secs(30);
/// `broker.heartbeat.interval.ms` of test clusters.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// `broker.session.timeout.ms` of test clusters: a broker silent this long is fenced.
pub const SESSION_TIMEOUT: Duration = Duration::from_millis(3000);
/// `controller.quorum.election.timeout.ms` of test clusters.
pub const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long one Metadata request may take before the poll counts it as failed (a SIGSTOPped
/// node accepts connections but never answers).
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// Metadata requests tried before giving up on getting one answered by the node meant.
const METADATA_ATTEMPTS: usize = 10;
/// Interval between two checks of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Attempts of [`Cluster::start`] when a node cannot bind a port picked for it.
const START_ATTEMPTS: usize = 3;
/// Lines of each node's log shown when a wait fails.
const TAIL_LINES: usize = 40;
/// Ports of every isolated node (each has its own network namespace, so they never clash):
/// Kafka, controller, metrics.
const ISOLATED_PORTS: (u16, u16, u16) = (9092, 9093, 9644);
/// The Kinesis port of every isolated node started with [`Cluster::start_with_kinesis`]'s
/// listener (see [`Cluster::kinesis_addr`]).
const ISOLATED_KINESIS_PORT: u16 = 4567;
/// The `INTERNAL` port of every isolated node started with
/// [`Cluster::start_with_internal_listener`].
const ISOLATED_INTERNAL_PORT: u16 = 9094;
/// How long `ip netns exec` may take to exec the broker.
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports handed out in this test process, never handed out twice (tests run in parallel).
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// `n` distinct free loopback ports: all bound at once (so they differ), read, released.
fn free_ports(n: usize) -> Vec<u16> {
    let mut handed_out = HANDED_OUT.lock().expect("port registry");
    let mut held = Vec::new();
    let mut ports = Vec::new();
    while ports.len() < n {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = l.local_addr().expect("local addr").port();
        held.push(l);
        if handed_out.insert(port) {
            ports.push(port);
        }
    }
    ports
}

/// The current time as the broker's log lines print it (RFC 3339, UTC, microseconds).
fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_micros()
    )
}

/// One node of the cluster.
struct Node {
    id: i32,
    /// The address it listens on and advertises: loopback, or its namespace's address.
    host: Ipv4Addr,
    /// Its network namespace, when isolated.
    namespace: Option<String>,
    kafka_port: u16,
    controller_port: u16,
    metrics_port: u16,
    /// Its Kinesis listener's port, when the cluster was started with one.
    kinesis_port: Option<u16>,
    /// Its `INTERNAL` (inter-broker) listener's port, when the cluster was started with one.
    internal_port: Option<u16>,
    config: PathBuf,
    log: PathBuf,
    data: PathBuf,
    /// The running (or SIGSTOPped) process; `None` after kill/terminate.
    child: Mutex<Option<Child>>,
    /// SIGSTOPped and not yet SIGCONTed.
    stopped: bool,
    /// Processes started for this node so far (the log file marks each start).
    starts: usize,
}

impl Node {
    fn pid(&self) -> Option<i32> {
        self.child
            .lock()
            .expect("child")
            .as_ref()
            .map(|c| c.id() as i32)
    }

    fn is_up(&self) -> bool {
        self.child.lock().expect("child").is_some()
    }

    /// The exit status if the process has exited on its own.
    fn exited(&self) -> Option<ExitStatus> {
        let mut child = self.child.lock().expect("child");
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }
}

/// The nodes' log files; cheap to clone, so a bounded test body can borrow the cluster mutably
/// while the timeout still reports the logs (see [`within`]).
#[derive(Clone)]
pub struct Logs {
    files: Arc<Vec<(i32, PathBuf)>>,
    /// Set once a panic message carried the tails, so the drop does not print them again.
    reported: Arc<AtomicBool>,
}

impl Logs {
    /// The last `lines` lines of every node's log, each under a header naming the node.
    /// openraft's own lines (a leader logs every failed heartbeat to a stopped peer) are left
    /// out and counted; the file has them.
    pub fn tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (id, path) in self.files.iter() {
            let text = std::fs::read_to_string(path).unwrap_or_else(|e| format!("({e})"));
            let (raft, own): (Vec<&str>, Vec<&str>) =
                text.lines().partition(|l| l.contains(" openraft::"));
            let from = own.len().saturating_sub(lines);
            let _ = writeln!(
                out,
                "----- node {id}: {} (last {lines} lines; {} openraft lines left out) -----",
                path.display(),
                raft.len()
            );
            for l in &own[from..] {
                let _ = writeln!(out, "{l}");
            }
        }
        out
    }

    /// Panics with `msg` followed by the log tails.
    pub fn panic(&self, msg: &str) -> ! {
        self.reported.store(true, Ordering::SeqCst);
        panic!("{msg}\n{}", self.tails(TAIL_LINES))
    }
}

/// Runs `body`, panicking with the nodes' log tails if it takes longer than `limit`. (The
/// cluster the body used is dropped by the caller afterwards, which kills its processes.)
pub async fn within<T>(limit: Duration, logs: &Logs, body: impl Future<Output = T>) -> T {
    match tokio::time::timeout(limit, body).await {
        Ok(v) => v,
        Err(_) => logs.panic(&format!("the test did not finish within {limit:?}")),
    }
}

/// A partition as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionView {
    pub id: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// The partition's error code name, if any (e.g. `LeaderNotAvailable`).
    pub error: Option<String>,
}

/// A topic as Metadata describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicView {
    pub error: Option<String>,
    /// Sorted by partition id.
    pub partitions: Vec<PartitionView>,
}

/// One node's answer to a Metadata request for all topics, owned.
#[derive(Clone, Debug)]
pub struct MetadataView {
    /// The node that was asked.
    pub from: i32,
    /// The controller id of the response (librdkafka's `rd_kafka_controllerid`, set from this
    /// response); -1 if none was reported. In a cluster a broker names itself (as KRaft brokers
    /// name a live broker); see [`Cluster::controller_id`] for the quorum's leader.
    pub controller_id: i32,
    /// Broker id → advertised `host:port`.
    pub brokers: BTreeMap<i32, String>,
    pub topics: BTreeMap<String, TopicView>,
}

impl MetadataView {
    pub fn broker_ids(&self) -> BTreeSet<i32> {
        self.brokers.keys().copied().collect()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicView> {
        self.topics.get(name)
    }

    /// The partitions of `name` (empty if the topic is not listed).
    pub fn partitions(&self, name: &str) -> &[PartitionView] {
        self.topics
            .get(name)
            .map(|t| t.partitions.as_slice())
            .unwrap_or(&[])
    }

    /// The distinct leaders of `name`'s partitions.
    pub fn leaders(&self, name: &str) -> BTreeSet<i32> {
        self.partitions(name).iter().map(|p| p.leader).collect()
    }
}

/// Metadata for all topics from node `from` at `bootstrap` (a fresh client bootstrapped from that
/// node alone; an answer from another node is an error), with the controller id of the response.
fn fetch_metadata(from: i32, bootstrap: &str) -> Result<Option<MetadataView>, String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "3000")
        .create()
        .map_err(|e| format!("client for node {from}: {e}"))?;
    let md = consumer
        .fetch_metadata(None, METADATA_TIMEOUT)
        .map_err(|e| format!("metadata from node {from}: {e}"))?;
    // librdkafka (from 2.10, KIP-899) drops the bootstrap broker once it learned the brokers
    // from a first Metadata answer, so the request may have gone to another node: only an
    // answer from the node asked counts (`<bootstrap>/bootstrap` or `<bootstrap>/<id>`).
    if !md.orig_broker_name().starts_with(&format!("{bootstrap}/")) {
        return Ok(None);
    }
    // SAFETY: the pointer is the live client owned by `consumer`; the call only reads the
    // controller id librdkafka cached from the Metadata response just parsed (timeout 0: no
    // waiting).
    let controller_id =
        unsafe { rdkafka::bindings::rd_kafka_controllerid(consumer.client().native_ptr(), 0) };
    let brokers = md
        .brokers()
        .iter()
        .map(|b| (b.id(), format!("{}:{}", b.host(), b.port())))
        .collect();
    let topics = md
        .topics()
        .iter()
        .map(|t| {
            let mut partitions: Vec<PartitionView> = t
                .partitions()
                .iter()
                .map(|p| PartitionView {
                    id: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                    error: p
                        .error()
                        .map(|e| format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(e))),
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            let view = TopicView {
                error: t
                    .error()
                    .map(|e| format!("{:?}", rdkafka::types::RDKafkaErrorCode::from(e))),
                partitions,
            };
            (t.name().to_string(), view)
        })
        .collect();
    Ok(Some(MetadataView {
        from,
        controller_id,
        brokers,
        topics,
    }))
}

/// `GET /metrics` over HTTP/1.1: the body, or why there is none.
async fn scrape(addr: std::net::SocketAddr) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let fail = |e: std::io::Error| format!("{addr}/metrics: {e}");
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(fail)?;
    let req = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.map_err(fail)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.map_err(fail)?;
    let text = String::from_utf8_lossy(&buf);
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.1 200") => Ok(body.to_string()),
        _ => Err(format!(
            "{addr}/metrics: {}",
            text.lines().next().unwrap_or("")
        )),
    }
}

/// Why a wait ended without its condition holding.
enum WaitFailure {
    /// A node that should be running exited.
    Exited(i32, ExitStatus),
    /// The deadline passed; the last reason the check gave.
    Timeout(String),
}

/// Processes of `esker` forming one cluster, with their directory.
/// What [`Cluster::launch`] starts besides the nodes themselves.
#[derive(Debug, Default, Clone, Copy)]
struct Launch {
    /// The KRaft keys (every node broker and controller); without them, one plain broker.
    kraft: bool,
    /// Each node in a network namespace of its own.
    isolated: bool,
    /// A Kinesis listener per node.
    kinesis: bool,
    /// An `INTERNAL` inter-broker listener per node.
    internal: bool,
}

impl Launch {
    const KRAFT: Launch = Launch {
        kraft: true,
        isolated: false,
        kinesis: false,
        internal: false,
    };
}

pub struct Cluster {
    dir: Option<tempfile::TempDir>,
    nodes: Vec<Node>,
    /// Without the KRaft keys: a single plain broker (to exercise the harness itself).
    kraft: bool,
    logs: Logs,
    /// The nodes' namespaces and links, when isolated; removed after the processes.
    net: Option<Network>,
}

impl Cluster {
    /// Starts `n` nodes (ids 1..=n) with the test keys (fast heartbeats and fencing, replication
    /// factors of min(n, 3)) and `extra` keys on top (a key given there replaces a default one),
    /// and waits until every node answers Metadata listing `n` brokers. When a node cannot bind
    /// a port picked for it (another process took it in between), starts again on new ports.
    pub async fn start(n: usize, extra: &[(&str, &str)]) -> Cluster {
        assert!(n >= 1, "a cluster has nodes");
        Self::launch(n, extra, Launch::KRAFT).await
    }

    /// Like [`Cluster::start`], with a second Kafka listener on every node, `INTERNAL` (on a
    /// port of its own, advertised), named as `inter.broker.listener.name`: the brokers reach
    /// each other there, clients on `PLAINTEXT` ([`Cluster::bootstrap`]).
    pub async fn start_with_internal_listener(n: usize, extra: &[(&str, &str)]) -> Cluster {
        assert!(n >= 1, "a cluster has nodes");
        let launch = Launch {
            internal: true,
            ..Launch::KRAFT
        };
        Self::launch(n, extra, launch).await
    }

    /// Like [`Cluster::start`], with every node's Kinesis endpoint listening on a port of its
    /// own (the other constructors leave `kinesis.listener` empty): see
    /// [`Cluster::kinesis_addr`].
    pub async fn start_with_kinesis(n: usize, extra: &[(&str, &str)]) -> Cluster {
        assert!(n >= 1, "a cluster has nodes");
        let launch = Launch {
            kinesis: true,
            ..Launch::KRAFT
        };
        Self::launch(n, extra, launch).await
    }

    /// Like [`Cluster::start`], each node in a network namespace of its own (see the module
    /// doc). Panics, naming the missing privilege, where namespaces cannot be created.
    pub async fn start_isolated(n: usize, extra: &[(&str, &str)]) -> Cluster {
        assert!(n >= 1, "a cluster has nodes");
        let launch = Launch {
            isolated: true,
            ..Launch::KRAFT
        };
        Self::launch(n, extra, launch).await
    }

    /// One node without any cluster key (a plain single-node broker with `node.id=1`): what the
    /// harness can drive before cluster mode exists, to check its own process handling.
    pub async fn start_single_node(extra: &[(&str, &str)]) -> Cluster {
        Self::launch(1, extra, Launch::default()).await
    }

    async fn launch(n: usize, extra: &[(&str, &str)], launch: Launch) -> Cluster {
        let mut attempt = 1;
        loop {
            let c = Self::spawn_all(n, extra, launch);
            match c.wait_ready_inner(START_TIMEOUT).await {
                Ok(()) => return c,
                Err(WaitFailure::Exited(id, status))
                    if attempt < START_ATTEMPTS && c.bind_clash(id) =>
                {
                    eprintln!(
                        "cluster start attempt {attempt}: node {id} exited ({status}) on a port \
                         clash; starting again on new ports"
                    );
                    attempt += 1;
                    // Dropping `c` kills the other nodes and removes the directory.
                }
                Err(f) => c.fail("the cluster to start (every node listing every broker)", f),
            }
        }
    }

    /// Writes the configs and spawns every node (see [`Launch`]).
    fn spawn_all(n: usize, extra: &[(&str, &str)], launch: Launch) -> Cluster {
        let Launch {
            kraft,
            isolated,
            kinesis,
            internal,
        } = launch;
        let dir = tempfile::Builder::new()
            .prefix("esker-cluster-")
            .tempdir()
            .expect("tempdir");
        let net = isolated.then(|| Network::create(n).unwrap_or_else(|e| panic!("{e}")));
        let ports: Vec<u16> = match net {
            Some(_) => (0..n)
                .flat_map(|_| [ISOLATED_PORTS.0, ISOLATED_PORTS.1, ISOLATED_PORTS.2])
                .collect(),
            None => free_ports(3 * n),
        };
        let kinesis_ports: Vec<u16> = match (kinesis, &net) {
            (false, _) => Vec::new(),
            (true, Some(_)) => vec![ISOLATED_KINESIS_PORT; n],
            (true, None) => free_ports(n),
        };
        let internal_ports: Vec<u16> = match (internal, &net) {
            (false, _) => Vec::new(),
            (true, Some(_)) => vec![ISOLATED_INTERNAL_PORT; n],
            (true, None) => free_ports(n),
        };
        let nodes: Vec<Node> = (0..n)
            .map(|i| {
                let id = i as i32 + 1;
                let node_dir = dir.path().join(format!("node-{id}"));
                Node {
                    id,
                    host: net.as_ref().map_or(Ipv4Addr::LOCALHOST, |net| net.addr(id)),
                    namespace: net.as_ref().map(|net| net.namespace(id).to_string()),
                    kafka_port: ports[3 * i],
                    controller_port: ports[3 * i + 1],
                    metrics_port: ports[3 * i + 2],
                    kinesis_port: kinesis_ports.get(i).copied(),
                    internal_port: internal_ports.get(i).copied(),
                    config: node_dir.join("server.properties"),
                    log: node_dir.join("esker.log"),
                    data: node_dir.join("data"),
                    child: Mutex::new(None),
                    stopped: false,
                    starts: 0,
                }
            })
            .collect();
        let voters = nodes
            .iter()
            .map(|nd| format!("{}@{}:{}", nd.id, nd.host, nd.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        let rf = n.min(3).to_string();
        for nd in &nodes {
            std::fs::create_dir_all(&nd.data).expect("node dir");
            let mut keys: Vec<(String, String)> = Vec::new();
            let mut set = |k: &str, v: String| {
                if let Some(e) = keys.iter_mut().find(|(key, _)| key == k) {
                    e.1 = v;
                } else {
                    keys.push((k.to_string(), v));
                }
            };
            set("node.id", nd.id.to_string());
            if kraft {
                set("process.roles", "broker,controller".into());
                let internal = nd
                    .internal_port
                    .map(|port| format!(",INTERNAL://{}:{port}", nd.host))
                    .unwrap_or_default();
                set(
                    "listeners",
                    format!(
                        "PLAINTEXT://{host}:{},CONTROLLER://{host}:{}{internal}",
                        nd.kafka_port,
                        nd.controller_port,
                        host = nd.host
                    ),
                );
                set(
                    "advertised.listeners",
                    format!("PLAINTEXT://{}:{}{internal}", nd.host, nd.kafka_port),
                );
                set("controller.listener.names", "CONTROLLER".into());
                set("inter.broker.listener.name", "PLAINTEXT".into());
                if nd.internal_port.is_some() {
                    set("inter.broker.listener.name", "INTERNAL".into());
                    set(
                        "listener.security.protocol.map",
                        "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,INTERNAL:PLAINTEXT".into(),
                    );
                }
                set("controller.quorum.voters", voters.clone());
            } else {
                set(
                    "listeners",
                    format!("PLAINTEXT://{}:{}", nd.host, nd.kafka_port),
                );
            }
            set("log.dirs", nd.data.display().to_string());
            set(
                "kinesis.listener",
                nd.kinesis_port
                    .map(|p| format!("{}:{p}", nd.host))
                    .unwrap_or_default(),
            );
            set(
                "metrics.listener",
                format!("{}:{}", nd.host, nd.metrics_port),
            );
            set("num.shards", "2".into());
            set("group.initial.rebalance.delay.ms", "0".into());
            if kraft {
                set(
                    "broker.heartbeat.interval.ms",
                    HEARTBEAT_INTERVAL.as_millis().to_string(),
                );
                set(
                    "broker.session.timeout.ms",
                    SESSION_TIMEOUT.as_millis().to_string(),
                );
                set(
                    "controller.quorum.election.timeout.ms",
                    ELECTION_TIMEOUT.as_millis().to_string(),
                );
                set("offsets.topic.replication.factor", rf.clone());
                set("default.replication.factor", rf.clone());
            }
            for (k, v) in extra {
                set(k, v.to_string());
            }
            let text: String = keys.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            std::fs::write(&nd.config, text).expect("write server.properties");
        }
        let logs = Logs {
            files: Arc::new(nodes.iter().map(|n| (n.id, n.log.clone())).collect()),
            reported: Arc::new(AtomicBool::new(false)),
        };
        let mut c = Cluster {
            dir: Some(dir),
            nodes,
            kraft,
            logs,
            net,
        };
        for id in c.ids() {
            c.spawn(id);
        }
        c
    }

    /// Starts node `id`'s process on its config, its output appended to its log file.
    fn spawn(&mut self, id: i32) {
        let nd = self.node_mut(id);
        assert!(!nd.is_up(), "node {id} is already running");
        nd.starts += 1;
        let starts = nd.starts;
        self.mark(
            id,
            &format!("===== harness: start #{starts} of node {id} ====="),
        );
        let nd = self.node_mut(id);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&nd.log)
            .expect("log file");
        let bin = std::env::var_os("ESKER_CLUSTER_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_esker").into());
        // openraft's INFO lines (every vote, every RPC) would fill the log tails.
        let rust_log = std::env::var("ESKER_CLUSTER_RUST_LOG")
            .unwrap_or_else(|_| "info,openraft=warn".to_string());
        // In a namespace, `ip netns exec` execs the broker (no fork), so the child's pid is the
        // broker's; checked below.
        let mut cmd = match &nd.namespace {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .arg("-c")
            .arg(&nd.config)
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log handle")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn esker");
        let pid = child.id();
        let isolated = nd.namespace.is_some();
        *nd.child.lock().expect("child") = Some(child);
        nd.stopped = false;
        if isolated {
            self.wait_exec(id, pid, Path::new(&bin));
        }
    }

    /// Waits until process `pid` (started as `ip netns exec ... <bin>`) runs `bin`, so signals
    /// sent to `pid` reach the broker; panics if it exits or does not get there in time.
    fn wait_exec(&self, id: i32, pid: u32, bin: &Path) {
        let want = std::fs::canonicalize(bin).unwrap_or_else(|_| bin.to_path_buf());
        let deadline = Instant::now() + EXEC_TIMEOUT;
        loop {
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
            if exe.as_deref() == Some(want.as_path()) {
                return;
            }
            if let Some(status) = self.node(id).exited() {
                self.logs.panic(&format!(
                    "node {id}: `ip netns exec` exited ({status}) instead of running {}",
                    want.display()
                ));
            }
            if Instant::now() >= deadline {
                self.logs.panic(&format!(
                    "node {id}: process {pid} runs {exe:?}, not {}, {EXEC_TIMEOUT:?} after \
                     `ip netns exec`",
                    want.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn node(&self, id: i32) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id} (nodes are 1..={})", self.nodes.len()))
    }

    fn node_mut(&mut self, id: i32) -> &mut Node {
        let n = self.nodes.len();
        self.nodes
            .iter_mut()
            .find(|nd| nd.id == id)
            .unwrap_or_else(|| panic!("no node {id} (nodes are 1..={n})"))
    }

    /// Whether node `id`'s latest start failed on an address in use.
    fn bind_clash(&self, id: i32) -> bool {
        let text = std::fs::read_to_string(&self.node(id).log).unwrap_or_default();
        let last = text.rsplit("===== harness: start #").next().unwrap_or("");
        last.contains("Address already in use") || last.contains("os error 98")
    }

    /// Every node id, 1..=n.
    pub fn ids(&self) -> Vec<i32> {
        self.nodes.iter().map(|n| n.id).collect()
    }

    /// Nodes whose process runs, is not SIGSTOPped and is not cut off the network.
    pub fn live_ids(&self) -> Vec<i32> {
        self.nodes
            .iter()
            .filter(|n| n.is_up() && !n.stopped && !self.is_cut(n.id))
            .map(|n| n.id)
            .collect()
    }

    /// `host:port` of node `id`'s Kafka listener.
    pub fn bootstrap(&self, id: i32) -> String {
        let nd = self.node(id);
        format!("{}:{}", nd.host, nd.kafka_port)
    }

    /// The address node `id` listens on and advertises (loopback unless isolated).
    pub fn host(&self, id: i32) -> Ipv4Addr {
        self.node(id).host
    }

    /// The nodes' network, when isolated ([`Cluster::start_isolated`]).
    pub fn network(&self) -> Option<&Network> {
        self.net.as_ref()
    }

    fn network_mut(&mut self) -> &mut Network {
        self.net
            .as_mut()
            .expect("cut/heal need a cluster started with Cluster::start_isolated")
    }

    /// Whether node `id` is cut off the network ([`Cluster::cut`]).
    pub fn is_cut(&self, id: i32) -> bool {
        self.net.as_ref().is_some_and(|n| n.is_cut(id))
    }

    /// Cuts node `id` off the network, both ways: the other nodes and the test process no
    /// longer reach it, nor it them. Only for isolated clusters.
    pub fn cut(&mut self, id: i32) {
        self.mark(
            id,
            &format!("===== harness: network of node {id} cut ====="),
        );
        if let Err(e) = self.network_mut().cut(id) {
            self.logs.panic(&format!("cutting node {id} off: {e}"));
        }
    }

    /// Joins node `id` to the network again after [`Cluster::cut`].
    pub fn heal(&mut self, id: i32) {
        if let Err(e) = self.network_mut().heal(id) {
            self.logs.panic(&format!("healing node {id}: {e}"));
        }
        self.mark(
            id,
            &format!("===== harness: network of node {id} healed ====="),
        );
    }

    /// Node `id`'s Kinesis endpoint (`http://` it); only for a cluster started with
    /// [`Cluster::start_with_kinesis`].
    pub fn kinesis_addr(&self, id: i32) -> std::net::SocketAddr {
        let nd = self.node(id);
        let port = nd
            .kinesis_port
            .unwrap_or_else(|| panic!("node {id} has no Kinesis listener: start the cluster with Cluster::start_with_kinesis"));
        std::net::SocketAddr::from((nd.host, port))
    }

    /// Every node's Kafka listener, comma-separated.
    pub fn bootstrap_all(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| self.bootstrap(id))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `id`'s metrics endpoint (Prometheus `/metrics`).
    pub fn metrics_addr(&self, id: i32) -> std::net::SocketAddr {
        let nd = self.node(id);
        std::net::SocketAddr::from((nd.host, nd.metrics_port))
    }

    /// The pid of node `id`'s process, if it runs (or is stopped).
    pub fn pid(&self, id: i32) -> Option<u32> {
        self.node(id).pid().map(|p| p as u32)
    }

    /// Node `id`'s data directory (`log.dirs`).
    pub fn data_dir(&self, id: i32) -> &Path {
        &self.node(id).data
    }

    /// Handle on the log files, for [`within`].
    pub fn logs(&self) -> Logs {
        self.logs.clone()
    }

    /// SIGKILL node `id` and reap it.
    pub fn kill(&mut self, id: i32) {
        let nd = self.node_mut(id);
        let mut child = nd
            .child
            .lock()
            .expect("child")
            .take()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        nd.stopped = false;
        self.mark(id, &format!("===== harness: SIGKILL to node {id} ====="));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Appends a line with the time (UTC, like the broker's own lines) to node `id`'s log, so
    /// the harness's actions show among the node's lines.
    fn mark(&self, id: i32, what: &str) {
        use std::io::Write;
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&self.node(id).log)
            .expect("log file");
        writeln!(log, "{} {what}", utc_now()).expect("write log");
    }

    fn signal(&self, id: i32, sig: i32) {
        let pid = self
            .node(id)
            .pid()
            .unwrap_or_else(|| panic!("node {id} is not running"));
        let name = match sig {
            libc::SIGSTOP => "SIGSTOP",
            libc::SIGCONT => "SIGCONT",
            libc::SIGTERM => "SIGTERM",
            _ => "signal",
        };
        self.mark(id, &format!("===== harness: {name} to node {id} ====="));
        // SAFETY: kill(2) on our own child's pid (not yet reaped, so the pid is still ours).
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(
            rc,
            0,
            "kill({pid}, {sig}): {}",
            std::io::Error::last_os_error()
        );
    }

    /// The state letter of `pid` in /proc (R, S, T, ...).
    fn proc_state(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) S ...`; comm may contain spaces and parentheses, so split after the last ')'.
        stat.rsplit(')').next()?.trim_start().chars().next()
    }

    /// SIGSTOP node `id` and wait until the kernel reports it stopped.
    pub async fn stop(&mut self, id: i32) {
        self.signal(id, libc::SIGSTOP);
        self.node_mut(id).stopped = true;
        let pid = self.node(id).pid().expect("running");
        self.wait_until(
            &format!("node {id} to be stopped"),
            Duration::from_secs(5),
            || async move {
                match Self::proc_state(pid) {
                    Some('T') | Some('t') => Ok(()),
                    s => Err(format!("state {s:?}")),
                }
            },
        )
        .await;
    }

    /// SIGCONT node `id`.
    pub fn cont(&mut self, id: i32) {
        assert!(self.node(id).stopped, "node {id} was not stopped");
        self.signal(id, libc::SIGCONT);
        self.node_mut(id).stopped = false;
    }

    /// SIGTERM node `id`, wait for it to exit (bounded) and assert that it exited with status 0.
    pub async fn terminate(&mut self, id: i32) {
        self.signal(id, libc::SIGTERM);
        self.wait_terminated(id).await;
    }

    /// SIGTERM every running node at once, then wait for each to exit with status 0.
    pub async fn terminate_all(&mut self) {
        let up: Vec<i32> = self
            .nodes
            .iter()
            .filter(|n| n.is_up())
            .map(|n| n.id)
            .collect();
        for &id in &up {
            self.signal(id, libc::SIGTERM);
        }
        for id in up {
            self.wait_terminated(id).await;
        }
    }

    async fn wait_terminated(&mut self, id: i32) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.node(id).exited() {
                break status;
            }
            if started.elapsed() > TERMINATE_TIMEOUT {
                self.logs.panic(&format!(
                    "node {id} still running {TERMINATE_TIMEOUT:?} after SIGTERM"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        };
        self.node(id).child.lock().expect("child").take();
        if !status.success() {
            self.logs.panic(&format!(
                "node {id} exited with {status} after SIGTERM (expected 0)"
            ));
        }
        println!(
            "node {id} exited 0 {} ms after SIGTERM",
            started.elapsed().as_millis()
        );
    }

    /// Starts node `id` again on the same config, ports and data directory (after
    /// kill/terminate). Does not wait: see [`Cluster::wait_ready`] and [`Cluster::wait_metadata`].
    pub fn restart(&mut self, id: i32) {
        self.spawn(id);
    }

    /// Restarts every node that is down and waits until every node lists all brokers.
    pub async fn restart_all(&mut self) {
        for id in self.ids() {
            if !self.node(id).is_up() {
                self.spawn(id);
            }
        }
        self.wait_ready().await;
    }

    /// Waits until every live node answers Metadata listing every node of the cluster.
    pub async fn wait_ready(&self) {
        if let Err(f) = self.wait_ready_inner(START_TIMEOUT).await {
            self.fail("every node to list every broker", f)
        }
    }

    async fn wait_ready_inner(&self, timeout: Duration) -> Result<(), WaitFailure> {
        let want: BTreeSet<i32> = self.ids().into_iter().collect();
        let this = self;
        let want = &want;
        self.poll(timeout, || async move {
            for id in this.live_ids() {
                let md = this.metadata(id).await?;
                if md.broker_ids() != *want {
                    return Err(format!(
                        "node {id} lists brokers {:?}, want {want:?}",
                        md.broker_ids()
                    ));
                }
            }
            Ok(())
        })
        .await
    }

    /// Node `id`'s answer to Metadata (all topics), or why there was none.
    /// (A fresh client per attempt; an attempt answered by another node is repeated.)
    pub async fn metadata(&self, id: i32) -> Result<MetadataView, String> {
        for _ in 0..METADATA_ATTEMPTS {
            let bootstrap = self.bootstrap(id);
            let md = tokio::task::spawn_blocking(move || fetch_metadata(id, &bootstrap))
                .await
                .expect("metadata task")?;
            if let Some(md) = md {
                return Ok(md);
            }
        }
        Err(format!(
            "{METADATA_ATTEMPTS} Metadata requests meant for node {id} were all answered by \
             other nodes"
        ))
    }

    /// Polls node `from`'s Metadata until `check` accepts it; panics with the last reason and
    /// the nodes' log tails after `timeout`.
    pub async fn wait_metadata<T>(
        &self,
        from: i32,
        what: &str,
        timeout: Duration,
        check: impl Fn(&MetadataView) -> Result<T, String>,
    ) -> T {
        let this = self;
        let check = &check;
        self.wait_until(what, timeout, move || async move {
            let md = this.metadata(from).await?;
            check(&md).map_err(|e| format!("node {from}: {e}"))
        })
        .await
    }

    /// The active controller (the metadata quorum's leader): the one live node whose
    /// ActiveControllerCount gauge is 1, polled until exactly one is. (Metadata does not tell:
    /// as KRaft brokers do, each broker names a live broker, itself, as the controller, since
    /// clients cannot reach the quorum; the leader is in DescribeQuorum, which librdkafka does
    /// not send, and in this gauge.)
    pub async fn controller_id(&self) -> i32 {
        let this = self;
        // The same single node in two polls in a row: a candidate can briefly report itself.
        let previous = std::cell::Cell::new(None);
        let previous = &previous;
        self.wait_until(
            "exactly one live node to report being the active controller, twice in a row",
            START_TIMEOUT,
            move || async move {
                let live = this.live_ids();
                let mut active = Vec::new();
                for &id in &live {
                    if this.active_controller_gauge(id).await? == 1 {
                        active.push(id);
                    }
                }
                let now = match active[..] {
                    [c] => Some(c),
                    _ => None,
                };
                match (previous.replace(now), now) {
                    (Some(p), Some(c)) if p == c => Ok(c),
                    _ => Err(format!(
                        "nodes reporting activecontrollercount 1: {active:?} (live: {live:?})"
                    )),
                }
            },
        )
        .await
    }

    /// Node `id`'s `kafka_controller_kafkacontroller_activecontrollercount` (1 on the metadata
    /// quorum's leader, as Kafka's ActiveControllerCount), scraped from its metrics endpoint.
    pub async fn active_controller_gauge(&self, id: i32) -> Result<i64, String> {
        const NAME: &str = "kafka_controller_kafkacontroller_activecontrollercount";
        let addr = self.metrics_addr(id);
        let body = tokio::time::timeout(METADATA_TIMEOUT, scrape(addr))
            .await
            .map_err(|_| format!("node {id}: no answer from {addr}/metrics"))??;
        body.lines()
            .find_map(|l| l.strip_prefix(NAME)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as i64)
            .ok_or_else(|| format!("node {id}: no {NAME} in /metrics"))
    }

    /// Polls `check` every 100 ms until it returns `Ok`; panics with the last `Err` reason and
    /// the nodes' log tails after `timeout`, or as soon as a node that should be running exits.
    pub async fn wait_until<T, F, Fut>(&self, what: &str, timeout: Duration, check: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        match self.poll(timeout, check).await {
            Ok(v) => v,
            Err(f) => self.fail(what, f),
        }
    }

    async fn poll<T, F, Fut>(&self, timeout: Duration, mut check: F) -> Result<T, WaitFailure>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((id, status)) = self.first_exit() {
                return Err(WaitFailure::Exited(id, status));
            }
            let last = match check().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                return Err(WaitFailure::Timeout(last));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// A node that should be running but exited, with its status.
    fn first_exit(&self) -> Option<(i32, ExitStatus)> {
        self.nodes
            .iter()
            .find_map(|n| n.exited().map(|s| (n.id, s)))
    }

    fn fail(&self, what: &str, f: WaitFailure) -> ! {
        let why = match f {
            WaitFailure::Exited(id, status) => format!("node {id} exited unexpectedly ({status})"),
            WaitFailure::Timeout(last) => format!("timed out; last check: {last}"),
        };
        self.logs.panic(&format!("waiting for {what}: {why}"))
    }

    /// Whether this cluster runs the KRaft keys (false for [`Cluster::start_single_node`]).
    pub fn is_kraft(&self) -> bool {
        self.kraft
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &self.nodes {
            // SIGKILL ends a SIGSTOPped process too.
            if let Some(mut c) = n.child.lock().map(|mut c| c.take()).unwrap_or(None) {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let keep = std::env::var_os("ESKER_KEEP_CLUSTER").is_some_and(|v| v == "1");
        if std::thread::panicking() && !self.logs.reported.load(Ordering::SeqCst) {
            eprintln!(
                "cluster logs at the failure:\n{}",
                self.logs.tails(TAIL_LINES)
            );
        }
        if let Some(dir) = self.dir.take() {
            if keep {
                eprintln!("cluster directory kept: {}", dir.keep().display());
            }
        }
        // After the processes: a namespace with a process in it outlives its deletion.
        drop(self.net.take());
    }
}
