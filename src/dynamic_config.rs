//! Dynamic broker configs, as Kafka's `DynamicBrokerConfig` has them: which broker keys change
//! at runtime ([`RUNTIME_KEYS`]) and which of Kafka's dynamic keys Esker refuses
//! ([`REFUSED`], with the reason given to the client), the two layers of values (this broker's
//! own and the cluster-wide default, [`DynamicConfigs`]), their validation and their files.
//!
//! Precedence, as in Kafka: per-broker dynamic > cluster-default dynamic > static
//! (`server.properties`) > default. A single node stores both layers under
//! `<log.dirs>/.esker-config/`; a cluster keeps them in the metadata image
//! (`SetBrokerConfigs` records) and every node copies its effective layers into the same files
//! for its next start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::topic_config::Source;

/// Broker keys that Esker applies at runtime. Each one is read where it is used, through
/// [`crate::Config::dynamic_value`] or [`crate::topic_config::effective`] (topic defaults
/// and the partition logs' settings, pushed to every partition when they change), so a change
/// takes effect without a restart.
pub const RUNTIME_KEYS: &[&str] = &[
    "message.max.bytes",
    "log.retention.ms",
    "log.retention.bytes",
    "log.segment.bytes",
    "log.roll.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.type",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.cleanup.policy",
    "log.cleaner.threads",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.backoff.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

const THREADS: &str = "Esker's threads are its shards (num.shards), fixed at start";
const LISTENERS: &str =
    "listeners and their security are bound at start; change server.properties and restart";
const TLS_FILES: &str = "Esker's TLS uses PEM files (ssl.certificate.location, ssl.key.location, \
                         ssl.ca.location) that it reloads by itself when they change \
                         (ssl.reload.interval.ms); replace the files instead";
const SASL: &str = "SASL mechanisms and credentials are set at start (sasl.enabled.mechanisms, \
                    sasl.plain.users) or managed with AlterUserScramCredentials";
const NO_KERBEROS: &str = "Esker does not implement Kerberos (GSSAPI)";
const NO_TIERED: &str = "Esker has no tiered (remote) storage";
const NO_CONN_LIMITS: &str = "Esker does not limit the connection creation rate";
const CONN_LIMITS_AT_START: &str =
    "connection limits are read at start; set them in server.properties";
const HOURS: &str = "set the millisecond key instead";

/// Kafka's dynamic broker keys (its `DynamicBrokerConfig.AllDynamicConfigs`, the topic-default
/// synonyms and the broker quota keys) that Esker does not change at runtime, with why. They
/// are refused with INVALID_CONFIG, never stored and ignored.
pub const REFUSED: &[(&str, &str)] = &[
    // Topic defaults Esker has no use for, or spells in milliseconds only.
    ("log.roll.hours", HOURS),
    ("log.retention.minutes", HOURS),
    ("log.retention.hours", HOURS),
    ("log.roll.jitter.ms", "Esker does not jitter segment rolls"),
    (
        "log.roll.jitter.hours",
        "Esker does not jitter segment rolls",
    ),
    (
        "log.flush.scheduler.interval.ms",
        "each shard's maintenance tick checks flush.ms",
    ),
    (
        "log.segment.delete.delay.ms",
        "Esker deletes expired segments at once",
    ),
    (
        "log.preallocate",
        "Esker does not preallocate segment files",
    ),
    (
        "compression.type",
        "Esker stores batches as the producer compressed them",
    ),
    (
        "compression.gzip.level",
        "Esker does not recompress batches",
    ),
    ("compression.lz4.level", "Esker does not recompress batches"),
    (
        "compression.zstd.level",
        "Esker does not recompress batches",
    ),
    (
        "log.message.timestamp.difference.max.ms",
        "Esker does not check timestamp skew",
    ),
    (
        "log.message.timestamp.before.max.ms",
        "Esker does not check timestamp skew",
    ),
    (
        "log.message.timestamp.after.max.ms",
        "Esker does not check timestamp skew",
    ),
    (
        "log.message.downconversion.enable",
        "Esker serves message format v2 only",
    ),
    ("log.local.retention.ms", NO_TIERED),
    ("log.local.retention.bytes", NO_TIERED),
    // The log cleaner's buffers.
    (
        "log.cleaner.io.buffer.size",
        "Esker's cleaner sizes its I/O buffers itself",
    ),
    (
        "log.cleaner.io.buffer.load.factor",
        "Esker's cleaner sizes its I/O buffers itself",
    ),
    // Thread pools.
    ("num.io.threads", THREADS),
    ("num.network.threads", THREADS),
    ("num.replica.fetchers", THREADS),
    ("num.recovery.threads.per.data.dir", THREADS),
    ("background.threads", THREADS),
    // Producer state.
    (
        "producer.id.expiration.ms",
        "each shard reads it at start; set it in server.properties",
    ),
    (
        "transaction.partition.verification.enable",
        "Esker has no such switch",
    ),
    // Metrics.
    (
        "metric.reporters",
        "Esker exports metrics on metrics.listener (Prometheus) only",
    ),
    // Connections.
    ("max.connections", CONN_LIMITS_AT_START),
    ("max.connections.per.ip", CONN_LIMITS_AT_START),
    ("max.connections.per.ip.overrides", CONN_LIMITS_AT_START),
    ("max.connection.creation.rate", NO_CONN_LIMITS),
    // Listeners and their security.
    ("listeners", LISTENERS),
    ("advertised.listeners", LISTENERS),
    ("listener.security.protocol.map", LISTENERS),
    (
        "principal.builder.class",
        "principals come from SASL or ssl.principal.mapping.rules",
    ),
    ("ssl.protocol", LISTENERS),
    ("ssl.provider", LISTENERS),
    ("ssl.cipher.suites", LISTENERS),
    ("ssl.enabled.protocols", LISTENERS),
    ("ssl.client.auth", LISTENERS),
    ("ssl.keystore.type", TLS_FILES),
    ("ssl.keystore.location", TLS_FILES),
    ("ssl.keystore.password", TLS_FILES),
    ("ssl.key.password", TLS_FILES),
    ("ssl.keystore.certificate.chain", TLS_FILES),
    ("ssl.keystore.key", TLS_FILES),
    ("ssl.truststore.type", TLS_FILES),
    ("ssl.truststore.location", TLS_FILES),
    ("ssl.truststore.password", TLS_FILES),
    ("ssl.truststore.certificates", TLS_FILES),
    ("ssl.certificate.location", TLS_FILES),
    ("ssl.key.location", TLS_FILES),
    ("ssl.ca.location", TLS_FILES),
    ("ssl.keymanager.algorithm", LISTENERS),
    ("ssl.trustmanager.algorithm", LISTENERS),
    ("ssl.endpoint.identification.algorithm", LISTENERS),
    ("ssl.secure.random.implementation", LISTENERS),
    ("ssl.engine.factory.class", LISTENERS),
    ("sasl.mechanism.inter.broker.protocol", SASL),
    ("sasl.jaas.config", SASL),
    ("sasl.enabled.mechanisms", SASL),
    ("sasl.kerberos.service.name", NO_KERBEROS),
    ("sasl.kerberos.kinit.cmd", NO_KERBEROS),
    ("sasl.kerberos.ticket.renew.window.factor", NO_KERBEROS),
    ("sasl.kerberos.ticket.renew.jitter", NO_KERBEROS),
    ("sasl.kerberos.min.time.before.relogin", NO_KERBEROS),
    ("sasl.kerberos.principal.to.local.rules", NO_KERBEROS),
    ("sasl.login.refresh.window.factor", SASL),
    ("sasl.login.refresh.window.jitter", SASL),
    ("sasl.login.refresh.min.period.seconds", SASL),
    ("sasl.login.refresh.buffer.seconds", SASL),
    ("connections.max.reauth.ms", SASL),
    // Tiered storage.
    ("remote.log.index.file.cache.total.size.bytes", NO_TIERED),
    ("remote.fetch.max.wait.ms", NO_TIERED),
    ("remote.log.manager.copy.max.bytes.per.second", NO_TIERED),
    ("remote.log.manager.fetch.max.bytes.per.second", NO_TIERED),
    ("remote.list.offsets.request.timeout.ms", NO_TIERED),
    // Broker quotas.
    (
        "replica.alter.log.dirs.io.max.bytes.per.second",
        "Esker has one log directory, so replicas never move between directories",
    ),
];

/// Why a dynamic broker config change is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicConfigError {
    /// A key Kafka changes at runtime but Esker does not (INVALID_CONFIG).
    #[error(
        "`{key}` is dynamic in Kafka but Esker does not support changing it at runtime: {reason}"
    )]
    Unsupported {
        /// The key.
        key: String,
        /// Why.
        reason: &'static str,
    },
    /// One of Esker's keys that is static, as it is in Kafka (INVALID_REQUEST, Kafka's
    /// "Cannot update these configs dynamically").
    #[error("cannot update `{key}` dynamically; set it in server.properties and restart")]
    Static {
        /// The key.
        key: String,
    },
    /// A key no broker config is called (INVALID_CONFIG).
    #[error("unknown broker config `{key}`")]
    Unknown {
        /// The key.
        key: String,
    },
    /// A value the key's validator refused (INVALID_REQUEST, as Kafka answers a broker
    /// config that fails validation).
    #[error("invalid value `{value}` for `{key}`: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value as sent.
        value: String,
        /// Why.
        reason: String,
    },
    /// The change could not be stored or replicated (KAFKA_STORAGE_ERROR).
    #[error("{0}")]
    Failed(String),
}

