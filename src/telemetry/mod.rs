//! Client telemetry (KIP-714): the client metrics resources (named subscriptions, managed with
//! IncrementalAlterConfigs / DescribeConfigs on resource type CLIENT_METRICS and stored
//! durably in `<log.dirs>/.esker-config/client-metrics`), the client instances that fetch a
//! subscription (GetTelemetrySubscriptions) and push metrics (PushTelemetry), and the latest
//! pushed values, exported on `/metrics` as `esker_client_metric{...}`.
//!
//! Shared by every connection behind one mutex: telemetry requests come once per client per
//! push interval, so contention is not a concern. Cardinality is bounded: at most
//! [`MAX_INSTANCES`] instances (the least recently seen goes first), at most
//! `telemetry.max.series` exported series, a client's series dropped when it stops pushing for
//! three push intervals or sends its terminating push, and its instance forgotten after
//! `max(60 s, 3 × interval)` without a request (Kafka's expiry).
//!
//! The operator can subscribe every client without admin calls (`telemetry.default.metrics`,
//! `telemetry.default.interval.ms`); with the key empty, as in Kafka, clients are subscribed
//! to nothing until a client metrics resource says otherwise.

pub mod otlp;
pub mod subscription;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use uuid::Uuid;

pub use subscription::{ClientInfo, Subscription, SubscriptionError};

/// Instances tracked at most (Kafka's cache size: 16k client connections per broker).
pub const MAX_INSTANCES: usize = 16_384;
/// Kafka's minimum time an idle instance is kept.
const INSTANCE_EXPIRY_MIN: Duration = Duration::from_secs(60);
/// Data point attributes kept per series (the rest are dropped).
const MAX_ATTRIBUTES: usize = 8;
/// Attribute values are cut to this many characters.
const MAX_ATTRIBUTE_LEN: usize = 128;
/// Compression types advertised, in Kafka's order of preference: zstd, lz4, gzip, snappy.
pub const ACCEPTED_COMPRESSION: &[i8] = &[4, 3, 1, 2];
/// Instance ids Kafka reserves (`Uuid.RESERVED`): zero and the metadata topic's id.
const RESERVED: [Uuid; 2] = [Uuid::nil(), Uuid::from_u128(1)];

/// The `telemetry.*` keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetryConfig {
    /// `telemetry.max.bytes`: the largest (compressed) payload a push may carry.
    pub max_bytes: i32,
    /// `telemetry.default.metrics`: prefixes every client is subscribed to (empty: none).
    pub default_metrics: Vec<String>,
    /// `telemetry.default.interval.ms`: the push interval of that default subscription.
    pub default_interval_ms: i32,
    /// `telemetry.max.series`: exported `esker_client_metric` series at most.
    pub max_series: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            max_bytes: 1_048_576,
            default_metrics: Vec::new(),
            default_interval_ms: subscription::DEFAULT_INTERVAL_MS,
            max_series: 10_000,
        }
    }
}

impl TelemetryConfig {
    /// Reads the keys from the configuration's effective values (validated by the table).
    pub fn from_values(get: impl Fn(&str) -> String) -> Self {
        let d = TelemetryConfig::default();
        TelemetryConfig {
            max_bytes: get("telemetry.max.bytes").parse().unwrap_or(d.max_bytes),
            default_metrics: subscription::list(&get("telemetry.default.metrics")),
            default_interval_ms: get("telemetry.default.interval.ms")
                .parse()
                .unwrap_or(d.default_interval_ms),
            max_series: get("telemetry.max.series").parse().unwrap_or(d.max_series),
        }
    }
}

