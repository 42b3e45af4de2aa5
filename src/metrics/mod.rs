//! Telemetry, defined in one place: every metric the broker exports lives in [`Metrics`] (one
//! `prometheus` registry, plus the per-partition and per-group families that the `scrape`
//! module writes straight into the exposition), named as the JMX exporter renders Kafka's
//! MBeans so that existing queries, alerts and dashboards keep working (the mapping is in
//! `docs/metrics.md`).
//!
//! Hot-path series are resolved ahead of time: per-API request counters and latency histograms
//! when the broker starts (from [`crate::kafka::SUPPORTED`]), per-listener connection series
//! when a listener starts accepting, and per-topic counters once per topic (cached in a map
//! keyed by topic name, dropped when the topic is deleted). A request then costs a map lookup
//! and a few atomic increments, never a label hash or a log line.
//!
//! Gauges describing state (partition counts, log sizes and offsets, fsync counters, shard
//! queue depth) are not maintained on the hot path: [`Metrics::render`] asks every shard for
//! them at scrape time. Kinesis per-stream series are cached per stream like the topics'.
//!
//! Consumer-group lag is computed at scrape time too, from the committed offsets the
//! coordinator reports ([`crate::coordinator::Coordinator::metrics`], a read-only message to
//! each coordinator partition) and the log end offsets the shards report; the process, jemalloc
//! and shard-thread series are read from `/proc/self` and `mallctl` ([`process`]).
//!
//! [`server`] serves `GET /metrics`, `GET /healthz` and `GET /readyz` on `metrics.listener`.

pub mod process;
mod scrape;

pub(crate) use scrape::escape as escape_label;
pub mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::context::BrokerContext;

/// Latency buckets of `kafka_network_requestmetrics_totaltimems`, in milliseconds (fetches
/// long-poll up to `fetch.max.wait.ms`, so the tail is long).
/// Bucket bounds for request sizes in bytes: from a heartbeat to a full produce request.
const SIZE_BUCKETS_BYTES: &[f64] = &[
    64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// Bucket bounds for fsync times in milliseconds: an fdatasync takes tens of microseconds on
/// a fast device and up to seconds on a struggling one.
const FLUSH_BUCKETS_MS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
    10000.0,
];

const LATENCY_BUCKETS_MS: &[f64] = &[
    0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0, 30000.0,
];

/// The `metrics.*` keys.
#[derive(Debug, Clone)]
pub struct MetricsConfig {
    /// `metrics.listener`: `host:port` of the HTTP endpoint; `None` when disabled.
    pub listener: Option<String>,
    /// Whether `metrics.listener` was set explicitly (a default that cannot be bound only warns).
    pub listener_explicit: bool,
    /// `metrics.partition.labels.enabled`: export per-partition series.
    pub partition_labels: bool,
    /// `metrics.group.labels.enabled`: export per-consumer-group series.
    pub group_labels: bool,
}

impl MetricsConfig {
    /// Reads the keys from the configuration's effective values.
    pub fn from_values(get: impl Fn(&str) -> String, explicit: impl Fn(&str) -> bool) -> Self {
        let listener = get("metrics.listener").trim().to_string();
        MetricsConfig {
            listener: (!listener.is_empty()).then_some(listener),
            listener_explicit: explicit("metrics.listener"),
            partition_labels: get("metrics.partition.labels.enabled") != "false",
            group_labels: get("metrics.group.labels.enabled") != "false",
        }
    }
}

/// The name Kafka's `RequestMetrics` MBeans give an API (`request=` label): the API's name,
/// except Fetch which consumers send as `FetchConsumer` (there are no followers here).
pub fn request_name(key: ApiKey) -> String {
    match key {
        ApiKey::Fetch => "FetchConsumer".to_string(),
        k => format!("{k:?}"),
    }
}