impl DynamicConfigError {
    /// Whether Kafka answers this with INVALID_REQUEST rather than INVALID_CONFIG.
    pub fn is_invalid_request(&self) -> bool {
        matches!(self, Self::Static { .. } | Self::InvalidValue { .. })
    }
}

/// Checks that `key` may be changed (or removed) at runtime.
pub fn check_key(key: &str) -> Result<(), DynamicConfigError> {
    if RUNTIME_KEYS.contains(&key) {
        return Ok(());
    }
    if let Some((_, reason)) = REFUSED.iter().find(|(k, _)| *k == key) {
        return Err(DynamicConfigError::Unsupported {
            key: key.into(),
            reason,
        });
    }
    if key.starts_with("listener.name.") {
        return Err(DynamicConfigError::Unsupported {
            key: key.into(),
            reason: LISTENERS,
        });
    }
    if crate::config::KEYS.iter().any(|d| d.name == key) {
        return Err(DynamicConfigError::Static { key: key.into() });
    }
    Err(DynamicConfigError::Unknown { key: key.into() })
}

/// Validates a value for a dynamic broker key.
pub fn validate(key: &str, value: &str) -> Result<(), DynamicConfigError> {
    check_key(key)?;
    crate::config::validate_value(key, value).map_err(|reason| DynamicConfigError::InvalidValue {
        key: key.into(),
        value: value.into(),
        reason,
    })
}

