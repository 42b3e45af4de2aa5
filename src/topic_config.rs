//! Topic-level configuration: the table of keys a topic may override (each with the broker key
//! it defaults to, as Kafka reports in config synonyms), validation with a message naming the
//! key, and durable storage of a topic's overrides in
//! `<log.dirs>/.esker-config/topics/<topic>.properties` (written atomically).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::{Config, Kind};

/// Kafka's `ConfigType` codes in DescribeConfigs v3+.
pub mod config_type {
    /// BOOLEAN.
    pub const BOOLEAN: i8 = 1;
    /// STRING.
    pub const STRING: i8 = 2;
    /// INT.
    pub const INT: i8 = 3;
    /// LONG.
    pub const LONG: i8 = 5;
    /// DOUBLE.
    pub const DOUBLE: i8 = 6;
    /// LIST.
    pub const LIST: i8 = 7;
}

/// One key a topic may set.
#[derive(Debug)]
pub struct TopicKeyDef {
    /// The topic key.
    pub name: &'static str,
    /// The broker key it defaults to, when the broker has one.
    pub broker_key: Option<&'static str>,
    /// The default when the broker has no such key (or does not know it yet).
    pub default: &'static str,
    /// Validation.
    pub kind: Kind,
    /// Kafka's config type code.
    pub config_type: i8,
    /// Documentation.
    pub doc: &'static str,
}

const I32MAX: i64 = i32::MAX as i64;