/// The span of one Kafka request (`request`, target `esker::request`, debug level) with its
/// API, version, correlation id, client id and peer, read from the frame's header. Disabled
/// unless the filter enables it (`RUST_LOG=info,esker::request=debug`), and then nothing is
/// parsed.
pub fn request_span(frame: &[u8], peer: std::net::SocketAddr) -> tracing::Span {
    let span = tracing::debug_span!(
        target: "esker::request",
        "request",
        api = tracing::field::Empty,
        version = tracing::field::Empty,
        correlation_id = tracing::field::Empty,
        client_id = tracing::field::Empty,
        %peer,
    );
    if span.is_disabled() || frame.len() < 8 {
        return span;
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    match ApiKey::try_from(key) {
        Ok(k) => span.record("api", request_name(k).as_str()),
        Err(_) => span.record("api", key),
    };
    span.record("version", i16::from_be_bytes([frame[2], frame[3]]));
    span.record(
        "correlation_id",
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    );
    // Request header v1+: a nullable INT16-length string.
    if let Some(len) = frame.get(8..10).map(|b| i16::from_be_bytes([b[0], b[1]])) {
        if let Some(id) = usize::try_from(len)
            .ok()
            .and_then(|n| frame.get(10..10 + n))
        {
            span.record("client_id", String::from_utf8_lossy(id).as_ref());
        }
    }
    span
}

/// Per-topic counters (`kafka.server:type=BrokerTopicMetrics,name=*,topic=*`), resolved once
/// per topic.
pub struct TopicMetrics {
    /// Records appended.
    pub messages_in: IntCounter,
    /// Record bytes appended, as the producer sent them.
    pub bytes_in: IntCounter,
    /// Record bytes returned to consumers.
    pub bytes_out: IntCounter,
    /// Produce requests for a partition of the topic.
    pub produce_requests: IntCounter,
    /// Fetch requests for a partition of the topic.
    pub fetch_requests: IntCounter,
    /// Partition produce requests that failed.
    pub failed_produce: IntCounter,
    /// Partition fetch requests that failed.
    pub failed_fetch: IntCounter,
}

/// Per-API series (`kafka.network:type=RequestMetrics,name=*,request=*`), resolved at start.
pub struct ApiMetrics {
    name: String,
    min_version: i16,
    /// `requests_total` by version, index `version - min_version`.
    requests: Vec<IntCounter>,
    /// `totaltimems`.
    pub latency: Histogram,
    /// `requestbytes`.
    size: Histogram,
    /// `throttletimems` (Produce and FetchConsumer only: the APIs with quotas).
    throttle: Option<Histogram>,
}

impl ApiMetrics {
    /// Counts one request of `version`.
    pub fn count(&self, version: i16) {
        let i = usize::try_from(version - self.min_version).unwrap_or(usize::MAX);
        if let Some(c) = self.requests.get(i) {
            c.inc();
        }
    }

    /// Records a request's total time.
    pub fn observe(&self, elapsed: Duration) {
        self.latency.observe(elapsed.as_secs_f64() * 1000.0);
    }

    /// Records the size of one request in bytes.
    pub fn observe_size(&self, bytes: usize) {
        self.size.observe(bytes as f64);
    }

    /// Records the quota delay a request was held back for (zero included).
    pub fn observe_throttle(&self, delay: Duration) {
        if let Some(h) = &self.throttle {
            h.observe(delay.as_secs_f64() * 1000.0);
        }
    }
}

/// Per-listener connection series (`kafka.server:type=socket-server-metrics,listener=*`).
#[derive(Clone)]
pub struct ListenerMetrics {
    count: IntGauge,
    created: IntCounter,
    rejected_max: IntCounter,
    rejected_per_ip: IntCounter,
    closed_idle: IntCounter,
    closed_slow_frame: IntCounter,
}

/// Why the broker closed a connection because of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitClose {
    /// `connections.max.idle.ms`.
    Idle,
    /// `socket.request.read.timeout.ms`.
    SlowFrame,
}

impl ListenerMetrics {
    /// Counts a connection refused right after accept.
    pub fn rejected(&self, why: crate::net::limits::Refusal) {
        match why {
            crate::net::limits::Refusal::MaxConnections(_) => self.rejected_max.inc(),
            crate::net::limits::Refusal::PerIp(_) => self.rejected_per_ip.inc(),
        }
    }

    /// Counts a connection closed by a limit.
    pub fn closed(&self, why: LimitClose) {
        match why {
            LimitClose::Idle => self.closed_idle.inc(),
            LimitClose::SlowFrame => self.closed_slow_frame.inc(),
        }
    }

    /// Counts a new connection; the guard counts it closed when dropped.
    pub fn opened(&self) -> ConnectionGuard {
        self.created.inc();
        self.count.inc();
        ConnectionGuard(self.count.clone())
    }
}

/// Held by a connection's task: decrements the open-connection gauge on drop.
pub struct ConnectionGuard(IntGauge);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Per-stream Kinesis series, named after the stream-level CloudWatch metrics
/// (`esker_kinesis_*{stream}`), resolved once per stream.
pub struct StreamMetrics {
    incoming_records: IntCounter,
    incoming_bytes: IntCounter,
    get_records_records: IntCounter,
    get_records_bytes: IntCounter,
    iterator_age: prometheus::Gauge,
    write_throttled: IntCounter,
    read_throttled: IntCounter,
}

impl StreamMetrics {
    /// Records (and their data plus partition-key bytes) appended by PutRecord or PutRecords.
    pub fn put(&self, records: usize, bytes: usize) {
        self.incoming_records.inc_by(records as u64);
        self.incoming_bytes.inc_by(bytes as u64);
    }

    /// A GetRecords answer: records and bytes returned, and its `MillisBehindLatest`.
    pub fn get(&self, records: usize, bytes: usize, iterator_age_ms: i64) {
        self.get_records_records.inc_by(records as u64);
        self.get_records_bytes.inc_by(bytes as u64);
        self.iterator_age.set(iterator_age_ms as f64 / 1000.0);
    }

    /// Records refused with ProvisionedThroughputExceededException on write.
    pub fn write_throttled(&self, records: usize) {
        self.write_throttled.inc_by(records as u64);
    }

    /// A GetRecords call refused with ProvisionedThroughputExceededException.
    pub fn read_throttled(&self) {
        self.read_throttled.inc();
    }
}