/// Which layer a change goes to: this broker's own values or the cluster-wide default
/// (resource name "" in Kafka's requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// DYNAMIC_BROKER_CONFIG.
    PerBroker,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG.
    ClusterDefault,
}

/// The dynamic broker configs in force on this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DynamicConfigs {
    /// This broker's own values.
    pub per_broker: BTreeMap<String, String>,
    /// The cluster-wide defaults.
    pub cluster_default: BTreeMap<String, String>,
}

impl DynamicConfigs {
    /// The value of `key` and its layer's source, per-broker first.
    pub fn get(&self, key: &str) -> Option<(&String, Source)> {
        self.per_broker
            .get(key)
            .map(|v| (v, Source::DynamicBroker))
            .or_else(|| {
                self.cluster_default
                    .get(key)
                    .map(|v| (v, Source::DynamicDefaultBroker))
            })
    }

    /// One layer.
    pub fn layer(&self, layer: Layer) -> &BTreeMap<String, String> {
        match layer {
            Layer::PerBroker => &self.per_broker,
            Layer::ClusterDefault => &self.cluster_default,
        }
    }

    /// One layer, to change.
    pub fn layer_mut(&mut self, layer: Layer) -> &mut BTreeMap<String, String> {
        match layer {
            Layer::PerBroker => &mut self.per_broker,
            Layer::ClusterDefault => &mut self.cluster_default,
        }
    }