/// Why a GetTelemetrySubscriptions or PushTelemetry is refused (each is one Kafka error code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelemetryError {
    /// A reserved instance id, or a push after the terminating one (INVALID_REQUEST).
    #[error("{0}")]
    InvalidRequest(String),
    /// Sooner than the push interval allows (THROTTLING_QUOTA_EXCEEDED).
    #[error("request from client {0} arrived before the next push interval")]
    Throttled(Uuid),
    /// The push names a subscription the instance no longer has (UNKNOWN_SUBSCRIPTION_ID).
    #[error("unknown subscription id {id} for client {instance}")]
    UnknownSubscriptionId {
        /// The client instance.
        instance: Uuid,
        /// The id it sent.
        id: i32,
    },
    /// Not a Kafka compression type (UNSUPPORTED_COMPRESSION_TYPE).
    #[error("unknown compression type {0}")]
    UnsupportedCompression(i8),
    /// Over `telemetry.max.bytes` (TELEMETRY_TOO_LARGE).
    #[error("telemetry payload of {size} bytes is larger than the maximum {max}")]
    TooLarge {
        /// Payload size.
        size: usize,
        /// `telemetry.max.bytes`.
        max: i32,
    },
    /// The payload does not decompress or decode as OTLP metrics (INVALID_RECORD).
    #[error("cannot decode telemetry payload: {0}")]
    InvalidRecord(String),
}

/// Why a change to a client metrics resource is refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The resulting configs are not valid.
    #[error(transparent)]
    Invalid(#[from] SubscriptionError),
    /// APPEND/SUBTRACT on `interval.ms`.
    #[error("`{0}` is not a list; APPEND/SUBTRACT do not apply")]
    NotAList(String),
    /// The store could not be written.
    #[error("cannot store client metrics configs: {0}")]
    Storage(#[from] std::io::Error),
}

/// One incremental change to a resource's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlterOp {
    /// Set the value.
    Set,
    /// Remove the key.
    Delete,
    /// Add list items not present yet.
    Append,
    /// Remove list items.
    Subtract,
}

/// What GetTelemetrySubscriptions answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionAnswer {
    /// The instance id (assigned when the client sent the zero id).
    pub client_instance_id: Uuid,
    /// The id of the instance's current subscription set.
    pub subscription_id: i32,
    /// Compression types a push may use.
    pub accepted_compression_types: Vec<i8>,
    /// Push interval in milliseconds.
    pub push_interval_ms: i32,
    /// `telemetry.max.bytes`.
    pub telemetry_max_bytes: i32,
    /// Sums as deltas (`true`) or cumulative values (`false`).
    pub delta_temporality: bool,
    /// Requested metric prefixes (empty: none; `*`: all).
    pub requested_metrics: Vec<String>,
}

/// A push as the handler hands it over.
#[derive(Debug, Clone)]
pub struct Push<'a> {
    /// The instance id.
    pub client_instance_id: Uuid,
    /// The subscription id the client believes it has.
    pub subscription_id: i32,
    /// The client is closing; this is its last push.
    pub terminating: bool,
    /// Kafka compression type id of `metrics`.
    pub compression_type: i8,
    /// The (compressed) OTLP `MetricsData`.
    pub metrics: &'a [u8],
}

/// The last error an instance was answered with (which lets it ask for its subscription again
/// before the interval is up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LastError {
    None,
    UnknownSubscription,
    UnsupportedCompression,
    Other,
}

/// A series: metric name and its data point attributes.
type SeriesKey = (String, Vec<(String, String)>);

struct Instance {
    client: ClientInfo,
    resolved: subscription::Resolved,
    /// The subscription version it was resolved at.
    version: u64,
    last_get: Option<Instant>,
    last_push: Option<Instant>,
    last_seen: Instant,
    terminating: bool,
    last_error: LastError,
    /// Latest values of the series it pushed.
    series: BTreeMap<SeriesKey, f64>,
    /// When those were last updated.
    series_at: Option<Instant>,
}

impl Instance {
    fn interval(&self) -> Duration {
        Duration::from_millis(u64::try_from(self.resolved.interval_ms).unwrap_or(0))
    }
}

