//! Telemetry, defined in one place: every metric the broker exports lives in [`Metrics`], in
//! one `prometheus` registry, named as the JMX exporter renders Kafka's MBeans so that existing
//! queries, alerts and dashboards keep working (the mapping is in `docs/metrics.md`).
//!
//! Hot-path series are resolved ahead of time: per-API request counters and latency histograms
//! when the broker starts (from [`crate::kafka::SUPPORTED`]), per-listener connection series
//! when a listener starts accepting, and per-topic counters once per topic (cached in a map
//! keyed by topic name, dropped when the topic is deleted). A request then costs a map lookup
//! and a few atomic increments, never a label hash or a log line.
//!
//! Gauges describing state (partition counts, log sizes and offsets, fsync counters) are not
//! maintained on the hot path: [`Metrics::render`] asks every shard for them at scrape time.
//!
//! [`server`] serves `GET /metrics`, `GET /healthz` and `GET /readyz` on `metrics.listener`.

pub mod server;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::broker::BrokerContext;
use crate::shard::ShardState;

/// Latency buckets of `kafka_network_requestmetrics_totaltimems`, in milliseconds (fetches
/// long-poll up to `fetch.max.wait.ms`, so the tail is long).
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
}

impl MetricsConfig {
    /// Reads the keys from the configuration's effective values.
    pub fn from_values(get: impl Fn(&str) -> String, explicit: impl Fn(&str) -> bool) -> Self {
        let listener = get("metrics.listener").trim().to_string();
        MetricsConfig {
            listener: (!listener.is_empty()).then_some(listener),
            listener_explicit: explicit("metrics.listener"),
            partition_labels: get("metrics.partition.labels.enabled") != "false",
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
    pub latency: prometheus::Histogram,
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
}

/// Per-listener connection series (`kafka.server:type=socket-server-metrics,listener=*`).
#[derive(Clone)]
pub struct ListenerMetrics {
    count: IntGauge,
    created: IntCounter,
}

impl ListenerMetrics {
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
    // Computed at scrape time.
    partition_count: IntGauge,
    leader_count: IntGauge,
    log_size: IntGaugeVec,
    log_start: IntGaugeVec,
    log_end: IntGaugeVec,
    flushes: IntCounterVec,
    fsyncs: IntCounterVec,
    fsync_waiters: IntCounterVec,
    /// One scrape at a time (scrape-time gauges are reset and refilled).
    scrape: tokio::sync::Mutex<()>,
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
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "kafka_network_requestmetrics_totaltimems",
                "Time from a request's arrival to its response being ready, in milliseconds (RequestMetrics TotalTimeMs).",
            )
            .buckets(LATENCY_BUCKETS_MS.to_vec()),
            &["request"],
        )
        .unwrap_or_else(|e| panic!("latency histogram: {e}"));
        r.register(Box::new(latency.clone()))
            .unwrap_or_else(|e| panic!("latency histogram: {e}"));
        let mut apis = HashMap::new();
        for (key, min, max) in crate::kafka::SUPPORTED {
            let name = request_name(*key);
            let requests = (*min..=*max)
                .map(|v| requests.with_label_values(&[name.as_str(), &v.to_string()]))
                .collect();
            let latency = latency.with_label_values(&[name.as_str()]);
            apis.insert(
                *key as i16,
                ApiMetrics {
                    name,
                    min_version: *min,
                    requests,
                    latency,
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
            "kafka_server_socketservermetrics_connection_count",
            "Open connections (socket-server-metrics connection-count).",
            &["listener"],
        );
        let conn_created = counter_vec(
            &r,
            "kafka_server_socketservermetrics_connection_creation_total",
            "Connections accepted (socket-server-metrics connection-creation-total).",
            &["listener"],
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
        gauge(
            &r,
            "kafka_server_replicamanager_underreplicatedpartitions",
            "Under-replicated partitions (ReplicaManager UnderReplicatedPartitions); always 0 on a single node.",
        );
        gauge(
            &r,
            "kafka_controller_kafkacontroller_activecontrollercount",
            "1 on the active controller (KafkaController ActiveControllerCount).",
        )
        .set(1);
        gauge(
            &r,
            "kafka_controller_kafkacontroller_offlinepartitionscount",
            "Partitions without a leader (KafkaController OfflinePartitionsCount).",
        );
        let tp = &["topic", "partition"];
        let log_size = gauge_vec(
            &r,
            "kafka_log_log_size",
            "Bytes on disk in a partition's segments (Log Size).",
            tp,
        );
        let log_start = gauge_vec(
            &r,
            "kafka_log_log_logstartoffset",
            "A partition's first offset (Log LogStartOffset).",
            tp,
        );
        let log_end = gauge_vec(
            &r,
            "kafka_log_log_logendoffset",
            "A partition's log end offset (Log LogEndOffset).",
            tp,
        );
        let flushes = counter_vec(
            &r,
            "esker_shard_flushes_total",
            "Group-commit fsync rounds per shard (LogFlushStats LogFlushRateAndTimeMs count).",
            &["shard"],
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
        gauge_vec(
            &r,
            "esker_build_info",
            "Build information; always 1.",
            &["version"],
        )
        .with_label_values(&[env!("CARGO_PKG_VERSION")])
        .set(1);
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
            partition_count,
            leader_count,
            log_size,
            log_start,
            log_end,
            flushes,
            fsyncs,
            fsync_waiters,
            scrape: tokio::sync::Mutex::new(()),
        }
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

    /// Forgets a deleted topic's series.
    pub fn remove_topic(&self, name: &str) {
        if let Ok(mut map) = self.topics.write() {
            map.remove(name);
        }
        for v in &self.topic_vecs {
            let _ = v.remove_label_values(&[name]);
        }
    }

    /// Refreshes the scrape-time gauges from the catalog and the shards, then renders every
    /// metric in the Prometheus text format.
    pub async fn render(&self, ctx: &BrokerContext) -> String {
        let _one = self.scrape.lock().await;
        let topics = ctx.catalog.all();
        let mut per_shard: Vec<Vec<(Arc<str>, i32)>> = vec![Vec::new(); ctx.shards.len()];
        let mut partitions = 0i64;
        for t in &topics {
            for p in 0..t.partitions {
                partitions += 1;
                per_shard[crate::shard::shard_for(&t.name, p, ctx.shards.len())]
                    .push((t.name.clone(), p));
            }
        }
        self.partition_count.set(partitions);
        self.leader_count.set(partitions);
        let by_partition = self.config.partition_labels;
        if by_partition {
            self.log_size.reset();
            self.log_start.reset();
            self.log_end.reset();
        }
        for (id, list) in per_shard.into_iter().enumerate() {
            let answer = ctx.shards[id]
                .call(move |s: &mut ShardState| {
                    let snaps: Vec<_> = if by_partition {
                        list.into_iter()
                            .filter_map(|(t, p)| s.snapshot(&t, p).ok().map(|snap| (t, p, snap)))
                            .collect()
                    } else {
                        Vec::new()
                    };
                    (snaps, s.sync_stats())
                })
                .await;
            let Ok((snaps, stats)) = answer else { continue };
            for (t, p, snap) in snaps {
                let labels = [&*t, &p.to_string()];
                self.log_size
                    .with_label_values(&labels)
                    .set(i64::try_from(snap.size_bytes).unwrap_or(i64::MAX));
                self.log_start
                    .with_label_values(&labels)
                    .set(snap.log_start_offset);
                self.log_end
                    .with_label_values(&labels)
                    .set(snap.high_watermark);
            }
            let shard = [id.to_string()];
            for (vec, value) in [
                (&self.flushes, stats.flushes),
                (&self.fsyncs, stats.fsyncs),
                (&self.fsync_waiters, stats.waiters),
            ] {
                let c = vec.with_label_values(&shard);
                c.inc_by(value.saturating_sub(c.get()));
            }
        }
        self.encode()
    }

    /// Renders the registry as it is, without refreshing the scrape-time gauges.
    pub fn encode(&self) -> String {
        let mut buf = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buf) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(buf).unwrap_or_default()
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
        })
    }

    /// The metric names a PromQL expression refers to: identifiers followed by `{`, `[` or `)`
    /// that start with one of our prefixes.
    fn names_in(expr: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = String::new();
        for c in expr.chars().chain(std::iter::once(' ')) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                cur.push(c);
            } else {
                if cur.starts_with("kafka_") || cur.starts_with("esker_") {
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
        for v in [&m.log_size, &m.log_start, &m.log_end] {
            v.with_label_values(&["t", "0"]).set(1);
        }
        for v in [&m.flushes, &m.fsyncs, &m.fsync_waiters] {
            v.with_label_values(&["0"]).inc();
        }
        let text = m.encode();
        let exported: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana/dashboards");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("grafana/dashboards") {
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