/// Every topic-level key the broker accepts.
pub const TOPIC_KEYS: &[TopicKeyDef] = &[
    TopicKeyDef {
        name: "cleanup.policy",
        broker_key: Some("log.cleanup.policy"),
        default: "delete",
        kind: Kind::Enum(&["delete", "compact", "compact,delete", "delete,compact"]),
        config_type: config_type::LIST,
        doc:
            "delete (retention), compact (the log cleaner keeps the latest record per key; records \
              without a key are refused) or both.",
    },
    TopicKeyDef {
        name: "compression.type",
        broker_key: Some("compression.type"),
        default: "producer",
        kind: Kind::Enum(&["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"]),
        config_type: config_type::STRING,
        doc: "Stored; batches are kept as the producer compressed them.",
    },
    TopicKeyDef {
        name: "max.message.bytes",
        broker_key: Some("message.max.bytes"),
        default: "1048588",
        kind: Kind::Int {
            min: 0,
            max: I32MAX,
        },
        config_type: config_type::INT,
        doc: "The largest record batch this topic accepts.",
    },
    TopicKeyDef {
        name: "message.timestamp.type",
        broker_key: Some("log.message.timestamp.type"),
        default: "CreateTime",
        kind: Kind::Enum(&["CreateTime", "LogAppendTime"]),
        config_type: config_type::STRING,
        doc: "CreateTime keeps the producer's timestamps, LogAppendTime stamps the append time.",
    },
    TopicKeyDef {
        name: "min.insync.replicas",
        broker_key: Some("min.insync.replicas"),
        default: "1",
        kind: Kind::Int {
            min: 1,
            max: I32MAX,
        },
        config_type: config_type::INT,
        doc: "acks=-1 produces fail with NOT_ENOUGH_REPLICAS when fewer replicas are in sync (a \
              single node has one).",
    },
    TopicKeyDef {
        name: "retention.ms",
        broker_key: Some("log.retention.ms"),
        default: "604800000",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "Segments whose newest record is older than this are deleted; -1 keeps them.",
    },
    TopicKeyDef {
        name: "retention.bytes",
        broker_key: Some("log.retention.bytes"),
        default: "-1",
        kind: Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "Oldest segments are deleted while a partition is larger than this; -1 keeps them.",
    },
    TopicKeyDef {
        name: "segment.bytes",
        broker_key: Some("log.segment.bytes"),
        default: "1073741824",
        kind: Kind::Int {
            min: 14,
            max: I32MAX,
        },
        config_type: config_type::INT,
        doc: "Segment size at which the active segment rolls.",
    },
    TopicKeyDef {
        name: "segment.ms",
        broker_key: Some("log.roll.ms"),
        default: "604800000",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "Age at which a non-empty active segment rolls.",
    },
    TopicKeyDef {
        name: "segment.index.bytes",
        broker_key: Some("log.index.size.max.bytes"),
        default: "10485760",
        kind: Kind::Int {
            min: 4,
            max: I32MAX,
        },
        config_type: config_type::INT,
        doc: "Maximum size of a segment's offset index.",
    },
    TopicKeyDef {
        name: "index.interval.bytes",
        broker_key: Some("log.index.interval.bytes"),
        default: "4096",
        kind: Kind::Int {
            min: 0,
            max: I32MAX,
        },
        config_type: config_type::INT,
        doc: "Bytes between sparse index entries.",
    },
    TopicKeyDef {
        name: "flush.messages",
        broker_key: Some("log.flush.interval.messages"),
        default: "9223372036854775807",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "fsync after this many messages (acks=-1 always fsyncs).",
    },
    TopicKeyDef {
        name: "flush.ms",
        broker_key: Some("log.flush.interval.ms"),
        default: "9223372036854775807",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "fsync after this much time (acks=-1 always fsyncs).",
    },
    TopicKeyDef {
        name: "delete.retention.ms",
        broker_key: Some("log.cleaner.delete.retention.ms"),
        default: "86400000",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "How long tombstones and transaction markers survive in a compacted log after the \
              segment holding them was cleaned.",
    },
    TopicKeyDef {
        name: "min.cleanable.dirty.ratio",
        broker_key: Some("log.cleaner.min.cleanable.ratio"),
        default: "0.5",
        kind: Kind::Ratio,
        config_type: config_type::DOUBLE,
        doc: "A compacted log is cleaned once the uncleaned share of its cleanable bytes reaches \
              this ratio.",
    },
    TopicKeyDef {
        name: "min.compaction.lag.ms",
        broker_key: Some("log.cleaner.min.compaction.lag.ms"),
        default: "0",
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "A record stays uncompacted at least this long after it was appended.",
    },
    TopicKeyDef {
        name: "max.compaction.lag.ms",
        broker_key: Some("log.cleaner.max.compaction.lag.ms"),
        default: "9223372036854775807",
        kind: Kind::Int {
            min: 1,
            max: i64::MAX,
        },
        config_type: config_type::LONG,
        doc: "A log whose oldest uncleaned record is older than this is cleaned whatever its \
              dirty ratio (the active segment is rolled for it).",
    },
    TopicKeyDef {
        name: "unclean.leader.election.enable",
        broker_key: Some("unclean.leader.election.enable"),
        default: "false",
        kind: Kind::Bool,
        config_type: config_type::BOOLEAN,
        doc: "In a cluster: when no in-sync replica is alive, a live replica outside the ISR may \
              lead (records it lacks are lost). Meaningless on a single broker.",
    },
    TopicKeyDef {
        name: "leader.replication.throttled.replicas",
        broker_key: None,
        default: "",
        kind: Kind::Str,
        config_type: config_type::LIST,
        doc: "partition:broker pairs (or *) whose leader side is throttled to \
              leader.replication.throttled.rate while their followers are out of sync (replica \
              moves).",
    },
    TopicKeyDef {
        name: "follower.replication.throttled.replicas",
        broker_key: None,
        default: "",
        kind: Kind::Str,
        config_type: config_type::LIST,
        doc: "partition:broker pairs (or *) whose follower fetches are throttled to \
              follower.replication.throttled.rate while out of sync (replica moves).",
    },
];

/// Whether a `*.replication.throttled.replicas` value names `partition` on `broker`.
pub fn throttled(list: &str, partition: i32, broker: i32) -> bool {
    let list = list.trim();
    list == "*"
        || list.split(',').any(|pair| {
            pair.trim().split_once(':').and_then(|(p, b)| {
                Some((p.trim().parse::<i32>().ok()?, b.trim().parse::<i32>().ok()?))
            }) == Some((partition, broker))
        })
}

