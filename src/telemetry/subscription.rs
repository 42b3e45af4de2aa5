//! Client metrics resources (KIP-714 subscriptions): their three configs (`metrics`,
//! `interval.ms`, `match`), Kafka's validation of them, the match of a client against their
//! selectors, and the subscription a client ends up with (the union of the matching
//! subscriptions' prefixes, the smallest interval, and the id that names that set).

use std::collections::{BTreeMap, BTreeSet};

use regex::Regex;
use uuid::Uuid;

/// The metrics prefixes key (a list; `*` subscribes everything).
pub const METRICS: &str = "metrics";
/// The push interval key (milliseconds, 100..=3600000).
pub const INTERVAL_MS: &str = "interval.ms";
/// The client selector key (a list of `selector=regex`).
pub const MATCH: &str = "match";
/// Every config of a client metrics resource.
pub const KEYS: &[&str] = &[METRICS, INTERVAL_MS, MATCH];
/// Keys whose values are comma-separated lists.
pub const LIST_KEYS: &[&str] = &[METRICS, MATCH];
/// A push interval when no subscription says otherwise: five minutes (Kafka's default).
pub const DEFAULT_INTERVAL_MS: i32 = 300_000;
const MIN_INTERVAL_MS: i32 = 100;
const MAX_INTERVAL_MS: i32 = 3_600_000;
/// The selectors `match` may name.
pub const SELECTORS: &[&str] = &[
    "client_instance_id",
    "client_id",
    "client_software_name",
    "client_software_version",
    "client_source_address",
    "client_source_port",
];

/// Why a client metrics resource's configs are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// An empty resource name (Kafka: INVALID_REQUEST).
    #[error("subscription name must not be empty")]
    EmptyName,
    /// A key other than `metrics`, `interval.ms`, `match` (INVALID_REQUEST).
    #[error("unknown client metrics configuration: {0}")]
    UnknownKey(String),
    /// `interval.ms` out of 100..=3600000 (INVALID_REQUEST).
    #[error(
        "invalid value {0} for interval.ms, interval must be between 100 and 3600000 (1 hour)"
    )]
    Interval(String),
    /// `interval.ms` not an integer (INVALID_CONFIG).
    #[error("invalid value {0} for interval.ms: not an integer")]
    NotAnInteger(String),
    /// A `match` entry that is not `selector=regex` with a known selector and a valid regex
    /// (INVALID_CONFIG).
    #[error("illegal client matching pattern: {0}")]
    Pattern(String),
}

/// A validated subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Requested metric name prefixes (`*` for all; empty subscribes nothing).
    pub metrics: Vec<String>,
    /// Push interval in milliseconds.
    pub interval_ms: i32,
    /// Selector to anchored regex; every one must match (none: every client matches).
    pub selectors: Vec<(String, Regex)>,
}

/// Splits a list value as Kafka's `ConfigDef.Type.LIST` does: by commas, trimmed, empties
/// dropped.
pub fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Subscription {
    /// Validates a resource's configs as Kafka's `ClientMetricsConfigs.validate` does.
    pub fn parse(
        name: &str,
        configs: &BTreeMap<String, String>,
    ) -> Result<Subscription, SubscriptionError> {
        if name.is_empty() {
            return Err(SubscriptionError::EmptyName);
        }
        if let Some(k) = configs.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(SubscriptionError::UnknownKey(k.clone()));
        }
        let interval_ms = match configs.get(INTERVAL_MS) {
            None => DEFAULT_INTERVAL_MS,
            Some(v) => {
                let n: i32 = v
                    .trim()
                    .parse()
                    .map_err(|_| SubscriptionError::NotAnInteger(v.clone()))?;
                if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&n) {
                    return Err(SubscriptionError::Interval(v.clone()));
                }
                n
            }
        };
        let metrics = configs.get(METRICS).map(|v| list(v)).unwrap_or_default();
        let mut selectors = Vec::new();
        for pattern in configs.get(MATCH).map(|v| list(v)).unwrap_or_default() {
            let bad = || SubscriptionError::Pattern(pattern.clone());
            // Kafka splits on '=' and wants exactly two parts.
            let mut parts = pattern.split('=');
            let (Some(selector), Some(re), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let selector = selector.trim();
            if !SELECTORS.contains(&selector) {
                return Err(bad());
            }
            // Java's Matcher.matches(): the whole attribute must match.
            let re = Regex::new(&format!("^(?:{})$", re.trim())).map_err(|_| bad())?;
            selectors.retain(|(s, _): &(String, Regex)| s != selector);
            selectors.push((selector.to_string(), re));
        }
        Ok(Subscription {
            metrics,
            interval_ms,
            selectors,
        })
    }

    /// Whether a client instance matches every selector (a selector on an attribute the
    /// client does not have does not match).
    pub fn matches(&self, instance: Uuid, client: &ClientInfo) -> bool {
        self.selectors.iter().all(|(s, re)| {
            let value = if s == "client_instance_id" {
                Some(instance.to_string())
            } else {
                client.attribute(s)
            };
            value.is_some_and(|v| re.is_match(&v))
        })
    }
}