#[derive(Default)]
struct State {
    /// Stored resources: name to configs.
    resources: BTreeMap<String, BTreeMap<String, String>>,
    /// The parsed resources plus the operator's default subscription.
    subscriptions: Vec<Subscription>,
    /// Bumped on every change of `subscriptions`; instances resolved earlier re-resolve.
    version: u64,
    instances: HashMap<Uuid, Instance>,
    /// Series held over every instance.
    series: usize,
    last_sweep: Option<Instant>,
}

#[derive(Default)]
struct Stats {
    pushes: AtomicU64,
    throttled: AtomicU64,
    unknown_subscription: AtomicU64,
    invalid: AtomicU64,
    dropped_series: AtomicU64,
}

/// The client telemetry manager (see the module doc).
pub struct ClientTelemetry {
    config: TelemetryConfig,
    path: PathBuf,
    state: Mutex<State>,
    stats: Stats,
}

impl ClientTelemetry {
    /// Loads the stored client metrics resources (none if the file is absent; a stored
    /// resource that no longer validates is logged and skipped).
    pub fn open(log_dir: &Path, config: TelemetryConfig) -> std::io::Result<ClientTelemetry> {
        let dir = log_dir.join(".esker-config");
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("client-metrics");
        let resources: BTreeMap<String, BTreeMap<String, String>> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        let t = ClientTelemetry {
            config,
            path,
            state: Mutex::new(State::default()),
            stats: Stats::default(),
        };
        {
            let mut state = t.lock();
            state.resources = resources;
            t.rebuild(&mut state);
        }
        Ok(t)
    }

    /// Effective settings.
    pub fn config(&self) -> &TelemetryConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Re-parses the resources into subscriptions and bumps the version.
    fn rebuild(&self, state: &mut State) {
        let mut subs = Vec::with_capacity(state.resources.len() + 1);
        for (name, configs) in &state.resources {
            match Subscription::parse(name, configs) {
                Ok(s) => subs.push(s),
                Err(e) => {
                    tracing::warn!(subscription = %name, error = %e, "stored client metrics resource ignored")
                }
            }
        }
        if !self.config.default_metrics.is_empty() {
            subs.push(Subscription {
                metrics: self.config.default_metrics.clone(),
                interval_ms: self.config.default_interval_ms,
                selectors: Vec::new(),
            });
        }
        state.subscriptions = subs;
        state.version += 1;
    }

    // ---- client metrics resources -------------------------------------------------------

    /// Names of the stored client metrics resources, sorted.
    pub fn resource_names(&self) -> Vec<String> {
        self.lock().resources.keys().cloned().collect()
    }

    /// A resource's configs (`None` if there is no such resource).
    pub fn resource(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.lock().resources.get(name).cloned()
    }

    /// Applies incremental changes to a resource (IncrementalAlterConfigs): validated as a
    /// whole, then stored unless `validate_only`. A resource left without configs is removed.
    pub fn alter_incremental(
        &self,
        name: &str,
        changes: &[(String, AlterOp, Option<String>)],
        validate_only: bool,
    ) -> Result<(), ConfigError> {
        let current = self.resource(name).unwrap_or_default();
        let mut next = current.clone();
        for (key, op, value) in changes {
            let value = value.clone().unwrap_or_default();
            match op {
                AlterOp::Set => {
                    next.insert(key.clone(), value);
                }
                AlterOp::Delete => {
                    next.remove(key);
                }
                AlterOp::Append | AlterOp::Subtract => {
                    if !subscription::KEYS.contains(&key.as_str()) {
                        return Err(SubscriptionError::UnknownKey(key.clone()).into());
                    }
                    if !subscription::LIST_KEYS.contains(&key.as_str()) {
                        return Err(ConfigError::NotAList(key.clone()));
                    }
                    let mut items = next
                        .get(key)
                        .map(|v| subscription::list(v))
                        .unwrap_or_default();
                    for v in subscription::list(&value) {
                        if *op == AlterOp::Append && !items.contains(&v) {
                            items.push(v);
                        } else if *op == AlterOp::Subtract {
                            items.retain(|i| *i != v);
                        }
                    }
                    next.insert(key.clone(), items.join(","));
                }
            }
        }
        self.replace(name, next, validate_only)
    }