/// Every metric the broker exports, and its registry.
pub struct Metrics {
    registry: Registry,
    config: MetricsConfig,
    ready: AtomicBool,
    topic_vecs: [IntCounterVec; 7],
    topics: RwLock<HashMap<Arc<str>, Arc<TopicMetrics>>>,
    apis: HashMap<i16, ApiMetrics>,
    errors: IntCounterVec,
    conn_count: IntGaugeVec,
    conn_created: IntCounterVec,
    conn_rejected: IntCounterVec,
    conn_closed: IntCounterVec,
    // Computed at scrape time.
    partition_count: IntGauge,
    leader_count: IntGauge,
    under_replicated: IntGauge,
    under_min_isr: IntGauge,
    max_lag: IntGauge,
    isr_shrinks: IntCounter,
    isr_expands: IntCounter,
    active_controller: IntGauge,
    offline_partitions: IntGauge,
    flushes: IntCounterVec,
    fsyncs: IntCounterVec,
    fsync_waiters: IntCounterVec,
    shard_queue: IntGaugeVec,
    shard_cpu: prometheus::CounterVec,
    groups: IntGauge,
    rebalances: IntCounter,
    txn_open: IntGauge,
    txn_committed: IntCounter,
    txn_aborted: IntCounter,
    txn_timed_out: IntCounter,
    lso_lag: IntGauge,
    cleaner: CleanerMetrics,
    tls_reloads: IntCounterVec,
    quota_throttled: IntCounterVec,
    quota_throttle_seconds: prometheus::CounterVec,
    flush_time: HistogramVec,
    stream_vecs: StreamVecs,
    streams: RwLock<HashMap<Arc<str>, Arc<StreamMetrics>>>,
    process: process::ProcessMetrics,
    /// One scrape at a time (scrape-time gauges are reset and refilled); holds the size of the
    /// last exposition, to size the next buffer.
    scrape: tokio::sync::Mutex<usize>,
}

/// The labelled families behind [`StreamMetrics`].
struct StreamVecs {
    incoming_records: IntCounterVec,
    incoming_bytes: IntCounterVec,
    get_records_records: IntCounterVec,
    get_records_bytes: IntCounterVec,
    iterator_age: prometheus::GaugeVec,
    write_throttled: IntCounterVec,
    read_throttled: IntCounterVec,
}

impl StreamVecs {
    fn new(r: &Registry) -> StreamVecs {
        let s = &["stream"];
        StreamVecs {
            incoming_records: counter_vec(r, "esker_kinesis_incoming_records_total", "Records put to a stream (CloudWatch IncomingRecords).", s),
            incoming_bytes: counter_vec(r, "esker_kinesis_incoming_bytes_total", "Data and partition-key bytes put to a stream (CloudWatch IncomingBytes).", s),
            get_records_records: counter_vec(r, "esker_kinesis_get_records_records_total", "Records returned by GetRecords (CloudWatch GetRecords.Records).", s),
            get_records_bytes: counter_vec(r, "esker_kinesis_get_records_bytes_total", "Bytes returned by GetRecords (CloudWatch GetRecords.Bytes).", s),
            iterator_age: float_gauge_vec(r, "esker_kinesis_get_records_iterator_age_seconds", "MillisBehindLatest of the latest GetRecords on a stream, in seconds (CloudWatch GetRecords.IteratorAgeMilliseconds).", s),
            write_throttled: counter_vec(r, "esker_kinesis_write_provisioned_throughput_exceeded_total", "Records refused with ProvisionedThroughputExceededException (CloudWatch WriteProvisionedThroughputExceeded).", s),
            read_throttled: counter_vec(r, "esker_kinesis_read_provisioned_throughput_exceeded_total", "GetRecords calls refused with ProvisionedThroughputExceededException (CloudWatch ReadProvisionedThroughputExceeded).", s),
        }
    }

    fn resolve(&self, name: &str) -> StreamMetrics {
        let n = [name];
        StreamMetrics {
            incoming_records: self.incoming_records.with_label_values(&n),
            incoming_bytes: self.incoming_bytes.with_label_values(&n),
            get_records_records: self.get_records_records.with_label_values(&n),
            get_records_bytes: self.get_records_bytes.with_label_values(&n),
            iterator_age: self.iterator_age.with_label_values(&n),
            write_throttled: self.write_throttled.with_label_values(&n),
            read_throttled: self.read_throttled.with_label_values(&n),
        }
    }