    /// Loads both layers from `<log.dirs>/.esker-config/`; entries no longer valid (a key may
    /// have stopped being dynamic) are dropped with a warning.
    pub fn load(log_dir: &Path) -> DynamicConfigs {
        let mut out = DynamicConfigs::default();
        for layer in [Layer::PerBroker, Layer::ClusterDefault] {
            let Ok(text) = std::fs::read_to_string(path(log_dir, layer)) else {
                continue;
            };
            let map = out.layer_mut(layer);
            for line in text.lines() {
                let Some((k, v)) = line.split_once('=') else {
                    continue;
                };
                match validate(k, v) {
                    Ok(()) => {
                        map.insert(k.to_string(), v.to_string());
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, ?layer, "ignoring stored dynamic broker config")
                    }
                }
            }
        }
        out
    }

    /// Writes both layers durably (atomic rename, fsynced file and directory).
    pub fn store(&self, log_dir: &Path) -> std::io::Result<()> {
        for layer in [Layer::PerBroker, Layer::ClusterDefault] {
            store_layer(log_dir, layer, self.layer(layer))?;
        }
        Ok(())
    }
}

fn path(log_dir: &Path, layer: Layer) -> PathBuf {
    let dir = log_dir.join(".esker-config");
    match layer {
        // The per-broker file keeps the name it had before the cluster default existed.
        Layer::PerBroker => dir.join("broker.properties"),
        Layer::ClusterDefault => dir.join("broker-default.properties"),
    }
}

fn store_layer(
    log_dir: &Path,
    layer: Layer,
    values: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let path = path(log_dir, layer);
    let Some(dir) = path.parent() else {
        return Ok(());
    };
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let text: String = values.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(&tmp, text)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runtime_key_is_a_broker_key_and_none_is_refused() {
        for k in RUNTIME_KEYS {
            assert!(
                crate::config::KEYS.iter().any(|d| d.name == *k),
                "{k} is not in KEYS"
            );
            assert!(!REFUSED.iter().any(|(r, _)| r == k), "{k} is both");
        }
    }

    #[test]
    fn the_docs_list_every_key() {
        let doc = include_str!("../docs/configuration.md");
        for k in RUNTIME_KEYS.iter().chain(REFUSED.iter().map(|(k, _)| k)) {
            assert!(
                doc.contains(&format!("| `{k}` |")),
                "docs/configuration.md does not list {k}"
            );
        }
    }

    #[test]
    fn keys_are_classified_with_kafka_codes() {
        assert_eq!(validate("log.retention.ms", "1000"), Ok(()));
        let e = validate("log.retention.ms", "soon").unwrap_err();
        assert!(e.is_invalid_request() && e.to_string().contains("log.retention.ms"));
        let e = validate("num.io.threads", "8").unwrap_err();
        assert!(
            !e.is_invalid_request() && e.to_string().contains("does not support"),
            "{e}"
        );
        let e = validate("num.partitions", "3").unwrap_err();
        assert!(e.is_invalid_request() && e.to_string().contains("num.partitions"));
        let e = validate("listener.name.plaintext.ssl.keystore.location", "x").unwrap_err();
        assert!(matches!(e, DynamicConfigError::Unsupported { .. }));
        let e = validate("no.such.key", "1").unwrap_err();
        assert!(matches!(e, DynamicConfigError::Unknown { .. }));
    }

    #[test]
    fn per_broker_wins_and_layers_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = DynamicConfigs::default();
        d.cluster_default
            .insert("log.retention.ms".into(), "1000".into());
        d.cluster_default
            .insert("log.segment.bytes".into(), "2048".into());
        d.per_broker
            .insert("log.retention.ms".into(), "2000".into());
        assert_eq!(
            d.get("log.retention.ms"),
            Some((&"2000".to_string(), Source::DynamicBroker))
        );
        assert_eq!(
            d.get("log.segment.bytes"),
            Some((&"2048".to_string(), Source::DynamicDefaultBroker))
        );
        d.store(dir.path()).unwrap();
        assert_eq!(DynamicConfigs::load(dir.path()), d);
    }
}