    /// Replaces a resource's configs (AlterConfigs); empty configs remove it.
    pub fn replace(
        &self,
        name: &str,
        next: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ConfigError> {
        if name.is_empty() {
            return Err(SubscriptionError::EmptyName.into());
        }
        if !next.is_empty() {
            Subscription::parse(name, &next)?;
        }
        if validate_only {
            return Ok(());
        }
        let mut state = self.lock();
        let mut resources = state.resources.clone();
        if next.is_empty() {
            if resources.remove(name).is_none() {
                return Ok(());
            }
        } else {
            resources.insert(name.to_string(), next);
        }
        self.store(&resources)?;
        state.resources = resources;
        self.rebuild(&mut state);
        tracing::info!(subscription = name, "client metrics resource changed");
        Ok(())
    }

    /// Writes the resources durably: temp file, fsync, rename, directory fsync.
    fn store(&self, resources: &BTreeMap<String, BTreeMap<String, String>>) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(resources).map_err(std::io::Error::other)?;
        let tmp = self.path.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    // ---- GetTelemetrySubscriptions / PushTelemetry --------------------------------------

    /// Makes sure the instance exists, resolved against the current subscriptions, and marks
    /// it seen.
    fn ensure_instance(&self, state: &mut State, id: Uuid, client: &ClientInfo, now: Instant) {
        let version = state.version;
        let stale = state.instances.get(&id).map(|i| i.version < version);
        match stale {
            Some(false) => {}
            Some(true) => {
                // Kafka replaces the instance: its timers start afresh, so the next push is
                // told UNKNOWN_SUBSCRIPTION_ID rather than throttled.
                let subs = &state.subscriptions;
                if let Some(i) = state.instances.get_mut(&id) {
                    i.resolved = subscription::resolve(subs, id, &i.client);
                    i.version = version;
                    i.last_get = None;
                    i.last_push = None;
                    i.last_error = LastError::None;
                }
            }
            None => {
                if state.instances.len() >= MAX_INSTANCES {
                    let oldest = state
                        .instances
                        .iter()
                        .min_by_key(|(_, i)| i.last_seen)
                        .map(|(k, _)| *k);
                    if let Some(old) = oldest.and_then(|k| state.instances.remove(&k)) {
                        state.series -= old.series.len();
                    }
                }
                let resolved = subscription::resolve(&state.subscriptions, id, client);
                state.instances.insert(
                    id,
                    Instance {
                        client: client.clone(),
                        resolved,
                        version,
                        last_get: None,
                        last_push: None,
                        last_seen: now,
                        terminating: false,
                        last_error: LastError::None,
                        series: BTreeMap::new(),
                        series_at: None,
                    },
                );
            }
        }
        if let Some(i) = state.instances.get_mut(&id) {
            i.last_seen = now;
        }
    }

    /// Answers GetTelemetrySubscriptions: assigns an instance id to a client that sent the
    /// zero id and returns its subscription, or THROTTLING_QUOTA_EXCEEDED when asked again
    /// within the push interval (unless its last push was refused for a stale subscription
    /// or a compression type).
    pub fn get_subscriptions(
        &self,
        id: Uuid,
        client: &ClientInfo,
        now: Instant,
    ) -> Result<SubscriptionAnswer, TelemetryError> {
        let mut state = self.lock();
        self.sweep(&mut state, now);
        let id = if RESERVED.contains(&id) {
            let mut fresh = Uuid::new_v4();
            while state.instances.contains_key(&fresh) {
                fresh = Uuid::new_v4();
            }
            fresh
        } else {
            id
        };
        self.ensure_instance(&mut state, id, client, now);
        let Some(i) = state.instances.get_mut(&id) else {
            return Err(TelemetryError::InvalidRequest(format!(
                "client {id} was not kept"
            )));
        };
        let last = i.last_get.max(i.last_push);
        let early = last.is_some_and(|t| now.duration_since(t) < i.interval());
        let excused = matches!(
            i.last_error,
            LastError::UnknownSubscription | LastError::UnsupportedCompression
        );
        if early && !excused {
            self.stats.throttled.fetch_add(1, Ordering::Relaxed);
            return Err(TelemetryError::Throttled(id));
        }
        i.last_get = Some(now);
        i.last_error = LastError::None;
        Ok(SubscriptionAnswer {
            client_instance_id: id,
            subscription_id: i.resolved.id,
            accepted_compression_types: ACCEPTED_COMPRESSION.to_vec(),
            push_interval_ms: i.resolved.interval_ms,
            telemetry_max_bytes: self.config.max_bytes,
            // Prometheus wants cumulative values: sums arrive as totals (deltas that a
            // client sends anyway are added up).
            delta_temporality: false,
            requested_metrics: i.resolved.metrics.clone(),
        })
    }

    /// Accepts a PushTelemetry, checked in Kafka's order: reserved id, push after the
    /// terminating one, too early, stale subscription, compression type, size; then the
    /// payload is decoded (INVALID_RECORD if it cannot be) and its values kept for export.
    /// A terminating push is accepted once and drops the client's series.
    pub fn push(
        &self,
        push: &Push<'_>,
        client: &ClientInfo,
        now: Instant,
    ) -> Result<(), TelemetryError> {
        let id = push.client_instance_id;
        if RESERVED.contains(&id) {
            self.stats.invalid.fetch_add(1, Ordering::Relaxed);
            return Err(TelemetryError::InvalidRequest(format!(
                "invalid client instance id {id}"
            )));
        }
        let mut state = self.lock();
        self.sweep(&mut state, now);
        let max = self.config.max_bytes;
        self.ensure_instance(&mut state, id, client, now);
        let total = state.series;
        let Some(i) = state.instances.get_mut(&id) else {
            return Err(TelemetryError::InvalidRequest(format!(
                "client {id} was not kept"
            )));
        };
        let checked = Self::check_push(i, push, max, now);
        // As in Kafka, the terminating flag is recorded whatever the outcome.
        i.terminating = push.terminating;
        if let Err(e) = checked {
            i.last_error = match e {
                TelemetryError::UnknownSubscriptionId { .. } => LastError::UnknownSubscription,
                TelemetryError::UnsupportedCompression(_) => LastError::UnsupportedCompression,
                _ => LastError::Other,
            };
            let counter = match e {
                TelemetryError::Throttled(_) => &self.stats.throttled,
                TelemetryError::UnknownSubscriptionId { .. } => &self.stats.unknown_subscription,
                _ => &self.stats.invalid,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
        let decoded = if push.metrics.is_empty() {
            Ok(otlp::Metrics::default())
        } else {
            decompress(push.compression_type, push.metrics).and_then(|raw| {
                otlp::decode(&raw).map_err(|e| TelemetryError::InvalidRecord(e.to_string()))
            })
        };
        let metrics = match decoded {
            Ok(m) => m,
            Err(e) => {
                i.last_error = LastError::Other;
                self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                return Err(e);
            }
        };
        i.last_error = LastError::None;
        self.stats.pushes.fetch_add(1, Ordering::Relaxed);
        let before = i.series.len();
        if push.terminating {
            i.series.clear();
            i.series_at = None;
        } else if !metrics.points.is_empty() {
            let room = self
                .config
                .max_series
                .saturating_sub(total.saturating_sub(before));
            let dropped = Self::record(i, metrics.points, room);
            i.series_at = Some(now);
            self.stats
                .dropped_series
                .fetch_add(dropped, Ordering::Relaxed);
        }
        let after = i.series.len();
        state.series = total.saturating_sub(before) + after;
        Ok(())
    }

    fn check_push(
        i: &mut Instance,
        push: &Push<'_>,
        max_bytes: i32,
        now: Instant,
    ) -> Result<(), TelemetryError> {
        let id = push.client_instance_id;
        if i.terminating {
            return Err(TelemetryError::InvalidRequest(format!(
                "client {id} already sent its terminating push"
            )));
        }
        // The first push after a GetTelemetrySubscriptions may come early: clients jitter the
        // interval (0.8x to 1.2x in librdkafka).
        let accept = i.last_get > i.last_push
            || i.last_push
                .map_or(true, |t| now.duration_since(t) >= i.interval());
        if accept {
            i.last_push = Some(now);
        } else if !push.terminating {
            return Err(TelemetryError::Throttled(id));
        }
        if push.subscription_id != i.resolved.id {
            return Err(TelemetryError::UnknownSubscriptionId {
                instance: id,
                id: push.subscription_id,
            });
        }
        if !(0..=4).contains(&push.compression_type) {
            return Err(TelemetryError::UnsupportedCompression(
                push.compression_type,
            ));
        }
        if push.metrics.len() > usize::try_from(max_bytes).unwrap_or(0) {
            return Err(TelemetryError::TooLarge {
                size: push.metrics.len(),
                max: max_bytes,
            });
        }
        Ok(())
    }

    /// Keeps the latest value of each point (delta sums added up), within `room` series;
    /// returns how many new series did not fit.
    fn record(i: &mut Instance, points: Vec<otlp::Point>, room: usize) -> u64 {
        let mut dropped = 0;
        for p in points {
            let mut attributes: Vec<(String, String)> = p
                .attributes
                .into_iter()
                .take(MAX_ATTRIBUTES)
                .map(|(k, v)| (k, v.chars().take(MAX_ATTRIBUTE_LEN).collect()))
                .collect();
            attributes.sort();
            attributes.dedup_by(|a, b| a.0 == b.0);
            let key = (p.name, attributes);
            let delta = matches!(
                p.kind,
                otlp::PointKind::Sum { delta: true } | otlp::PointKind::Histogram { delta: true }
            );
            let held = i.series.len();
            match i.series.get_mut(&key) {
                Some(v) if delta => *v += p.value,
                Some(v) => *v = p.value,
                None if held >= room => dropped += 1,
                None => {
                    i.series.insert(key, p.value);
                }
            }
        }
        dropped
    }

    /// Drops series not refreshed for three push intervals and instances idle for
    /// `max(60 s, 3 × interval)`; at most once a second.
    fn sweep(&self, state: &mut State, now: Instant) {
        if state
            .last_sweep
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        state.last_sweep = Some(now);
        let mut series = 0;
        state.instances.retain(|id, i| {
            let three = i.interval() * 3;
            if i.series_at.is_some_and(|t| now.duration_since(t) > three) {
                tracing::debug!(client_instance_id = %id, "client stopped pushing; its series are dropped");
                i.series.clear();
                i.series_at = None;
            }
            let keep = now.duration_since(i.last_seen) <= three.max(INSTANCE_EXPIRY_MIN);
            if keep {
                series += i.series.len();
            }
            keep
        });
        state.series = series;
    }

    // ---- export --------------------------------------------------------------------------

    /// Writes the client metrics and the telemetry counters in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let now = Instant::now();
        let mut state = self.lock();
        self.sweep(&mut state, now);
        let mut instances: Vec<(&Uuid, &Instance)> = state
            .instances
            .iter()
            .filter(|(_, i)| !i.series.is_empty())
            .collect();
        instances.sort_unstable_by_key(|(id, _)| **id);
        if !instances.is_empty() {
            let _ = writeln!(
                out,
                "# HELP esker_client_metric Latest value of a metric a client pushed (KIP-714 client telemetry); histograms as <name>.count and <name>.sum.\n# TYPE esker_client_metric gauge"
            );
        }
        for (id, i) in instances {
            let mut fixed = format!(
                "client_instance_id=\"{id}\",client_id=\"{}\"",
                crate::metrics::escape_label(&i.client.client_id)
            );
            if let Some(n) = &i.client.software_name {
                let _ = write!(
                    fixed,
                    ",client_software_name=\"{}\"",
                    crate::metrics::escape_label(n)
                );
            }
            if let Some(v) = &i.client.software_version {
                let _ = write!(
                    fixed,
                    ",client_software_version=\"{}\"",
                    crate::metrics::escape_label(v)
                );
            }
            for ((name, attributes), value) in &i.series {
                let _ = write!(
                    out,
                    "esker_client_metric{{{fixed},name=\"{}\"",
                    crate::metrics::escape_label(name)
                );
                for (k, v) in attributes {
                    let _ = write!(
                        out,
                        ",{}=\"{}\"",
                        label_name(k),
                        crate::metrics::escape_label(v)
                    );
                }
                let _ = writeln!(out, "}} {}", number(*value));
            }
        }
        let gauges: [(&str, &str, usize); 2] = [
            (
                "esker_client_telemetry_instances",
                "Client instances known to the broker's client telemetry (KIP-714).",
                state.instances.len(),
            ),
            (
                "esker_client_telemetry_series",
                "esker_client_metric series held (bounded by telemetry.max.series).",
                state.series,
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        let counters: [(&str, &str, &AtomicU64); 5] = [
            ("esker_client_telemetry_pushes_total", "PushTelemetry requests accepted.", &self.stats.pushes),
            ("esker_client_telemetry_throttled_total", "Telemetry requests refused as sooner than the push interval (THROTTLING_QUOTA_EXCEEDED).", &self.stats.throttled),
            ("esker_client_telemetry_unknown_subscription_total", "Pushes refused for a stale subscription id (UNKNOWN_SUBSCRIPTION_ID).", &self.stats.unknown_subscription),
            ("esker_client_telemetry_invalid_total", "Pushes refused as invalid (reserved id, after termination, compression, size, undecodable payload).", &self.stats.invalid),
            ("esker_client_telemetry_dropped_series_total", "Pushed series not kept because telemetry.max.series was reached.", &self.stats.dropped_series),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

/// Decompresses a payload by Kafka compression type id (0 none, 1 gzip, 2 snappy, 3 lz4,
/// 4 zstd).
fn decompress(compression: i8, payload: &[u8]) -> Result<Vec<u8>, TelemetryError> {
    use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};
    let mut buf = bytes::Bytes::copy_from_slice(payload);
    let out = |b: &mut bytes::Bytes| Ok(b.to_vec());
    let r = match compression {
        0 => return Ok(payload.to_vec()),
        1 => Gzip::decompress(&mut buf, out),
        2 => Snappy::decompress(&mut buf, out),
        3 => Lz4::decompress(&mut buf, out),
        4 => Zstd::decompress(&mut buf, out),
        other => return Err(TelemetryError::UnsupportedCompression(other)),
    };
    r.map_err(|e| TelemetryError::InvalidRecord(format!("{e:#}")))
}

/// A data point attribute as a label name: `[a-zA-Z0-9_]` only, not starting with a digit or
/// `__`, and never one of the fixed labels (`node.id` becomes `node_id`; `name` becomes
/// `attr_name`).
fn label_name(key: &str) -> String {
    let mut s: String = key
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let fixed = [
        "name",
        "client_instance_id",
        "client_id",
        "client_software_name",
        "client_software_version",
    ];
    if s.is_empty()
        || s.starts_with(|c: char| c.is_ascii_digit())
        || s.starts_with("__")
        || fixed.contains(&s.as_str())
    {
        s.insert_str(0, "attr_");
    }
    s
}

/// A sample value in the text format (`+Inf`, `-Inf`, `NaN` as Prometheus spells them).
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests;
