//! Partition data replication under faults, checked on the replicas' files, plus the tests of
//! the pieces it stands on.
//!
//! - `replicated_log_survives_faults`: three brokers, each in its own network namespace
//!   (`Cluster::start_isolated`); a topic of 3 partitions, replication factor 3,
//!   `min.insync.replicas=2`; an idempotent acks=all producer (values `p<partition>-<n>`, every
//!   acknowledgement recorded with its offset) and a consumer group reading from the beginning
//!   run in background threads while the fault schedule runs its rounds, one fault each in
//!   turn: SIGKILL of a partition leader, then restart; SIGSTOP of a leader, then SIGCONT; a
//!   leader cut off the network, then healed; SIGKILL of a follower, then restart. Each fault
//!   lasts until the other nodes fenced the node (longer than the session timeout) and messages
//!   produced since the fault are acknowledged on every partition; after it the round waits
//!   until every node is back and every partition's ISR holds its three replicas. Then the producer
//!   stops, the consumer reads to the high watermark, every node is stopped with SIGTERM and the
//!   replicas are read from disk (`common::replica_check`): the ISR replicas' bytes are
//!   identical below the high watermark, every acknowledged value is there once, at its
//!   acknowledged offset, in acknowledgement order, and every consumed record is there at its
//!   offset. A summary (acknowledgements, failed sends by error, records checked, findings) is
//!   printed; run with `--nocapture` to see it.
//!   `ESKER_FAULT_ROUNDS=<n>` runs more rounds (default 4, one of each fault);
//!   `ESKER_FAULT_MIN_INSYNC=<n>` sets the topic's `min.insync.replicas` (default 2).
//! - `isolated_nodes_are_cut_and_healed`: the namespace harness alone (passes without
//!   replication): nodes advertise their namespace addresses, the pid held is the broker's, a
//!   cut node is fenced by the others and unreachable from the test, a healed one is back, and
//!   the drop removes the namespaces and links.
//! - `replica_check_passes_on_a_healthy_single_broker`: the same load and checks against one
//!   plain broker without faults find nothing (the checker reads the broker's own files right),
//!   also while the broker runs.
//! - `namespaces_of_dead_test_processes_are_swept`: leftovers of a test process that died
//!   without cleaning up are removed when a network is created.
//! - `replica_check_*`: the checker on segment files written here (torn tails, divergent
//!   replicas, lost, duplicated, misplaced and reordered records).
//!
//! The isolated tests need root (network namespaces); without it they fail saying so.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::{within, Cluster, MetadataView, SESSION_TIMEOUT};
use common::netns;
use common::replica_check::{
    check_acknowledged, check_consumed, check_identical, read_partition, Acked, Consumed, Findings,
    HEADER_LEN,
};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, FutureProducer, FutureRecord, Producer, ProducerContext,
    ThreadedProducer,
};

const TOPIC: &str = "faults";
const PARTITIONS: i32 = 3;
const NODES: [i32; 3] = [1, 2, 3];
/// Fault rounds unless `ESKER_FAULT_ROUNDS` says otherwise: one of each kind.
const DEFAULT_ROUNDS: usize = 4;
/// The time the fault test may take: a base plus this per round.
const BASE_LIMIT: Duration = Duration::from_secs(60);
const ROUND_LIMIT: Duration = Duration::from_secs(25);
/// How long messages produced after a fault may take to be acknowledged on every partition.
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(45);
/// How long a restarted, resumed or healed node may take to be back in every ISR.
const ISR_TIMEOUT: Duration = Duration::from_secs(60);
/// How much later than the session timeout a silent node may be fenced, as every other node
/// sees it.
const FENCE_SLACK: Duration = Duration::from_secs(10);
/// Pause between two messages of the producer (about 300 a second over the three partitions).
const PRODUCE_PACE: Duration = Duration::from_millis(3);
/// How long before [`PROGRESS_TIMEOUT`] a probe send is made to tell why nothing progresses.
const PROBE_TIME: Duration = Duration::from_secs(8);
/// Fewer acknowledgements than this over the whole run is not progress.
const MIN_ACKS: usize = 500;

/// The faults, run in this order round after round.
#[derive(Clone, Copy, Debug)]
enum Fault {
    KillLeader,
    StopLeader,
    CutLeader,
    KillFollower,
}

const SCHEDULE: [Fault; 4] = [
    Fault::KillLeader,
    Fault::StopLeader,
    Fault::CutLeader,
    Fault::KillFollower,
];

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    match std::env::var(key) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{key}={v} is not valid")),
        Err(_) => default,
    }
}

/// What the producer saw: per partition the acknowledgements in the order they arrived, and
/// the send number of the latest one; failures by error.
#[derive(Default)]
struct Produced {
    /// Messages handed to the client, per partition (the next send number).
    sent: [u64; PARTITIONS as usize],
    acked: [Vec<Acked>; PARTITIONS as usize],
    /// Send number of the latest acknowledged message, per partition.
    latest_acked: [Option<u64>; PARTITIONS as usize],
    failed: BTreeMap<String, usize>,
    /// Producers replaced after a fatal error.
    fatal: Vec<String>,
}