/// What the broker knows about a client instance when it first sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The request header's client id.
    pub client_id: String,
    /// From the connection's ApiVersions request (v3+), if it sent one.
    pub software_name: Option<String>,
    /// From the connection's ApiVersions request (v3+), if it sent one.
    pub software_version: Option<String>,
    /// The peer's IP address.
    pub source_address: Option<String>,
    /// The peer's port.
    pub source_port: Option<u16>,
}

impl ClientInfo {
    fn attribute(&self, selector: &str) -> Option<String> {
        match selector {
            "client_id" => Some(self.client_id.clone()),
            "client_software_name" => self.software_name.clone(),
            "client_software_version" => self.software_version.clone(),
            "client_source_address" => self.source_address.clone(),
            "client_source_port" => self.source_port.map(|p| p.to_string()),
            _ => None,
        }
    }
}

/// A client instance's resolved subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The requested prefixes: `["*"]` when any match asked for everything, else the union.
    pub metrics: Vec<String>,
    /// The smallest interval of the matching subscriptions (the default when none matches).
    pub interval_ms: i32,
    /// The id naming this set for this instance.
    pub id: i32,
}

/// Resolves what `instance` is subscribed to among `subs`, as Kafka's `ClientMetricsManager`
/// does: matching subscriptions' prefixes united, the smallest interval, and the id a CRC-32C
/// of the prefixes and the interval XORed with the instance id's hash.
pub fn resolve<'a>(
    subs: impl IntoIterator<Item = &'a Subscription>,
    instance: Uuid,
    client: &ClientInfo,
) -> Resolved {
    let mut interval_ms = DEFAULT_INTERVAL_MS;
    let mut metrics = BTreeSet::new();
    let mut all = false;
    for s in subs.into_iter().filter(|s| s.matches(instance, client)) {
        all |= s.metrics.iter().any(|m| m == "*");
        metrics.extend(s.metrics.iter().cloned());
        interval_ms = interval_ms.min(s.interval_ms);
    }
    let metrics: Vec<String> = if all {
        vec!["*".to_string()]
    } else {
        metrics.into_iter().collect()
    };
    let id = subscription_id(&metrics, interval_ms, instance);
    Resolved {
        metrics,
        interval_ms,
        id,
    }
}