/// Why a topic config was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TopicConfigError {
    /// Not a topic-level key.
    #[error("unknown topic config `{0}`")]
    UnknownKey(String),
    /// The value failed validation.
    #[error("invalid value `{value}` for topic config `{key}`: {reason}")]
    InvalidValue {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Reason.
        reason: String,
    },
}

/// Looks a key up.
pub fn def(name: &str) -> Option<&'static TopicKeyDef> {
    TOPIC_KEYS.iter().find(|d| d.name == name)
}

/// Validates one key/value pair.
pub fn validate(key: &str, value: &str) -> Result<(), TopicConfigError> {
    let d = def(key).ok_or_else(|| TopicConfigError::UnknownKey(key.to_string()))?;
    let v = value.trim();
    let bad = |reason: String| TopicConfigError::InvalidValue {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    };
    match d.kind {
        Kind::Int { min, max } => {
            let n: i64 = v.parse().map_err(|_| bad("not an integer".into()))?;
            if n < min || n > max {
                return Err(bad(format!("must be between {min} and {max}")));
            }
        }
        Kind::Bool => {
            if v != "true" && v != "false" {
                return Err(bad("must be true or false".into()));
            }
        }
        Kind::Enum(options) => {
            if !options.contains(&v) {
                return Err(bad(format!("must be one of {}", options.join(", "))));
            }
        }
        Kind::Ratio => {
            crate::config::parse_ratio(v).map_err(bad)?;
        }
        Kind::Str | Kind::Listeners => {}
    }
    Ok(())
}

/// The value a topic uses for `key`: its override, else the broker's key, else the default.
/// Returns the value and whether it is an override.
pub fn effective(
    key: &'static TopicKeyDef,
    overrides: &BTreeMap<String, String>,
    broker: &Config,
) -> (String, Source) {
    if let Some(v) = overrides.get(key.name) {
        return (v.clone(), Source::Topic);
    }
    if let Some(bk) = key.broker_key {
        if let Some(entry) = broker.dynamic_entry(bk) {
            return entry;
        }
        if let Some(v) = broker.values.get(bk) {
            let source = if broker.explicit.contains(bk) {
                Source::StaticBroker
            } else {
                Source::Default
            };
            return (v.clone(), source);
        }
    }
    (key.default.to_string(), Source::Default)
}

/// Where a config value comes from (Kafka's `ConfigSource` codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// DYNAMIC_TOPIC_CONFIG.
    Topic = 1,
    /// DYNAMIC_BROKER_CONFIG.
    DynamicBroker = 2,
    /// DYNAMIC_DEFAULT_BROKER_CONFIG.
    DynamicDefaultBroker = 3,
    /// STATIC_BROKER_CONFIG.
    StaticBroker = 4,
    /// DEFAULT_CONFIG.
    Default = 5,
}

/// An integer-valued effective setting (falls back to the table default if unparsable).
pub fn effective_i64(name: &str, overrides: &BTreeMap<String, String>, broker: &Config) -> i64 {
    let Some(d) = def(name) else { return 0 };
    let (v, _) = effective(d, overrides, broker);
    v.trim()
        .parse()
        .unwrap_or_else(|_| d.default.parse().unwrap_or(0))
}

fn dir(log_dir: &Path) -> PathBuf {
    log_dir.join(".esker-config").join("topics")
}