impl Produced {
    fn acks(&self) -> usize {
        self.acked.iter().map(Vec::len).sum()
    }

    fn failed_summary(&self) -> String {
        if self.failed.is_empty() {
            return "none".into();
        }
        self.failed
            .iter()
            .map(|(e, n)| format!("{e} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `p<partition>-<n>` → (partition, n).
fn parse_value(v: &[u8]) -> Option<(usize, u64)> {
    let s = std::str::from_utf8(v).ok()?.strip_prefix('p')?;
    let (p, n) = s.split_once('-')?;
    Some((p.parse().ok()?, n.parse().ok()?))
}

/// Records every delivery report into [`Produced`].
struct Recorder(Arc<Mutex<Produced>>);

impl ClientContext for Recorder {}

impl ProducerContext for Recorder {
    type DeliveryOpaque = ();

    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let mut p = self.0.lock().expect("produced");
        match r {
            Ok(m) => {
                let value = m.payload().unwrap_or_default();
                let Some((part, n)) = parse_value(value) else {
                    *p.failed
                        .entry("unparsable value acknowledged".into())
                        .or_default() += 1;
                    return;
                };
                // No panic here: this runs inside librdkafka's callback.
                if part as i32 != m.partition() {
                    *p.failed
                        .entry("acknowledged on another partition".into())
                        .or_default() += 1;
                    return;
                }
                p.acked[part].push(Acked {
                    offset: m.offset(),
                    value: String::from_utf8_lossy(value).into_owned(),
                });
                p.latest_acked[part] = Some(n);
            }
            Err((e, _)) => {
                let name = match e.rdkafka_error_code() {
                    Some(code) => format!("{code:?}"),
                    None => e.to_string(),
                };
                *p.failed.entry(name).or_default() += 1;
            }
        }
    }
}

fn producer(bootstrap: &str, produced: &Arc<Mutex<Produced>>) -> ThreadedProducer<Recorder> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("retry.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create_with_context(Recorder(produced.clone()))
        .expect("producer")
}

/// Sends `p<partition>-<n>` round the partitions until `stop`, then flushes (bounded). A
/// producer that hit a fatal error is replaced, the error recorded.
fn produce(bootstrap: String, produced: Arc<Mutex<Produced>>, stop: Arc<AtomicBool>) {
    let mut client = producer(&bootstrap, &produced);
    let mut partition = 0usize;
    while !stop.load(Ordering::SeqCst) {
        let n = produced.lock().expect("produced").sent[partition];
        let key = format!("p{partition}");
        let value = format!("p{partition}-{n}");
        let record = BaseRecord::to(TOPIC)
            .partition(partition as i32)
            .key(&key)
            .payload(&value);
        match client.send(record) {
            Ok(()) => {
                produced.lock().expect("produced").sent[partition] += 1;
                partition = (partition + 1) % PARTITIONS as usize;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // Waits (bounded) for deliveries to make room rather than for a fixed time.
                let _ = client.flush(Duration::from_millis(100));
            }
            Err((e, _)) => {
                *produced
                    .lock()
                    .expect("produced")
                    .failed
                    .entry(format!("enqueue: {e}"))
                    .or_default() += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some((code, reason)) = client.client().fatal_error() {
            let _ = client.flush(Duration::from_secs(10));
            produced
                .lock()
                .expect("produced")
                .fatal
                .push(format!("{code:?}: {reason}"));
            client = producer(&bootstrap, &produced);
        }
        std::thread::sleep(PRODUCE_PACE);
    }
    if let Err(e) = client.flush(Duration::from_secs(40)) {
        *produced
            .lock()
            .expect("produced")
            .failed
            .entry(format!("flush: {e}"))
            .or_default() += 1;
    }
}

/// What the consumer saw: every record per partition in arrival order, errors by kind, and
/// when to stop.
#[derive(Default)]
struct ConsumedLog {
    records: [Vec<Consumed>; PARTITIONS as usize],
    errors: BTreeMap<String, usize>,
    /// Once set: stop when the next offset of every partition reached these.
    drain_to: Option<[i64; PARTITIONS as usize]>,
    /// The offset after the latest record received, per partition.
    next: [i64; PARTITIONS as usize],
    done: bool,
}

/// Reads the topic in its own group from the beginning until told to drain and drained, or
/// until `stop`.
fn consume(bootstrap: String, log: Arc<Mutex<ConsumedLog>>, stop: Arc<AtomicBool>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("broker.address.family", "v4")
        .set("group.id", "replication-check")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("session.timeout.ms", "10000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("topic.metadata.refresh.interval.ms", "2000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    while !stop.load(Ordering::SeqCst) {
        {
            let mut l = log.lock().expect("consumed");
            if let Some(to) = l.drain_to {
                if (0..PARTITIONS as usize).all(|p| l.next[p] >= to[p]) {
                    l.done = true;
                    return;
                }
            }
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                let mut l = log.lock().expect("consumed");
                l.records[p].push(Consumed {
                    offset: m.offset(),
                    value,
                });
                l.next[p] = m.offset() + 1;
            }
            Some(Err(e)) => {
                let name = match e.rdkafka_error_code() {
                    Some(code) => format!("{code:?}"),
                    None => e.to_string(),
                };
                *log.lock()
                    .expect("consumed")
                    .errors
                    .entry(name)
                    .or_default() += 1;
            }
        }
    }
}

/// The threads producing and consuming while the faults run.
struct Load {
    produced: Arc<Mutex<Produced>>,
    consumed: Arc<Mutex<ConsumedLog>>,
    stop_producer: Arc<AtomicBool>,
    stop_consumer: Arc<AtomicBool>,
    producer: Option<std::thread::JoinHandle<()>>,
    consumer: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(bootstrap: &str) -> Load {
        let produced = Arc::new(Mutex::new(Produced::default()));
        let consumed = Arc::new(Mutex::new(ConsumedLog::default()));
        let stop_producer = Arc::new(AtomicBool::new(false));
        let stop_consumer = Arc::new(AtomicBool::new(false));
        let producer = {
            let (b, p, s) = (
                bootstrap.to_string(),
                produced.clone(),
                stop_producer.clone(),
            );
            std::thread::spawn(move || produce(b, p, s))
        };
        let consumer = {
            let (b, c, s) = (
                bootstrap.to_string(),
                consumed.clone(),
                stop_consumer.clone(),
            );
            std::thread::spawn(move || consume(b, c, s))
        };
        Load {
            produced,
            consumed,
            stop_producer,
            stop_consumer,
            producer: Some(producer),
            consumer: Some(consumer),
        }
    }

    /// The send numbers the next messages will have, per partition.
    fn mark(&self) -> [u64; PARTITIONS as usize] {
        self.produced.lock().expect("produced").sent
    }

    /// `Ok` once `partition` acknowledged a message sent at or after `mark`.
    fn progressed_partition(
        &self,
        mark: &[u64; PARTITIONS as usize],
        partition: usize,
    ) -> Result<(), ()> {
        let p = self.produced.lock().expect("produced");
        match p.latest_acked[partition] {
            Some(n) if n >= mark[partition] => Ok(()),
            _ => Err(()),
        }
    }

    /// `Ok` once every partition acknowledged a message sent at or after `mark`.
    fn progressed(&self, mark: &[u64; PARTITIONS as usize]) -> Result<(), String> {
        let behind: Vec<usize> = (0..PARTITIONS as usize)
            .filter(|&i| self.progressed_partition(mark, i).is_err())
            .collect();
        let p = self.produced.lock().expect("produced");
        if behind.is_empty() {
            return Ok(());
        }
        Err(format!(
            "partitions {behind:?} acknowledged nothing sent since the mark {mark:?} (latest \
             acknowledged {:?}, {} acknowledgements in all; failed sends: {}; fatal: {:?})",
            p.latest_acked,
            p.acks(),
            p.failed_summary(),
            p.fatal
        ))
    }

    /// Stops the producer and waits for its final flush.
    async fn stop_producing(&mut self) {
        self.stop_producer.store(true, Ordering::SeqCst);
        if let Some(h) = self.producer.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .expect("join task")
                .expect("producer thread");
        }
    }

    /// Stops the consumer (done draining, or given up) and joins it.
    async fn stop_consuming(&mut self) {
        self.stop_consumer.store(true, Ordering::SeqCst);
        if let Some(h) = self.consumer.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .expect("join task")
                .expect("consumer thread");
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop_producer.store(true, Ordering::SeqCst);
        self.stop_consumer.store(true, Ordering::SeqCst);
    }
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .create()
        .expect("admin client")
}

/// A node of the cluster that answers (not killed, stopped or cut), for Metadata.
fn any_live(c: &Cluster) -> i32 {
    *c.live_ids().first().expect("a live node")
}

/// The topic's partitions as a live node sees them, once each has a leader.
async fn layout(c: &Cluster, what: &str) -> Vec<common::cluster::PartitionView> {
    c.wait_metadata(any_live(c), what, Duration::from_secs(30), |md| {
        let parts = md.partitions(TOPIC);
        if parts.len() != PARTITIONS as usize || parts.iter().any(|p| p.leader < 0) {
            return Err(format!("{TOPIC}: {parts:?}"));
        }
        Ok(parts.to_vec())
    })
    .await
}

/// Waits until every live node lists every node and every partition's ISR holds all of them.
async fn wait_full_isr(c: &Cluster, what: &str) -> Vec<common::cluster::PartitionView> {
    c.wait_ready().await;
    let full: BTreeSet<i32> = NODES.into_iter().collect();
    let full = &full;
    c.wait_metadata(any_live(c), what, ISR_TIMEOUT, move |md| {
        let parts = md.partitions(TOPIC);
        let ok = parts.len() == PARTITIONS as usize
            && parts
                .iter()
                .all(|p| p.leader >= 0 && p.isr.iter().copied().collect::<BTreeSet<_>>() == *full);
        if ok {
            Ok(parts.to_vec())
        } else {
            Err(format!(
                "leaders and ISRs {:?}",
                parts
                    .iter()
                    .map(|p| (p.id, p.leader, &p.isr))
                    .collect::<Vec<_>>()
            ))
        }
    })
    .await
}

/// Waits until every node other than `victim` that answers no longer lists `victim` (its
/// session timed out and the controller fenced it).
async fn wait_fenced(c: &Cluster, victim: i32) {
    for id in c.live_ids() {
        c.wait_metadata(
            id,
            &format!("node {victim} to be fenced"),
            SESSION_TIMEOUT + FENCE_SLACK,
            |md: &MetadataView| {
                if md.brokers.contains_key(&victim) {
                    Err(format!("node {victim} still listed"))
                } else {
                    Ok(())
                }
            },
        )
        .await;
    }
}

/// One message to `partition` from a producer without idempotence or retries (acks=all): what
/// the broker answers, which the idempotent producer's retries hide behind a timeout.
async fn probe_send(bootstrap: &str, partition: i32) -> String {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("retries", "0")
        .set("message.timeout.ms", "5000")
        .set("request.timeout.ms", "5000")
        .create()
        .expect("probe producer");
    let record = FutureRecord::to(TOPIC)
        .partition(partition)
        .key("probe")
        .payload("probe");
    match producer.send(record, Duration::from_secs(5)).await {
        Ok(d) => format!("acknowledged at offset {}", d.offset),
        Err((e, _)) => match e.rdkafka_error_code() {
            Some(code) => format!("{code:?} ({e})"),
            None => e.to_string(),
        },
    }
}

/// Waits until messages produced from now on are acknowledged on every partition; see
/// [`wait_progress_since`].
async fn wait_progress(c: &Cluster, load: &Load, what: &str) -> Duration {
    wait_progress_since(c, load, what, load.mark(), Instant::now()).await
}

/// Waits until messages produced since `mark` (taken at `started`) are acknowledged on every
/// partition; returns the time since `started`. Shortly before giving up, a probe send says
/// what the broker answers (see [`probe_send`]).
async fn wait_progress_since(
    c: &Cluster,
    load: &Load,
    what: &str,
    mark: [u64; PARTITIONS as usize],
    started: Instant,
) -> Duration {
    let probed: std::cell::RefCell<Option<String>> = std::cell::RefCell::new(None);
    let bootstrap = c.bootstrap_all();
    let (mark, probed, bootstrap) = (&mark, &probed, &bootstrap);
    c.wait_until(what, PROGRESS_TIMEOUT, || async move {
        let Err(why) = load.progressed(mark) else {
            return Ok(());
        };
        if started.elapsed() + PROBE_TIME >= PROGRESS_TIMEOUT && probed.borrow().is_none() {
            let behind = (0..PARTITIONS)
                .find(|&p| load.progressed_partition(mark, p as usize).is_err())
                .unwrap_or(0);
            let answer = probe_send(bootstrap, behind).await;
            *probed.borrow_mut() = Some(format!(
                "a probe send to partition {behind} (acks=all, no retries): {answer}"
            ));
        }
        match &*probed.borrow() {
            Some(p) => Err(format!("{why}; {p}")),
            None => Err(why),
        }
    })
    .await;
    started.elapsed()
}

/// The high watermark of every partition, through a fresh client.
async fn high_watermarks(bootstrap: &str) -> Vec<i64> {
    let b = bootstrap.to_string();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("broker.address.family", "v4")
            .create()
            .expect("client");
        (0..PARTITIONS)
            .map(|p| {
                consumer
                    .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                    .map(|(_, high)| high)
                    .unwrap_or_else(|e| panic!("watermarks of {TOPIC}/{p}: {e}"))
            })
            .collect::<Vec<i64>>()
    })
    .await
    .expect("watermarks task")
}

/// With the producer stopped: reads the high watermarks, lets the consumer read every
/// partition up to them (bounded) and stops it; returns the high watermarks.
async fn drain(c: &Cluster, load: &mut Load, bootstrap: &str) -> Vec<i64> {
    let watermarks = high_watermarks(bootstrap).await;
    load.consumed.lock().expect("consumed").drain_to =
        Some(watermarks.clone().try_into().expect("three partitions"));
    let consumed = &load.consumed;
    let w = &watermarks;
    c.wait_until(
        "the consumer to read every partition to its high watermark",
        Duration::from_secs(60),
        || async move {
            let l = consumed.lock().expect("consumed");
            if l.done {
                Ok(())
            } else {
                Err(format!(
                    "next offsets {:?}, high watermarks {w:?}, errors {:?}",
                    l.next, l.errors
                ))
            }
        },
    )
    .await;
    load.stop_consuming().await;
    watermarks
}

/// Records checked per (partition, node): (records, log end offset, torn tail).
type Checked = BTreeMap<(i32, i32), (usize, i64, bool)>;

/// Reads every node's copy of every partition from disk and runs the checks: the copies of the
/// nodes in the partition's ISR identical below its high watermark, and, on each of them, the
/// acknowledged and the consumed records.
fn check_on_disk(
    c: &Cluster,
    nodes: &[i32],
    isr: &[Vec<i32>],
    high_watermarks: &[i64],
    produced: &Produced,
    consumed: &ConsumedLog,
) -> (Findings, Checked) {
    let mut findings = Findings::default();
    let mut checked = BTreeMap::new();
    for p in 0..PARTITIONS {
        let pi = p as usize;
        let replicas: Vec<_> = nodes
            .iter()
            .map(|&n| {
                read_partition(n, c.data_dir(n), TOPIC, p)
                    .unwrap_or_else(|e| panic!("reading node {n}'s {TOPIC}-{p}: {e}"))
            })
            .collect();
        let in_isr: Vec<_> = replicas
            .iter()
            .filter(|r| isr[pi].contains(&r.node))
            .collect();
        let label = format!("{TOPIC}-{p}");
        findings.merge(check_identical(&label, &in_isr, high_watermarks[pi]));
        for r in &in_isr {
            let label = format!("{TOPIC}-{p} on node {}", r.node);
            let records = match r.records() {
                Ok(records) => records,
                Err(e) => {
                    findings.push("undecodable batch", e);
                    continue;
                }
            };
            checked.insert(
                (p, r.node),
                (records.len(), r.end_offset(), r.torn_tail.is_some()),
            );
            findings.merge(check_acknowledged(&label, &records, &produced.acked[pi]));
            findings.merge(check_consumed(&label, &records, &consumed.records[pi]));
        }
    }
    (findings, checked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_log_survives_faults() {
    let rounds: usize = env_or("ESKER_FAULT_ROUNDS", DEFAULT_ROUNDS);
    let min_insync: u32 = env_or("ESKER_FAULT_MIN_INSYNC", 2);
    let limit = BASE_LIMIT + ROUND_LIMIT * rounds as u32;
    let mut c = Cluster::start_isolated(3, &[("replica.lag.time.max.ms", "3000")]).await;
    let logs = c.logs();
    let bootstrap = c.bootstrap_all();
    let started = Instant::now();
    let (load, isr, high_watermarks, timeline) = within(limit, &logs, async {
        let a = admin(&bootstrap);
        let min_insync_text = min_insync.to_string();
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(3))
            .set("min.insync.replicas", &min_insync_text);
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = a
            .create_topics(&[topic], &opts)
            .await
            .expect("CreateTopics");
        assert!(
            matches!(res.first(), Some(Ok(_))),
            "CreateTopics {TOPIC}: {res:?}"
        );
        drop(a);
        wait_full_isr(&c, "the topic with three in-sync replicas per partition").await;

        let mut load = Load::start(&bootstrap);
        let mut timeline = Vec::new();
        let what = "the first acknowledgements on every partition";
        let took = wait_progress(&c, &load, what).await;
        timeline.push(format!(
            "first acknowledgements after {} ms",
            took.as_millis()
        ));

        for round in 0..rounds {
            let fault = SCHEDULE[round % SCHEDULE.len()];
            let partition = (round % PARTITIONS as usize) as i32;
            let parts = layout(&c, "leaders before the fault").await;
            let p = &parts[partition as usize];
            let victim = match fault {
                Fault::KillFollower => *p
                    .replicas
                    .iter()
                    .find(|&&r| r != p.leader)
                    .expect("a follower"),
                _ => p.leader,
            };
            println!(
                "round {round}: {fault:?} on node {victim} (partition {partition}: leader {}, \
                 ISR {:?})",
                p.leader, p.isr
            );
            // Progress is what is produced after the fault; the node stays out at least until
            // the others fenced it (its session timed out), so the ISR shrinks and grows again.
            let (mark, at) = (load.mark(), Instant::now());
            let state = match fault {
                Fault::KillLeader | Fault::KillFollower => {
                    c.kill(victim);
                    "killed"
                }
                Fault::StopLeader => {
                    c.stop(victim).await;
                    "stopped"
                }
                Fault::CutLeader => {
                    c.cut(victim);
                    "cut off"
                }
            };
            wait_fenced(&c, victim).await;
            let what = format!("progress with node {victim} {state}");
            let recovered = wait_progress_since(&c, &load, &what, mark, at).await;
            match fault {
                Fault::KillLeader | Fault::KillFollower => c.restart(victim),
                Fault::StopLeader => c.cont(victim),
                Fault::CutLeader => c.heal(victim),
            }
            let what = format!("node {victim} back in every ISR after {fault:?}");
            wait_full_isr(&c, &what).await;
            wait_progress(&c, &load, &format!("progress after round {round}")).await;
            timeline.push(format!(
                "round {round}: {fault:?} node {victim}: acknowledgements on every partition \
                 {} ms after the fault; every node back in every ISR and producing after {} ms",
                recovered.as_millis(),
                at.elapsed().as_millis()
            ));
        }

        load.stop_producing().await;
        let parts = wait_full_isr(&c, "every replica in every ISR after the faults").await;
        let isr: Vec<Vec<i32>> = parts.iter().map(|p| p.isr.clone()).collect();
        let watermarks = drain(&c, &mut load, &bootstrap).await;
        c.terminate_all().await;
        (load, isr, watermarks, timeline)
    })
    .await;

    // The replicas, from disk.
    let produced = load.produced.lock().expect("produced");
    let consumed = load.consumed.lock().expect("consumed");
    let (findings, checked) =
        check_on_disk(&c, &NODES, &isr, &high_watermarks, &produced, &consumed);

    println!("----- replication under faults: summary -----");
    println!(
        "run took {} s, {rounds} rounds, min.insync.replicas={min_insync}",
        started.elapsed().as_secs()
    );
    for t in &timeline {
        println!("  {t}");
    }
    println!(
        "acknowledged: {} ({:?} per partition); sent: {:?}; failed sends by error: {}; producers \
         replaced after a fatal error: {:?}",
        produced.acks(),
        produced.acked.iter().map(Vec::len).collect::<Vec<_>>(),
        produced.sent,
        produced.failed_summary(),
        produced.fatal
    );
    println!(
        "consumed: {:?} records per partition; consumer errors: {:?}",
        consumed.records.iter().map(Vec::len).collect::<Vec<_>>(),
        consumed.errors
    );
    println!("high watermarks: {high_watermarks:?}; ISRs: {isr:?}");
    for ((p, node), (records, end, torn)) in &checked {
        println!(
            "  {TOPIC}-{p} on node {node}: {records} records checked, log end offset {end}{}",
            if *torn { ", torn tail" } else { "" }
        );
    }
    println!("findings: {findings}");
    assert!(
        findings.is_empty(),
        "the replicas break the replication guarantees:\n{findings}"
    );
    assert!(
        produced.acks() >= MIN_ACKS,
        "only {} acknowledgements over the run (at least {MIN_ACKS} expected); failed sends: {}",
        produced.acks(),
        produced.failed_summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_check_passes_on_a_healthy_single_broker() {
    let mut c = Cluster::start_single_node(&[]).await;
    let logs = c.logs();
    let bootstrap = c.bootstrap_all();
    let (load, watermarks) = within(Duration::from_secs(120), &logs, async {
        let a = admin(&bootstrap);
        let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
        let res = a
            .create_topics(&[topic], &AdminOptions::new())
            .await
            .expect("CreateTopics");
        assert!(matches!(res.first(), Some(Ok(_))), "CreateTopics: {res:?}");
        layout(&c, "the topic with its leaders").await;
        let mut load = Load::start(&bootstrap);
        let produced = &load.produced;
        c.wait_until(
            "1500 acknowledgements",
            Duration::from_secs(60),
            || async move {
                let n = produced.lock().expect("produced").acks();
                if n >= 1500 {
                    Ok(())
                } else {
                    Err(format!("{n} acknowledgements"))
                }
            },
        )
        .await;
        load.stop_producing().await;
        let watermarks = drain(&c, &mut load, &bootstrap).await;
        // Read while the broker runs: whole batches, nothing damaged.
        for p in 0..PARTITIONS {
            let live = read_partition(1, c.data_dir(1), TOPIC, p).expect("read");
            assert!(live.problems.is_empty(), "{:?}", live.problems);
            assert_eq!(live.end_offset(), watermarks[p as usize]);
        }
        c.terminate(1).await;
        (load, watermarks)
    })
    .await;
    let produced = load.produced.lock().expect("produced");
    let consumed = load.consumed.lock().expect("consumed");
    let isr = vec![vec![1]; PARTITIONS as usize];
    let (findings, checked) = check_on_disk(&c, &[1], &isr, &watermarks, &produced, &consumed);
    assert!(findings.is_empty(), "{findings}");
    assert!(
        produced.failed.is_empty(),
        "failed sends: {}",
        produced.failed_summary()
    );
    for p in 0..PARTITIONS {
        let (records, end, _) = checked[&(p, 1)];
        assert_eq!(records as i64, watermarks[p as usize]);
        assert_eq!(end, watermarks[p as usize]);
        assert_eq!(records, produced.acked[p as usize].len());
        let offsets: BTreeSet<i64> = consumed.records[p as usize]
            .iter()
            .map(|r| r.offset)
            .collect();
        assert_eq!(records, offsets.len(), "partition {p}: offsets consumed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_nodes_are_cut_and_healed() {
    let mut c = Cluster::start_isolated(3, &[]).await;
    let logs = c.logs();
    let net = c.network().expect("isolated");
    let namespaces = net.namespaces();
    let bridge = net.bridge().to_string();
    let bridge_addr = net.bridge_addr();
    within(Duration::from_secs(150), &logs, async {
        // Every node advertises its own namespace address, on the bridge's /24.
        let md = c.metadata(1).await.expect("metadata");
        for id in NODES {
            let host = c.host(id);
            assert_eq!(md.brokers.get(&id), Some(&c.bootstrap(id)));
            assert_eq!(host.octets()[..3], bridge_addr.octets()[..3]);
            assert_ne!(host, bridge_addr);
            // The pid held is the broker's, in its namespace.
            let pid = c.pid(id).expect("running");
            let exe = std::fs::read_link(format!("/proc/{pid}/exe")).expect("exe");
            assert_eq!(
                exe.file_name().and_then(|n| n.to_str()),
                Some("esker"),
                "node {id}'s pid {pid} runs {exe:?}"
            );
            let ns = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("netns");
            let ours = std::fs::read_link("/proc/self/ns/net").expect("own netns");
            assert_ne!(ns, ours, "node {id} runs in the test's network namespace");
        }
        assert!(netns::link_exists(&bridge));

        // A cut node: the others fence it, the test cannot reach it; healed, it is back.
        let victim = 3;
        c.cut(victim);
        assert_eq!(c.live_ids(), vec![1, 2]);
        assert!(c.metadata(victim).await.is_err(), "a cut node answered");
        wait_fenced(&c, victim).await;
        c.heal(victim);
        c.wait_ready().await;

        // SIGSTOP reaches the broker (the node stops answering); SIGKILL and restart too.
        c.stop(2).await;
        assert!(c.metadata(2).await.is_err(), "a stopped node answered");
        c.cont(2);
        c.kill(1);
        c.restart(1);
        c.wait_ready().await;
    })
    .await;
    drop(c);
    for ns in &namespaces {
        assert!(!netns::namespace_exists(ns), "namespace {ns} left behind");
    }
    assert!(!netns::link_exists(&bridge), "bridge {bridge} left behind");
}

#[test]
fn namespaces_of_dead_test_processes_are_swept() {
    // A pid that runs nothing, as a crashed test process's would be.
    let dead = (2..32_768u32)
        .rev()
        .find(|p| !Path::new(&format!("/proc/{p}")).exists())
        .expect("a free pid");
    let ns = format!("esker-{dead}-0-1");
    let bridge = format!("ek{dead:x}-0b");
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip");
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["netns", "add", &ns]);
    run(&["link", "add", &bridge, "type", "bridge"]);
    let net = netns::Network::create(1).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        !netns::namespace_exists(&ns),
        "leftover namespace {ns} kept"
    );
    assert!(
        !netns::link_exists(&bridge),
        "leftover bridge {bridge} kept"
    );
    let own = net.namespaces();
    assert!(netns::namespace_exists(&own[0]));
    drop(net);
    assert!(!netns::namespace_exists(&own[0]));
}

/// A batch of `values` at `base` written as the broker writes it (leader epoch `epoch`).
fn batch(base: i64, epoch: i32, values: &[&str]) -> Vec<u8> {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: epoch,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: base + i as i64,
            sequence: (base + i as i64) as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .expect("encode");
    buf.to_vec()
}

/// Writes segment `base` of `topic-0` under `data_dir`.
fn write_segment(data_dir: &Path, base: i64, bytes: &[u8]) {
    let dir = data_dir.join("t-0");
    std::fs::create_dir_all(&dir).expect("partition dir");
    std::fs::write(dir.join(format!("{base:020}.log")), bytes).expect("segment");
}

fn acked(items: &[(i64, &str)]) -> Vec<Acked> {
    items
        .iter()
        .map(|&(offset, v)| Acked {
            offset,
            value: v.into(),
        })
        .collect()
}

#[test]
fn replica_check_reads_segments_and_tolerates_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = [batch(0, 0, &["a", "b"]), batch(2, 0, &["c"])].concat();
    let mut second = [batch(3, 1, &["d", "e"]), batch(5, 1, &["f"])].concat();
    second.extend_from_slice(&batch(6, 1, &["g"])[..HEADER_LEN + 3]);
    write_segment(dir.path(), 0, &first);
    write_segment(dir.path(), 3, &second);
    let log = read_partition(1, dir.path(), "t", 0).expect("read");
    assert!(log.problems.is_empty(), "{:?}", log.problems);
    assert_eq!(
        log.segments.iter().map(|s| s.0).collect::<Vec<_>>(),
        vec![0, 3]
    );
    assert_eq!(log.batches.len(), 4);
    assert_eq!(log.end_offset(), 6);
    let torn = log.torn_tail.as_ref().expect("torn tail reported");
    assert_eq!(torn.bytes, HEADER_LEN + 3);
    let values: Vec<(i64, String)> = log
        .records()
        .expect("decode")
        .iter()
        .map(|r| (r.offset, r.value_str()))
        .collect();
    assert_eq!(
        values,
        ["a", "b", "c", "d", "e", "f"]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64, v.to_string()))
            .collect::<Vec<_>>()
    );
    // The same torn batch inside the log (not the last segment) is damage.
    let other = tempfile::tempdir().expect("tempdir");
    write_segment(other.path(), 0, &second);
    write_segment(other.path(), 7, &batch(7, 1, &["h"]));
    let log = read_partition(2, other.path(), "t", 0).expect("read");
    assert_eq!(log.problems.len(), 1, "{:?}", log.problems);
    // A partition a node never had is an empty log.
    let none = read_partition(3, other.path(), "t", 1).expect("read");
    assert!(!none.present && none.batches.is_empty());
}

#[test]
fn replica_check_finds_divergence_and_bad_records() {
    let common_prefix = [batch(0, 0, &["p0-0", "p0-1"]), batch(2, 0, &["p0-2"])].concat();
    let dirs: Vec<_> = (0..3)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    // Nodes 1 and 2 agree; node 3 has another batch at offset 2 (a divergent tail).
    write_segment(
        dirs[0].path(),
        0,
        &[&common_prefix[..], &batch(3, 1, &["p0-3"])].concat(),
    );
    write_segment(dirs[1].path(), 0, &common_prefix);
    write_segment(
        dirs[2].path(),
        0,
        &[batch(0, 0, &["p0-0", "p0-1"]), batch(2, 1, &["p0-9"])].concat(),
    );
    let logs: Vec<_> = (0..3)
        .map(|i| read_partition(i as i32 + 1, dirs[i].path(), "t", 0).expect("read"))
        .collect();

    // Identical below the high watermark 3 on nodes 1 and 2 (node 1 has more above it).
    assert!(check_identical("t-0", &[&logs[0], &logs[1]], 3).is_empty());
    let f = check_identical("t-0", &[&logs[0], &logs[1], &logs[2]], 3);
    assert_eq!(
        f.count("replicas differ below the high watermark"),
        1,
        "{f}"
    );
    // Node 2 is short of high watermark 4; high watermark 1 falls inside node 1's first batch.
    let f = check_identical("t-0", &[&logs[0], &logs[1]], 4);
    assert_eq!(
        f.count("replica in the ISR short of the high watermark"),
        1,
        "{f}"
    );
    let f = check_identical("t-0", &[&logs[0]], 1);
    assert_eq!(f.count("high watermark inside a batch"), 1, "{f}");

    let records = logs[0].records().expect("decode");
    let good = acked(&[(0, "p0-0"), (1, "p0-1"), (3, "p0-3")]);
    assert!(check_acknowledged("t-0", &records, &good).is_empty());
    let f = check_acknowledged("t-0", &records, &acked(&[(4, "p0-4")]));
    assert_eq!(f.count("acknowledged value lost"), 1, "{f}");
    let f = check_acknowledged("t-0", &records, &acked(&[(1, "p0-2")]));
    assert_eq!(f.count("acknowledged value at another offset"), 1, "{f}");
    let f = check_acknowledged("t-0", &records, &acked(&[(1, "p0-1"), (0, "p0-0")]));
    assert_eq!(f.count("acknowledged values out of order"), 1, "{f}");
    let dup = tempfile::tempdir().expect("tempdir");
    write_segment(
        dup.path(),
        0,
        &[batch(0, 0, &["x"]), batch(1, 0, &["x"])].concat(),
    );
    let dup_records = read_partition(1, dup.path(), "t", 0)
        .expect("read")
        .records()
        .expect("decode");
    let f = check_acknowledged("t-0", &dup_records, &acked(&[(0, "x")]));
    assert_eq!(f.count("value in the log more than once"), 1, "{f}");

    let seen = |items: &[(i64, &str)]| -> Vec<Consumed> {
        items
            .iter()
            .map(|&(offset, v)| Consumed {
                offset,
                value: v.into(),
            })
            .collect()
    };
    assert!(check_consumed("t-0", &records, &seen(&[(2, "p0-2"), (2, "p0-2")])).is_empty());
    let f = check_consumed("t-0", &records, &seen(&[(2, "p0-9"), (9, "p0-5")]));
    assert_eq!(f.count("consumed record differs from the log"), 1, "{f}");
    assert_eq!(f.count("consumed record not in the log"), 1, "{f}");
}