    fn remove(&self, name: &str) {
        let n = [name];
        for v in [
            &self.incoming_records,
            &self.incoming_bytes,
            &self.get_records_records,
            &self.get_records_bytes,
            &self.write_throttled,
            &self.read_throttled,
        ] {
            let _ = v.remove_label_values(&n);
        }
        let _ = self.iterator_age.remove_label_values(&n);
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let v = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(v.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    v
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let v = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(v.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    v
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(c.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    c
}

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    histogram_vec_with(registry, name, help, labels, LATENCY_BUCKETS_MS)
}

fn histogram_vec_with(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let v = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(v.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    v
}

fn float_gauge_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::GaugeVec {
    let v = prometheus::GaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(v.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    v
}

/// The log cleaner's series (Kafka's `kafka.log:type=LogCleaner*` beans, under Esker names).
struct CleanerMetrics {
    passes: IntCounter,
    bytes_read: IntCounter,
    bytes_written: IntCounter,
    records_removed: IntCounter,
    failures: IntCounter,
    max_dirty_ratio: prometheus::Gauge,
    last_pass_seconds: prometheus::Gauge,
}

impl CleanerMetrics {
    fn new(r: &Registry) -> CleanerMetrics {
        let float = |name: &str, help: &str| {
            let g =
                prometheus::Gauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
            r.register(Box::new(g.clone()))
                .unwrap_or_else(|e| panic!("metric {name}: {e}"));
            g
        };
        CleanerMetrics {
            passes: counter(r, "esker_log_cleaner_passes_total", "Cleaning passes committed (compacted logs rewritten)."),
            bytes_read: counter(r, "esker_log_cleaner_read_bytes_total", "Bytes of segments read by the log cleaner."),
            bytes_written: counter(r, "esker_log_cleaner_written_bytes_total", "Bytes of cleaned segments written by the log cleaner."),
            records_removed: counter(r, "esker_log_cleaner_removed_records_total", "Records removed by compaction: superseded values, expired tombstones and markers, aborted transactions' records."),
            failures: counter(r, "esker_log_cleaner_failures_total", "Cleaning passes that failed (logged; the log is left as it was)."),
            max_dirty_ratio: float("esker_log_cleaner_max_dirty_ratio", "Largest share of uncleaned bytes among the compacted logs held here (Kafka's max-dirty-percent / 100)."),
            last_pass_seconds: float("esker_log_cleaner_last_pass_seconds", "Duration of the last committed cleaning pass."),
        }
    }

    /// Brings the series up to the cleaner's counters.
    pub(crate) fn update(&self, stats: &crate::shard::cleaner::CleanerStats, max_dirty: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        for (c, v) in [
            (&self.passes, &stats.passes),
            (&self.bytes_read, &stats.bytes_read),
            (&self.bytes_written, &stats.bytes_written),
            (&self.records_removed, &stats.records_removed),
            (&self.failures, &stats.failures),
        ] {
            let v = v.load(Relaxed);
            c.inc_by(v.saturating_sub(c.get()));
        }
        self.max_dirty_ratio.set(max_dirty);
        self.last_pass_seconds
            .set(stats.last_pass_ms.load(Relaxed) as f64 / 1000.0);
    }
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry
        .register(Box::new(g.clone()))
        .unwrap_or_else(|e| panic!("metric {name}: {e}"));
    g
}

impl Metrics {
    /// Defines and registers every metric. Names and labels are constants, so a failure here
    /// is a programming error caught by the tests.
    pub fn new(config: MetricsConfig) -> Metrics {
        let r = Registry::new();
        let topic = &["topic"];
        let btm = "kafka_server_brokertopicmetrics_";
        let topic_vecs = [
            counter_vec(&r, &format!("{btm}messagesin_total"), "Records appended (BrokerTopicMetrics MessagesInPerSec).", topic),
            counter_vec(&r, &format!("{btm}bytesin_total"), "Record bytes appended (BrokerTopicMetrics BytesInPerSec).", topic),
            counter_vec(&r, &format!("{btm}bytesout_total"), "Record bytes fetched (BrokerTopicMetrics BytesOutPerSec).", topic),
            counter_vec(&r, &format!("{btm}totalproducerequests_total"), "Partition produce requests (BrokerTopicMetrics TotalProduceRequestsPerSec).", topic),
            counter_vec(&r, &format!("{btm}totalfetchrequests_total"), "Partition fetch requests (BrokerTopicMetrics TotalFetchRequestsPerSec).", topic),
            counter_vec(&r, &format!("{btm}failedproducerequests_total"), "Failed partition produce requests (BrokerTopicMetrics FailedProduceRequestsPerSec).", topic),
            counter_vec(&r, &format!("{btm}failedfetchrequests_total"), "Failed partition fetch requests (BrokerTopicMetrics FailedFetchRequestsPerSec).", topic),
        ];
        let requests = counter_vec(
            &r,
            "kafka_network_requestmetrics_requests_total",
            "Requests received (RequestMetrics RequestsPerSec).",
            &["request", "version"],
        );
        let latency = histogram_vec(
            &r,
            "kafka_network_requestmetrics_totaltimems",
            "Time from a request's arrival to its response being ready, in milliseconds (RequestMetrics TotalTimeMs).",
            &["request"],
        );
        let throttle = histogram_vec(
            &r,
            "kafka_network_requestmetrics_throttletimems",
            "Time a request was held back by its client quota, in milliseconds (RequestMetrics ThrottleTimeMs).",
            &["request"],
        );
        let sizes = histogram_vec_with(
            &r,
            "kafka_network_requestmetrics_requestbytes",
            "Size of each request in bytes, header and size prefix included (RequestMetrics RequestBytes).",
            &["request"],
            SIZE_BUCKETS_BYTES,
        );
        let mut apis = HashMap::new();
        for (key, min, max) in crate::kafka::SUPPORTED {
            let name = request_name(*key);
            let requests = (*min..=*max)
                .map(|v| requests.with_label_values(&[name.as_str(), &v.to_string()]))
                .collect();
            let latency = latency.with_label_values(&[name.as_str()]);
            let size = sizes.with_label_values(&[name.as_str()]);
            let throttle = matches!(key, ApiKey::Produce | ApiKey::Fetch)
                .then(|| throttle.with_label_values(&[name.as_str()]));
            apis.insert(
                *key as i16,
                ApiMetrics {
                    name,
                    min_version: *min,
                    requests,
                    latency,
                    size,
                    throttle,
                },
            );
        }
        let errors = counter_vec(
            &r,
            "kafka_network_requestmetrics_errors_total",
            "Error codes returned (RequestMetrics ErrorsPerSec).",
            &["request", "error"],
        );
        let conn_count = gauge_vec(
            &r,
            "kafka_server_socketservermetrics_connections",
            "Open connections (socket-server-metrics connection-count).",
            &["listener"],
        );
        let conn_created = counter_vec(
            &r,
            "kafka_server_socketservermetrics_connection_creation_total",
            "Connections accepted (socket-server-metrics connection-creation-total).",
            &["listener"],
        );
        let conn_rejected = counter_vec(
            &r,
            "esker_connections_rejected_total",
            "Connections closed right after accept because a limit was reached: \
             reason=\"max_connections\" (max.connections) or \"per_ip\" (max.connections.per.ip).",
            &["listener", "reason"],
        );
        let conn_closed = counter_vec(
            &r,
            "esker_connections_closed_total",
            "Connections the broker closed because of a limit: reason=\"idle\" \
             (connections.max.idle.ms) or \"slow_frame\" (socket.request.read.timeout.ms).",
            &["listener", "reason"],
        );
        let partition_count = gauge(
            &r,
            "kafka_server_replicamanager_partitioncount",
            "Partitions on this broker (ReplicaManager PartitionCount).",
        );
        let leader_count = gauge(
            &r,
            "kafka_server_replicamanager_leadercount",
            "Partitions this broker leads (ReplicaManager LeaderCount).",
        );
        let under_replicated = gauge(
            &r,
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Partitions led here whose ISR is smaller than their replica set (ReplicaManager \
             UnderReplicatedPartitions); always 0 on a single node.",
        );
        let under_min_isr = gauge(
            &r,
            "kafka_server_replicamanager_underminisrpartitioncount",
            "Partitions led here whose ISR is smaller than min.insync.replicas: acks=all produces \
             to them are refused (ReplicaManager UnderMinIsrPartitionCount).",
        );
        let isr_shrinks = counter(
            &r,
            "kafka_server_replicamanager_isrshrinks_total",
            "Replicas removed from an ISR by this broker as leader (ReplicaManager IsrShrinksPerSec).",
        );
        let isr_expands = counter(
            &r,
            "kafka_server_replicamanager_isrexpands_total",
            "Replicas added to an ISR by this broker as leader (ReplicaManager IsrExpandsPerSec).",
        );
        let max_lag = gauge(
            &r,
            "kafka_server_replicafetchermanager_maxlag",
            "The largest lag, in offsets, of an in-sync follower behind the leader's log end, over \
             the partitions led here (ReplicaFetcherManager MaxLag, measured at the leaders).",
        );
        let active_controller = gauge(
            &r,
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller (KafkaController ActiveControllerCount): the single node, \
             or the metadata quorum's leader in a cluster.",
        );
        active_controller.set(1);
        let offline_partitions = gauge(
            &r,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (KafkaController OfflinePartitionsCount), reported by the \
             active controller.",
        );
        let flushes = counter_vec(
            &r,
            "esker_shard_flushes_total",
            "Group-commit fsync rounds per shard (LogFlushStats LogFlushRateAndTimeMs count).",
            &["shard"],
        );
        let flush_time = histogram_vec_with(
            &r,
            "kafka_log_logflushstats_logflushrateandtimems",
            "Time of one fsync round (group commit, or one append with a per-append policy), in \
             milliseconds, per shard (LogFlushStats LogFlushRateAndTimeMs).",
            &["shard"],
            FLUSH_BUCKETS_MS,
        );
        let fsyncs = counter_vec(
            &r,
            "esker_shard_fsyncs_total",
            "fdatasync calls per shard.",
            &["shard"],
        );
        let fsync_waiters = counter_vec(
            &r,
            "esker_shard_fsync_waiters_total",
            "acks=all appends answered after an fsync, per shard.",
            &["shard"],
        );
        let shard_queue = gauge_vec(
            &r,
            "esker_shard_queue_depth",
            "Jobs queued for a shard thread and not yet started.",
            &["shard"],
        );
        let shard_cpu = prometheus::CounterVec::new(
            Opts::new(
                "esker_shard_cpu_seconds_total",
                "CPU time of a shard thread (user and system); its rate is the shard's busy ratio.",
            ),
            &["shard"],
        )
        .unwrap_or_else(|e| panic!("shard cpu: {e}"));
        r.register(Box::new(shard_cpu.clone()))
            .unwrap_or_else(|e| panic!("shard cpu: {e}"));
        let groups = gauge(
            &r,
            "kafka_coordinator_group_groupmetadatamanager_numgroups",
            "Consumer groups known to the coordinator (GroupMetadataManager NumGroups).",
        );
        let rebalances = counter(
            &r,
            "kafka_server_groupcoordinatormetrics_group_rebalance_total",
            "Rebalances completed: classic generations and KIP-848 group epochs (group-coordinator-metrics group-rebalance-count).",
        );
        let txn_open = gauge(
            &r,
            "esker_transactions_open",
            "Transactions this broker coordinates that are open or completing (Ongoing, PrepareCommit, PrepareAbort).",
        );
        let txn_committed = counter(
            &r,
            "esker_transactions_committed_total",
            "Transactions committed (every commit marker written) by this broker's transaction coordinator.",
        );
        let txn_aborted = counter(
            &r,
            "esker_transactions_aborted_total",
            "Transactions aborted (every abort marker written), including timed-out and fenced ones.",
        );
        let txn_timed_out = counter(
            &r,
            "esker_transactions_timed_out_total",
            "Transactions aborted by the coordinator because they outlived their transaction.timeout.ms.",
        );
        let lso_lag = gauge(
            &r,
            "esker_log_last_stable_offset_lag_max",
            "Largest high watermark minus last stable offset over the partitions led here: how many offsets open transactions hold back from read_committed consumers.",
        );
        let cleaner = CleanerMetrics::new(&r);
        let tls_reloads = counter_vec(
            &r,
            "esker_tls_certificate_reloads_total",
            "Changed certificate files seen by the ssl.reload.interval.ms check, per listener; \
             result=\"reloaded\" (new connections use them) or \"failed\" (the files do not load, \
             the previous ones stay).",
            &["listener", "result"],
        );
        let quota_throttled = counter_vec(
            &r,
            "esker_quota_throttled_total",
            "Responses held back by a client quota, per quota: produce (producer_byte_rate), \
             fetch (consumer_byte_rate) or request (request_percentage).",
            &["quota"],
        );
        let quota_throttle_seconds = prometheus::CounterVec::new(
            Opts::new(
                "esker_quota_throttle_time_seconds_total",
                "Time responses were held back by a client quota (their throttle_time_ms), per \
                 quota: produce, fetch or request.",
            ),
            &["quota"],
        )
        .unwrap_or_else(|e| panic!("quota throttle time: {e}"));
        r.register(Box::new(quota_throttle_seconds.clone()))
            .unwrap_or_else(|e| panic!("quota throttle time: {e}"));
        for q in ["produce", "fetch", "request"] {
            quota_throttled.with_label_values(&[q]);
            quota_throttle_seconds.with_label_values(&[q]);
        }
        let stream_vecs = StreamVecs::new(&r);
        let process = process::ProcessMetrics::new(&r);
        build_info(&r);
        Metrics {
            registry: r,
            config,
            ready: AtomicBool::new(false),
            topic_vecs,
            topics: RwLock::default(),
            apis,
            errors,
            conn_count,
            conn_created,
            conn_rejected,
            conn_closed,
            partition_count,
            leader_count,
            under_replicated,
            under_min_isr,
            max_lag,
            isr_shrinks,
            isr_expands,
            active_controller,
            offline_partitions,
            flushes,
            fsyncs,
            fsync_waiters,
            shard_queue,
            shard_cpu,
            groups,
            rebalances,
            txn_open,
            txn_committed,
            txn_aborted,
            txn_timed_out,
            lso_lag,
            cleaner,
            tls_reloads,
            quota_throttled,
            quota_throttle_seconds,
            flush_time,
            stream_vecs,
            streams: RwLock::default(),
            process,
            scrape: tokio::sync::Mutex::new(0),
        }
    }

    /// The histogram of shard `shard`'s fsync rounds, for the shard to observe directly.
    pub fn flush_timer(&self, shard: usize) -> Histogram {
        self.flush_time.with_label_values(&[&shard.to_string()])
    }

    /// Counts an ISR change this broker made as leader: members removed and added.
    pub fn isr_changed(&self, removed: usize, added: usize) {
        self.isr_shrinks.inc_by(removed as u64);
        self.isr_expands.inc_by(added as u64);
    }

    /// Counts a TLS certificate reload attempt on `listener` (`ok`: the new files are in use).
    pub fn tls_reload(&self, listener: &str, ok: bool) {
        let result = if ok { "reloaded" } else { "failed" };
        self.tls_reloads
            .with_label_values(&[listener, result])
            .inc();
    }

    /// The `metrics.*` settings.
    pub fn config(&self) -> &MetricsConfig {
        &self.config
    }

    /// Marks the broker ready (logs loaded, listeners bound) or not (shutting down).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Records the quota delay of a response (zero when within quota): Produce and Fetch
    /// byte quotas also feed their API's `throttletimems`.
    pub fn observe_throttle(&self, kind: crate::quota::Kind, delay: Duration) {
        let key = match kind {
            crate::quota::Kind::Produce => Some(ApiKey::Produce),
            crate::quota::Kind::Fetch => Some(ApiKey::Fetch),
            crate::quota::Kind::Request => None,
        };
        if let Some(api) = key.and_then(|k| self.apis.get(&(k as i16))) {
            api.observe_throttle(delay);
        }
        if !delay.is_zero() {
            self.quota_throttled
                .with_label_values(&[kind.label()])
                .inc();
            self.quota_throttle_seconds
                .with_label_values(&[kind.label()])
                .inc_by(delay.as_secs_f64());
        }
    }

    /// The series of an API (`None` for one the broker does not serve).
    pub fn api(&self, key: i16) -> Option<&ApiMetrics> {
        self.apis.get(&key)
    }

    /// Counts an error code in a response (`code` 0 is not counted).
    pub fn error(&self, api: &ApiMetrics, code: i16) {
        if code == 0 {
            return;
        }
        let error = match kafka_protocol::ResponseError::try_from_code(code) {
            Some(e) => format!("{e:?}"),
            None => format!("Unknown({code})"),
        };
        self.errors
            .with_label_values(&[api.name.as_str(), error.as_str()])
            .inc();
    }

    /// The connection series of a listener (resolved once, when it starts accepting).
    pub fn listener(&self, name: &str) -> ListenerMetrics {
        ListenerMetrics {
            count: self.conn_count.with_label_values(&[name]),
            created: self.conn_created.with_label_values(&[name]),
            rejected_max: self
                .conn_rejected
                .with_label_values(&[name, "max_connections"]),
            rejected_per_ip: self.conn_rejected.with_label_values(&[name, "per_ip"]),
            closed_idle: self.conn_closed.with_label_values(&[name, "idle"]),
            closed_slow_frame: self.conn_closed.with_label_values(&[name, "slow_frame"]),
        }
    }

    /// The counters of an existing topic, created on first use. Names that are not topics get
    /// `None`, so requests for arbitrary names cannot grow the series without bound.
    pub fn topic(&self, ctx: &BrokerContext, name: &str) -> Option<Arc<TopicMetrics>> {
        if let Some(t) = self.topics.read().ok().and_then(|m| m.get(name).cloned()) {
            return Some(t);
        }
        let meta = ctx.catalog.get(name)?;
        let mut map = self.topics.write().ok()?;
        let v = &self.topic_vecs;
        let t = map.entry(meta.name.clone()).or_insert_with(|| {
            let n = [&*meta.name];
            Arc::new(TopicMetrics {
                messages_in: v[0].with_label_values(&n),
                bytes_in: v[1].with_label_values(&n),
                bytes_out: v[2].with_label_values(&n),
                produce_requests: v[3].with_label_values(&n),
                fetch_requests: v[4].with_label_values(&n),
                failed_produce: v[5].with_label_values(&n),
                failed_fetch: v[6].with_label_values(&n),
            })
        });
        Some(t.clone())
    }

    /// Totals over every topic since start: (messages in, bytes in, bytes out), read from the
    /// same counters `/metrics` exports (the console's throughput sparklines).
    pub fn topic_totals(&self) -> (u64, u64, u64) {
        let Ok(map) = self.topics.read() else {
            return (0, 0, 0);
        };
        map.values().fold((0, 0, 0), |(m, i, o), t| {
            (
                m + t.messages_in.get(),
                i + t.bytes_in.get(),
                o + t.bytes_out.get(),
            )
        })
    }

    /// The Kinesis series of a stream that exists (callers resolved it first), created on
    /// first use.
    pub fn stream(&self, name: &str) -> Arc<StreamMetrics> {
        if let Some(m) = self.streams.read().ok().and_then(|m| m.get(name).cloned()) {
            return m;
        }
        let fresh = || Arc::new(self.stream_vecs.resolve(name));
        match self.streams.write() {
            Ok(mut map) => map.entry(Arc::from(name)).or_insert_with(fresh).clone(),
            Err(_) => fresh(),
        }
    }

    /// Forgets a deleted topic's (or stream's) series.
    pub fn remove_topic(&self, name: &str) {
        if let Ok(mut map) = self.topics.write() {
            map.remove(name);
        }
        for v in &self.topic_vecs {
            let _ = v.remove_label_values(&[name]);
        }
        if let Ok(mut map) = self.streams.write() {
            if map.remove(name).is_some() {
                self.stream_vecs.remove(name);
            }
        }
    }

    /// Refreshes the scrape-time series (partitions and logs from the shards, consumer-group
    /// lag from the coordinator, process and allocator statistics), then renders every metric
    /// in the Prometheus text format.
    pub async fn render(&self, ctx: &BrokerContext) -> String {
        let mut last_len = self.scrape.lock().await;
        // The per-partition and per-group families are written straight from the shards' and
        // the coordinator's answers (no registry children to create, hash and gather).
        let mut direct = String::with_capacity(*last_len / 2);
        scrape::refresh(self, ctx, &mut direct).await;
        self.process.refresh();
        let mut text = self.encode_with_capacity(*last_len + *last_len / 8);
        text.push_str(&direct);
        net_limits(&ctx.net, &mut text);
        *last_len = text.len();
        text
    }

    /// Renders the registry as it is, without refreshing the scrape-time gauges.
    pub fn encode(&self) -> String {
        self.encode_with_capacity(0)
    }

    fn encode_with_capacity(&self, capacity: usize) -> String {
        let mut buf = Vec::with_capacity(capacity);
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// The request queue and memory pool series, written at scrape time from their counters (the
/// pool's only when `queued.max.request.bytes` is set).
fn net_limits(net: &crate::net::limits::NetLimits, out: &mut String) {
    use std::fmt::Write;
    let _ = write!(
        out,
        "# HELP esker_request_queue_requests Requests read and not yet answered nor parked, \
         counted against queued.max.requests.\n\
         # TYPE esker_request_queue_requests gauge\n\
         esker_request_queue_requests {}\n",
        net.queue.queued()
    );
    if let Some(pool) = &net.pool {
        let _ = write!(
            out,
            "# HELP kafka_network_socketserver_memorypoolavailable Bytes of the request memory \
             pool (queued.max.request.bytes) not reserved (SocketServer MemoryPoolAvailable).\n\
             # TYPE kafka_network_socketserver_memorypoolavailable gauge\n\
             kafka_network_socketserver_memorypoolavailable {}\n\
             # HELP kafka_network_socketserver_memorypoolused Bytes of the request memory pool \
             reserved by requests being read or handled (SocketServer MemoryPoolUsed).\n\
             # TYPE kafka_network_socketserver_memorypoolused gauge\n\
             kafka_network_socketserver_memorypoolused {}\n\
             # HELP esker_request_memory_pool_wait_seconds_total Time connections waited for \
             room in the request memory pool before reading a frame or a Kinesis body.\n\
             # TYPE esker_request_memory_pool_wait_seconds_total counter\n\
             esker_request_memory_pool_wait_seconds_total {}\n",
            pool.available(),
            pool.capacity().saturating_sub(pool.available()),
            pool.waited().as_secs_f64()
        );
    }
}

/// `esker_build_info{version, commit}` = 1; `commit` is the `ESKER_GIT_SHA` environment
/// variable at build time, and the label is absent when it was not set.
fn build_info(r: &Registry) {
    let version = env!("CARGO_PKG_VERSION");
    let help = "Build information; always 1 (app-info version and commit-id).";
    match option_env!("ESKER_GIT_SHA").filter(|s| !s.is_empty()) {
        Some(sha) => gauge_vec(r, "esker_build_info", help, &["version", "commit"])
            .with_label_values(&[version, sha])
            .set(1),
        None => gauge_vec(r, "esker_build_info", help, &["version"])
            .with_label_values(&[version])
            .set(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> Metrics {
        Metrics::new(MetricsConfig {
            listener: None,
            listener_explicit: false,
            partition_labels: true,
            group_labels: true,
        })
    }

    /// The metric names a PromQL expression refers to: identifiers that start with one of our
    /// prefixes.
    fn names_in(expr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in expr.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                cur.push(c);
            } else {
                if ["kafka_", "esker_", "process_"]
                    .iter()
                    .any(|p| cur.starts_with(p))
                {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
        out
    }

    fn exprs(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                        _ => exprs(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_dashboard_metric_is_exported() {
        let m = metrics();
        // Give the labelled families a child each so that they appear in the output.
        let api = m.api(ApiKey::Produce as i16).expect("produce");
        api.count(9);
        m.error(api, 3);
        let _conn = m.listener("PLAINTEXT").opened();
        for v in &m.topic_vecs {
            v.with_label_values(&["t"]).inc();
        }
        for v in [&m.flushes, &m.fsyncs, &m.fsync_waiters] {
            v.with_label_values(&["0"]).inc();
        }
        m.flush_timer(0).observe(1.0);
        m.shard_queue.with_label_values(&["0"]).set(1);
        m.shard_cpu.with_label_values(&["0"]).inc();
        let s = m.stream("s");
        s.put(1, 1);
        s.get(1, 1, 0);
        s.write_throttled(1);
        s.read_throttled();
        m.process.refresh();
        let _listener = m.listener("PLAINTEXT");
        let mut text = m.encode();
        scrape::write_examples(&mut text);
        net_limits(
            &crate::net::limits::NetLimits::new(Default::default()),
            &mut text,
        );
        let telemetry_dir = tempfile::tempdir().expect("tempdir");
        crate::telemetry::ClientTelemetry::open(telemetry_dir.path(), Default::default())
            .expect("telemetry")
            .render(&mut text);
        let exported: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("grafana/provisioning/dashboards");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("grafana/provisioning/dashboards") {
            let path = entry.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).expect("read"))
                    .expect("valid JSON");
            let mut all = Vec::new();
            exprs(&json, &mut all);
            assert!(!all.is_empty(), "{} has no queries", path.display());
            for e in all {
                let names = names_in(&e);
                assert!(!names.is_empty(), "no metric in `{e}`");
                for n in names {
                    assert!(
                        exported.contains(n.as_str()),
                        "{}: `{n}` (in `{e}`) is not exported",
                        path.display()
                    );
                    checked += 1;
                }
            }
        }
        assert!(checked > 0);
    }

    #[test]
    fn request_names_follow_kafka() {
        assert_eq!(request_name(ApiKey::Fetch), "FetchConsumer");
        assert_eq!(request_name(ApiKey::Produce), "Produce");
        assert_eq!(request_name(ApiKey::ApiVersions), "ApiVersions");
    }

    #[test]
    fn versions_out_of_range_are_ignored() {
        let m = metrics();
        let api = m.api(ApiKey::Produce as i16).expect("produce");
        api.count(-5);
        api.count(i16::MAX);
        api.count(3);
        assert_eq!(api.requests[0].get(), 1);
    }
}