/// CRC-32C of `"[m1, m2]" + interval` XOR the instance id's Java-style hash.
fn subscription_id(metrics: &[String], interval_ms: i32, instance: Uuid) -> i32 {
    let text = format!("[{}]{interval_ms}", metrics.join(", "));
    let crc = crc32c::crc32c(text.as_bytes()) as i32;
    let (hi, lo) = instance.as_u64_pair();
    let h = hi ^ lo;
    let hash = ((h >> 32) as i32) ^ (h as i32);
    crc ^ hash
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn client() -> ClientInfo {
        ClientInfo {
            client_id: "orders-producer".into(),
            software_name: Some("librdkafka".into()),
            software_version: Some("2.12.1".into()),
            source_address: Some("10.0.0.7".into()),
            source_port: Some(50123),
        }
    }

    #[test]
    fn validation_follows_kafka() {
        assert_eq!(
            Subscription::parse("", &configs(&[])).unwrap_err(),
            SubscriptionError::EmptyName
        );
        assert_eq!(
            Subscription::parse("s", &configs(&[("metric", "x")])).unwrap_err(),
            SubscriptionError::UnknownKey("metric".into())
        );
        for bad in ["99", "3600001", "-1"] {
            assert!(matches!(
                Subscription::parse("s", &configs(&[("interval.ms", bad)])),
                Err(SubscriptionError::Interval(_))
            ));
        }
        assert!(matches!(
            Subscription::parse("s", &configs(&[("interval.ms", "soon")])),
            Err(SubscriptionError::NotAnInteger(_))
        ));
        for bad in [
            "client_id",
            "client_id=a=b",
            "client_rack=r1",
            "client_id=(",
        ] {
            assert!(
                matches!(
                    Subscription::parse("s", &configs(&[("match", bad)])),
                    Err(SubscriptionError::Pattern(_))
                ),
                "{bad}"
            );
        }
        let s = Subscription::parse(
            "s",
            &configs(&[
                (
                    "metrics",
                    "org.apache.kafka.producer., org.apache.kafka.consumer.",
                ),
                ("interval.ms", "1000"),
                (
                    "match",
                    "client_id=orders-.*,client_software_name=librdkafka",
                ),
            ]),
        )
        .unwrap();
        assert_eq!(s.interval_ms, 1000);
        assert_eq!(s.metrics.len(), 2);
        assert_eq!(s.selectors.len(), 2);
    }

    #[test]
    fn selectors_match_whole_attributes() {
        let sub = |m: &str| Subscription::parse("s", &configs(&[("match", m)])).unwrap();
        let c = client();
        let id = Uuid::new_v4();
        assert!(sub("client_id=orders-.*").matches(id, &c));
        // Anchored as Java's Matcher.matches(): a substring is not enough.
        assert!(!sub("client_id=orders").matches(id, &c));
        assert!(
            sub("client_software_name=librdkafka,client_software_version=2\\..*").matches(id, &c)
        );
        assert!(!sub("client_software_name=apache-kafka-java").matches(id, &c));
        assert!(sub("client_source_address=10\\.0\\.0\\.[0-9]+").matches(id, &c));
        assert!(sub("client_source_port=50123").matches(id, &c));
        // An attribute the client does not have does not match.
        let anonymous = ClientInfo {
            client_id: "x".into(),
            ..ClientInfo::default()
        };
        assert!(!sub("client_software_name=.*").matches(id, &anonymous));
        // No selector: every client.
        assert!(Subscription::parse("s", &configs(&[]))
            .unwrap()
            .matches(id, &anonymous));
    }

    #[test]
    fn resolution_unites_prefixes_and_takes_the_smallest_interval() {
        let a = Subscription::parse(
            "a",
            &configs(&[
                ("metrics", "org.apache.kafka.producer."),
                ("interval.ms", "60000"),
            ]),
        )
        .unwrap();
        let b = Subscription::parse(
            "b",
            &configs(&[
                ("metrics", "org.apache.kafka.consumer."),
                ("interval.ms", "5000"),
                ("match", "client_id=orders-.*"),
            ]),
        )
        .unwrap();
        let other = Subscription::parse(
            "c",
            &configs(&[
                ("metrics", "*"),
                ("interval.ms", "100"),
                ("match", "client_id=nobody"),
            ]),
        )
        .unwrap();
        let id = Uuid::new_v4();
        let r = resolve([&a, &b, &other], id, &client());
        assert_eq!(
            r.metrics,
            vec!["org.apache.kafka.consumer.", "org.apache.kafka.producer."]
        );
        assert_eq!(r.interval_ms, 5000);
        // The id is stable for the same set, and differs per instance and per set.
        assert_eq!(r.id, resolve([&b, &a, &other], id, &client()).id);
        assert_ne!(r.id, resolve([&a, &b], Uuid::new_v4(), &client()).id);
        assert_ne!(r.id, resolve([&a], id, &client()).id);
        // `*` anywhere subscribes everything.
        let all = Subscription::parse("all", &configs(&[("metrics", "*,x")])).unwrap();
        assert_eq!(resolve([&a, &all], id, &client()).metrics, vec!["*"]);
        // Nothing matching: no metrics at the default interval.
        let none = resolve([&other], id, &client());
        assert!(none.metrics.is_empty());
        assert_eq!(none.interval_ms, DEFAULT_INTERVAL_MS);
        // The instance id is a selector too.
        let mine = Subscription::parse(
            "mine",
            &configs(&[
                ("metrics", "m"),
                ("match", &format!("client_instance_id={id}")),
            ]),
        )
        .unwrap();
        assert_eq!(resolve([&mine], id, &client()).metrics, vec!["m"]);
        assert!(resolve([&mine], Uuid::new_v4(), &client())
            .metrics
            .is_empty());
    }
}