/// Persists a topic's overrides (an empty map removes the file).
pub fn store(
    log_dir: &Path,
    topic: &str,
    overrides: &BTreeMap<String, String>,
) -> std::io::Result<()> {
    let d = dir(log_dir);
    let path = d.join(format!("{topic}.properties"));
    if overrides.is_empty() {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        return std::fs::File::open(&d)?.sync_all();
    }
    std::fs::create_dir_all(&d)?;
    let tmp = d.join(format!("{topic}.properties.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    for (k, v) in overrides {
        writeln!(f, "{k}={v}")?;
    }
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(&d)?.sync_all()
}

/// Loads a topic's overrides (empty if none are stored). Unknown or invalid stored keys are
/// dropped with a warning rather than failing start-up.
pub fn load(log_dir: &Path, topic: &str) -> BTreeMap<String, String> {
    let path = dir(log_dir).join(format!("{topic}.properties"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match validate(k, v) {
            Ok(()) => {
                out.insert(k.to_string(), v.to_string());
            }
            Err(e) => tracing::warn!(topic, error = %e, "ignoring stored topic config"),
        }
    }
    out
}

/// A partition log's settings for a topic: the broker's defaults with the topic's log-level
/// overrides (`segment.bytes`, `segment.ms`, `retention.*`, `flush.*`, index sizes) applied.
/// `max.message.bytes` is left to the produce handler, which enforces it per request. As in
/// Kafka, retention deletes nothing of a topic whose `cleanup.policy` lacks `delete`.
pub fn log_config(broker: &Config, overrides: &BTreeMap<String, String>) -> crate::log::LogConfig {
    let mut config = broker.log_config();
    // Dynamic broker values first (they replace the static defaults), then topic overrides.
    for d in TOPIC_KEYS {
        let Some(value) = d.broker_key.and_then(|bk| broker.dynamic_value(bk)) else {
            continue;
        };
        if d.name != "max.message.bytes" {
            if let Ok(n) = value.trim().parse::<i64>() {
                config.set_topic_config(d.name, n);
            }
        }
    }
    for (key, value) in overrides {
        if key == "max.message.bytes" {
            continue;
        }
        if let Ok(n) = value.trim().parse::<i64>() {
            config.set_topic_config(key, n);
        }
    }
    if let Some(d) = def("min.cleanable.dirty.ratio") {
        if let Ok(r) = crate::config::parse_ratio(&effective(d, overrides, broker).0) {
            config.min_cleanable_dirty_ratio = r;
        }
    }
    config.compact = def("cleanup.policy").is_some_and(|d| {
        effective(d, overrides, broker)
            .0
            .split(',')
            .any(|p| p.trim() == "compact")
    });
    let deletes = def("cleanup.policy").map_or(true, |d| {
        effective(d, overrides, broker)
            .0
            .split(',')
            .any(|p| p.trim() == "delete")
    });
    if !deletes {
        config.retention_ms = None;
        config.retention_bytes = None;
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        assert!(validate("retention.ms", "1000").is_ok());
        let e = validate("retention.ms", "soon").unwrap_err();
        assert!(e.to_string().contains("retention.ms"));
        let e = validate("no.such", "1").unwrap_err();
        assert!(e.to_string().contains("no.such"));
        assert!(validate("cleanup.policy", "compact").is_ok());
        assert!(validate("cleanup.policy", "shred").is_err());
    }

    #[test]
    fn store_load_round_trip_and_effective_values() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1234".to_string());
        store(dir.path(), "t", &o).unwrap();
        assert_eq!(load(dir.path(), "t"), o);
        let broker = Config::for_test(dir.path());
        assert_eq!(effective_i64("retention.ms", &o, &broker), 1234);
        assert_eq!(
            effective_i64("max.message.bytes", &o, &broker),
            broker.message_max_bytes as i64
        );
        store(dir.path(), "t", &BTreeMap::new()).unwrap();
        assert!(load(dir.path(), "t").is_empty());
    }

    #[test]
    fn log_config_layers_topic_overrides() {
        let broker = Config::for_test("/tmp/unused");
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "-1".to_string());
        o.insert("segment.bytes".to_string(), "4096".to_string());
        o.insert("cleanup.policy".to_string(), "compact".to_string());
        o.insert("max.message.bytes".to_string(), "10".to_string());
        let c = log_config(&broker, &o);
        assert_eq!(c.retention_ms, None);
        assert_eq!(c.segment_bytes, 4096);
        assert_eq!(c.max_message_bytes, broker.log_config().max_message_bytes);
        assert_eq!(log_config(&broker, &BTreeMap::new()), broker.log_config());
        // A compacted topic is not trimmed by retention; "compact,delete" is.
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert("retention.bytes".to_string(), "1000".to_string());
        let c = log_config(&broker, &o);
        assert_eq!((c.retention_ms, c.retention_bytes), (None, None));
        o.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        let c = log_config(&broker, &o);
        assert_eq!(
            (c.retention_ms, c.retention_bytes),
            (Some(1000), Some(1000))
        );
    }
}
